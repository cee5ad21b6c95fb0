// Merging two existing records of a target table (`ingestd merge TABLE LOSER --into WINNER`,
// DESIGN §6): the winner is filled by the writing entity's merge policy, the foreign keys that
// point at the loser are repointed to the winner, the loser is deleted and its identity memory
// moves to the winner. One batch, one transaction, undone exactly by `ingestd rollback`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/bookkeeping.hpp"

namespace ingestd::engine {

/// @brief What `ingestd merge` is asked to do.
struct RecordMergeRequest {
  std::string table;   // as the operator wrote it; search_path applies
  std::string loser;   // id of the record that goes away
  std::string winner;  // id of the record that stays
  bool dry_run = false;
  Actor actor;  // audited; its name is batches.submitted_by
};

/// @brief What a merge did (or, dry run, would do), or why it was refused.
struct RecordMergeResult {
  enum class Status { Merged, DryRun, Refused };
  Status status = Status::Refused;
  std::string batch_id, table;                          // table: canonical schema.table
  std::string winner, loser;                            // ids as the database prints them
  std::vector<std::string> filled;                      // winner columns the merge changed
  nlohmann::json changes = nlohmann::json::array();     // [{"column", "before", "after"}] of the winner
  nlohmann::json repointed = nlohmann::json::object();  // "schema.table.column" -> rows repointed
  int64_t identity_keys_moved = 0;
  std::vector<std::string> errors;  // why it was refused, conflicts one per line
};
std::string_view to_string(RecordMergeResult::Status s);

/// Merges `r.loser` into `r.winner` in one transaction on `conn`; a refusal changes nothing
/// (it is audited as merge_refused). Database errors other than a violated constraint or
/// invalid input are thrown.
RecordMergeResult merge_records(pqxx::connection& conn, const config::Config& cfg, const RecordMergeRequest& r);

/// True when `batch_id` is a merge batch (it has record_merges rows).
bool has_record_merges(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id);

/// Undoes the merges of batch `batch_id` inside `tx`: the winners' columns restored, the losers
/// re-inserted with their ids and values, the repointed rows pointed back, identity memory
/// returned. Returns stats per table. Throws pqxx::integrity_constraint_violation where the
/// database no longer allows it (a later row took a unique value of the loser).
nlohmann::json undo_record_merges(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id);

/// Later merges (of batches not rolled back) that deleted or filled a record that batch
/// `batch_id` wrote, merged or repointed: rolling it back first would leave their work
/// dangling. One message per merge.
std::vector<std::string> later_merges(pqxx::transaction_base& tx, const Bookkeeping& books,
                                      const std::string& batch_id);

}  // namespace ingestd::engine
