#include "handlers/engine/bookkeeping.hpp"

#include <pwd.h>
#include <unistd.h>

namespace ingestd::engine {

std::string_view to_string(BatchStatus s) {
  switch (s) {
    case BatchStatus::Pending: return "pending";
    case BatchStatus::Running: return "running";
    case BatchStatus::Completed: return "completed";
    case BatchStatus::CompletedWithRejects: return "completed_with_rejects";
    case BatchStatus::Failed: return "failed";
    case BatchStatus::RolledBack: return "rolled_back";
    case BatchStatus::DryRun: return "dry_run";
  }
  return "failed";
}

std::string_view to_string(ResultStatus s) {
  switch (s) {
    case ResultStatus::Completed: return "completed";
    case ResultStatus::CompletedWithRejects: return "completed_with_rejects";
    case ResultStatus::Failed: return "failed";
    case ResultStatus::Duplicate: return "duplicate";
    case ResultStatus::DryRun: return "dry_run";
  }
  return "failed";
}

std::string_view to_string(BatchKind k) {
  switch (k) {
    case BatchKind::File: return "file";
    case BatchKind::Job: return "job";
    case BatchKind::Merge: return "merge";
  }
  return "file";
}

BatchStatus batch_status_of(ResultStatus s) {
  switch (s) {
    case ResultStatus::Completed: return BatchStatus::Completed;
    case ResultStatus::CompletedWithRejects: return BatchStatus::CompletedWithRejects;
    case ResultStatus::DryRun: return BatchStatus::DryRun;
    case ResultStatus::Failed:
    case ResultStatus::Duplicate: break;
  }
  return BatchStatus::Failed;
}

namespace {
std::optional<std::string> opt(const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); }
}  // namespace

std::string Bookkeeping::table(pqxx::transaction_base& tx, std::string_view name) const {
  return tx.quote_name(schema_) + "." + tx.quote_name(std::string(name));
}

std::string Bookkeeping::create(pqxx::transaction_base& tx, const NewBatch& b) const {
  const std::string id =
      tx.exec_params1("INSERT INTO " + table(tx, "batches") +
                          " (id, kind, dataset_or_job, uri, sha256, size_bytes, source_system, program, dry_run, status, "
                          "submitted_by, event_id, owner, heartbeat_at) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, "
                          "$7, $8, 'running', $9, $10, $11, now()) RETURNING id::text",
                      std::string(to_string(b.kind)), b.target, b.uri, b.sha256, b.size_bytes,
                      b.source_system, b.program, b.dry_run, b.submitted_by, opt(b.event_id), b.owner)[0]
          .as<std::string>();
  if (!b.event_id.empty())
    tx.exec_params("UPDATE " + table(tx, "events") + " SET batch_id = $2::uuid WHERE event_id = $1", b.event_id, id);
  return id;
}

void Bookkeeping::checkpoint(pqxx::transaction_base& tx, const std::string& batch_id, const BatchCheckpoint& c) const {
  tx.exec_params("UPDATE " + table(tx, "batches") +
                     " SET last_row_committed = $2, rows_done = $2, inserted = $3, updated = $4, unchanged = $5, "
                     "rejected = $6, review = $7, bytes_done = $8, stats = $9::jsonb, heartbeat_at = now() WHERE id = $1",
                 batch_id, c.last_row, c.inserted, c.updated, c.unchanged, c.rejected, c.review, c.bytes, c.stats.dump());
}

nlohmann::json Bookkeeping::stats(pqxx::transaction_base& tx, const std::string& batch_id) const {
  auto r = tx.exec_params("SELECT stats::text FROM " + table(tx, "batches") + " WHERE id = $1", batch_id);
  if (r.empty() || r[0][0].is_null()) return nlohmann::json::object();
  return nlohmann::json::parse(r[0][0].as<std::string>());
}

void Bookkeeping::finish(pqxx::transaction_base& tx, const std::string& batch_id, const BatchFinish& f) const {
  std::optional<std::string> errors;
  if (f.errors) errors = f.errors->dump();
  tx.exec_params("UPDATE " + table(tx, "batches") +
                     " SET status = $2, rows_total = coalesce($3, rows_total), reject_file = coalesce($4, reject_file), "
                     "updated = coalesce($5, updated), stats = stats || $6::jsonb, "
                     "error_summary = coalesce($7::jsonb, error_summary), finished_at = clock_timestamp() WHERE id = $1::uuid",
                 batch_id, std::string(to_string(f.status)), f.rows_total, f.reject_file, f.updated, f.stats.dump(),
                 errors);
}

void Bookkeeping::fail(pqxx::transaction_base& tx, const std::string& batch_id, const std::string& why,
                       const nlohmann::json& extra) const {
  BatchFinish f;
  f.status = BatchStatus::Failed;
  f.stats = extra;
  f.errors = nlohmann::json::array({why});
  finish(tx, batch_id, f);
}

std::vector<std::string> Bookkeeping::fail_abandoned(pqxx::transaction_base& tx, const std::string& why) const {
  // The lock is tried only on the batches nothing resumes, and held to commit: an owner cannot
  // take the batch back between the test and the update. A command-line load's event is never
  // delivered again: it ends with its batch.
  const std::string batches = table(tx, "batches"), events = table(tx, "events");
  auto r = tx.exec_params(
      "WITH unresumable AS MATERIALIZED (SELECT c.id FROM " + batches + " c WHERE c.status = 'running' AND NOT "
      "(c.kind = 'file' AND EXISTS (SELECT 1 FROM " + events + " e WHERE e.event_id = c.event_id AND "
      "e.status IN ('received', 'processing') AND e.\"partition\" >= 0))), "
      "ownerless AS MATERIALIZED (SELECT id FROM unresumable WHERE pg_try_advisory_xact_lock(hashtextextended(id::text, 0))), "
      "failed AS (UPDATE " + batches + " b SET status = 'failed', error_summary = jsonb_build_array($1::text), "
      "finished_at = clock_timestamp() FROM ownerless o WHERE b.id = o.id RETURNING b.id), "
      "cli AS (UPDATE " + events + " SET status = 'failed', last_error = $1, finished_at = now() WHERE batch_id IN "
      "(SELECT id FROM failed) AND status IN ('received', 'processing') AND \"partition\" < 0) "
      "SELECT id::text FROM failed ORDER BY 1",
      why);
  std::vector<std::string> ids;
  for (const auto& row : r) ids.push_back(row[0].as<std::string>());
  return ids;
}

void lock_new_batch(pqxx::transaction_base& tx, const std::string& batch_id) {
  // a session lock: it outlives the commit (nobody else knows the id yet, so it never waits)
  tx.exec_params("SELECT pg_advisory_lock(hashtextextended($1, 0))", batch_id);
}

BatchOwnership::BatchOwnership(pqxx::connection& c, const std::string& batch_id) : c_(c), id_(batch_id) {
  pqxx::nontransaction tx(c_);
  held_ = tx.exec_params1("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", id_)[0].as<bool>();
}

BatchOwnership::~BatchOwnership() {
  if (!held_) return;
  try {
    pqxx::nontransaction tx(c_);
    tx.exec_params("SELECT pg_advisory_unlock(hashtextextended($1, 0))", id_);
  } catch (...) {
    // a broken connection released the lock with the session
  }
}

Actor os_user_actor() {
  const uid_t uid = geteuid();
  std::string user = std::to_string(uid);  // a uid without a passwd entry (a container) stays a number
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) user = found->pw_name;
  return Actor{"cli:" + user, {{"via", "cli"}, {"os_user", user}, {"uid", uid}}};
}

void Bookkeeping::audit(pqxx::transaction_base& tx, const Actor& actor, const std::string& action,
                        const std::string& batch_id, const nlohmann::json& payload) const {
  tx.exec_params("INSERT INTO " + table(tx, "audit") +
                     " (actor, action, batch_id, payload, origin) VALUES ($1, $2, $3::uuid, $4::jsonb, $5::jsonb)",
                 actor.name, action, opt(batch_id), payload.dump(), actor.origin.dump());
}

}  // namespace ingestd::engine
