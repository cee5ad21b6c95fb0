// Rollback of a batch (DESIGN §5 rule 11): delete what it inserted, restore what it
// overwrote, forget its identity keys; refuse, with a list, where a later batch changed the
// same values.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/bookkeeping.hpp"

namespace ingestd::engine {

struct RollbackResult {
  ResultStatus status = ResultStatus::Completed;  // completed | failed | dry_run
  std::vector<std::string> errors;     // why it was refused (conflicts listed one per line)
  nlohmann::json stats = nlohmann::json::object();  // deleted, restored, keys_removed per table
};

/// Rolls back `batch_id` in one transaction; `final_step` runs inside it before commit (the
/// event's inbox row and offset). A dry run does everything, reports, and rolls back.
RollbackResult rollback_batch(pqxx::connection& conn, const config::Config& cfg, const std::string& batch_id,
                              bool dry_run, const Actor& actor,
                              const std::function<void(pqxx::transaction_base&, const RollbackResult&)>& final_step);

}  // namespace ingestd::engine
