// The daemon, `ingestd run`: its lifecycle (start, reload, gauges, orderly shutdown) in
// runtime.cpp, the Kafka consumer in consumer.cpp, one event's way from message to result in
// processing.cpp. The inbox, the worker and /status are classes of their own.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/logger.h>

#include "config/model.hpp"
#include "daemon/http_server.hpp"
#include "daemon/unix_http.hpp"
#include "daemon/inbox.hpp"
#include "daemon/kafka.hpp"
#include "daemon/metrics.hpp"
#include "daemon/pg_pool.hpp"
#include "daemon/status.hpp"
#include "daemon/worker.hpp"

namespace ingestd {

class Runtime : public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  explicit Runtime(const config::Config& cfg);
  /// Consumes until a stop is asked; returns the process exit code.
  int run();

  /// Seeks assigned partitions to the offsets stored in PostgreSQL (rule 1).
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  /// librdkafka's errors, log lines and statistics (readiness, consumer lag).
  void event_cb(RdKafka::Event& event) override;

 private:
  using Clock = std::chrono::steady_clock;

  // runtime.cpp: lifecycle
  void start();
  /// Fails the running batches whose owner is gone and that nothing resumes: at start, and
  /// again every few seconds, since a killed process's session (and its lock) can outlive the
  /// restart by a moment, and a batch then skipped would stay `running` for good.
  void fail_abandoned_batches();
  std::string start_embedded_broker();
  void shutdown();
  void reload();
  void refresh_gauges();
  void refresh_deferred_refs(pqxx::transaction_base& tx);
  void init_metrics();
  /// A sign of life from the main thread (the watchdog thread feeds systemd while they come),
  /// and a poll of the producer's delivery reports.
  void keepalive();
  /// Feeds systemd's watchdog every third of WatchdogSec from its own thread, so a long
  /// statement, hash or lock wait does not get the process killed, until the main thread has
  /// shown no sign of life for processing.stall_limit_seconds (issue 16 item 2).
  void feed_watchdog(std::stop_token stop, std::chrono::microseconds interval);
  bool ready() const;

  // consumer.cpp: the consumer, its loop and its callbacks
  void start_consumer(const std::string& brokers);
  void consume_until_stopped();
  void rewind(RdKafka::Message& msg, const std::exception& e);
  std::string seek_to_stored(RdKafka::KafkaConsumer* consumer, pqxx::transaction_base& tx, RdKafka::TopicPartition& tp);
  void read_statistics(const std::string& stats);

  // processing.cpp: one event from message to result
  void process(RdKafka::Message& msg);
  /// The body of process(): vetting, the inbox, the handler, the result. Throws what it cannot answer.
  void answer(RdKafka::Message& msg, Event& ev);
  /// Writes a dead letter's inbox row and offset; false when no failed result should follow (no
  /// usable event id, or the id's existing inbox row was kept).
  bool record_dead_letter(const Event& ev, const std::string& reason, int attempts);
  /// A dead letter's reason is at most this long (header, inbox row, result).
  static constexpr size_t kMaxReasonBytes = 4000;
  void conclude(RdKafka::Message& msg, const Event& ev, const HandlerSpec& spec, const Worker::Run& run,
                Clock::time_point t0);
  void count_rows(const std::string& target, const Outcome& o);
  void dead_letter(RdKafka::Message& msg, const Event& ev, const std::string& reason, int attempts,
                   const std::string& metric_reason);
  /// Adds an event's result to /status (its message is queued in the outbox by the inbox).
  void show_result(const Event& ev, const Outcome& o, double seconds);
  /// Publishes the results queued in the outbox (result_outbox) and deletes what the broker
  /// acknowledged; stops at the first failure. Also sets ingestd_results_unpublished.
  void publish_results();
  void commit_to_kafka(RdKafka::Message& msg);

  config::Config cfg_;  // owned: SIGHUP swaps datasets and jobs between events
  std::shared_ptr<spdlog::logger> log_;
  std::string instance_;
  Metrics metrics_;
  Inbox inbox_;
  Worker worker_;
  PgPool readers_;  // for /status; the worker has its own connection
  StatusBoard status_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::string broker_address_file_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<UnixHttpServer> status_http_;  // http.status_socket
  std::atomic<bool> kafka_ok_{false}, started_{false};
  std::atomic<Clock::rep> last_beat_{Clock::now().time_since_epoch().count()};
  bool results_waiting_ = true;  // the outbox may hold results (at start: what the last run left)
  Clock::time_point last_refresh_{};
  std::jthread watchdog_;  // last member: stopped and joined first
};

}  // namespace ingestd
