#include "handlers/engine/errors.hpp"

#include <pqxx/pqxx>

namespace ingestd::engine {

std::string first_line(std::string message) {
  if (auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

namespace {

/// SQLSTATE classes (PostgreSQL appendix A) for errors the class hierarchy leaves ambiguous.
DbFailure by_sqlstate(const std::string& s) {
  if (s.size() != 5) return DbFailure::Fatal;
  const std::string cls = s.substr(0, 2);
  if (cls == "08") return DbFailure::Connection;  // connection exception
  if (cls == "40") return DbFailure::Transient;   // transaction rollback (serialization, deadlock)
  if (s == "55P03" || s == "57014") return DbFailure::Transient;  // lock not available, query canceled
  if (s == "57P01" || s == "57P02" || s == "57P03") return DbFailure::Connection;  // server shutting down
  if (cls == "53") return DbFailure::Transient;  // insufficient resources: disk full, out of memory, too many connections
  if (cls == "22" || cls == "23") return DbFailure::Row;  // data exception, integrity constraint
  return DbFailure::Fatal;
}

}  // namespace

DbError classify_db_error(const std::exception& e) {
  DbError out;
  out.message = first_line(e.what());
  // Most specific first: on libpqxx 7 transaction_rollback derives from sql_error, so testing
  // sql_error first would turn a deadlock into a failed batch.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) {
    out.kind = DbFailure::InDoubt;
    out.reason = "in_doubt";
    return out;
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) {
    out.kind = DbFailure::Connection;
    out.reason = "connection";
    return out;
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e)) {
    out.kind = DbFailure::Transient;
    out.reason = "serialization";
    return out;
  }
  if (const auto* se = dynamic_cast<const pqxx::sql_error*>(&e)) {
    out.sqlstate = se->sqlstate();
    out.kind = by_sqlstate(out.sqlstate);
    if (out.kind == DbFailure::Connection) out.reason = "connection";
    if (out.kind == DbFailure::Transient) out.reason = out.sqlstate.rfind("53", 0) == 0 ? "resources" : "serialization";
    return out;
  }
  out.kind = DbFailure::Fatal;
  return out;
}

bool transient_failure(const std::exception& e) {
  return dynamic_cast<const Unavailable*>(&e) != nullptr || classify_db_error(e).retry();
}

DbError classify_current_db_error() {
  try {
    throw;
  } catch (const std::exception& e) {
    return classify_db_error(e);
  } catch (...) {
    DbError out;
    out.message = "unknown error";
    return out;
  }
}

std::string without_value(const DbError& e) {
  const size_t quoted = e.message.find(": \"");
  if (e.sqlstate.rfind("22", 0) != 0 || quoted == std::string::npos) return e.message;
  return e.message.substr(0, quoted) + ": (value not shown)";
}

}  // namespace ingestd::engine
