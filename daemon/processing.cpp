// One consumed message on its way to a result: size limit and vetting (a bad event is
// dead-lettered), the inbox (a finished event is answered duplicate), the handler through the
// worker, then the result message, the metrics and Kafka's copy of the offset.
#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/runtime.hpp"

namespace ingestd {

void Runtime::process(RdKafka::Message& msg) {
  Event ev;
  ev.topic = msg.topic_name();
  ev.partition = msg.partition();
  ev.offset = msg.offset();
  try {
    answer(msg, ev);
  } catch (const std::exception& e) {
    if (engine::transient_failure(e)) throw;  // the main loop rewinds and reads it again
    // Anything else is about this event (say, a value PostgreSQL refuses to store): retrying
    // it would stall its partition for good, so it is answered like any other bad event.
    log_->error("event at {}[{}]@{} refused: {}", msg.topic_name(), msg.partition(), msg.offset(), e.what());
    dead_letter(msg, ev, "event refused: " + first_line(e.what()), 1, "refused");
  }
}

void Runtime::answer(RdKafka::Message& msg, Event& ev) {
  const auto t0 = Clock::now();
  if (msg.len() > kMaxEventBytes) {
    // Neither copied nor parsed: only its head is read, for the ids its failed result needs.
    const EventShapeProblem head = event_head({static_cast<const char*>(msg.payload()), msg.len()});
    ev.event_id = head.event_id;
    ev.type = head.type;
    return dead_letter(msg, ev, "event is " + std::to_string(msg.len()) + " bytes; the limit is 1 MiB", 0, "too_large");
  }
  const std::string payload(static_cast<const char*>(msg.payload()), msg.len());
  const EventVetting vet = vet_event(cfg_, ev, payload, topic_key_of(cfg_, ev.topic));
  if (!vet.reason.empty()) return dead_letter(msg, ev, vet.reason, 0, vet.metric);
  const HandlerSpec& spec = *vet.spec;

  // Inbox: a redelivered or republished event that already ended changes nothing.
  {
    pqxx::work tx(worker_.db());
    if (auto dup = inbox_.answer_if_finished(tx, ev, "was already processed")) {
      show_result(ev, *dup, 0);
      publish_results();
      metrics_.event(ev.topic, "duplicate");
      commit_to_kafka(msg);
      return;
    }
    inbox_.receive(tx, ev, payload);
    tx.commit();
  }
  status_.set_current({{"event_id", ev.event_id},
                       {"type", ev.type},
                       {"target", spec.target(ev)},
                       {"started_at_unix", std::time(nullptr)}});
  metrics_.batches_running.Add({}).Increment();
  metrics_.batch_boundary();
  const Worker::Run run = worker_.run(spec, ev);
  metrics_.batches_running.Add({}).Decrement();
  metrics_.batch_boundary();
  status_.set_current(nullptr);
  conclude(msg, ev, spec, run, t0);
}

void Runtime::conclude(RdKafka::Message& msg, const Event& ev, const HandlerSpec& spec, const Worker::Run& run,
                       Clock::time_point t0) {
  const Outcome& o = run.outcome;
  if (o.kind == Outcome::Kind::Interrupted) {
    log_->info("event {} interrupted by shutdown; it resumes from its checkpoint on the next start", ev.event_id);
    return;
  }
  if (o.kind == Outcome::Kind::Retry && o.infrastructure) {
    // PostgreSQL is gone: nothing about this event is wrong. The main loop rewinds to it and
    // tries again once the database answers (and /readyz says false meanwhile).
    throw engine::Unavailable("PostgreSQL unreachable after " + std::to_string(run.attempts) +
                              " attempts: " + run.last_reason);
  }
  if (o.kind == Outcome::Kind::Retry)
    return dead_letter(msg, ev, "gave up after " + std::to_string(run.attempts) + " attempts: " + run.last_reason,
                       run.attempts, "attempts_exhausted");
  worker_.settle(ev, run);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  show_result(ev, o, secs);
  publish_results();
  const std::string target = spec.target(ev);
  metrics_.event(ev.topic, std::string(engine::to_string(o.status)));
  count_rows(target, o);
  if (!spec.is_builtin(target) &&
      (o.status == engine::ResultStatus::Completed || o.status == engine::ResultStatus::CompletedWithRejects)) {
    metrics_.last_success.Add({{"dataset", target}}).SetToCurrentTime();
    static const prometheus::Histogram::BucketBoundaries b{0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
    metrics_.batch_duration.Add({{"dataset", target}}, b).Observe(secs);
  }
  log_->info("event {} ({} {}): {} in {:.2f}s{}", ev.event_id, ev.type, target, engine::to_string(o.status), secs,
             o.batch_id.empty() ? "" : ", batch " + o.batch_id);
  commit_to_kafka(msg);
}

void Runtime::count_rows(const std::string& target, const Outcome& o) {
  for (const auto& [entity, c] : o.counts) {
    metrics_.rows_add(target, entity, "inserted", double(c.inserted));
    metrics_.rows_add(target, entity, "updated", double(c.updated));
    metrics_.rows_add(target, entity, "unchanged", double(c.unchanged));
    metrics_.rows_add(target, entity, "rejected", double(c.rejected));
    metrics_.rows_add(target, entity, "review", double(c.review));
    for (const auto& [tier, n] : c.tier_matches)
      metrics_.identity_matches.Add({{"dataset", target}, {"entity", entity}, {"tier", std::to_string(tier)}})
          .Increment(double(n));
  }
}

void Runtime::dead_letter(RdKafka::Message& msg, const Event& ev, const std::string& full_reason, int attempts,
                          const std::string& metric_reason) {
  const std::string reason = excerpt(full_reason, kMaxReasonBytes);
  log_->warn("dead-lettering {}[{}]@{}: {}", msg.topic_name(), msg.partition(), msg.offset(), reason);
  try {
    publish_dead_letter(*producer_, cfg_.kafka.topics.dead_letter, msg, reason, attempts);
  } catch (const std::exception& e) {
    // Not acknowledged: do not store the offset, the event comes back once the brokers answer.
    metrics_.publish_failures.Add({{"kind", "dead_letter"}}).Increment();
    log_->error("dead letter not published ({}); the event stays unconsumed", e.what());
    throw engine::Unavailable(std::string("dead letter not published: ") + e.what());
  }
  metrics_.dead_letter(metric_reason);
  if (record_dead_letter(ev, reason, attempts)) {
    show_result(ev, Outcome::failed(reason), 0);
    publish_results();
  }
  metrics_.event(ev.topic, "dead_letter");
  commit_to_kafka(msg);
}

bool Runtime::record_dead_letter(const Event& ev, const std::string& reason, int attempts) {
  try {
    pqxx::work tx(worker_.db());
    const bool recorded = inbox_.dead_letter(tx, ev, reason, attempts);
    tx.commit();
    if (!recorded && !ev.event_id.empty())
      log_->warn("event id {} already has an inbox row; it is kept, and this dead letter gets no result of its own",
                 excerpt(ev.event_id, 64));
    return recorded;
  } catch (const std::exception& e) {
    if (engine::transient_failure(e)) throw;
    // The inbox refused even the dead letter's row: move past the event all the same, with its
    // offset alone, or its partition would stall on it.
    log_->error("inbox refused the dead letter of event {} ({}); storing its offset only", excerpt(ev.event_id, 64),
                first_line(e.what()));
    Event anonymous = ev;
    anonymous.event_id.clear();
    pqxx::work tx(worker_.db());
    inbox_.dead_letter(tx, anonymous, reason, attempts);
    tx.commit();
    return false;
  }
}

void Runtime::show_result(const Event& ev, const Outcome& o, double seconds) {
  if (!ev.event_id.empty()) status_.add_result(result_message(ev, o, seconds));
}

void Runtime::publish_results() {
  // The outbox's rows, oldest first, until the broker fails one: it stays for the next try (every
  // few seconds, and after the next event). SKIP LOCKED: another instance's rows are its own.
  size_t published = 0;
  try {
    pqxx::work tx(worker_.db());
    const std::string outbox = tx.quote_name(cfg_.postgres.bookkeeping_schema) + ".result_outbox";
    const auto rows = tx.exec("SELECT id, topic, event_id, payload FROM " + outbox +
                              " ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED");
    for (const auto& row : rows) {
      try {
        producer_->send(row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>());
      } catch (const std::exception& e) {
        metrics_.publish_failures.Add({{"kind", "result"}}).Increment();
        log_->error("result for event {} not published (kept in the outbox, tried again later): {}",
                    excerpt(row[2].as<std::string>(), 64), e.what());
        tx.exec_params("UPDATE " + outbox + " SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                       row[0].as<int64_t>(), excerpt(e.what(), 1000));
        break;
      }
      tx.exec_params("DELETE FROM " + outbox + " WHERE id = $1", row[0].as<int64_t>());
      ++published;
    }
    const auto waiting = tx.exec("SELECT count(*) FROM " + outbox)[0][0].as<int64_t>();
    tx.commit();
    metrics_.results_unpublished.Add({}).Set(double(waiting));
    results_waiting_ = waiting > 0;
  } catch (const std::exception& e) {
    // PostgreSQL is away (say): the rows wait there, the ones sent meanwhile are published again.
    log_->warn("result outbox not settled ({} sent, to be sent again): {}", published, first_line(e.what()));
    results_waiting_ = true;
  }
}

void Runtime::commit_to_kafka(RdKafka::Message& msg) {
  // Kafka's copy of the position is for lag tools only: ours is in PostgreSQL (rule 1). While no
  // broker answers, a commit waits for a coordinator, and consumer close() for it (45 s and more
  // at shutdown); the next commit after the brokers are back covers this one.
  if (kafka_ok_) consumer_->commitAsync(&msg);
}

}  // namespace ingestd
