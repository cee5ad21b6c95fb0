#include "daemon/runtime.hpp"

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "config/loader.hpp"
#include "daemon/commands/commands.hpp"
#include "daemon/logging.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/loader.hpp"

namespace ingestd {

Runtime::Runtime(const config::Config& cfg)
    : cfg_(cfg),
      log_(component_logger("runtime")),
      instance_(instance_id()),
      inbox_(cfg_),
      worker_(cfg_, metrics_, inbox_, instance_, [this] { keepalive(); }),
      readers_(cfg_.postgres.url, reader_pool_size(cfg_)),
      status_(cfg_, instance_, readers_) {}

int Runtime::run() {
  start();
  refresh_gauges();
  consume_until_stopped();
  shutdown();
  return 0;
}

void Runtime::start() {
  if (sd_notify(0, "STATUS=starting") > 0) log_->info("running under systemd");
  uint64_t wd_usec = 0;
  if (sd_watchdog_enabled(0, &wd_usec) > 0)
    watchdog_ = std::jthread([this, wd_usec](std::stop_token st) {
      feed_watchdog(st, std::chrono::microseconds(wd_usec / 3));
    });

  const HttpEndpoints endpoints{[this] { return metrics_.serialize(); }, [this] { return ready(); },
                                [this] { return status_.render(ready()); }};
  if (!cfg_.http.status_socket.empty()) {
    // /status (batches, events, errors) only where the socket's mode lets in
    status_http_ = std::make_unique<UnixHttpServer>(cfg_.http.status_socket, cfg_.http.status_socket_group, endpoints);
    log_->info("http on unix socket {} (/status only there)", cfg_.http.status_socket);
  }
  HttpEndpoints tcp = endpoints;
  if (status_http_) tcp.status = nullptr;
  http_ = std::make_unique<HttpServer>(cfg_.http.listen, tcp);
  log_->info("http listening on port {}", http_->port());

  prepare_bookkeeping(worker_.db(), cfg_);
  fail_abandoned_batches();
  init_metrics();

  const std::string brokers = cfg_.kafka.brokers == "embedded" ? start_embedded_broker() : cfg_.kafka.brokers;
  producer_ = std::make_unique<Producer>(cfg_, brokers, this);
  start_consumer(brokers);
  kafka_ok_ = true;
  started_ = true;
  sd_notify(0, "READY=1\nSTATUS=consuming");
  log_->info("ingestd {} ready: group {}, topics {} and {}", INGESTD_VERSION, cfg_.kafka.group_id,
             cfg_.kafka.topics.files, cfg_.kafka.topics.jobs);
}

void Runtime::fail_abandoned_batches() {
  // A batch a killed process left `running` would stay so for good, and rollback refuses a
  // running batch: fail those nothing will resume, now that their owner is gone (issue 16).
  pqxx::work tx(worker_.db());
  const auto ids = engine::Bookkeeping(cfg_.postgres.bookkeeping_schema)
                       .fail_abandoned(tx, "interrupted: the process running it stopped");
  tx.commit();
  for (const auto& id : ids)
    log_->warn(
        "batch {} was left running by a process that stopped: marked failed (`ingestd rollback {}` undoes "
        "what it wrote)",
        id, id);
}

std::string Runtime::start_embedded_broker() {
  const auto& t = cfg_.kafka.topics;
  broker_ = std::make_unique<EmbeddedBroker>(1, std::vector<std::string>{t.files, t.jobs, t.results, t.dead_letter},
                                             cfg_.kafka.embedded_partitions);
  const std::string brokers = broker_->bootstrap();
  broker_address_file_ = embedded_address_file(cfg_);
  std::ofstream(broker_address_file_) << brokers << "\n";
  log_->warn("kafka.brokers is 'embedded': librdkafka's mock cluster at {} (address in {}); for demos and tests only",
             brokers, broker_address_file_);
  return brokers;
}

void Runtime::shutdown() {
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  log_->info("shutting down: closing the consumer");
  consumer_->close();
  consumer_.reset();
  producer_.reset();
  broker_.reset();
  if (!broker_address_file_.empty()) std::filesystem::remove(broker_address_file_);
  http_.reset();
  log_->info("stopped");
}

bool Runtime::ready() const { return worker_.reachable() && kafka_ok_ && started_; }

void Runtime::keepalive() {
  last_beat_ = Clock::now().time_since_epoch().count();
  if (producer_) producer_->poll();
}

void Runtime::feed_watchdog(std::stop_token stop, std::chrono::microseconds interval) {
  const auto limit = std::chrono::duration<double>(cfg_.processing.stall_limit_seconds);
  std::mutex m;
  std::condition_variable_any cv;
  bool said = false;
  while (!stop.stop_requested()) {
    const auto silent = Clock::now() - Clock::time_point(Clock::duration(last_beat_.load()));
    if (silent < limit) {
      sd_notify(0, "WATCHDOG=1");
      said = false;
    } else if (!said) {
      said = true;
      log_->critical("no sign of life from the main loop for {:.0f}s (processing.stall_limit_seconds): the systemd "
                     "watchdog is no longer fed and will restart ingestd",
                     std::chrono::duration<double>(silent).count());
    }
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, interval, [] { return false; });
  }
}

void Runtime::reload() {
  sd_notify(0, "RELOADING=1\nSTATUS=reloading datasets, jobs and logging");
  try {
    config::Config fresh = config::load_config(cfg_.path);
    std::vector<std::string> problems;
    if (worker_.connected())
      for (const auto& [name, ds] : fresh.datasets)
        for (auto& p : engine::check_dataset_schema(worker_.db(), ds)) problems.push_back(p);
    if (!problems.empty()) {
      std::string all;
      for (auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      throw std::runtime_error(all);
    }
    // Only datasets, jobs and logging change on reload; connections, topics and listeners need a restart.
    cfg_.datasets = std::move(fresh.datasets);
    cfg_.jobs = std::move(fresh.jobs);
    cfg_.sources = std::move(fresh.sources);
    cfg_.logging = fresh.logging;
    apply_log_config(cfg_.logging);
    metrics_.reloads.Add({{"outcome", "success"}}).Increment();
    metrics_.reload_ok.Add({}).Set(1);
    log_->info("reloaded {}: {} datasets, {} jobs, log level {}", cfg_.path, cfg_.datasets.size(), cfg_.jobs.size(),
               spdlog::level::to_string_view(spdlog::default_logger()->level()));
  } catch (const std::exception& e) {
    metrics_.reloads.Add({{"outcome", "failure"}}).Increment();
    metrics_.reload_ok.Add({}).Set(0);
    log_->error("reload of {} refused, keeping the running datasets and jobs: {}", cfg_.path, e.what());
  }
  sd_notify(0, "READY=1\nSTATUS=consuming");
}

void Runtime::refresh_gauges() {
  // Operators watch these between batches: open review items and deferred references, and
  // whether PostgreSQL still answers (/readyz). Batches a gone process left running are failed.
  last_refresh_ = Clock::now();
  try {
    pqxx::read_transaction tx(worker_.db());
    const std::string qs = tx.quote_name(cfg_.postgres.bookkeeping_schema);
    metrics_.review_open.Add({}).Set(
        tx.exec("SELECT count(*) FROM " + qs + ".review_queue WHERE status = 'open'")[0][0].as<double>());
    refresh_deferred_refs(tx);
    tx.commit();
    fail_abandoned_batches();
    worker_.set_reachable(true);
    metrics_.up.Add({{"dependency", "postgresql"}}).Set(1);
  } catch (const std::exception& e) {
    if (worker_.reachable()) log_->warn("PostgreSQL unreachable: {}", e.what());
    worker_.set_reachable(false);
    metrics_.up.Add({{"dependency", "postgresql"}}).Set(0);
    worker_.disconnect();
  }
  metrics_.up.Add({{"dependency", "kafka"}}).Set(kafka_ok_ ? 1 : 0);
}

void Runtime::refresh_deferred_refs(pqxx::transaction_base& tx) {
  auto d = tx.exec("SELECT table_name, column_name, count(*) FROM " + tx.quote_name(cfg_.postgres.bookkeeping_schema) +
                   ".deferred_refs GROUP BY 1, 2");
  for (const auto& [name, ds] : cfg_.datasets)
    for (const auto& e : ds.entities)
      for (const auto& f : e.fields) {
        if (!f.lookup || f.on_missing != config::OnMissing::Defer) continue;
        double n = 0;
        for (const auto& row : d) {
          std::string t = row[0].as<std::string>();
          if ((t == e.table || t == "public." + e.table) && row[1].as<std::string>() == f.column)
            n = row[2].as<double>();
        }
        metrics_.deferred_open.Add({{"dataset", name}, {"field", e.name + "." + f.name}}).Set(n);
      }
}

void Runtime::init_metrics() {
  // Series exist from the start at 0, so increase() sees the first dead letter or failure.
  for (const auto& [key, topic] : consumed_topics(cfg_))
    for (const char* outcome : {"completed", "completed_with_rejects", "failed", "duplicate", "dry_run", "dead_letter"})
      metrics_.events.Add({{"topic", topic}, {"outcome", outcome}});
  for (const char* reason : {"malformed", "missing_field", "wrong_type", "unknown_type", "wrong_topic",
                             "unknown_target", "not_allowed", "too_large", "attempts_exhausted", "refused"})
    metrics_.dead_letters.Add({{"reason", reason}});
  for (const char* reason : {"connection", "serialization", "resources", "in_doubt", "busy", "infrastructure"})
    metrics_.retries.Add({{"reason", reason}});
  metrics_.reloads.Add({{"outcome", "success"}});
  metrics_.reloads.Add({{"outcome", "failure"}});
  metrics_.reload_ok.Add({}).Set(1);  // the config it started with is valid
  for (const char* kind : {"result", "dead_letter"}) metrics_.publish_failures.Add({{"kind", kind}});
  // The last success survives a restart: it is in the batches table. A record merge (by hand,
  // `ingestd merge`) loads nothing: it says nothing of how fresh the data is.
  pqxx::read_transaction tx(worker_.db());
  std::string builtin;
  for (const auto& h : handler_registry())
    for (const auto& t : h.builtin_targets) builtin += (builtin.empty() ? "" : ", ") + tx.quote(t);
  auto r = tx.exec("SELECT dataset_or_job, extract(epoch FROM max(finished_at))::float8 FROM " +
                   tx.quote_name(cfg_.postgres.bookkeeping_schema) +
                   ".batches WHERE status IN ('completed', 'completed_with_rejects') AND NOT dry_run AND kind <> 'merge' AND " +
                   (builtin.empty() ? "" : "dataset_or_job NOT IN (" + builtin + ") AND ") +
                   "finished_at IS NOT NULL GROUP BY 1");
  for (const auto& row : r) metrics_.last_success.Add({{"dataset", row[0].as<std::string>()}}).Set(row[1].as<double>());
}

int cmd_run(const config::Config& cfg) {
  Runtime rt(cfg);
  return rt.run();
}

}  // namespace ingestd
