// The bookkeeping schema's batch and audit rows, written in one place (DESIGN §4): a batch is
// created, checkpointed chunk by chunk, and finished or failed only through these calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace ingestd::engine {

/// @brief batches.status (DESIGN §4, plus dry_run).
enum class BatchStatus { Pending, Running, Completed, CompletedWithRejects, Failed, RolledBack, DryRun };
std::string_view to_string(BatchStatus s);

/// @brief The status of a result message (DESIGN §2).
enum class ResultStatus { Completed, CompletedWithRejects, Failed, Duplicate, DryRun };
std::string_view to_string(ResultStatus s);
/// The batch status a terminal result leaves (Duplicate leaves none: it has no batch of its own).
BatchStatus batch_status_of(ResultStatus s);

/// @brief batches.kind: what made the batch (a file, a job, or `ingestd merge` of two records).
enum class BatchKind { File, Job, Merge };
std::string_view to_string(BatchKind k);

/// @brief Who an audit row is for (issue 16 item 8): `name` goes to audit.actor, `origin` to
/// audit.origin — what vouches for the name: the OS user of a command, or the Kafka coordinates
/// of an event with the daemon's own principal beside the uploader's self-declared
/// submitted_by (a claim: Kafka does not tell a consumer who produced a message).
struct Actor {
  std::string name;  // cli:OSUSER | kafka:TOPIC/PARTITION@OFFSET
  nlohmann::json origin = nlohmann::json::object();
};

/// The operator running this process: the OS user of its effective uid (getpwuid(geteuid())),
/// not $USER, which anyone can set.
Actor os_user_actor();

/// @brief What a new batch row says about its origin.
struct NewBatch {
  BatchKind kind = BatchKind::File;
  std::string target;                 // dataset or job name (batches.dataset_or_job)
  std::optional<std::string> uri, sha256;
  std::optional<int64_t> size_bytes;
  std::string source_system, program, submitted_by, event_id, owner;
  bool dry_run = false;
};

/// @brief Progress a chunk commits with (rule 3): where to resume and the running totals.
struct BatchCheckpoint {
  int64_t last_row = 0;
  int64_t bytes = 0;
  int64_t inserted = 0, updated = 0, unchanged = 0, rejected = 0, review = 0;
  nlohmann::json stats = nlohmann::json::object();  // replaces batches.stats
};

/// @brief How a batch ends.
struct BatchFinish {
  BatchStatus status = BatchStatus::Completed;
  std::optional<int64_t> rows_total;
  std::optional<std::string> reject_file;
  std::optional<int64_t> updated;                        // jobs that count only updates
  nlohmann::json stats = nlohmann::json::object();       // merged into batches.stats
  std::optional<nlohmann::json> errors;                  // batches.error_summary
};

/// @brief The session advisory lock on a batch id, held on the worker connection while this
/// process owns the batch (rule 4). A batch that is `running` with its lock free has no owner.
class BatchOwnership {
 public:
  /// Tries to take the lock of an existing batch (held() says whether it got it).
  BatchOwnership(pqxx::connection& c, const std::string& batch_id);
  /// Takes over the lock that lock_new_batch() took in the batch's creating transaction.
  struct Adopt {};
  BatchOwnership(pqxx::connection& c, const std::string& batch_id, Adopt) : c_(c), id_(batch_id), held_(true) {}
  ~BatchOwnership();
  BatchOwnership(const BatchOwnership&) = delete;
  BatchOwnership& operator=(const BatchOwnership&) = delete;
  bool held() const { return held_; }

 private:
  pqxx::connection& c_;
  std::string id_;
  bool held_ = false;
};

/// Takes a new batch's session lock inside the transaction that creates it, so the batch is
/// never visible as `running` without an owner (another instance would take it for abandoned,
/// or load the same file beside it). Adopt it with BatchOwnership(c, id, BatchOwnership::Adopt{}).
void lock_new_batch(pqxx::transaction_base& tx, const std::string& batch_id);

/// @brief Batch and audit rows of one bookkeeping schema.
class Bookkeeping {
 public:
  explicit Bookkeeping(std::string schema) : schema_(std::move(schema)) {}

  const std::string& schema() const { return schema_; }
  /// `schema`.`name`, quoted.
  std::string table(pqxx::transaction_base& tx, std::string_view name) const;

  /// Inserts a running batch owned by `b.owner`, links the event to it, returns its id.
  std::string create(pqxx::transaction_base& tx, const NewBatch& b) const;
  /// Commits a chunk's progress with the chunk (rule 3).
  void checkpoint(pqxx::transaction_base& tx, const std::string& batch_id, const BatchCheckpoint& c) const;
  /// The stats the last checkpoint stored (a resumed batch continues its totals).
  nlohmann::json stats(pqxx::transaction_base& tx, const std::string& batch_id) const;
  /// Ends a batch: status, totals and finished_at.
  void finish(pqxx::transaction_base& tx, const std::string& batch_id, const BatchFinish& f) const;
  /// Ends a batch as failed with its reason; `extra` is merged into its stats.
  void fail(pqxx::transaction_base& tx, const std::string& batch_id, const std::string& why,
            const nlohmann::json& extra = nlohmann::json::object()) const;
  /// Fails the `running` batches nobody owns (their lock is free: the process running them
  /// stopped) that nothing will resume: jobs, and loads whose event Kafka will not deliver again
  /// (from the command line, or already answered). A file batch whose Kafka event is unfinished
  /// stays: the redelivered event resumes it from its checkpoint. Returns the failed ids.
  std::vector<std::string> fail_abandoned(pqxx::transaction_base& tx, const std::string& why) const;
  /// Appends an audit row (batch_id may be empty).
  void audit(pqxx::transaction_base& tx, const Actor& actor, const std::string& action,
             const std::string& batch_id, const nlohmann::json& payload) const;

 private:
  std::string schema_;
};

}  // namespace ingestd::engine
