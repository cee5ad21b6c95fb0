// ingestd: one binary for the daemon and its operator commands (DESIGN §6).
// Exit codes: 0 ok, 1 failure, 2 usage or config error.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "config/loader.hpp"
#include "daemon/commands/commands.hpp"
#include "daemon/kafka.hpp"
#include "daemon/logging.hpp"
#include "daemon/operator_commands.hpp"
#include "daemon/schema.hpp"
#include "daemon/signals.hpp"
#include "handlers/engine/loader.hpp"
#include "handlers/engine/rollback.hpp"
#include "handlers/file_arrival/file_arrival.hpp"

using namespace ingestd;
using json = nlohmann::json;

namespace {

std::string new_uuid() {
  std::random_device rd;
  std::mt19937_64 g(rd());
  uint64_t a = g(), b = g();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32), unsigned((a >> 16) & 0xffff),
           unsigned(a & 0xffff), unsigned(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

/// Waits for the result of `event_id` on the results topic (reads it from the beginning).
int wait_for_result(const config::Config& cfg, const std::string& brokers, const std::string& event_id, int timeout_s) {
  auto conf = kafka_conf(cfg, brokers);
  std::string err;
  conf->set("group.id", "ingestd-submit-" + new_uuid(), err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("auto.offset.reset", "earliest", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) throw std::runtime_error(err);
  c->subscribe({cfg.kafka.topics.results});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline && !stop_requested()) {
    std::unique_ptr<RdKafka::Message> m(c->consume(500));
    if (!m || m->err() != RdKafka::ERR_NO_ERROR) continue;
    auto j = json::parse(std::string(static_cast<const char*>(m->payload()), m->len()), nullptr, false);
    if (j.is_discarded() || j.value("event_id", "") != event_id) continue;
    std::cout << j.dump(2) << std::endl;
    c->close();
    return j.value("status", "") == "failed" ? 1 : 0;
  }
  c->close();
  std::cerr << "ingestd submit: no result for event " << event_id << " within " << timeout_s << "s\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ingestd: events in Kafka become deduplicated, tracked, reversible rows in PostgreSQL"};
  app.require_subcommand(1);
  app.set_version_flag("--version", INGESTD_VERSION);
  std::string config_path = "/etc/ingestd/ingestd.yaml";
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();

  auto* run = app.add_subcommand("run", "Run the daemon: consume events until SIGTERM");
  run->add_option("-c,--config", config_path, "config file")->capture_default_str();

  auto* check = app.add_subcommand("check", "Validate the config and that its tables and columns exist");
  check->add_option("-c,--config", config_path, "config file")->capture_default_str();
  bool check_offline = false;
  check->add_flag("--offline", check_offline, "do not connect to PostgreSQL");

  auto* load = app.add_subcommand("load", "Load one file through a dataset, without Kafka");
  std::string load_file, load_dataset;
  bool load_dry = false;
  load->add_option("-c,--config", config_path, "config file")->capture_default_str();
  load->add_option("file", load_file, "CSV file")->required();
  load->add_option("--dataset", load_dataset, "dataset name")->required();
  load->add_flag("--dry-run", load_dry, "run everything, then roll back; report what would happen");

  auto* submit = app.add_subcommand("submit", "Publish an event as an uploader would");
  submit->require_subcommand(1);
  auto* sfile = submit->add_subcommand("file", "Publish a file.arrived event (computes sha256 and size)");
  std::string s_path, s_dataset, s_source, s_program, s_by = "ingestd-submit", s_event_id, s_delim, s_enc;
  bool s_dry = false, s_wait = false;
  int s_timeout = 120;
  sfile->add_option("-c,--config", config_path, "config file")->capture_default_str();
  sfile->add_option("path", s_path, "file to announce")->required();
  sfile->add_option("--dataset", s_dataset, "dataset name")->required();
  sfile->add_option("--source-system", s_source, "source_system of the event");
  sfile->add_option("--program", s_program, "program of the event");
  sfile->add_option("--submitted-by", s_by, "submitted_by of the event")->capture_default_str();
  sfile->add_option("--event-id", s_event_id, "event id (default: a new UUID)");
  sfile->add_option("--delimiter", s_delim, "options.delimiter");
  sfile->add_option("--encoding", s_enc, "options.encoding");
  sfile->add_flag("--dry-run", s_dry, "ask for a dry run");
  sfile->add_flag("--wait", s_wait, "wait for the result message and print it");
  sfile->add_option("--timeout", s_timeout, "seconds to wait with --wait")->capture_default_str();
  auto* sjob = submit->add_subcommand("job", "Publish a job.requested event");
  std::string j_name, j_mode;
  std::vector<std::string> j_params;
  sjob->add_option("-c,--config", config_path, "config file")->capture_default_str();
  sjob->add_option("name", j_name, "job name")->required();
  sjob->add_option("--mode", j_mode, "full or incremental");
  sjob->add_option("--param", j_params, "KEY=VALUE, repeatable");
  sjob->add_option("--event-id", s_event_id, "event id (default: a new UUID)");
  sjob->add_flag("--dry-run", s_dry, "ask for a dry run");
  sjob->add_flag("--wait", s_wait, "wait for the result message and print it");
  sjob->add_option("--timeout", s_timeout, "seconds to wait with --wait")->capture_default_str();

  auto* rb = app.add_subcommand("rollback", "Roll back a batch: delete what it inserted, restore what it overwrote");
  std::string rb_batch;
  bool rb_dry = false;
  rb->add_option("-c,--config", config_path, "config file")->capture_default_str();
  rb->add_option("batch", rb_batch, "batch id (UUID)")->required();
  rb->add_flag("--dry-run", rb_dry, "report what would be undone, change nothing");

  auto* st = app.add_subcommand("status", "Running and recent batches, or one batch in detail");
  std::string st_batch;
  bool st_json = false;
  st->add_option("-c,--config", config_path, "config file")->capture_default_str();
  st->add_option("batch", st_batch, "batch id");
  st->add_flag("--json", st_json, "print JSON");

  auto* review = app.add_subcommand("review", "The review queue: rows that matched two different records");
  review->require_subcommand(1);
  std::string rv_into;
  int64_t rv_id = 0;
  auto* rv_list = review->add_subcommand("list", "Open review items");
  auto* rv_merge = review->add_subcommand("merge", "Merge an item into a record (fills what it lacks)");
  auto* rv_distinct = review->add_subcommand("distinct", "The item is a different person: create a record for it");
  for (auto* sc : {rv_list, rv_merge, rv_distinct}) sc->add_option("-c,--config", config_path, "config file")->capture_default_str();
  rv_merge->add_option("id", rv_id, "review item id")->required();
  rv_merge->add_option("--into", rv_into, "record id to merge into")->required();
  rv_distinct->add_option("id", rv_id, "review item id")->required();

  auto* dlq = app.add_subcommand("dlq", "Dead letters");
  dlq->require_subcommand(1);
  auto* dlq_replay = dlq->add_subcommand("replay", "Republish dead letters to the topics they came from");
  int64_t dlq_limit = 1000000;
  bool dlq_dry = false;
  dlq_replay->add_option("-c,--config", config_path, "config file")->capture_default_str();
  dlq_replay->add_option("--limit", dlq_limit, "replay at most this many")->capture_default_str();
  dlq_replay->add_flag("--dry-run", dlq_dry, "count what would be replayed");

  auto* broker = app.add_subcommand("embedded-broker",
                                    "Run librdkafka's mock cluster on loopback (tests and demos only)");
  int b_partitions = 3;
  std::string b_addr_file;
  std::vector<std::string> b_topics{"ingest.files", "ingest.jobs", "ingest.results", "ingest.dead-letter"};
  int b_brokers = 1;
  broker->add_option("--brokers", b_brokers, "brokers in the cluster")->capture_default_str()->check(CLI::Range(1, 16));
  broker->add_option("--partitions", b_partitions, "partitions per topic")->capture_default_str();
  broker->add_option("--topic", b_topics, "topics to create")->capture_default_str();
  broker->add_option("--address-file", b_addr_file, "write the bootstrap address here");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  setup_logging(log_level);
  install_signals();

  if (broker->parsed()) {
    EmbeddedBroker b(b_brokers, b_topics, b_partitions);
    std::cout << b.bootstrap() << std::endl;
    if (!b_addr_file.empty()) std::ofstream(b_addr_file) << b.bootstrap() << "\n";
    // Fault injection for tests: one command a line on stdin, one answer a line on stdout.
    // At EOF (stdin closed or /dev/null) the broker just runs on until SIGTERM.
    std::thread([&b] {
      for (std::string line; std::getline(std::cin, line);) std::cout << b.control(line) << std::endl;
    }).detach();
    while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return 0;
  }

  config::Config cfg;
  try {
    cfg = config::load_config(config_path);
  } catch (const config::ConfigError& e) {
    std::cerr << "ingestd: invalid config:\n" << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ingestd: " << e.what() << std::endl;
    return 2;
  }

  try {
    if (run->parsed()) return cmd_run(cfg);
    if (check->parsed()) {
      if (check_offline) {
        std::cout << config_path << ": ok (offline)\n";
        return 0;
      }
      pqxx::connection c(cfg.postgres.url);
      std::vector<std::string> problems;
      for (const auto& [name, ds] : cfg.datasets)
        for (auto& p : engine::check_dataset_schema(c, ds)) problems.push_back(config_path + ": " + p);
      for (auto& p : problems) std::cerr << p << "\n";
      if (!problems.empty()) return 2;
      std::cout << config_path << ": ok (" << cfg.datasets.size() << " datasets, " << cfg.jobs.size() << " jobs)\n";
      return 0;
    }
    if (load->parsed()) return cmd_load(cfg, load_file, load_dataset, load_dry);
    if (st->parsed()) return cmd_status(cfg, st_batch, st_json);
    if (review->parsed()) {
      const char* user = std::getenv("USER");
      std::string action = rv_list->parsed() ? "list" : rv_merge->parsed() ? "merge" : "distinct";
      return cmd_review(cfg, action, rv_id, rv_into, std::string("cli:") + (user ? user : "unknown"));
    }
    if (dlq_replay->parsed()) return cmd_dlq_replay(cfg, dlq_limit, dlq_dry);
    if (rb->parsed()) {
      pqxx::connection c(cfg.postgres.url);
      migrate_schema(c, cfg.postgres.bookkeeping_schema);
      const char* user = std::getenv("USER");
      auto r = engine::rollback_batch(c, cfg, rb_batch, rb_dry, std::string("cli:") + (user ? user : "unknown"), nullptr);
      json out = {{"batch_id", rb_batch}, {"status", engine::to_string(r.status)}, {"errors", r.errors}, {"rollback", r.stats}};
      std::cout << out.dump(2) << std::endl;
      return r.status == engine::ResultStatus::Failed ? 1 : 0;
    }
    if (sfile->parsed() || sjob->parsed()) {
      const std::string brokers = resolve_brokers(cfg);
      json ev;
      if (s_event_id.empty()) s_event_id = new_uuid();
      std::string topic, key;
      if (sfile->parsed()) {
        if (!cfg.datasets.count(s_dataset)) {
          std::cerr << "ingestd submit: unknown dataset " << s_dataset << "\n";
          return 2;
        }
        auto abs = std::filesystem::absolute(s_path).lexically_normal().string();
        auto [sha, size] = file_arrival::file_digest(abs);
        ev = {{"event_id", s_event_id}, {"type", "file.arrived"}, {"dataset", s_dataset}, {"uri", "file://" + abs},
              {"sha256", sha}, {"size_bytes", size}, {"submitted_by", s_by}, {"dry_run", s_dry}};
        if (!s_source.empty()) ev["source_system"] = s_source;
        if (!s_program.empty()) ev["program"] = s_program;
        if (!s_delim.empty()) ev["options"]["delimiter"] = s_delim;
        if (!s_enc.empty()) ev["options"]["encoding"] = s_enc;
        topic = cfg.kafka.topics.files;
        key = s_dataset;
      } else {
        ev = {{"event_id", s_event_id}, {"type", "job.requested"}, {"job", j_name}, {"dry_run", s_dry},
              {"submitted_by", s_by}, {"params", json::object()}};
        if (!j_mode.empty()) ev["mode"] = j_mode;
        for (const auto& kv : j_params) {
          auto eq = kv.find('=');
          if (eq == std::string::npos) {
            std::cerr << "ingestd submit job: --param needs KEY=VALUE, got " << kv << "\n";
            return 2;
          }
          ev["params"][kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        topic = cfg.kafka.topics.jobs;
        key = j_name;
      }
      {
        Producer p(cfg, brokers);
        p.send(topic, key, ev.dump());
      }
      if (!s_wait) {
        std::cout << ev.dump(2) << std::endl;
        return 0;
      }
      std::cerr << "published event " << s_event_id << " to " << topic << "; waiting for its result\n";
      return wait_for_result(cfg, brokers, s_event_id, s_timeout);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
