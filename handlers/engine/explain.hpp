// `ingestd explain`: why a row landed where it did, and which rows made a record (DESIGN §6),
// read from lineage, row_errors, review_queue, changes and identity memory.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"

namespace ingestd::engine {

/// Row `row` of batch `batch_id`: per entity its record, action and tier (with the tier's
/// fields from the config), its errors and warnings, its review items, and what the batch
/// changed on its records. Empty `entities` and `errors` when the batch has no such row.
nlohmann::json explain_row(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& batch_id,
                           int64_t row);

/// Record `record_id` of `table`: every input row that landed on it, every value a batch
/// overwrote, and the keys identity memory holds for it.
nlohmann::json explain_record(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& table,
                              const std::string& record_id);

}  // namespace ingestd::engine
