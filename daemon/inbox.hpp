// The inbox (DESIGN §5 rule 1): every consumed event's row in the events table and the
// consumed offset, committed with the event's work; the result message an event ends with; and
// the dead-letter message of an event that cannot be processed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <librdkafka/rdkafkacpp.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "daemon/kafka.hpp"
#include "handlers/handler.hpp"

namespace ingestd {

/// @brief The events and consumer_offsets tables of one bookkeeping schema and consumer group.
class Inbox {
 public:
  explicit Inbox(const config::Config& cfg)
      : schema_(cfg.postgres.bookkeeping_schema), group_(cfg.kafka.group_id), results_topic_(cfg.kafka.topics.results) {}

  /// The Kafka cluster the stored offsets belong to (known once the consumer exists).
  void set_cluster_id(std::string id) { cluster_id_ = std::move(id); }
  const std::string& cluster_id() const { return cluster_id_; }

  /// Queues the result message of an event read from Kafka in the outbox (result_outbox), in
  /// the transaction that records its terminal state: it is published from there, again after
  /// a broker outage or a restart, so no result is lost (issue 16). CLI runs print theirs.
  void queue_result(pqxx::transaction_base& tx, const Event& ev, const Outcome& o) const;

  /// Records a consumed event as processing; nothing when its row already exists.
  void receive(pqxx::transaction_base& tx, const Event& ev, const std::string& payload) const;
  /// When the event already reached a terminal state: stores its offset, commits `tx` and
  /// returns the committed `duplicate` answer. Otherwise nothing.
  std::optional<Outcome> answer_if_finished(pqxx::transaction_base& tx, const Event& ev, const std::string& why) const;
  /// The event's terminal state and its offset.
  void finish(pqxx::transaction_base& tx, const Event& ev, const Outcome& o, int attempts) const;
  /// A dead-lettered event's terminal state (it may have no row yet) and its offset. An existing
  /// row is kept unless this event's own attempts ran out (attempts > 0 and it is unfinished);
  /// returns whether the row now says dead_letter.
  bool dead_letter(pqxx::transaction_base& tx, const Event& ev, const std::string& reason, int attempts) const;

  /// @brief A partition's position as stored with the work.
  struct StoredOffset {
    std::optional<int64_t> next;
    std::optional<std::string> cluster_id;  // the cluster it was read from, when recorded
  };
  StoredOffset stored_offset(pqxx::transaction_base& tx, const std::string& topic, int32_t partition) const;

 private:
  /// Stores the offset after `ev` (an event from the command line has none).
  void store_offset(pqxx::transaction_base& tx, const Event& ev) const;

  std::string schema_, group_, results_topic_, cluster_id_;
};

/// @brief What a handler commits with its final transaction: the inbox row and the offset.
class InboxCommit : public EventCommit {
 public:
  InboxCommit(const Inbox& inbox, const Event& ev, int attempts) : inbox_(inbox), ev_(ev), attempts_(attempts) {}
  void write(pqxx::transaction_base& tx, const Outcome& o) override { inbox_.finish(tx, ev_, o, attempts_); }

 private:
  const Inbox& inbox_;
  const Event& ev_;
  int attempts_;
};

/// The result message of an event that reached a terminal state (DESIGN §2), at most
/// kMaxResultBytes serialized: past that, `errors` keeps its first entries, shortened, and
/// `errors_truncated_from` says how many there were.
nlohmann::json result_message(const Event& ev, const Outcome& o, double seconds);
constexpr size_t kMaxResultBytes = 1000 * 1000;

/// Publishes `msg` to `topic` with the dead-letter headers (error, attempts, source topic,
/// partition, offset). Throws when the broker does not acknowledge it.
void publish_dead_letter(Producer& producer, const std::string& topic, RdKafka::Message& msg, const std::string& reason,
                         int attempts);

}  // namespace ingestd
