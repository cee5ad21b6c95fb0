// `ingestd submit file|job`: a reference uploader. It publishes the event and, with --wait,
// reads the results topic until the event's result arrives. Needs only the `kafka` section.
#include <chrono>
#include <filesystem>
#include <iostream>

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

/// Publishes `ev` keyed by its dataset or job; prints it, or with --wait its result.
int publish(const config::Config& cfg, const std::string& brokers, const std::string& topic, const std::string& key,
            const json& ev, const SubmitOptions& o) {
  {
    Producer p(cfg, brokers);
    p.send(topic, key, ev.dump());
  }
  if (!o.wait) {
    std::cout << ev.dump(2) << std::endl;
    return 0;
  }
  std::cerr << "published event " << o.event_id << " to " << topic << "; waiting for its result\n";
  return wait_for_result(cfg, brokers, o.event_id, o.timeout_s);
}

}  // namespace

int cmd_submit_file(const config::Config& cfg, SubmitOptions o) {
  const std::string brokers = resolve_brokers(cfg);
  if (o.event_id.empty()) o.event_id = new_uuid();
  if (!cfg.datasets.count(o.dataset)) {
    std::cerr << "ingestd submit: unknown dataset " << o.dataset << "\n";
    return 2;
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
  return publish(cfg, brokers, cfg.kafka.topics.files, o.dataset, ev, o);
}

std::optional<json> job_request(const SubmitOptions& o, const std::string& event_id_prefix, std::string& error) {
  json ev = {{"event_id", o.event_id.empty() ? event_id_prefix + new_uuid() : o.event_id},
             {"type", "job.requested"},
             {"job", o.job},
             {"dry_run", o.dry_run},
             {"submitted_by", o.submitted_by},
             {"params", json::object()}};
  if (!o.mode.empty()) ev["mode"] = o.mode;
  for (const auto& kv : o.params) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "--param needs KEY=VALUE, got " + kv;
      return std::nullopt;
    }
    ev["params"][kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return ev;
}

int cmd_submit_job(const config::Config& cfg, SubmitOptions o) {
  const std::string brokers = resolve_brokers(cfg);
  std::string error;
  auto ev = job_request(o, "", error);
  if (!ev) {
    std::cerr << "ingestd submit job: " << error << "\n";
    return 2;
  }
  o.event_id = (*ev)["event_id"];
  return publish(cfg, brokers, cfg.kafka.topics.jobs, o.job, *ev, o);
}

}  // namespace ingestd
