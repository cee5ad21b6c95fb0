// What the catalog must hold for a dataset: its tables, columns, id defaults and lookup
// tables. One set of named checks serves `ingestd check`, reload and the start of every load.
#pragma once

#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"

namespace ingestd::engine {

/// @brief The tables one entity writes and reads.
struct EntityTables {
  TableInfo table;                     // described with its id column
  std::vector<TableInfo> lookup_tables;  // [field]; exists == false: no lookup
};

/// Describes every table of `ds`; each problem names the config key path and what is wrong.
std::vector<EntityTables> describe_dataset(pqxx::transaction_base& tx, const config::Dataset& ds,
                                           std::vector<std::string>& problems);

/// Checks that the dataset's tables and columns exist; returns one message per problem.
std::vector<std::string> check_dataset_schema(pqxx::connection& conn, const config::Dataset& ds);

/// Columns of the dataset's tables that are NOT NULL without a default (nor identity or
/// generated) and that no field or on_insert writes: every insert would fail. One warning each.
std::vector<std::string> unwritten_required_columns(pqxx::connection& conn, const config::Dataset& ds);

}  // namespace ingestd::engine
