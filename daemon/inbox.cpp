#include "daemon/inbox.hpp"

#include <algorithm>

#include "config/redact.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

bool terminal(const std::string& s) {
  return s == "completed" || s == "completed_with_rejects" || s == "failed" || s == "duplicate" || s == "dry_run" ||
         s == "dead_letter";
}

std::optional<std::string> unless_empty(const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); }

/// Every string of a result with its secrets masked (config::redact): reasons and errors quote
/// what libraries said, and a library may quote a connection string.
void redact_strings(json& j) {
  if (j.is_string()) j = config::redact(j.get<std::string>());
  else if (j.is_structured())
    for (auto& v : j) redact_strings(v);
}

/// Keeps a result under kMaxResultBytes: its errors (row errors, reasons) are what can grow.
void fit_result(json& r) {
  if (!r["errors"].is_array() || r.dump().size() <= kMaxResultBytes) return;
  json all = std::move(r["errors"]);
  r["errors"] = json::array();
  r["errors_truncated_from"] = all.size();
  size_t bytes = r.dump().size();
  for (const auto& e : all) {
    json s = excerpt(e.is_string() ? e.get<std::string>() : e.dump(), 1000);
    const size_t add = s.dump().size() + 1;
    if (bytes + add > kMaxResultBytes) break;
    bytes += add;
    r["errors"].push_back(std::move(s));
  }
}

}  // namespace

void Inbox::receive(pqxx::transaction_base& tx, const Event& ev, const std::string& payload) const {
  tx.exec_params("INSERT INTO " + tx.quote_name(schema_) +
                     ".events (event_id, topic, \"partition\", \"offset\", type, payload, status) "
                     "VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'processing') ON CONFLICT (event_id) DO NOTHING",
                 ev.event_id, ev.topic, ev.partition, ev.offset, ev.type, payload);
}

std::optional<Outcome> Inbox::answer_if_finished(pqxx::transaction_base& tx, const Event& ev,
                                                 const std::string& why) const {
  auto r = tx.exec_params(
      "SELECT status, batch_id::text FROM " + tx.quote_name(schema_) + ".events WHERE event_id = $1 FOR UPDATE",
      ev.event_id);
  if (r.empty() || !terminal(r[0][0].as<std::string>())) return std::nullopt;
  Outcome d;
  d.status = engine::ResultStatus::Duplicate;
  d.batch_id = r[0][1].is_null() ? "" : r[0][1].as<std::string>();
  d.extra["original_status"] = r[0][0].as<std::string>();
  d.extra["reason"] = "event " + ev.event_id + " " + why;
  store_offset(tx, ev);
  queue_result(tx, ev, d);
  tx.commit();
  d.committed = true;
  return d;
}

void Inbox::finish(pqxx::transaction_base& tx, const Event& ev, const Outcome& o, int attempts) const {
  if (!ev.event_id.empty()) {
    std::optional<std::string> err;
    if (!o.errors.empty()) err = config::redact(o.errors.front());
    tx.exec_params(
        "UPDATE " + tx.quote_name(schema_) +
            ".events SET status = $2, batch_id = coalesce($3::uuid, batch_id), attempts = $4, "
            "last_error = $5, finished_at = now() WHERE event_id = $1 AND status IN ('received', 'processing')",
        ev.event_id, std::string(engine::to_string(o.status)), unless_empty(o.batch_id), attempts, err);
  }
  store_offset(tx, ev);
  queue_result(tx, ev, o);
}

bool Inbox::dead_letter(pqxx::transaction_base& tx, const Event& ev, const std::string& why, int attempts) const {
  const std::string reason = config::redact(why);
  bool recorded = false;
  if (!ev.event_id.empty()) {
    // An existing row is taken over only by this event's own attempts running out (it was
    // received, then failed): a refused message reusing the id of another event — finished or
    // not — must not rewrite that event's row (issue 16).
    recorded = tx.exec_params("INSERT INTO " + tx.quote_name(schema_) +
                                  ".events (event_id, topic, \"partition\", \"offset\", type, status, attempts, "
                                  "last_error, finished_at) VALUES ($1, $2, $3, $4, $5, 'dead_letter', $6, $7, now()) "
                                  "ON CONFLICT (event_id) DO UPDATE SET status = 'dead_letter', attempts = "
                                  "excluded.attempts, last_error = excluded.last_error, finished_at = now() "
                                  "WHERE events.status IN ('received', 'processing') AND excluded.attempts > 0",
                              ev.event_id, ev.topic, ev.partition, ev.offset, excerpt(ev.type), attempts, reason)
                   .affected_rows() > 0;
  }
  store_offset(tx, ev);
  if (recorded) queue_result(tx, ev, Outcome::failed(reason));
  return recorded;
}

void Inbox::queue_result(pqxx::transaction_base& tx, const Event& ev, const Outcome& o) const {
  if (ev.partition < 0 || ev.event_id.empty()) return;  // not from Kafka, or nothing to correlate by
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ev.received).count();
  tx.exec_params("INSERT INTO " + tx.quote_name(schema_) + ".result_outbox (event_id, topic, payload) VALUES ($1, $2, $3)",
                 ev.event_id, results_topic_, result_message(ev, o, seconds).dump());
}

void Inbox::store_offset(pqxx::transaction_base& tx, const Event& ev) const {
  if (ev.partition < 0) return;
  // A position from another cluster is replaced; from this one it only moves forward.
  tx.exec_params(
      "INSERT INTO " + tx.quote_name(schema_) +
          ".consumer_offsets (group_id, topic, \"partition\", next_offset, cluster_id) "
          "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, \"partition\") DO UPDATE SET next_offset = "
          "CASE WHEN consumer_offsets.cluster_id IS DISTINCT FROM excluded.cluster_id THEN excluded.next_offset "
          "ELSE greatest(consumer_offsets.next_offset, excluded.next_offset) END, cluster_id = excluded.cluster_id, "
          "updated_at = now()",
      group_, ev.topic, ev.partition, ev.offset + 1, unless_empty(cluster_id_));
}

Inbox::StoredOffset Inbox::stored_offset(pqxx::transaction_base& tx, const std::string& topic,
                                         int32_t partition) const {
  auto r = tx.exec_params("SELECT next_offset, cluster_id FROM " + tx.quote_name(schema_) +
                              ".consumer_offsets WHERE group_id = $1 AND topic = $2 AND \"partition\" = $3",
                          group_, topic, partition);
  StoredOffset s;
  if (r.empty()) return s;
  s.next = r[0][0].as<int64_t>();
  if (!r[0][1].is_null()) s.cluster_id = r[0][1].as<std::string>();
  return s;
}

json result_message(const Event& ev, const Outcome& o, double seconds) {
  json counts = json::object();
  for (const auto& [k, v] : o.counts) counts[k] = v.to_json();
  json r = {{"event_id", ev.event_id},
            {"type", ev.type},
            {"status", engine::to_string(o.status)},
            {"batch_id", o.batch_id.empty() ? json(nullptr) : json(o.batch_id)},
            {"counts", counts},
            {"duration_ms", int64_t(seconds * 1000)},
            {"reject_file", o.reject_file.empty() ? json(nullptr) : json(o.reject_file)},
            {"errors", o.errors}};
  // The target under its own field name; a dead-lettered event may have no handler, so every
  // handler's target field is copied from the payload when present.
  for (const auto& h : handler_registry())
    if (ev.payload.contains(h.target_field)) {
      const auto& t = ev.payload[h.target_field];
      r[h.target_field] = t.is_string() ? json(excerpt(t.get<std::string>())) : t;
    }
  for (auto& [k, v] : o.extra.items()) r[k] = v;
  for (auto& [k, v] : r.items())
    if (k != "event_id") redact_strings(v);  // the uploader correlates by event_id as sent
  fit_result(r);
  return r;
}

void publish_dead_letter(Producer& producer, const std::string& topic, RdKafka::Message& msg, const std::string& reason,
                         int attempts) {
  std::string key = msg.key() ? *msg.key() : "";
  // A payload the broker would refuse must not block its partition: keep its head (copying
  // no more of it), say so; the original stays in the source topic at the offset in the headers.
  constexpr size_t kMaxDeadLetter = 256 * 1024;
  const std::string payload(static_cast<const char*>(msg.payload()), std::min(msg.len(), kMaxDeadLetter));
  // A key is a dataset or job name: past 1 KiB it is itself the problem, and with the payload
  // it could exceed what the broker accepts, which would leave the event unanswered.
  constexpr size_t kMaxDeadLetterKey = 1024;
  const size_t key_bytes = key.size();
  if (key_bytes > kMaxDeadLetterKey) key.resize(kMaxDeadLetterKey);
  std::vector<std::pair<std::string, std::string>> headers{{"error", config::redact(reason)},
                                                           {"attempts", std::to_string(attempts)},
                                                           {"source_topic", msg.topic_name()},
                                                           {"source_partition", std::to_string(msg.partition())},
                                                           {"source_offset", std::to_string(msg.offset())}};
  if (key_bytes > kMaxDeadLetterKey) headers.emplace_back("key_truncated_from_bytes", std::to_string(key_bytes));
  if (msg.len() > kMaxDeadLetter) headers.emplace_back("truncated_from_bytes", std::to_string(msg.len()));
  producer.send(topic, key, payload, headers);
}

}  // namespace ingestd
