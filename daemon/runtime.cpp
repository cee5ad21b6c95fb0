#include "daemon/runtime.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "daemon/http_server.hpp"
#include "daemon/kafka.hpp"
#include "daemon/metrics.hpp"
#include "config/loader.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/loader.hpp"
#include "handlers/handler.hpp"

namespace ingestd {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
std::string g_cluster_id;  // the Kafka cluster the stored offsets belong to (set once at start)

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  auto l = spdlog::get(name);
  if (!l) {
    l = spdlog::default_logger()->clone(name);
    spdlog::register_logger(l);
  }
  return l;
}

bool terminal(const std::string& s) {
  return s == "completed" || s == "completed_with_rejects" || s == "failed" || s == "duplicate" || s == "dry_run" ||
         s == "dead_letter";
}

std::string instance_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

/// Writes the inbox row's terminal state and the consumed offset into the caller's transaction.
class InboxCommit : public EventCommit {
 public:
  InboxCommit(const config::Config& cfg, const Event& ev, int attempts) : cfg_(cfg), ev_(ev), attempts_(attempts) {}
  void write(pqxx::transaction_base& tx, const Outcome& o) override {
    const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
    if (!ev_.event_id.empty()) {
      std::optional<std::string> err;
      if (!o.errors.empty()) err = o.errors.front();
      tx.exec_params("UPDATE " + qs + ".events SET status = $2, batch_id = coalesce($3::uuid, batch_id), attempts = $4, "
                     "last_error = $5, finished_at = now() WHERE event_id = $1 AND status IN ('received', 'processing')",
                     ev_.event_id, std::string(engine::to_string(o.status)), o.batch_id.empty() ? std::nullopt : std::optional(o.batch_id), attempts_,
                     err);
    }
    if (ev_.partition >= 0) write_offset(tx, qs, cfg_.kafka.group_id, ev_.topic, ev_.partition, ev_.offset + 1);
  }
  static void write_offset(pqxx::transaction_base& tx, const std::string& qs, const std::string& group,
                           const std::string& topic, int32_t partition, int64_t next) {
    tx.exec_params("INSERT INTO " + qs + ".consumer_offsets (group_id, topic, \"partition\", next_offset, cluster_id) "
                   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, \"partition\") DO UPDATE SET next_offset = "
                   "CASE WHEN consumer_offsets.cluster_id IS DISTINCT FROM excluded.cluster_id THEN excluded.next_offset "
                   "ELSE greatest(consumer_offsets.next_offset, excluded.next_offset) END, cluster_id = excluded.cluster_id, "
                   "updated_at = now()",
                   group, topic, partition, next, g_cluster_id.empty() ? std::nullopt : std::optional(g_cluster_id));
  }

 private:
  const config::Config& cfg_;
  const Event& ev_;
  int attempts_;
};

json result_json(const Event& ev, const Outcome& o, double seconds) {
  json counts = json::object();
  for (const auto& [k, v] : o.counts) counts[k] = v.to_json();
  json r = {{"event_id", ev.event_id},
            {"type", ev.type},
            {"status", engine::to_string(o.status)},
            {"batch_id", o.batch_id.empty() ? json(nullptr) : json(o.batch_id)},
            {"counts", counts},
            {"duration_ms", int64_t(seconds * 1000)},
            {"reject_file", o.reject_file.empty() ? json(nullptr) : json(o.reject_file)},
            {"errors", o.errors}};
  // The target under its own field name; a dead-lettered event may have no handler, so every
  // handler's target field is copied from the payload when present.
  for (const auto& h : handler_registry())
    if (ev.payload.contains(h.target_field)) r[h.target_field] = ev.payload[h.target_field];
  for (auto& [k, v] : o.extra.items()) r[k] = v;
  return r;
}

/// The pieces one running daemon (or one `ingestd load`) holds.
class Runtime : public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  explicit Runtime(const config::Config& cfg) : cfg_(cfg), log_(logger("runtime")), instance_(instance_id()) {}

  int run();
  int load(const std::string& file, const std::string& dataset, bool dry_run);

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  void event_cb(RdKafka::Event& event) override;

 private:
  void connect_db();
  void process(RdKafka::Message& msg);
  void dead_letter(RdKafka::Message& msg, const Event& ev, const std::string& reason, int attempts,
                   const std::string& metric_reason);
  void publish_result(const Event& ev, const Outcome& o, double seconds);
  void commit_to_kafka(RdKafka::Message& msg);
  Outcome run_handler(const HandlerSpec& spec, const Event& ev, int& attempts, std::string& last_reason);
  std::string status_json();
  void keepalive();
  void reload();
  void refresh_gauges();
  void init_metrics();
  /// Inside `tx`: when the event already reached a terminal state, stores its offset and
  /// returns the committed `duplicate` answer; otherwise nothing.
  std::optional<Outcome> answer_if_finished(pqxx::transaction_base& tx, const Event& ev, const std::string& why);
  Clock::time_point last_refresh_{};

  config::Config cfg_;  // owned: SIGHUP swaps datasets and jobs between events
  std::shared_ptr<spdlog::logger> log_;
  std::string instance_;
  Metrics metrics_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<pqxx::connection> db_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<bool> pg_ok_{false}, kafka_ok_{false}, started_{false};
  bool watchdog_ = false;

  std::mutex status_mu_;
  json current_ = nullptr;
  std::deque<json> recent_;
  std::vector<std::string> assignment_;
};

void Runtime::connect_db() {
  db_.reset();
  db_ = std::make_unique<pqxx::connection>(cfg_.postgres.url);
  pg_ok_ = true;
}

void Runtime::reload() {
  sd_notify(0, "RELOADING=1\nSTATUS=reloading datasets and jobs");
  try {
    config::Config fresh = config::load_config(cfg_.path);
    std::vector<std::string> problems;
    if (db_)
      for (const auto& [name, ds] : fresh.datasets)
        for (auto& p : engine::check_dataset_schema(*db_, ds)) problems.push_back(p);
    if (!problems.empty()) {
      std::string all;
      for (auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      throw std::runtime_error(all);
    }
    // Only datasets and jobs change on reload; connections, topics and listeners need a restart.
    cfg_.datasets = std::move(fresh.datasets);
    cfg_.jobs = std::move(fresh.jobs);
    cfg_.sources = std::move(fresh.sources);
    metrics_.reloads.Add({{"outcome", "success"}}).Increment();
    log_->info("reloaded {}: {} datasets, {} jobs", cfg_.path, cfg_.datasets.size(), cfg_.jobs.size());
  } catch (const std::exception& e) {
    metrics_.reloads.Add({{"outcome", "failure"}}).Increment();
    log_->error("reload of {} refused, keeping the running datasets and jobs: {}", cfg_.path, e.what());
  }
  sd_notify(0, "READY=1\nSTATUS=consuming");
}

void Runtime::refresh_gauges() {
  // Operators watch these between batches: open review items and deferred references, and
  // whether PostgreSQL still answers (/readyz).
  last_refresh_ = Clock::now();
  try {
    if (!db_ || !db_->is_open()) connect_db();
    pqxx::read_transaction tx(*db_);
    const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
    metrics_.review_open.Add({}).Set(
        tx.exec("SELECT count(*) FROM " + qs + ".review_queue WHERE status = 'open'")[0][0].as<double>());
    auto d = tx.exec("SELECT table_name, column_name, count(*) FROM " + qs + ".deferred_refs GROUP BY 1, 2");
    for (const auto& [name, ds] : cfg_.datasets)
      for (const auto& e : ds.entities)
        for (const auto& f : e.fields) {
          if (!f.lookup || f.on_missing != config::OnMissing::Defer) continue;
          double n = 0;
          for (const auto& row : d) {
            std::string t = row[0].as<std::string>();
            if ((t == e.table || t == "public." + e.table) && row[1].as<std::string>() == f.column) n = row[2].as<double>();
          }
          metrics_.deferred_open.Add({{"dataset", name}, {"field", e.name + "." + f.name}}).Set(n);
        }
    pg_ok_ = true;
    metrics_.up.Add({{"dependency", "postgresql"}}).Set(1);
  } catch (const std::exception& e) {
    if (pg_ok_) log_->warn("PostgreSQL unreachable: {}", e.what());
    pg_ok_ = false;
    metrics_.up.Add({{"dependency", "postgresql"}}).Set(0);
    db_.reset();
  }
  metrics_.up.Add({{"dependency", "kafka"}}).Set(kafka_ok_ ? 1 : 0);
}

void Runtime::init_metrics() {
  // Series exist from the start at 0, so increase() sees the first dead letter or failure.
  for (const auto& [key, topic] : consumed_topics(cfg_))
    for (const char* outcome : {"completed", "completed_with_rejects", "failed", "duplicate", "dry_run", "dead_letter"})
      metrics_.events.Add({{"topic", topic}, {"outcome", outcome}});
  for (const char* reason : {"malformed", "missing_field", "wrong_type", "unknown_type", "wrong_topic", "unknown_target",
                             "too_large", "attempts_exhausted"})
    metrics_.dead_letters.Add({{"reason", reason}});
  for (const char* reason : {"connection", "serialization", "in_doubt", "busy", "infrastructure"})
    metrics_.retries.Add({{"reason", reason}});
  metrics_.reloads.Add({{"outcome", "success"}});
  metrics_.reloads.Add({{"outcome", "failure"}});
  // The last success survives a restart: it is in the batches table.
  pqxx::read_transaction tx(*db_);
  std::string builtin;
  for (const auto& h : handler_registry())
    for (const auto& t : h.builtin_targets) builtin += (builtin.empty() ? "" : ", ") + tx.quote(t);
  auto r = tx.exec("SELECT dataset_or_job, extract(epoch FROM max(finished_at))::float8 FROM " +
                   tx.quote_name(cfg_.postgres.bookkeeping_schema) +
                   ".batches WHERE status IN ('completed', 'completed_with_rejects') AND NOT dry_run AND " +
                   (builtin.empty() ? "" : "dataset_or_job NOT IN (" + builtin + ") AND ") +
                   "finished_at IS NOT NULL GROUP BY 1");
  for (const auto& row : r) metrics_.last_success.Add({{"dataset", row[0].as<std::string>()}}).Set(row[1].as<double>());
}

void Runtime::keepalive() {
  if (watchdog_) sd_notify(0, "WATCHDOG=1");
  if (producer_) producer_->poll();
}

void Runtime::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                           std::vector<RdKafka::TopicPartition*>& partitions) {
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    // Positions come from PostgreSQL, where they were committed with the work (rule 1).
    std::vector<std::string> names;
    try {
      if (!db_ || !db_->is_open()) connect_db();  // a failed gauge refresh leaves none
      pqxx::read_transaction tx(*db_);
      const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
      for (auto* tp : partitions) {
        auto r = tx.exec_params("SELECT next_offset, cluster_id FROM " + qs +
                                    ".consumer_offsets WHERE group_id = $1 AND topic = $2 AND \"partition\" = $3",
                                cfg_.kafka.group_id, tp->topic(), tp->partition());
        std::optional<int64_t> stored;
        if (!r.empty()) stored = r[0][0].as<int64_t>();
        if (stored && !r[0][1].is_null() && !g_cluster_id.empty() && r[0][1].as<std::string>() != g_cluster_id) {
          log_->warn("{}[{}]: stored offsets belong to Kafka cluster {}, this is {}; reading from the beginning (the "
                     "inbox answers duplicate for anything already processed)",
                     tp->topic(), tp->partition(), r[0][1].as<std::string>(), g_cluster_id);
          stored.reset();
        }
        int64_t low = 0, high = -1;
        if (stored &&
            consumer->query_watermark_offsets(tp->topic(), tp->partition(), &low, &high, 5000) == RdKafka::ERR_NO_ERROR &&
            *stored > high) {
          // The stored position is past the end of the log: the cluster was replaced. Read
          // from the start; the inbox answers duplicate for anything already processed.
          log_->warn("{}[{}]: stored offset {} is beyond the partition end {}; reading from the beginning", tp->topic(),
                     tp->partition(), *stored, high);
          stored.reset();
        }
        tp->set_offset(stored ? *stored : int64_t(RdKafka::Topic::OFFSET_BEGINNING));
        names.push_back(tp->topic() + "[" + std::to_string(tp->partition()) + "]@" +
                        (stored ? std::to_string(*stored) : std::string("beginning")));
      }
    } catch (const std::exception& e) {
      // Without the stored positions we must not consume: Kafka's own offsets may be behind.
      log_->error("cannot read consumer offsets from PostgreSQL ({}); assignment postponed", e.what());
      pg_ok_ = false;
      for (auto* tp : partitions) tp->set_offset(RdKafka::Topic::OFFSET_INVALID);
      consumer->assign(partitions);
      consumer->pause(partitions);
      return;
    }
    log_->info("assigned {}", fmt::join(names, ", "));
    consumer->assign(partitions);
    std::lock_guard lk(status_mu_);
    assignment_ = names;
  } else {
    log_->info("partitions revoked");
    consumer->unassign();
    std::lock_guard lk(status_mu_);
    assignment_.clear();
  }
}

void Runtime::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR:
      if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN || event.err() == RdKafka::ERR__TRANSPORT) kafka_ok_ = false;
      log_->warn("kafka: {} ({})", event.str(), RdKafka::err2str(event.err()));
      break;
    case RdKafka::Event::EVENT_LOG:
      // With an event_cb librdkafka hands its log lines here, from its own threads.
      log_->log(event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING ? spdlog::level::warn : spdlog::level::debug,
                "kafka: {}: {}", event.fac(), event.str());
      break;
    case RdKafka::Event::EVENT_STATS: {
      // Ready while a connection to some broker is up. The producer reports every second, also
      // during a batch (keepalive polls it); the consumer's reports wait for the next consume.
      auto j = json::parse(event.str(), nullptr, false);
      if (j.is_discarded()) break;
      bool up = false;
      if (j.contains("brokers"))
        for (auto& [name, b] : j["brokers"].items())
          up = up || (b.value("source", "") != "internal" && b.value("state", "") == "UP");
      kafka_ok_ = up;
      if (!j.contains("topics")) break;
      for (auto& [topic, t] : j["topics"].items()) {
        if (!t.contains("partitions")) continue;
        for (auto& [part, p] : t["partitions"].items()) {
          if (part == "-1" || !p.contains("consumer_lag")) continue;
          int64_t lag = p["consumer_lag"].get<int64_t>();
          if (lag >= 0) metrics_.consumer_lag.Add({{"topic", topic}, {"partition", part}}).Set(double(lag));
        }
      }
      break;
    }
    default:
      break;
  }
}

void Runtime::publish_result(const Event& ev, const Outcome& o, double seconds) {
  json r = result_json(ev, o, seconds);
  {
    std::lock_guard lk(status_mu_);
    recent_.push_front(r);
    if (recent_.size() > 20) recent_.pop_back();
  }
  if (!producer_) {
    std::cout << r.dump(2) << std::endl;
    return;
  }
  try {
    producer_->send(cfg_.kafka.topics.results, ev.event_id, r.dump());
  } catch (const std::exception& e) {
    log_->error("result for event {} not published: {}", ev.event_id, e.what());
  }
}

void Runtime::commit_to_kafka(RdKafka::Message& msg) {
  // Kafka's copy of the position is for lag tools only: ours is in PostgreSQL (rule 1). While no
  // broker answers, a commit waits for a coordinator, and consumer close() for it (45 s and more
  // at shutdown); the next commit after the brokers are back covers this one.
  if (kafka_ok_) consumer_->commitAsync(&msg);
}

void Runtime::dead_letter(RdKafka::Message& msg, const Event& ev, const std::string& reason, int attempts,
                          const std::string& metric_reason) {
  log_->warn("dead-lettering {}[{}]@{}: {}", msg.topic_name(), msg.partition(), msg.offset(), reason);
  std::string key = msg.key() ? *msg.key() : "";
  std::string payload(static_cast<const char*>(msg.payload()), msg.len());
  std::vector<std::pair<std::string, std::string>> headers{{"error", reason},
                                                           {"attempts", std::to_string(attempts)},
                                                           {"source_topic", msg.topic_name()},
                                                           {"source_partition", std::to_string(msg.partition())},
                                                           {"source_offset", std::to_string(msg.offset())}};
  // A payload the broker would refuse must not block its partition: keep its head, say so;
  // the original stays in the source topic at the offset named in the headers.
  constexpr size_t kMaxDeadLetter = 256 * 1024;
  if (payload.size() > kMaxDeadLetter) {
    headers.emplace_back("truncated_from_bytes", std::to_string(payload.size()));
    payload.resize(kMaxDeadLetter);
  }
  try {
    producer_->send(cfg_.kafka.topics.dead_letter, key, payload, headers);
  } catch (const std::exception& e) {
    // Not acknowledged: do not store the offset, the event comes back after a restart.
    log_->error("dead letter not published ({}); the event stays unconsumed", e.what());
    throw;
  }
  metrics_.dead_letter(metric_reason);
  Outcome o = Outcome::failed(reason);
  if (!db_ || !db_->is_open()) connect_db();
  pqxx::work tx(*db_);
  const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
  if (!ev.event_id.empty()) {
    tx.exec_params("INSERT INTO " + qs + ".events (event_id, topic, \"partition\", \"offset\", type, status, attempts, "
                   "last_error, finished_at) VALUES ($1, $2, $3, $4, $5, 'dead_letter', $6, $7, now()) "
                   "ON CONFLICT (event_id) DO UPDATE SET status = 'dead_letter', attempts = excluded.attempts, "
                   "last_error = excluded.last_error, finished_at = now()",
                   ev.event_id, ev.topic, ev.partition, ev.offset, ev.type, attempts, reason);
  }
  InboxCommit::write_offset(tx, qs, cfg_.kafka.group_id, ev.topic, ev.partition, ev.offset + 1);
  tx.commit();
  if (!ev.event_id.empty()) publish_result(ev, o, 0);
}

Outcome Runtime::run_handler(const HandlerSpec& spec, const Event& ev, int& attempts, std::string& last_reason) {
  for (;;) {
    ++attempts;
    InboxCommit commit(cfg_, ev, attempts);
    Outcome o;
    std::string metric_reason;
    try {
      if (!db_ || !db_->is_open()) connect_db();
      Services s{cfg_, metrics_, *db_, instance_, g_stop, [this] { keepalive(); }};
      o = spec.handle(ev, s, commit);
    } catch (const std::exception& e) {
      const engine::DbError err = engine::classify_db_error(e);
      if (!err.retry()) {
        o = Outcome::failed(e.what());
        log_->error("event {} failed: {}", ev.event_id, e.what());
      } else {
        o.kind = Outcome::Kind::Retry;
        metric_reason = err.reason;
        if (err.kind == engine::DbFailure::Transient) {
          o.reason = std::string("transaction rolled back: ") + e.what();
        } else {
          // the connection is gone or its last commit is in doubt: start over on a new one
          if (err.kind == engine::DbFailure::InDoubt)
            log_->critical("commit outcome unknown for event {}: {}", ev.event_id, e.what());
          o.reason = std::string(err.kind == engine::DbFailure::InDoubt ? "commit outcome unknown: "
                                                                         : "lost connection to PostgreSQL: ") +
                     e.what();
          o.infrastructure = true;
          if (err.kind == engine::DbFailure::Connection) pg_ok_ = false;
          db_.reset();
        }
      }
    }
    if (o.kind != Outcome::Kind::Retry) return o;
    last_reason = o.reason;
    if (metric_reason.empty()) metric_reason = "busy";
    metrics_.retry(metric_reason);
    // Another instance owns the work (a redelivery during a rebalance, the same file under
    // another event id): that is no failure of this event, so wait without using up attempts.
    if (o.busy) --attempts;
    if (attempts >= cfg_.processing.max_attempts) return o;
    double delay = o.busy ? 1.0 : std::min(30.0, cfg_.processing.retry_base_seconds * double(1 << std::min(attempts - 1, 10)));
    log_->warn("event {}: {} (attempt {}/{}, retrying in {:.1f}s)", ev.event_id, o.reason, attempts,
               cfg_.processing.max_attempts, delay);
    auto until = Clock::now() + std::chrono::duration<double>(delay);
    while (Clock::now() < until && !g_stop) {
      keepalive();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (g_stop) {
      Outcome i;
      i.kind = Outcome::Kind::Interrupted;
      return i;
    }
    // Meanwhile another instance may have finished this very event: then it is a duplicate.
    if (!ev.event_id.empty() && ev.partition >= 0) {
      try {
        if (!db_ || !db_->is_open()) connect_db();
        pqxx::work tx(*db_);
        if (auto d = answer_if_finished(tx, ev, "was processed by another instance meanwhile")) return *d;
        tx.commit();
      } catch (const std::exception&) {
        // the next attempt will find out again
      }
    }
  }
}

std::optional<Outcome> Runtime::answer_if_finished(pqxx::transaction_base& tx, const Event& ev, const std::string& why) {
  const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
  auto r = tx.exec_params("SELECT status, batch_id::text FROM " + qs + ".events WHERE event_id = $1 FOR UPDATE",
                          ev.event_id);
  if (r.empty() || !terminal(r[0][0].as<std::string>())) return std::nullopt;
  Outcome d;
  d.status = engine::ResultStatus::Duplicate;
  d.batch_id = r[0][1].is_null() ? "" : r[0][1].as<std::string>();
  d.extra["original_status"] = r[0][0].as<std::string>();
  d.extra["reason"] = "event " + ev.event_id + " " + why;
  InboxCommit::write_offset(tx, qs, cfg_.kafka.group_id, ev.topic, ev.partition, ev.offset + 1);
  tx.commit();
  d.committed = true;
  return d;
}

void Runtime::process(RdKafka::Message& msg) {
  const auto t0 = Clock::now();
  Event ev;
  ev.topic = msg.topic_name();
  ev.partition = msg.partition();
  ev.offset = msg.offset();
  std::string payload(static_cast<const char*>(msg.payload()), msg.len());
  const std::string topic_key = topic_key_of(cfg_, ev.topic);
  auto dlq = [&](const std::string& reason, const std::string& metric) {
    dead_letter(msg, ev, reason, 0, metric);
    metrics_.event(ev.topic, "dead_letter");
    commit_to_kafka(msg);
  };
  if (msg.len() > 1024 * 1024) {
    // still learn its event_id (if it parses) so the uploader gets a failed result
    if (msg.len() <= 64 * 1024 * 1024) {
      auto j = json::parse(payload, nullptr, false);
      if (j.is_object() && j.contains("event_id") && j["event_id"].is_string()) {
        ev.event_id = j["event_id"].get<std::string>();
        if (j.contains("type") && j["type"].is_string()) ev.type = j["type"].get<std::string>();
      }
    }
    return dlq("event is " + std::to_string(msg.len()) + " bytes; the limit is 1 MiB", "too_large");
  }
  const EventVetting vet = vet_event(cfg_, ev, payload, topic_key);
  if (!vet.reason.empty()) return dlq(vet.reason, vet.metric);
  const HandlerSpec* spec = vet.spec;

  // Inbox: a redelivered or republished event that already ended changes nothing.
  {
    pqxx::work tx(*db_);
    const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
    if (auto dup = answer_if_finished(tx, ev, "was already processed")) {
      publish_result(ev, *dup, 0);
      metrics_.event(ev.topic, "duplicate");
      commit_to_kafka(msg);
      return;
    }
    tx.exec_params("INSERT INTO " + qs + ".events (event_id, topic, \"partition\", \"offset\", type, payload, status) "
                   "VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'processing') ON CONFLICT (event_id) DO NOTHING",
                   ev.event_id, ev.topic, ev.partition, ev.offset, ev.type, payload);
    tx.commit();
  }
  {
    std::lock_guard lk(status_mu_);
    current_ = {{"event_id", ev.event_id},
                {"type", ev.type},
                {"target", spec->target(ev)},
                {"started_at_unix", std::time(nullptr)}};
  }
  metrics_.batches_running.Add({}).Increment();
  int attempts = 0;
  std::string last_reason;
  Outcome o = run_handler(*spec, ev, attempts, last_reason);
  metrics_.batches_running.Add({}).Decrement();
  {
    std::lock_guard lk(status_mu_);
    current_ = nullptr;
  }
  if (o.kind == Outcome::Kind::Interrupted) {
    log_->info("event {} interrupted by shutdown; it resumes from its checkpoint on the next start", ev.event_id);
    return;
  }
  if (o.kind == Outcome::Kind::Retry && o.infrastructure) {
    // PostgreSQL is gone: nothing about this event is wrong. The main loop rewinds to it and
    // tries again once the database answers (and /readyz says false meanwhile).
    throw std::runtime_error("PostgreSQL unreachable after " + std::to_string(attempts) + " attempts: " + last_reason);
  }
  if (o.kind == Outcome::Kind::Retry) {
    dead_letter(msg, ev, "gave up after " + std::to_string(attempts) + " attempts: " + last_reason, attempts,
                "attempts_exhausted");
    metrics_.event(ev.topic, "dead_letter");
    commit_to_kafka(msg);
    return;
  }
  if (!o.committed) {
    pqxx::work tx(*db_);
    InboxCommit(cfg_, ev, attempts).write(tx, o);
    tx.commit();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  publish_result(ev, o, secs);
  const std::string target = spec->target(ev);
  metrics_.event(ev.topic, std::string(engine::to_string(o.status)));
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
  if (!spec->is_builtin(target) && (o.status == engine::ResultStatus::Completed || o.status == engine::ResultStatus::CompletedWithRejects)) {
    metrics_.last_success.Add({{"dataset", target}}).SetToCurrentTime();
    static const prometheus::Histogram::BucketBoundaries b{0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
    metrics_.batch_duration.Add({{"dataset", target}}, b).Observe(secs);
  }
  log_->info("event {} ({} {}): {} in {:.2f}s", ev.event_id, ev.type, target, engine::to_string(o.status), secs);
  commit_to_kafka(msg);
}

std::string Runtime::status_json() {
  json running = json::array();
  // Progress comes from the batches' own checkpoints, read on a connection of this request's
  // own (civetweb threads must not share the worker's connection).
  try {
    pqxx::connection c(cfg_.postgres.url);
    pqxx::read_transaction tx(c);
    auto r = tx.exec_params(
        "SELECT id::text, dataset_or_job, rows_done, rows_total, bytes_done, size_bytes, "
        "extract(epoch FROM now() - started_at)::float8, owner FROM " +
            tx.quote_name(cfg_.postgres.bookkeeping_schema) + ".batches WHERE status = 'running' AND owner = $1",
        instance_);
    for (const auto& row : r) {
      const double secs = row[6].as<double>();
      const int64_t done = row[2].as<int64_t>();
      json b = {{"batch_id", row[0].c_str()}, {"target", row[1].c_str()}, {"rows_done", done},
                {"bytes_done", row[4].as<int64_t>()}, {"seconds", std::round(secs)},
                {"rows_per_second", secs > 0 ? std::round(double(done) / secs) : 0.0}};
      if (!row[3].is_null()) b["rows_total"] = row[3].as<int64_t>();
      if (!row[5].is_null() && row[5].as<int64_t>() > 0) {
        const double size = row[5].as<double>(), bytes = row[4].as<double>();
        b["size_bytes"] = row[5].as<int64_t>();
        b["percent"] = std::round(1000.0 * bytes / size) / 10;
        if (bytes > 0 && secs > 0) b["eta_seconds"] = std::round((size - bytes) / (bytes / secs));
      }
      running.push_back(b);
    }
  } catch (const std::exception& e) {
    running = json::array({{{"error", std::string("PostgreSQL unreachable: ") + e.what()}}});
  }
  std::lock_guard lk(status_mu_);
  json s = {{"instance", instance_},
            {"ready", pg_ok_ && kafka_ok_ && started_},
            {"current_event", current_},
            {"running", running},
            {"recent", json(std::vector<json>(recent_.begin(), recent_.end()))},
            {"assignment", assignment_}};
  return s.dump(2);
}

int Runtime::run() {
  if (sd_notify(0, "STATUS=starting") > 0) log_->info("running under systemd");
  uint64_t wd_usec = 0;
  watchdog_ = sd_watchdog_enabled(0, &wd_usec) > 0;

  http_ = std::make_unique<HttpServer>(cfg_.http.listen,
                                       HttpEndpoints{[this] { return metrics_.serialize(); },
                                                     [this] { return bool(pg_ok_ && kafka_ok_ && started_); },
                                                     [this] { return status_json(); }});
  log_->info("http listening on port {}", http_->port());

  connect_db();
  migrate_schema(*db_, cfg_.postgres.bookkeeping_schema);
  init_metrics();

  std::string brokers = cfg_.kafka.brokers;
  std::string addr_file;
  if (brokers == "embedded") {
    const auto& t = cfg_.kafka.topics;
    broker_ = std::make_unique<EmbeddedBroker>(1, std::vector<std::string>{t.files, t.jobs, t.results, t.dead_letter},
                                                cfg_.kafka.embedded_partitions);
    brokers = broker_->bootstrap();
    addr_file = embedded_address_file(cfg_);
    std::ofstream(addr_file) << brokers << "\n";
    log_->warn("kafka.brokers is 'embedded': librdkafka's mock cluster at {} (address in {}); for demos and tests only",
               brokers, addr_file);
  }
  producer_ = std::make_unique<Producer>(cfg_, brokers, this);
  auto conf = kafka_conf(cfg_, brokers);
  std::string err;
  conf->set("group.id", cfg_.kafka.group_id, err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("enable.auto.offset.store", "false", err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("statistics.interval.ms", "5000", err);
  if (!cfg_.kafka.properties.count("max.poll.interval.ms")) conf->set("max.poll.interval.ms", "3600000", err);
  conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err);
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err);
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) throw std::runtime_error("kafka consumer: " + err);
  g_cluster_id = consumer_->clusterid(10000);
  if (g_cluster_id.empty()) log_->warn("Kafka cluster id unknown; stored offsets cannot be checked against it");
  std::vector<std::string> topics;
  for (const auto& [key, topic] : consumed_topics(cfg_)) topics.push_back(topic);
  auto sub = consumer_->subscribe(topics);
  if (sub != RdKafka::ERR_NO_ERROR) throw std::runtime_error("kafka subscribe: " + RdKafka::err2str(sub));
  kafka_ok_ = true;
  started_ = true;
  sd_notify(0, "READY=1\nSTATUS=consuming");
  log_->info("ingestd {} ready: group {}, topics {} and {}", INGESTD_VERSION, cfg_.kafka.group_id,
             cfg_.kafka.topics.files, cfg_.kafka.topics.jobs);

  refresh_gauges();
  while (!g_stop) {
    keepalive();
    if (g_reload.exchange(false)) reload();
    if (Clock::now() - last_refresh_ > std::chrono::seconds(5)) refresh_gauges();
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(500));
    if (!msg) continue;
    if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) continue;
    if (msg->err() != RdKafka::ERR_NO_ERROR) {
      log_->warn("consume: {}", msg->errstr());
      continue;
    }
    kafka_ok_ = true;
    try {
      if (!db_ || !db_->is_open()) connect_db();
      process(*msg);
      pg_ok_ = true;
    } catch (const std::exception& e) {
      // The event's offset was not stored: rewind so it is read again once things recover.
      pg_ok_ = false;
      log_->error("event at {}[{}]@{} not processed: {}; retrying", msg->topic_name(), msg->partition(), msg->offset(),
                  e.what());
      metrics_.retry("infrastructure");
      std::unique_ptr<RdKafka::TopicPartition> tp(
          RdKafka::TopicPartition::create(msg->topic_name(), msg->partition(), msg->offset()));
      consumer_->seek(*tp, 1000);
      db_.reset();
      for (int i = 0; i < 20 && !g_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  log_->info("shutting down: closing the consumer");
  consumer_->close();
  consumer_.reset();
  producer_.reset();
  broker_.reset();
  if (!addr_file.empty()) std::filesystem::remove(addr_file);
  http_.reset();
  log_->info("stopped");
  return 0;
}

int Runtime::load(const std::string& file, const std::string& dataset, bool dry_run) {
  connect_db();
  migrate_schema(*db_, cfg_.postgres.bookkeeping_schema);
  Event ev;
  ev.event_id = "cli-load-" + instance_ + "-" + std::to_string(std::time(nullptr));
  ev.type = "file.arrived";
  ev.topic = "cli";
  std::error_code ec;
  auto abs = std::filesystem::absolute(file, ec).string();
  ev.payload = {{"event_id", ev.event_id}, {"type", ev.type}, {"dataset", dataset}, {"uri", abs},
                {"dry_run", dry_run}, {"submitted_by", "cli"}};
  if (auto why = validate_event(cfg_, ev); !why.empty()) {
    std::cerr << "ingestd load: " << why << "\n";
    return 2;
  }
  {
    pqxx::work tx(*db_);
    tx.exec_params("INSERT INTO " + tx.quote_name(cfg_.postgres.bookkeeping_schema) +
                       ".events (event_id, topic, \"partition\", \"offset\", type, payload, status) VALUES ($1, 'cli', -1, -1, "
                       "$2, $3::jsonb, 'processing')",
                   ev.event_id, ev.type, ev.payload.dump());
    tx.commit();
  }
  // The operator names the file by hand: its own directory is an allowed root for this run.
  config::Config local = cfg_;
  local.files.allowed_roots.push_back(std::filesystem::path(abs).parent_path().string());
  Runtime inner(local);
  inner.db_ = std::move(db_);
  const HandlerSpec* spec = find_handler(ev.type);
  const auto t0 = Clock::now();
  int attempts = 0;
  std::string reason;
  // In a terminal, a progress bar from the batch's own checkpoints (a second connection).
  std::atomic<bool> done{false};
  std::thread progress;
  if (isatty(STDERR_FILENO)) {
    progress = std::thread([&] {
      try {
        pqxx::connection pc(cfg_.postgres.url);
        const std::string qs = pc.quote_name(cfg_.postgres.bookkeeping_schema);
        while (!done) {
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          pqxx::read_transaction tx(pc);
          auto r = tx.exec_params("SELECT b.rows_done, b.bytes_done, b.size_bytes FROM " + qs + ".events e JOIN " + qs +
                                      ".batches b ON b.id = e.batch_id WHERE e.event_id = $1",
                                  ev.event_id);
          if (r.empty() || r[0][2].is_null() || r[0][2].as<int64_t>() == 0) continue;
          double frac = std::min(1.0, double(r[0][1].as<int64_t>()) / double(r[0][2].as<int64_t>()));
          int filled = int(frac * 40);
          double secs = std::chrono::duration<double>(Clock::now() - t0).count();
          fprintf(stderr, "\r[%s%s] %3d%%  %lld rows  %.0f rows/s ", std::string(size_t(filled), '#').c_str(),
                  std::string(size_t(40 - filled), '.').c_str(), int(frac * 100), (long long)r[0][0].as<int64_t>(),
                  secs > 0 ? double(r[0][0].as<int64_t>()) / secs : 0.0);
          fflush(stderr);
        }
        fprintf(stderr, "\n");
      } catch (const std::exception&) {
        // progress is a courtesy: the load goes on without it
      }
    });
  }
  Outcome o = inner.run_handler(*spec, ev, attempts, reason);
  done = true;
  if (progress.joinable()) progress.join();
  if (o.kind != Outcome::Kind::Done) {
    std::cerr << "ingestd load: " << (reason.empty() ? "interrupted" : reason) << "\n";
    return 1;
  }
  if (!o.committed) {
    pqxx::work tx(*inner.db_);
    InboxCommit(local, ev, attempts).write(tx, o);
    tx.commit();
  }
  std::cout << result_json(ev, o, std::chrono::duration<double>(Clock::now() - t0).count()).dump(2) << std::endl;
  return o.status == engine::ResultStatus::Failed ? 1 : 0;
}

}  // namespace

void request_stop() { g_stop = true; }
void request_reload() { g_reload = true; }

int run_daemon(const config::Config& cfg) {
  Runtime rt(cfg);
  return rt.run();
}

int run_load(const config::Config& cfg, const std::string& file, const std::string& dataset, bool dry_run) {
  Runtime rt(cfg);
  return rt.load(file, dataset, dry_run);
}

void prepare_database(const config::Config& cfg) {
  pqxx::connection c(cfg.postgres.url);
  migrate_schema(c, cfg.postgres.bookkeeping_schema);
}

}  // namespace ingestd
