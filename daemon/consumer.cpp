// The daemon's Kafka consumer: its configuration, the consume loop, partition assignment from
// the offsets stored in PostgreSQL (DESIGN §5 rule 1), and librdkafka's events and statistics.
#include <chrono>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/runtime.hpp"
#include "daemon/signals.hpp"

namespace ingestd {

void Runtime::start_consumer(const std::string& brokers) {
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
  inbox_.set_cluster_id(consumer_->clusterid(10000));
  if (inbox_.cluster_id().empty()) log_->warn("Kafka cluster id unknown; stored offsets cannot be checked against it");
  std::vector<std::string> topics;
  for (const auto& [key, topic] : consumed_topics(cfg_)) topics.push_back(topic);
  auto sub = consumer_->subscribe(topics);
  if (sub != RdKafka::ERR_NO_ERROR) throw std::runtime_error("kafka subscribe: " + RdKafka::err2str(sub));
}

void Runtime::consume_until_stopped() {
  while (!stop_requested()) {
    keepalive();
    if (take_reload_request()) reload();
    if (Clock::now() - last_refresh_ > std::chrono::seconds(5)) {
      refresh_gauges();
      if (results_waiting_ && kafka_ok_ && worker_.reachable()) publish_results();
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(500));
    if (!msg) continue;
    if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) continue;
    if (msg->err() != RdKafka::ERR_NO_ERROR) {
      log_->warn("consume: {}", msg->errstr());
      continue;
    }
    kafka_ok_ = true;
    try {
      worker_.db();
      process(*msg);
      worker_.set_reachable(true);
    } catch (const std::exception& e) {
      rewind(*msg, e);
    }
  }
}

void Runtime::rewind(RdKafka::Message& msg, const std::exception& e) {
  // The event's offset was not stored: rewind so it is read again once things recover.
  worker_.set_reachable(false);
  log_->error("event at {}[{}]@{} not processed: {}; retrying", msg.topic_name(), msg.partition(), msg.offset(),
              e.what());
  metrics_.retry("infrastructure");
  std::unique_ptr<RdKafka::TopicPartition> tp(
      RdKafka::TopicPartition::create(msg.topic_name(), msg.partition(), msg.offset()));
  consumer_->seek(*tp, 1000);
  worker_.disconnect();
  for (int i = 0; i < 20 && !stop_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

void Runtime::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                           std::vector<RdKafka::TopicPartition*>& partitions) {
  if (err != RdKafka::ERR__ASSIGN_PARTITIONS) {
    log_->info("partitions revoked");
    consumer->unassign();
    status_.set_assignment({});
    return;
  }
  // Positions come from PostgreSQL, where they were committed with the work (rule 1).
  std::vector<std::string> names;
  try {
    pqxx::read_transaction tx(worker_.db());
    for (auto* tp : partitions) names.push_back(seek_to_stored(consumer, tx, *tp));
  } catch (const std::exception& e) {
    // Without the stored positions we must not consume: Kafka's own offsets may be behind.
    log_->error("cannot read consumer offsets from PostgreSQL ({}); assignment postponed", e.what());
    worker_.set_reachable(false);
    for (auto* tp : partitions) tp->set_offset(RdKafka::Topic::OFFSET_INVALID);
    consumer->assign(partitions);
    consumer->pause(partitions);
    return;
  }
  log_->info("assigned {}", fmt::join(names, ", "));
  consumer->assign(partitions);
  status_.set_assignment(names);
}

std::string Runtime::seek_to_stored(RdKafka::KafkaConsumer* consumer, pqxx::transaction_base& tx,
                                    RdKafka::TopicPartition& tp) {
  const Inbox::StoredOffset s = inbox_.stored_offset(tx, tp.topic(), tp.partition());
  std::optional<int64_t> stored = s.next;
  const std::string& cluster = inbox_.cluster_id();
  if (stored && s.cluster_id && !cluster.empty() && *s.cluster_id != cluster) {
    log_->warn(
        "{}[{}]: stored offsets belong to Kafka cluster {}, this is {}; reading from the beginning (the "
        "inbox answers duplicate for anything already processed)",
        tp.topic(), tp.partition(), *s.cluster_id, cluster);
    stored.reset();
  }
  int64_t low = 0, high = -1;
  if (stored &&
      consumer->query_watermark_offsets(tp.topic(), tp.partition(), &low, &high, 5000) == RdKafka::ERR_NO_ERROR &&
      *stored > high) {
    // The stored position is past the end of the log: the cluster was replaced. Read
    // from the start; the inbox answers duplicate for anything already processed.
    log_->warn("{}[{}]: stored offset {} is beyond the partition end {}; reading from the beginning", tp.topic(),
               tp.partition(), *stored, high);
    stored.reset();
  }
  tp.set_offset(stored ? *stored : int64_t(RdKafka::Topic::OFFSET_BEGINNING));
  return tp.topic() + "[" + std::to_string(tp.partition()) + "]@" +
         (stored ? std::to_string(*stored) : std::string("beginning"));
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
    case RdKafka::Event::EVENT_STATS:
      read_statistics(event.str());
      break;
    default:
      break;
  }
}

void Runtime::read_statistics(const std::string& stats) {
  // Ready while a connection to some broker is up. The producer reports every second, also
  // during a batch (keepalive polls it); the consumer's reports wait for the next consume.
  auto j = nlohmann::json::parse(stats, nullptr, false);
  if (j.is_discarded()) return;
  bool up = false;
  if (j.contains("brokers"))
    for (auto& [name, b] : j["brokers"].items())
      up = up || (b.value("source", "") != "internal" && b.value("state", "") == "UP");
  kafka_ok_ = up;
  if (!j.contains("topics")) return;
  for (auto& [topic, t] : j["topics"].items()) {
    if (!t.contains("partitions")) continue;
    for (auto& [part, p] : t["partitions"].items()) {
      if (part == "-1" || !p.contains("consumer_lag")) continue;
      int64_t lag = p["consumer_lag"].get<int64_t>();
      if (lag >= 0) metrics_.consumer_lag.Add({{"topic", topic}, {"partition", part}}).Set(double(lag));
    }
  }
}

}  // namespace ingestd
