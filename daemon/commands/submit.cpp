// `ingestd submit file|job`: a reference uploader. It publishes the event and, with --wait,
// reads the results topic, from its end as it was before publishing, until the event's result
// arrives. Needs only the `kafka` section (config::Sections::Kafka).
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "daemon/commands/commands.hpp"
#include "daemon/kafka.hpp"
#include "daemon/signals.hpp"
#include "handlers/file_arrival/file_arrival.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

/// A version-4 UUID from 128 bits of OpenSSL's CSPRNG: event ids must not collide (a
/// collision is answered `duplicate`), and one 32-bit seed made that likely at scale.
std::string new_uuid() {
  uint64_t a = 0, b = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&a), sizeof a) != 1 ||
      RAND_bytes(reinterpret_cast<unsigned char*>(&b), sizeof b) != 1)
    throw std::runtime_error("no random bytes for an event id (OpenSSL RAND_bytes failed)");
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32), unsigned((a >> 16) & 0xffff),
           unsigned(a & 0xffff), unsigned(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

/// @brief A reader of the results topic positioned at its current end, made before the event is
/// published, so its result cannot slip by and no earlier result is read again.
class ResultReader {
 public:
  ResultReader(const config::Config& cfg, const std::string& brokers) : topic_(cfg.kafka.topics.results) {
    auto conf = kafka_conf(cfg, brokers);
    std::string err;
    conf->set("group.id", "ingestd-submit-" + new_uuid(), err);  // never joined nor committed: assign() below
    conf->set("enable.auto.commit", "false", err);
    conf->set("auto.offset.reset", "earliest", err);  // a partition made after the watermarks were read
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) throw std::runtime_error(err);
    assign_at_end();
  }
  ~ResultReader() { consumer_->close(); }

  /// The result of `event_id`, or nullopt when none came within `timeout_s` (or on SIGINT).
  std::optional<json> wait_for(const std::string& event_id, int timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline && !stop_requested()) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(500));
      if (!m || m->err() != RdKafka::ERR_NO_ERROR) continue;
      auto j = json::parse(std::string(static_cast<const char*>(m->payload()), m->len()), nullptr, false);
      if (j.is_object() && j.value("event_id", "") == event_id) return j;
    }
    return std::nullopt;
  }

 private:
  /// Every partition of the results topic at its high watermark; a topic that does not exist yet
  /// is subscribed to from its beginning instead (it holds only results from now on).
  void assign_at_end() {
    std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(consumer_.get(), topic_, nullptr, err_));
    RdKafka::Metadata* raw = nullptr;
    if (t && consumer_->metadata(false, t.get(), &raw, 10000) == RdKafka::ERR_NO_ERROR) {
      std::unique_ptr<RdKafka::Metadata> md(raw);
      std::vector<RdKafka::TopicPartition*> parts;
      for (const auto* tm : *md->topics())
        if (tm->topic() == topic_ && tm->err() == RdKafka::ERR_NO_ERROR)
          for (const auto* pm : *tm->partitions()) {
            int64_t low = 0, high = 0;
            if (consumer_->query_watermark_offsets(topic_, pm->id(), &low, &high, 10000) != RdKafka::ERR_NO_ERROR)
              throw std::runtime_error("cannot read the end of " + topic_ + " partition " + std::to_string(pm->id()));
            parts.push_back(RdKafka::TopicPartition::create(topic_, pm->id(), high));
          }
      if (!parts.empty()) {
        consumer_->assign(parts);
        RdKafka::TopicPartition::destroy(parts);
        return;
      }
    }
    consumer_->subscribe({topic_});
  }

  std::string topic_, err_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
};

/// Publishes `ev` keyed by its dataset or job; prints it, or with --wait its result. Exit codes
/// (DESIGN §6): 0 published or completed, 1 failed, 3 completed with rejects, 4 no result in time.
int publish(const config::Config& cfg, const std::string& brokers, const std::string& topic, const std::string& key,
            const json& ev, const SubmitOptions& o) {
  std::optional<ResultReader> results;
  if (o.wait) results.emplace(cfg, brokers);
  {
    Producer p(cfg, brokers);
    p.send(topic, key, ev.dump());
  }
  if (!o.wait) {
    std::cout << ev.dump(o.json ? -1 : 2) << std::endl;
    return kExitCompleted;
  }
  std::cerr << "published event " << o.event_id << " to " << topic << "; waiting for its result\n";
  const auto result = results->wait_for(o.event_id, o.timeout_s);
  if (!result) {
    std::cerr << "ingestd submit: no result for event " << o.event_id << " within " << o.timeout_s << "s\n";
    return kExitTimedOut;
  }
  std::cout << result->dump(o.json ? -1 : 2) << std::endl;
  return exit_code(result->value("status", ""));
}

}  // namespace

int cmd_submit_file(const config::Config& cfg, SubmitOptions o) {
  const std::string brokers = resolve_brokers(cfg);
  if (o.event_id.empty()) o.event_id = new_uuid();
  // A config of only `kafka:` names no datasets: the daemon's dead letter then tells.
  if (!cfg.datasets.empty() && !cfg.datasets.count(o.dataset)) {
    std::cerr << "ingestd submit: unknown dataset " << o.dataset << "\n";
    return kExitUsage;
  }
  auto abs = std::filesystem::absolute(o.path).lexically_normal().string();
  auto [sha, size] = file_arrival::file_digest(abs);
  json ev = {{"event_id", o.event_id},         {"type", "file.arrived"}, {"dataset", o.dataset},
             {"uri", "file://" + abs},         {"sha256", sha},          {"size_bytes", size},
             {"submitted_by", o.submitted_by}, {"dry_run", o.dry_run}};
  if (!o.source_system.empty()) ev["source_system"] = o.source_system;
  if (!o.program.empty()) ev["program"] = o.program;
  if (!o.delimiter.empty()) ev["options"]["delimiter"] = o.delimiter;
  if (!o.encoding.empty()) ev["options"]["encoding"] = o.encoding;
  if (std::string error; !add_document_fields(o.document, ev, error)) {
    std::cerr << "ingestd submit file: " << error << "\n";
    return kExitUsage;
  }
  return publish(cfg, brokers, cfg.kafka.topics.files, o.dataset, ev, o);
}

bool parse_key_values(const std::vector<std::string>& args, const std::string& flag, json& out, std::string& error) {
  for (const auto& kv : args) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = flag + " needs KEY=VALUE, got " + kv;
      return false;
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

bool add_document_fields(const DocumentOptions& o, json& ev, std::string& error) {
  if (!o.original_name.empty()) ev["original_name"] = o.original_name;
  if (o.metadata.empty()) return true;
  ev["metadata"] = json::object();
  return parse_key_values(o.metadata, "--meta", ev["metadata"], error);
}

std::optional<json> job_request(const SubmitOptions& o, const std::string& event_id_prefix, std::string& error) {
  json ev = {{"event_id", o.event_id.empty() ? event_id_prefix + new_uuid() : o.event_id},
             {"type", "job.requested"},
             {"job", o.job},
             {"dry_run", o.dry_run},
             {"submitted_by", o.submitted_by},
             {"params", json::object()}};
  if (!o.mode.empty()) ev["mode"] = o.mode;
  if (!parse_key_values(o.params, "--param", ev["params"], error)) return std::nullopt;
  return ev;
}

int cmd_submit_job(const config::Config& cfg, SubmitOptions o) {
  const std::string brokers = resolve_brokers(cfg);
  std::string error;
  auto ev = job_request(o, "", error);
  if (!ev) {
    std::cerr << "ingestd submit job: " << error << "\n";
    return kExitUsage;
  }
  o.event_id = (*ev)["event_id"];
  return publish(cfg, brokers, cfg.kafka.topics.jobs, o.job, *ev, o);
}

}  // namespace ingestd
