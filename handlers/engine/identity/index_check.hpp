// `ingestd check`: the index behind every identity tier (DESIGN §5 rule 6), the statement that
// would make a missing one, and `--create-indexes` to make them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"

namespace ingestd::engine {

/// @brief One tier of one entity and the index that serves it.
struct TierIndexReport {
  std::string where;         // datasets.D.entities.E.identity[i]
  std::string table;         // schema.table
  std::string index;         // "" = none serves it
  std::string create_index;  // the statement that makes one
  bool created = false;      // made by this run (--create-indexes)
  bool blocking = false;     // a fuzzy tier's blocking rule, not an exact tier
  bool open = false;         // a blocking rule's open blocks (fuzzy_matcher.hpp, open_blocks()): a partial index
  std::string purpose;       // what else the index serves ("" = a tier or blocking rule)
  std::string before;        // a statement the index needs first (CREATE EXTENSION …), "" = none
  std::optional<double> block_rows;  // blocking rule: the planner's rows a key at the table's size
  int max_candidates = 0;            // blocking rule: a bigger block gives no candidates
  bool similarity = false;           // a trigram rule: a similarity search, not a key's rows
  std::optional<double> table_rows;  // trigram rule: the table's rows by its statistics
};

/// The config path of an entity's tier: `datasets.D.entities.E.identity[i]`, i from 0.
std::string tier_where(const config::Dataset& ds, const config::Entity& ent, int tier_number);

/// What a tier no index serves is told, by `check` and by a load: where, and the statement
/// that makes the index.
std::string missing_index_problem(const TierIndexReport& r);

/// The index behind every tier and blocking rule of one entity over its (described) table;
/// with `estimate`, the planner's rows per key of each blocking rule (`ingestd check`).
std::vector<TierIndexReport> entity_indexes(pqxx::transaction_base& tx, const config::Dataset& ds,
                                            const config::Entity& ent, const TableInfo& t, const std::string& bk,
                                            bool estimate = false);

/// How `check` tells a blocking rule's block size: "" when unknown (no statistics yet).
std::string block_size_note(const TierIndexReport& r);

/// The index behind every tier of every entity of `ds` whose table exists; for a documents
/// dataset, its unique (owner, sha256) index (documents.hpp).
std::vector<TierIndexReport> identity_indexes(pqxx::connection& conn, const config::Dataset& ds,
                                              const std::string& bookkeeping_schema);

/// Creates the indexes `reports` lack (CONCURRENTLY, each outside a transaction), analyzes
/// their tables so the new expression indexes have statistics, and marks them created.
void create_identity_indexes(pqxx::connection& conn, std::vector<TierIndexReport>& reports);

}  // namespace ingestd::engine
