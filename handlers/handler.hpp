// The handler interface: a handler gets a parsed, validated event and the services it may
// use, and answers with an outcome. It never touches offsets or the consumer: the runtime's
// EventCommit writes the inbox row and the consumed offset inside the handler's final
// transaction (DESIGN §5 rule 1).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "daemon/metrics.hpp"
#include "handlers/engine/bookkeeping.hpp"
#include "handlers/engine/errors.hpp"

namespace ingestd {

/// @brief An event as consumed: where it came from and its JSON body.
struct Event {
  std::string event_id;
  std::string type;
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  nlohmann::json payload;
  bool from_cli = false;  // run by the operator at a terminal (load, run-job), not read from Kafka
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();  // the result's duration_ms
};

/// @brief Per-entity row counts (the result message and ingestd_rows_total).
struct EntityCounts {
  int64_t inserted = 0, updated = 0, unchanged = 0, rejected = 0, review = 0;
  int64_t skipped = 0;  // rows that carry nothing for a dependent entity (a person who is no student)
  std::map<int, int64_t> tier_matches;  // tier (1-based) -> rows matched at it
  std::map<std::string, int64_t> fuzzy_bands;  // rows a fuzzy tier judged: merged | review | new
  /// A chunk's fuzzy match weights, observed on /metrics once the chunk commits (a retried or
  /// dry-run chunk is not counted); not part of the result.
  std::vector<double> match_weights;
  nlohmann::json to_json() const;
  EntityCounts& operator+=(const EntityCounts& o);
};

/// @brief What became of an event.
struct Outcome {
  enum class Kind {
    Done,         // terminal: result published, inbox and offset committed
    Retry,        // transient failure: try again with backoff
    Interrupted,  // shutdown asked mid-batch: nothing final committed, resume on next start
  };
  Kind kind = Kind::Done;
  engine::ResultStatus status = engine::ResultStatus::Completed;  // Done only
  std::string batch_id;
  std::map<std::string, EntityCounts> counts;  // entity -> counts, in dataset order by name
  std::vector<std::string> entity_order;
  std::string reject_file;
  std::vector<std::string> errors;  // first errors, for the result message
  std::string reason;               // Retry: what failed
  nlohmann::json extra = nlohmann::json::object();
  bool committed = false;           // the handler already ran EventCommit in its final tx
  bool busy = false;                // Retry because another owner holds the work: wait, don't count it
  bool infrastructure = false;      // Retry because PostgreSQL is unreachable: never dead-letter for it

  /// A terminal failure with its reason (and the batch, when there is one).
  static Outcome failed(const std::string& why, const std::string& batch_id = "") {
    Outcome o;
    o.status = engine::ResultStatus::Failed;
    o.batch_id = batch_id;
    o.errors.push_back(why);
    return o;
  }
};

/// @brief Writes the event's terminal state and the consumed offset into a transaction.
class EventCommit {
 public:
  virtual ~EventCommit() = default;
  virtual void write(pqxx::transaction_base& tx, const Outcome& outcome) = 0;
};

/// @brief What a handler may use.
struct Services {
  const config::Config& cfg;
  Metrics& metrics;
  pqxx::connection& db;               // this worker's connection (the batch lock lives on it)
  std::string instance_id;
  const std::atomic<bool>& stopping;  // finish the current chunk and return Interrupted
  std::function<void()> keepalive;    // call between chunks: watchdog, Kafka poll
};

using HandlerFn = Outcome (*)(const Event&, Services&, EventCommit&);
/// Checks a payload beyond its required fields: the reason to dead-letter it, or "".
using ValidateFn = std::string (*)(const config::Config&, const Event&);

/// @brief One event type: the topic it arrives on, its checks and its handler. Its fields and
/// their types are its JSON Schema's to say: schemas/TYPE.schema.json (handlers/event_schema.hpp).
struct HandlerSpec {
  std::string type;
  std::string topic_key;                      // "files" or "jobs" (config topics.*)
  std::string target_field;                   // the payload field naming its dataset or job
  std::vector<std::string> builtin_targets;   // targets that are no dataset (no last-success series)
  ValidateFn validate;
  HandlerFn handle;

  /// The dataset or job the event names ("" when the payload has none).
  std::string target(const Event& ev) const;
  /// True for a built-in target (a rollback, checks): its success is no dataset's success.
  bool is_builtin(const std::string& target) const;
};

using engine::first_line;

/// Marks a batch failed in its own transaction, together with the event's terminal state, and
/// returns the committed `failed` outcome. `extra` is merged into the batch's stats and result.
Outcome fail_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::string& why,
                   const nlohmann::json& extra = nlohmann::json::object());

/// Runs a batch's work and answers what retrying cannot fix: a BatchError, or a database error
/// that is neither transient nor a lost connection, fails the batch (`describe` turns the
/// database's words into the reason). Transient failures propagate: the runtime retries them.
Outcome run_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::function<Outcome()>& work,
                  const std::function<std::string(const pqxx::sql_error&)>& describe);

/// What a batch's end line says of its outcome: status, rows read, each entity's counts, the
/// reject file, a failure's reason.
std::string batch_summary(const Outcome& o);

/// The one list of handlers (handlers/registry.cpp).
const std::vector<HandlerSpec>& handler_registry();
/// The handler of an event type, or nullptr.
const HandlerSpec* find_handler(const std::string& type);

/// The topics the handlers consume, as (topic key, topic name from the config's topics.*).
std::vector<std::pair<std::string, std::string>> consumed_topics(const config::Config& cfg);
/// The topic key of a consumed topic ("" for a topic no handler consumes).
std::string topic_key_of(const config::Config& cfg, const std::string& topic);

/// Checks an event's payload: its type's JSON Schema (fields, their types), then its handler's
/// own checks that a schema cannot express (unknown dataset or job, a job events may not run).
/// Returns the reason it must be dead-lettered, or "".
std::string validate_event(const config::Config& cfg, const Event& ev);

/// A string echoed into a reason: itself when short, otherwise its first `max` bytes (cut on a
/// UTF-8 character boundary) and "… (N bytes)", so an 800 KB dataset name stays out of reasons,
/// logs and results.
std::string excerpt(const std::string& s, size_t max = 200);

/// Limits an event's JSON is held to before it is parsed into a tree or stored (issue 16): jsonb
/// refuses a NUL character (\u0000) and PostgreSQL's parser a deep enough nesting, and the inbox
/// key must fit its index.
inline constexpr int kMaxEventDepth = 64;
inline constexpr size_t kMaxEventIdBytes = 255;
/// A message larger than this is dead-lettered `too_large` without being parsed.
inline constexpr size_t kMaxEventBytes = 1024 * 1024;

/// @brief Why a payload cannot be an event, and what of it could still be read.
struct EventShapeProblem {
  std::string reason;          // "" = none
  bool malformed = false;      // a syntax error (then nothing else is trusted)
  std::string event_id, type;  // top-level strings read before the problem, so the uploader gets a result
};
/// Checks `payload` in one streaming pass without building it: malformed JSON, a NUL character in
/// a string or a key, nesting deeper than kMaxEventDepth.
EventShapeProblem event_shape_problem(const std::string& payload);

/// The top-level event_id and type of a payload too large to vet, read in one streaming pass
/// over its first `prefix` bytes only (where a well-formed event has them): the uploader of an
/// oversized event still gets its failed result, and the rest is never parsed.
EventShapeProblem event_head(std::string_view payload, size_t prefix = 64 << 10);

/// @brief Why a consumed message must be dead-lettered ("" = it is a valid event), and its handler.
struct EventVetting {
  std::string reason;  // for the dead-letter header and the failed result
  std::string metric;  // ingestd_dead_letters_total{reason}
  const HandlerSpec* spec = nullptr;
};

/// Parses `payload` into `ev` (payload, event_id, type) and checks it against the registry
/// and the config, in the order the runtime applies them. Never throws on any input.
EventVetting vet_event(const config::Config& cfg, Event& ev, const std::string& payload, const std::string& topic_key);

}  // namespace ingestd
