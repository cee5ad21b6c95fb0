// The set-based merge of one entity over one chunk (DESIGN §5 rules 5-7), as named steps:
// stage → candidates → decide → aggregate → insert new → merge matched → remember keys →
// deferred refs → review → lineage. Each step's SQL is in its function; each is timed under
// its own `op`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/grouping.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/merge/statement.hpp"
#include "handlers/engine/row.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

/// @brief One entity's rows of a chunk, grouped: what the stage step sends.
struct StagedPart {
  size_t entity = 0;                                            // index into Row::values
  std::vector<Row*> rows;                                       // in input order
  Grouping grouping;                                            // group of each row
  std::vector<std::vector<std::optional<std::string>>> tier_keys;  // [row][tier]
};

/// @brief Runs one entity's steps for one chunk in the caller's transaction. `table` must have
/// been through describe_id (the load's plan does it once per batch).
class EntityMerge {
 public:
  EntityMerge(pqxx::transaction_base& tx, Metrics* metrics, const TableInfo& table, const config::Entity& entity,
              const Matcher& matcher, const std::string& bookkeeping_schema, const std::string& batch_id,
              const std::map<std::string, std::string>& vars);

  /// All steps in order; returns this chunk's counts for the entity.
  EntityCounts run(const StagedPart& part);
  /// (row_number, record_id, in_review) of every staged row, after run().
  std::vector<std::tuple<int64_t, std::string, bool>> row_records();
  /// Empties the work tables for the next entity or chunk of this transaction.
  void clear(size_t staged_rows);

 private:
  void create_work_tables();
  void stage(const StagedPart& part);
  void tune(bool analyze);
  void decide(bool analyze);
  void aggregate();
  void insert_new();
  void merge_matched();
  void defer_lookups();
  void queue_reviews();
  EntityCounts record_lineage();
  std::string value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const;

  StepSql sql_;
  const TableInfo& table_;
  const config::Entity& entity_;
  const Matcher& matcher_;
  std::string bk_;  // quoted bookkeeping schema
  std::vector<size_t> deferred_;
  std::string stg_, agg_;    // staging and merge tables, named after their columns
  std::string work_tables_;  // every work table, as a list for TRUNCATE
};

}  // namespace ingestd::engine
