// The batch wrapper every handler runs its work in: a BatchError, a refused statement or any
// other error that retrying cannot fix fails the batch (recorded, result written); a retryable
// database error goes up to be retried.
#include <chrono>

#include <spdlog/spdlog.h>

#include "config/redact.hpp"
#include "daemon/logging.hpp"
#include "handlers/handler.hpp"

namespace ingestd {

std::string batch_summary(const Outcome& o) {
  if (o.kind == Outcome::Kind::Interrupted) return "interrupted: it resumes from its checkpoint";
  std::string s(engine::to_string(o.status));
  if (o.extra.contains("rows") && o.extra["rows"].is_number_integer())
    s += ", " + std::to_string(o.extra["rows"].get<int64_t>()) + " rows read";
  for (const auto& entity : o.entity_order) {
    const auto it = o.counts.find(entity);
    if (it == o.counts.end()) continue;
    const EntityCounts& c = it->second;
    s += "; " + entity + ": " + std::to_string(c.inserted) + " inserted, " + std::to_string(c.updated) +
         " updated, " + std::to_string(c.unchanged) + " unchanged, " + std::to_string(c.rejected) + " rejected, " +
         std::to_string(c.review) + " to review";
  }
  if (!o.reject_file.empty()) s += "; rejects in " + o.reject_file;
  if (o.status == engine::ResultStatus::Failed && !o.errors.empty()) s += ": " + o.errors.front();
  return s;
}

namespace {

/// @brief The batch's start line now, its end line (with its counts and duration) from end();
/// meanwhile every line of the thread carries the batch id.
class BatchLogLines {
 public:
  explicit BatchLogLines(const std::string& batch_id) : context_(with_batch(batch_id)), id_(batch_id) {
    const LogContext& c = log_context();
    log_->info("batch {} started: event {}, {} {}{}", id_, c.event_id.empty() ? "-" : c.event_id,
               c.target_kind.empty() ? "target" : c.target_kind, c.target, c.uri.empty() ? "" : ", " + c.uri);
  }
  void end(const Outcome& o) const {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    log_->info("batch {} ended after {:.2f}s: {}", id_, secs, batch_summary(o));
  }

 private:
  static LogContext with_batch(const std::string& batch_id) {
    LogContext c = log_context();
    c.batch_id = batch_id;
    return c;
  }
  ScopedLogContext context_;
  std::string id_;
  std::shared_ptr<spdlog::logger> log_ = component_logger("engine");
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace

Outcome fail_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::string& reason,
                   const nlohmann::json& extra) {
  const std::string why = config::redact(reason);  // it goes to the result and batches.error_summary
  Outcome o = Outcome::failed(why, batch_id);
  o.extra = extra;
  pqxx::work tx(svc.db);
  engine::Bookkeeping(svc.cfg.postgres.bookkeeping_schema).fail(tx, batch_id, why, extra);
  commit.write(tx, o);
  tx.commit();
  o.committed = true;
  return o;
}

namespace {

Outcome run_batch_work(Services& svc, EventCommit& commit, const std::string& batch_id,
                       const std::function<Outcome()>& work,
                       const std::function<std::string(const pqxx::sql_error&)>& describe) {
  try {
    return work();
  } catch (const engine::BatchError& e) {
    spdlog::warn("batch {}: {}", batch_id, e.what());
    return fail_batch(svc, commit, batch_id, e.what());
  } catch (const pqxx::sql_error& e) {
    if (engine::classify_db_error(e).retry()) throw;  // libpqxx 7: transaction_rollback is an sql_error
    const std::string why = describe(e);
    spdlog::error("batch {}: the database refused it: {}", batch_id, why);
    return fail_batch(svc, commit, batch_id, why);
  } catch (const std::exception& e) {
    // Everything else the work can throw (an unknown encoding, a rejects_dir that cannot be
    // created, a parser's own error) is as final: left to the worker it would fail the event
    // but leave its batch `running`, which rollback then refuses (issue 16).
    if (engine::transient_failure(e)) throw;
    spdlog::error("batch {}: {}", batch_id, e.what());
    return fail_batch(svc, commit, batch_id, excerpt(first_line(e.what()), 4000));
  }
}

}  // namespace

Outcome run_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::function<Outcome()>& work,
                  const std::function<std::string(const pqxx::sql_error&)>& describe) {
  const BatchLogLines lines(batch_id);
  Outcome o = run_batch_work(svc, commit, batch_id, work, describe);
  lines.end(o);
  return o;
}

}  // namespace ingestd
