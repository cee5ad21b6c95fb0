#include "daemon/worker.hpp"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "daemon/logging.hpp"
#include "daemon/signals.hpp"

namespace ingestd {

using Clock = std::chrono::steady_clock;

std::string instance_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

LogContext event_log_context(const HandlerSpec& spec, const Event& ev) {
  LogContext c;
  c.event_id = ev.event_id;
  c.target_kind = spec.topic_key == "jobs" ? "job" : "dataset";
  c.target = spec.target(ev);
  if (ev.payload.is_object() && ev.payload.contains("uri") && ev.payload["uri"].is_string())
    c.uri = ev.payload["uri"].get<std::string>();
  return c;
}

Worker::Worker(const config::Config& cfg, Metrics& metrics, const Inbox& inbox, std::string instance,
               std::function<void()> keepalive)
    : cfg_(cfg),
      metrics_(metrics),
      inbox_(inbox),
      instance_(std::move(instance)),
      keepalive_(std::move(keepalive)),
      log_(component_logger("runtime")) {}

pqxx::connection& Worker::db() {
  if (!db_ || !db_->is_open()) {
    db_.reset();
    db_ = std::make_unique<pqxx::connection>(cfg_.postgres.url);
    pg_ok_ = true;
  }
  return *db_;
}

Worker::Run Worker::run(const HandlerSpec& spec, const Event& ev) {
  const ScopedLogContext context(event_log_context(spec, ev));
  Run r;
  for (;;) {
    ++r.attempts;
    std::string metric_reason;
    r.outcome = attempt(spec, ev, r.attempts, metric_reason);
    const Outcome& o = r.outcome;
    if (o.kind != Outcome::Kind::Retry) return r;
    r.last_reason = o.reason;
    metrics_.retry(metric_reason.empty() ? "busy" : metric_reason);
    // Another instance owns the work (a redelivery during a rebalance, the same file under
    // another event id): that is no failure of this event, so wait without using up attempts.
    if (o.busy) --r.attempts;
    if (r.attempts >= cfg_.processing.max_attempts) return r;
    if (!back_off(ev, o, r.attempts)) {
      r.outcome = Outcome{};
      r.outcome.kind = Outcome::Kind::Interrupted;
      return r;
    }
    // Meanwhile another instance may have finished this very event: then it is a duplicate.
    if (auto d = finished_elsewhere(ev)) {
      r.outcome = *d;
      return r;
    }
  }
}

Outcome Worker::attempt(const HandlerSpec& spec, const Event& ev, int attempts, std::string& metric_reason) {
  InboxCommit commit(inbox_, ev, attempts);
  try {
    Services s{cfg_, metrics_, db(), instance_, stop_requested(), keepalive_};
    return spec.handle(ev, s, commit);
  } catch (const std::exception& e) {
    const engine::DbError err = engine::classify_db_error(e);
    if (!err.retry()) {
      log_->error("event {} failed: {}", ev.event_id, e.what());
      return Outcome::failed(e.what());
    }
    Outcome o;
    o.kind = Outcome::Kind::Retry;
    metric_reason = err.reason;
    if (err.kind == engine::DbFailure::Transient) {
      o.reason = std::string("transaction rolled back: ") + e.what();
      return o;
    }
    // the connection is gone or its last commit is in doubt: start over on a new one
    if (err.kind == engine::DbFailure::InDoubt)
      log_->critical("commit outcome unknown for event {}: {}", ev.event_id, e.what());
    o.reason = std::string(err.kind == engine::DbFailure::InDoubt ? "commit outcome unknown: "
                                                                  : "lost connection to PostgreSQL: ") +
               e.what();
    o.infrastructure = true;
    if (err.kind == engine::DbFailure::Connection) pg_ok_ = false;
    disconnect();
    return o;
  }
}

bool Worker::back_off(const Event& ev, const Outcome& o, int attempts) {
  const double delay =
      o.busy ? 1.0 : std::min(30.0, cfg_.processing.retry_base_seconds * double(1 << std::min(attempts - 1, 10)));
  log_->warn("event {}: {} (attempt {}/{}, retrying in {:.1f}s)", ev.event_id, o.reason, attempts,
             cfg_.processing.max_attempts, delay);
  const auto until = Clock::now() + std::chrono::duration<double>(delay);
  while (Clock::now() < until && !stop_requested()) {
    keepalive_();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return !stop_requested();
}

std::optional<Outcome> Worker::finished_elsewhere(const Event& ev) {
  if (ev.event_id.empty() || ev.partition < 0) return std::nullopt;
  try {
    pqxx::work tx(db());
    if (auto d = inbox_.answer_if_finished(tx, ev, "was processed by another instance meanwhile")) return d;
    tx.commit();
  } catch (const std::exception&) {
    // the next attempt will find out again
  }
  return std::nullopt;
}

void Worker::settle(const Event& ev, const Run& run) {
  if (run.outcome.committed) return;
  pqxx::work tx(db());
  inbox_.finish(tx, ev, run.outcome, run.attempts);
  tx.commit();
}

}  // namespace ingestd
