// `ingestd dlq replay`: dead letters back to the topics they came from, once the cause is fixed.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "daemon/commands/commands.hpp"
#include "daemon/kafka.hpp"
#include "handlers/handler.hpp"

namespace ingestd {

namespace {

/// True when every assigned partition has reported its end.
bool all_at_end(RdKafka::KafkaConsumer& c, const std::set<int32_t>& eof) {
  std::vector<RdKafka::TopicPartition*> parts;
  c.assignment(parts);
  const size_t assigned = parts.size();
  RdKafka::TopicPartition::destroy(parts);
  return assigned && eof.size() >= assigned;
}

/// The topic a dead letter came from (its source_topic header), or "".
std::string source_topic(RdKafka::Message& m) {
  std::string source;
  if (auto* h = m.headers()) {
    for (const auto& hd : h->get("source_topic")) source.assign(static_cast<const char*>(hd.value()), hd.value_size());
  }
  return source;
}

}  // namespace

int cmd_dlq_replay(const config::Config& cfg, int64_t limit, bool dry_run, bool as_json) {
  const std::string brokers = resolve_brokers(cfg);
  auto conf = kafka_conf(cfg, brokers);
  std::string err;
  // a dry run reads with a group of its own, so it neither moves nor waits for the real one
  conf->set("group.id", cfg.kafka.group_id + (dry_run ? "-dlq-peek-" + std::to_string(getpid()) : "-dlq-replay"), err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("enable.partition.eof", "true", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) throw std::runtime_error("kafka consumer: " + err);
  c->subscribe({cfg.kafka.topics.dead_letter});
  std::unique_ptr<Producer> producer;
  if (!dry_run) producer = std::make_unique<Producer>(cfg, brokers);
  // Only to a topic this config consumes: the source_topic header is whatever the dead letter's
  // producer wrote, and a replay must not become a way to publish anywhere.
  std::set<std::string> allowed;
  for (const auto& [key, topic] : consumed_topics(cfg)) allowed.insert(topic);
  std::map<std::string, int64_t> replayed, refused;
  std::set<int32_t> eof;
  int64_t n = 0;
  auto idle_since = std::chrono::steady_clock::now();
  while (n < limit) {
    std::unique_ptr<RdKafka::Message> m(c->consume(500));
    if (!m) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      eof.insert(m->partition());
      if (all_at_end(*c, eof)) break;
      continue;
    }
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      // joining the group can wait for a previous member's session to expire
      if (std::chrono::steady_clock::now() - idle_since > std::chrono::seconds(60)) break;
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    idle_since = std::chrono::steady_clock::now();
    const std::string source = source_topic(*m);
    if (!allowed.count(source)) {
      const std::string shown = source.empty() ? "(no source_topic header)" : source.substr(0, 200);
      std::cerr << "ingestd dlq replay: offset " << m->offset() << ": not replayed: " << shown
                << " is not a topic this config consumes\n";
      ++refused[shown];
      continue;
    }
    std::string payload(static_cast<const char*>(m->payload()), m->len());
    std::string key = m->key() ? *m->key() : "";
    if (!dry_run) {
      producer->send(source, key, payload,
                     {{"replayed_from", cfg.kafka.topics.dead_letter + "@" + std::to_string(m->offset())}});
      c->commitSync(m.get());
    }
    ++replayed[source];
    ++n;
  }
  c->close();
  nlohmann::json out = {{"replayed", n}, {"by_topic", replayed}, {"refused", refused}, {"dry_run", dry_run}};
  std::cout << out.dump(as_json ? -1 : 2) << std::endl;
  return kExitCompleted;
}

}  // namespace ingestd
