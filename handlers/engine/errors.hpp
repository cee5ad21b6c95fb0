// One place that sorts database failures into what to do about them (CONVENTIONS "Errors"):
// retry what is transient, reject the row for what one row's data caused, and fail the batch
// (or stop) for everything else.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace ingestd::engine {

/// @brief A failure of the whole batch that retrying cannot fix (missing column, bad file).
struct BatchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// @brief A dependency the event needs (PostgreSQL, the Kafka brokers) is unavailable. Nothing
/// about the event is wrong: the runtime rewinds to it and reads it again once things recover.
/// Every other failure while processing an event is answered (dead letter, failed result).
struct Unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// @brief What a database failure means for the work that hit it.
enum class DbFailure {
  Connection,  // the connection broke: reconnect, retry (the infrastructure, not the event)
  InDoubt,     // a commit whose outcome is unknown: stop and look, then retry from the checkpoint
  Transient,   // serialization failure, deadlock, lock timeout, shutdown in progress: retry
  Row,         // data or constraint error one row's value can cause: reject that row
  Fatal,       // anything else (missing column, permissions, syntax): fail the batch
};

/// @brief A classified failure: its kind, the metric reason and a one-line message.
struct DbError {
  DbFailure kind = DbFailure::Fatal;
  std::string reason;   // ingestd_retries_total{reason}: connection | in_doubt | serialization | resources | ""
  std::string message;  // the database's first line
  std::string sqlstate; // "" when there is none (broken connection, non-SQL exception)
  bool retry() const { return kind == DbFailure::Connection || kind == DbFailure::InDoubt || kind == DbFailure::Transient; }
};

/// Classifies any exception a libpqxx call may throw. Correct on libpqxx 6 (where
/// transaction_rollback is not an sql_error) and 7 (where it is): classes are tested from the
/// most specific, and the SQLSTATE decides where the class hierarchy does not.
DbError classify_db_error(const std::exception& e);

/// The database's first line without the value a data exception (SQLSTATE class 22) quotes
/// (`invalid input syntax for type integer: "abc"` becomes `…: (value not shown)`): what a
/// batch's reason, read in results and /status, may say; and the same refusal of different
/// values reads the same.
std::string without_value(const DbError& e);

/// True for what is worth trying again later: an Unavailable dependency or a database failure
/// that classify_db_error says to retry. Anything else is the event's own answer.
bool transient_failure(const std::exception& e);

/// Classifies the exception being handled (call inside a catch block).
DbError classify_current_db_error();

/// The first line of a database message (PostgreSQL adds detail lines that results don't need).
std::string first_line(std::string message);

}  // namespace ingestd::engine
