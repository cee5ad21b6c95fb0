// A job's writeback: the ids its rows resolved to are written back into the source table
// (`set: {customer_id: customer}, where: {id: id}`), with what it overwrote kept in changes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/row.hpp"
#include "handlers/engine/row_builder.hpp"

namespace ingestd::engine {

/// @brief Every writeback of a job, planned once per load.
class Writeback {
 public:
  /// Describes the writeback tables and registers the source columns they match on with
  /// `builder`. Throws BatchError for a missing table, column or entity. `referenced[e]` is set
  /// for every entity whose record ids a writeback needs.
  Writeback(pqxx::transaction_base& tx, const std::vector<config::Writeback>* cfg, const config::Dataset& ds,
            RowBuilder& builder, std::vector<bool>& referenced);
  bool empty() const { return plans_.empty(); }
  /// Writes the resolved ids of `rows` back, recording what changes (for rollback).
  void apply(pqxx::transaction_base& tx, const std::string& bookkeeping, const std::string& batch_id,
             const std::vector<Row*>& rows);
  /// {linked, already_linked}
  nlohmann::json stats() const { return {{"linked", linked_}, {"already_linked", already_linked_}}; }

 private:
  struct Plan {
    const config::Writeback* cfg = nullptr;
    std::vector<std::pair<std::string, size_t>> set;    // target column -> entity index
    std::vector<std::pair<std::string, size_t>> where;  // target column -> Row::source index
    TableInfo table;
  };
  void stage(pqxx::transaction_base& tx, const Plan& p, const std::vector<Row*>& rows);
  void apply(pqxx::transaction_base& tx, const std::string& bookkeeping, const std::string& batch_id, const Plan& p);

  std::vector<Plan> plans_;
  int64_t linked_ = 0, already_linked_ = 0;
};

}  // namespace ingestd::engine
