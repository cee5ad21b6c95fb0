// The worker: the instance's own PostgreSQL connection (a batch's advisory lock lives on it)
// and the retry loop around a handler (DESIGN §5 rule 9). `ingestd run` and `ingestd load`
// both run their events through it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>
#include <spdlog/logger.h>

#include "config/model.hpp"
#include "daemon/inbox.hpp"
#include "daemon/logging.hpp"
#include "daemon/metrics.hpp"
#include "handlers/handler.hpp"

namespace ingestd {

/// host:pid, the owner of the batches this process runs.
std::string instance_id();

/// What the lines logged while `ev` runs carry: its id, its dataset or job, its file's URI.
LogContext event_log_context(const HandlerSpec& spec, const Event& ev);

class Worker {
 public:
  /// `cfg` must outlive the worker: a reload changes its datasets and jobs in place.
  Worker(const config::Config& cfg, Metrics& metrics, const Inbox& inbox, std::string instance,
         std::function<void()> keepalive);

  /// The connection, opened anew when there is none or it closed.
  pqxx::connection& db();
  /// Whether a connection is held (it may have closed since).
  bool connected() const { return bool(db_); }
  /// Drops the connection; the next db() opens a fresh one.
  void disconnect() { db_.reset(); }
  /// Whether PostgreSQL answered the last time it was asked (/readyz).
  bool reachable() const { return pg_ok_; }
  void set_reachable(bool ok) { pg_ok_ = ok; }

  /// @brief A handler's run: its outcome, the attempts it took and the last transient failure.
  struct Run {
    Outcome outcome;
    int attempts = 0;
    std::string last_reason;
  };
  /// Runs `spec` on `ev`, retrying transient failures with backoff until max_attempts; a stop
  /// asked meanwhile answers Interrupted, another instance finishing the event a duplicate.
  Run run(const HandlerSpec& spec, const Event& ev);
  /// Writes the inbox row and offset of a finished run whose handler did not commit them.
  void settle(const Event& ev, const Run& run);

 private:
  /// One call of the handler; a database error becomes a failure or a Retry with its reason.
  Outcome attempt(const HandlerSpec& spec, const Event& ev, int attempts, std::string& metric_reason);
  /// Sleeps before the next attempt, keeping Kafka and the watchdog fed; false when a stop came.
  bool back_off(const Event& ev, const Outcome& o, int attempts);
  /// The duplicate answer when another instance finished the event meanwhile.
  std::optional<Outcome> finished_elsewhere(const Event& ev);

  const config::Config& cfg_;
  Metrics& metrics_;
  const Inbox& inbox_;
  std::string instance_;
  std::function<void()> keepalive_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<pqxx::connection> db_;
  std::atomic<bool> pg_ok_{false};
};

}  // namespace ingestd
