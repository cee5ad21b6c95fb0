// The set-based SQL of one entity over one chunk: staging, match, merge, keys, lineage.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

/// @brief A target table as the catalog describes it.
struct TableInfo {
  bool exists = false;
  std::string canonical;                           // schema.table, for identity_keys.table_name
  std::string quoted;                              // "schema"."table"
  std::map<std::string, std::string> column_types; // column -> format_type
  std::string id_type;
  std::string id_default;  // SQL expression that makes a new id (nextval(...) or the default)
  bool id_always_identity = false;
  std::string pk;          // single-column primary key, "" when none or composite
};

/// Looks a table up (search_path applies to unqualified names).
TableInfo describe_table(pqxx::transaction_base& tx, const std::string& table);

/// Fills id_type, id_default and id_always_identity for the entity's id column.
void describe_id(pqxx::transaction_base& tx, TableInfo& t, const std::string& id_column);

/// Appends a value in COPY text format (\N for NULL; backslash, tab, CR, LF escaped).
void append_copy_value(std::string& line, const std::optional<std::string>& v);

/// @brief Runs one entity's SQL for the rows staged in its staging table. `table` must have
/// been through describe_id (the loader's plan does it once per batch).
class EntitySql {
 public:
  EntitySql(pqxx::transaction_base& tx, const TableInfo& table, const config::Entity& entity,
            const std::string& bookkeeping_schema, const std::string& batch_id,
            const std::map<std::string, std::string>& vars);
  /// Creates the work tables this connection lacks: staging (row_number, grp, chunk_tier,
  /// grp_first, f0.., d..) and the match and merge tables. They start empty.
  void create_staging();
  /// The staging table's name, for COPY.
  std::string staging_table() const { return "pg_temp." + stg_; }
  /// (grp, tier, key): each key a group of staged rows holds, once; the caller fills it.
  static std::string group_keys_table() { return "pg_temp.ingestd_gk"; }
  std::vector<std::string> staging_columns() const;
  /// Fields whose lookup may be deferred: each has a staging column d<k> with the key.
  const std::vector<size_t>& deferred_fields() const { return deferred_; }
  /// Matches groups against identity_keys, inserts new records, merges matched ones,
  /// records keys, changes, review items and lineage. Returns this chunk's counts.
  EntityCounts resolve_and_merge(size_t staged_rows);
  /// (row_number, record_id, in_review) of every staged row, after resolve_and_merge.
  std::vector<std::tuple<int64_t, std::string, bool>> row_records();
  /// Empties the work tables for the next entity or chunk of this transaction.
  void clear_staging(size_t staged_rows);

 private:
  std::string value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const;
  pqxx::result exec(const std::string& sql, const char* op);
  /// exec with index probes of the big tables as the only plan (nested loops, index scans).
  pqxx::result probe(const std::string& sql, const char* op);

  pqxx::transaction_base& tx_;
  const TableInfo& table_;
  const config::Entity& entity_;
  std::string bk_;  // quoted bookkeeping schema
  std::string batch_id_;
  const std::map<std::string, std::string>& vars_;
  std::vector<size_t> deferred_;
  std::string stg_, agg_;   // staging and merge tables, named after their columns
  std::string work_tables_; // every work table, as a list for TRUNCATE
};

}  // namespace ingestd::engine
