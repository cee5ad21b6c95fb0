#include "handlers/engine/table_plan.hpp"

#include <set>

#include "handlers/engine/documents.hpp"

namespace ingestd::engine {

namespace {

void check_columns(const TableInfo& t, const std::string& table, const std::string& where,
                   const std::vector<std::pair<std::string, std::string>>& columns, std::vector<std::string>& problems) {
  for (const auto& [c, v] : columns)
    if (!t.column_types.count(c)) problems.push_back(where + "." + c + ": column " + table + "." + c + " does not exist");
}

TableInfo describe_lookup(pqxx::transaction_base& tx, const config::Field& f, const std::string& where,
                          std::vector<std::string>& problems) {
  TableInfo lt = describe_table(tx, f.lookup->table);
  if (!lt.exists) {
    problems.push_back(where + ".lookup.table: lookup table " + f.lookup->table + " does not exist");
    return lt;
  }
  for (const auto& c : {f.lookup->key, f.lookup->returns})
    if (!lt.column_types.count(c))
      problems.push_back(where + ".lookup: lookup column " + f.lookup->table + "." + c + " does not exist");
  return lt;
}

EntityTables describe_entity(pqxx::transaction_base& tx, const config::Dataset& ds, const config::Entity& ent,
                             std::vector<std::string>& problems) {
  const std::string where = "datasets." + ds.name + ".entities." + ent.name;
  EntityTables et;
  et.table = describe_table(tx, ent.table);
  TableInfo& t = et.table;
  if (!t.exists) {
    problems.push_back(where + ".table: table " + ent.table + " does not exist");
    return et;
  }
  describe_id(tx, t, ent.id_column);
  if (!t.column_types.count(ent.id_column))
    problems.push_back(where + ".id: column " + ent.table + "." + ent.id_column + " does not exist");
  else if (t.id_default.empty())
    problems.push_back(where + ".id: column " + ent.table + "." + ent.id_column +
                       " has no default or sequence to fill it");
  for (const auto& f : ent.fields) {
    const std::string fw = where + ".fields." + f.name;
    if (!t.column_types.count(f.column))
      problems.push_back(fw + ".column: column " + ent.table + "." + f.column + " does not exist");
    et.lookup_tables.push_back(f.lookup ? describe_lookup(tx, f, fw, problems) : TableInfo{});
  }
  check_columns(t, ent.table, where + ".on_insert", ent.on_insert, problems);
  check_columns(t, ent.table, where + ".on_update", ent.on_update, problems);
  return et;
}

/// The columns an insert of `ent` writes: its id, its fields' columns and on_insert's.
std::set<std::string> inserted_columns(const config::Entity& ent) {
  std::set<std::string> out{ent.id_column};
  for (const auto& f : ent.fields) out.insert(f.column);
  for (const auto& [c, v] : ent.on_insert) out.insert(c);
  return out;
}

}  // namespace

std::vector<EntityTables> describe_dataset(pqxx::transaction_base& tx, const config::Dataset& ds,
                                           std::vector<std::string>& problems) {
  std::vector<EntityTables> out;
  for (const auto& ent : ds.entities) out.push_back(describe_entity(tx, ds, ent, problems));
  return out;
}

std::vector<std::string> check_dataset_schema(pqxx::connection& conn, const config::Dataset& ds) {
  std::vector<std::string> problems;
  pqxx::read_transaction tx(conn);
  if (ds.documents) return documents_schema_problems(tx, ds);
  describe_dataset(tx, ds, problems);
  return problems;
}

std::vector<std::string> unwritten_required_columns(pqxx::connection& conn, const config::Dataset& ds) {
  std::vector<std::string> warnings;
  pqxx::read_transaction tx(conn);
  for (const auto& ent : ds.entities) {
    const TableInfo t = describe_table(tx, ent.table);
    const auto written = inserted_columns(ent);
    for (const auto& c : t.required_columns)
      if (!written.count(c))
        warnings.push_back("datasets." + ds.name + ".entities." + ent.name + ": column " + ent.table + "." + c +
                           " is NOT NULL without a default and the dataset does not write it, so every new record "
                           "will be refused; map a field to it, set it in on_insert, or give the column a default");
  }
  return warnings;
}

}  // namespace ingestd::engine
