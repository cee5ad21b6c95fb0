#include "daemon/kafka.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace ingestd {

EmbeddedBroker::EmbeddedBroker(int brokers, const std::vector<std::string>& topics, int partitions)
    : brokers_(brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk_) throw std::runtime_error(std::string("embedded broker: ") + err);
  cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
  if (!cluster_) throw std::runtime_error("embedded broker: cannot start librdkafka's mock cluster");
  for (const auto& t : topics) rd_kafka_mock_topic_create(cluster_, t.c_str(), partitions, 1);
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_) rd_kafka_destroy(rk_);
}

std::string EmbeddedBroker::bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

std::string EmbeddedBroker::control(const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  // `down`/`up`/`rtt` name a broker (ids 1..brokers_) or `all` (-1 to the mock API)
  auto broker = [&](int32_t& id) {
    std::string t;
    in >> t;
    if (t == "all") return true;
    std::istringstream n(t);
    return bool(n >> id) && n.eof() && id >= 1 && id <= brokers_;
  };
  const std::string which = "a broker id 1.." + std::to_string(brokers_) + " or all";
  int32_t id = -1;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (verb == "down" || verb == "up") {
    if (!broker(id)) return "error: usage: " + verb + " <" + which + ">";
    err = verb == "down" ? rd_kafka_mock_broker_set_down(cluster_, id) : rd_kafka_mock_broker_set_up(cluster_, id);
  } else if (verb == "rtt") {
    int ms = -1;
    if (!broker(id) || !(in >> ms) || ms < 0) return "error: usage: rtt <" + which + "> <ms>";
    err = rd_kafka_mock_broker_set_rtt(cluster_, id, ms);
  } else if (verb == "errors") {
    // the next <count> requests of that ApiKey, from any client, fail with that error code
    int api_key = -1, count = 0, code = 0;
    if (!(in >> api_key >> count >> code) || api_key < 0 || count < 1)
      return "error: usage: errors <ApiKey> <count> <error code>";
    std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), static_cast<rd_kafka_resp_err_t>(code));
    rd_kafka_mock_push_request_errors_array(cluster_, int16_t(api_key), errors.size(), errors.data());
  } else {
    return "error: unknown command '" + verb + "' (down, up, errors, rtt)";
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return std::string("error: ") + rd_kafka_err2str(err);
  return "ok";
}

std::string embedded_address_file(const config::Config& cfg) {
  if (!cfg.kafka.embedded_address_file.empty()) return cfg.kafka.embedded_address_file;
  const char* dir = std::getenv("XDG_RUNTIME_DIR");
  std::string base = dir && *dir ? dir : "/tmp";
  return base + "/ingestd-" + cfg.kafka.group_id + ".broker";
}

std::string resolve_brokers(const config::Config& cfg) {
  if (cfg.kafka.brokers != "embedded") return cfg.kafka.brokers;
  std::ifstream in(embedded_address_file(cfg));
  std::string addr;
  if (!in || !std::getline(in, addr) || addr.empty())
    throw std::runtime_error("kafka.brokers is 'embedded' but no embedded broker is running (no address in " +
                             embedded_address_file(cfg) + "); start `ingestd run -c " + cfg.path + "` first");
  return addr;
}

std::unique_ptr<RdKafka::Conf> kafka_conf(const config::Config& cfg, const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> c(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  if (c->set("bootstrap.servers", brokers, err) != RdKafka::Conf::CONF_OK) throw std::runtime_error(err);
  c->set("log_level", "4", err);
  for (const auto& [k, v] : cfg.kafka.properties)
    if (c->set(k, v, err) != RdKafka::Conf::CONF_OK)
      throw std::runtime_error("kafka.properties." + k + ": " + err);
  return c;
}

namespace {

/// The delivery report of one message. Shared by send() and the report, which may come after
/// send() stopped waiting (issue 16: a report must never write to memory that is gone).
struct DeliveryState {
  std::atomic<int> error{0};  // RdKafka::ErrorCode (local errors are negative)
  std::atomic<bool> reported{false};
};
using Delivery = std::shared_ptr<DeliveryState>;

/// Records the delivery outcome of a message send() produced, and frees its opaque.
struct DeliveryWaiter : RdKafka::DeliveryReportCb {
  void dr_cb(RdKafka::Message& m) override {
    std::unique_ptr<Delivery> done(static_cast<Delivery*>(m.msg_opaque()));
    if (!done) return;
    (*done)->error.store(int(m.err()));
    (*done)->reported.store(true);
  }
};
DeliveryWaiter g_delivery;

}  // namespace

Producer::Producer(const config::Config& cfg, const std::string& brokers, RdKafka::EventCb* events) {
  auto conf = kafka_conf(cfg, brokers);
  std::string err;
  conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&g_delivery), err);
  if (events) {
    conf->set("event_cb", events, err);
    conf->set("statistics.interval.ms", "1000", err);
  }
  conf->set("enable.idempotence", "true", err);
  conf->set("linger.ms", "0", err);
  // librdkafka gives up on a message after this long, and send() waits for that verdict: a
  // message send() calls failed is not delivered later behind its back (the result outbox
  // publishes it again, and would publish it twice).
  if (!cfg.kafka.properties.count("message.timeout.ms") && !cfg.kafka.properties.count("delivery.timeout.ms"))
    conf->set("message.timeout.ms", std::to_string(kDeliveryTimeoutMs), err);
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) throw std::runtime_error("kafka producer: " + err);
}

Producer::~Producer() {
  if (producer_) producer_->flush(5000);
}

void Producer::send(const std::string& topic, const std::string& key, const std::string& payload,
                    const std::vector<std::pair<std::string, std::string>>& headers, int timeout_ms) {
  Delivery done = std::make_shared<DeliveryState>();
  auto opaque = std::make_unique<Delivery>(done);  // the delivery report's copy; dr_cb frees it
  RdKafka::Headers* h = RdKafka::Headers::create();
  for (const auto& [k, v] : headers) h->add(k, v);
  auto err = producer_->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                const_cast<char*>(payload.data()), payload.size(), key.data(), key.size(), 0, h,
                                opaque.get());
  if (err != RdKafka::ERR_NO_ERROR) {
    delete h;
    throw std::runtime_error("cannot publish to " + topic + ": " + RdKafka::err2str(err));
  }
  opaque.release();  // librdkafka owns it now: the report frees it (one never reported leaks, never dangles)
  // The report comes by message.timeout.ms at the latest; the margin covers its way back.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms + 5000);
  while (!done->reported.load() && std::chrono::steady_clock::now() < deadline) producer_->poll(50);
  if (!done->reported.load()) {
    // the message may still go out; we stop waiting so shutdown stays bounded
    throw std::runtime_error("publishing to " + topic + " was not acknowledged within " + std::to_string(timeout_ms) + " ms");
  }
  // (A local error such as a message timeout is a negative code: it once passed for success.)
  if (const auto err = RdKafka::ErrorCode(done->error.load()); err != RdKafka::ERR_NO_ERROR)
    throw std::runtime_error("publishing to " + topic + " failed: " + RdKafka::err2str(err));
}

}  // namespace ingestd
