// The review queue in the bookkeeping: the open items as people read them, and what a decision
// changes — the keys the record learns, and the row's lineage (`ingestd review`).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/matcher.hpp"

namespace ingestd::engine {

/// @brief A page of open review items: those after id `after`, oldest first.
struct ReviewPage {
  int64_t after = 0;
  int64_t limit = 20;
};

/// Open review items (review_list.cpp): each row's values beside every record that claims it
/// (its values now, and the fuzzy tier's score and per-field levels and weights where it scored
/// the pair), as JSON.
nlohmann::json review_items(pqxx::transaction_base& tx, const config::Config& cfg, const ReviewPage& page);

/// The key of every field of `entity` from a reviewed row's values (by field name, already
/// typed), by the engine's one rule: what a decision probes and remembers.
FieldKeys reviewed_field_keys(const config::Entity& entity, const nlohmann::json& values);

/// Remembers the candidate's identity keys that `record_id` does not hold in its own columns
/// (after the decision changed them), so the next row with them finds it. `table` must have
/// been through describe_id.
void remember_reviewed_keys(pqxx::transaction_base& tx, const std::string& bookkeeping_schema,
                            const config::Entity& entity, const TableInfo& table, const nlohmann::json& candidate,
                            const std::string& record_id, const std::string& batch_id);

/// Points a reviewed row's lineage at its record: `inserted` (distinct) or `updated` (merged).
void settle_lineage(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const std::string& batch_id,
                    const std::string& table, int64_t row_number, const std::string& record_id, bool inserted);

}  // namespace ingestd::engine
