// What a review decision writes (`ingestd review merge|distinct`): the row into an existing
// record or as a new one, and then the rows of dependent entities that waited for it (a lead
// whose person was in review), found or created through their exact tiers.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"

namespace ingestd::engine {

/// @brief The entity that writes a review item's table, with that table described (and its id).
struct ReviewTarget {
  const config::Entity* entity = nullptr;  // nullptr: the config has no such entity any more
  TableInfo table;
};

/// The entity of the batch's dataset (or job's dataset) that writes `table` (canonical name).
ReviewTarget review_target(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                           const std::string& table);

/// A new record from a reviewed row's values (by field name) and the entity's on_insert, the
/// variables taken from `batch_id`'s batch; returns its id.
std::string insert_reviewed(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const ReviewTarget& t,
                            const nlohmann::json& values, const std::string& batch_id);

/// Fills what record `into` lacks from a reviewed row's values, each filled value recorded in
/// `changes` under `batch_id` so a rollback of the batch undoes it.
void fill_reviewed(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const ReviewTarget& t,
                   const nlohmann::json& values, const std::string& batch_id, const std::string& into);

/// After a decision put row `row_number` of `batch_id` into `record_id` of `entity`, completes
/// that row's waiting items of the entities that reference it (in the dataset's order, so a
/// chain completes too): each is matched by its exact tiers and filled, or created; two records
/// claiming it make it an open item instead. Returns one object per item it touched.
nlohmann::json complete_waiting_rows(pqxx::transaction_base& tx, const config::Config& cfg,
                                     const std::string& dataset_or_job, const std::string& batch_id,
                                     int64_t row_number, const std::string& entity, const std::string& record_id,
                                     const std::string& actor);

}  // namespace ingestd::engine
