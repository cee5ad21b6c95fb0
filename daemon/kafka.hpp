// Kafka plumbing: the embedded mock broker, the producer (results, dead letters, submit)
// and the consumer whose positions come from PostgreSQL (DESIGN §5 rule 1).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

#include "config/model.hpp"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace ingestd {

/// @brief librdkafka's mock cluster, in-process: for the demo and tests only.
class EmbeddedBroker {
 public:
  EmbeddedBroker(int brokers, const std::vector<std::string>& topics, int partitions);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;
  std::string bootstrap() const;
  /// Runs one fault-injection command (`down 1`, `up all`, `errors 1 5 6`, `rtt 1 500`) and
  /// answers `ok` or `error: <reason>`; `ingestd embedded-broker` reads them from stdin.
  std::string control(const std::string& line);

 private:
  int brokers_ = 1;
  rd_kafka_s* rk_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
};

/// Where `ingestd submit` finds the broker of a config that says "embedded".
std::string embedded_address_file(const config::Config& cfg);
/// The bootstrap servers a config names (reading the embedded broker's address file).
std::string resolve_brokers(const config::Config& cfg);

/// Applies kafka.properties and the bootstrap servers to a librdkafka config.
std::unique_ptr<RdKafka::Conf> kafka_conf(const config::Config& cfg, const std::string& brokers);

/// @brief Publishes messages with headers; flushes before the caller reports success.
class Producer {
 public:
  /// `events`, if given, receives the producer's errors, log lines and, every second, its
  /// statistics (the daemon's readiness follows the broker states in them).
  Producer(const config::Config& cfg, const std::string& brokers, RdKafka::EventCb* events = nullptr);
  ~Producer();
  /// Produces and waits for the broker's acknowledgement or librdkafka's verdict that it failed
  /// (message.timeout.ms, kDeliveryTimeoutMs unless kafka.properties set it; pass that as
  /// timeout_ms). Throws on failure.
  void send(const std::string& topic, const std::string& key, const std::string& payload,
            const std::vector<std::pair<std::string, std::string>>& headers = {}, int timeout_ms = kDeliveryTimeoutMs);
  static constexpr int kDeliveryTimeoutMs = 10000;
  void poll() { producer_->poll(0); }

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
};

}  // namespace ingestd
