// The documents table: its columns and unique index as `ingestd check` wants them, and the
// row a document becomes (documents.hpp).
#include <algorithm>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/documents.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

namespace {

/// (config key under target, column) of every column the dataset writes besides the id.
std::vector<std::pair<std::string, std::string>> value_columns(const config::DocumentsSpec& d) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, col] :
       {std::pair{"owner_column", &d.owner_column}, std::pair{"sha256", &d.sha256}, std::pair{"uri", &d.uri},
        std::pair{"path", &d.path}, std::pair{"size_bytes", &d.size_bytes}, std::pair{"media_type", &d.media_type},
        std::pair{"original_name", &d.original_name}, std::pair{"batch_id", &d.batch_id}})
    if (!col->empty()) out.emplace_back(key, *col);
  return out;
}

/// The row's value for a config key of value_columns().
std::optional<std::string> value_of(const DocumentRow& row, const std::string& key) {
  if (key == "owner_column") return row.owner_id;
  if (key == "sha256") return row.sha256;
  if (key == "uri") return row.uri;
  if (key == "path") return row.path.empty() ? std::nullopt : std::optional(row.path);
  if (key == "size_bytes") return std::to_string(row.size_bytes);
  if (key == "media_type") return row.media_type;
  if (key == "original_name") return row.original_name;
  return row.batch_id;
}

TableInfo described(pqxx::transaction_base& tx, const config::DocumentsSpec& d) {
  TableInfo t = describe_table(tx, d.table);
  if (t.exists) describe_id(tx, t, d.id_column);
  return t;
}

}  // namespace

std::vector<std::string> documents_schema_problems(pqxx::transaction_base& tx, const config::Dataset& ds) {
  const config::DocumentsSpec& d = *ds.documents;
  const std::string where = "datasets." + ds.name + ".target";
  const TableInfo t = described(tx, d);
  if (!t.exists) return {where + ".table: table " + d.table + " does not exist"};
  std::vector<std::string> problems;
  if (!t.column_types.count(d.id_column))
    problems.push_back(where + ".id: column " + d.table + "." + d.id_column + " does not exist");
  else if (t.id_default.empty())
    problems.push_back(where + ".id: column " + d.table + "." + d.id_column + " has no default or sequence to fill it");
  for (const auto& [key, col] : value_columns(d))
    if (!t.column_types.count(col))
      problems.push_back(where + "." + key + ": column " + d.table + "." + col + " does not exist");
  return problems;
}

TierIndexReport documents_index(pqxx::transaction_base& tx, const config::Dataset& ds) {
  const config::DocumentsSpec& d = *ds.documents;
  const TableInfo t = describe_table(tx, d.table);
  TierIndexReport r;
  r.where = "datasets." + ds.name + ".target";
  r.purpose = "documents' owner and sha256 (one row per file and owner)";
  r.table = t.canonical;
  std::string name = t.canonical.substr(t.canonical.find('.') + 1) + "_ingestd_owner_sha256";
  if (name.size() > 63) name = name.substr(name.size() - 63);
  r.create_index = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS " + tx.quote_name(name) + " ON " + t.quoted + " (" +
                   tx.quote_name(d.owner_column) + ", " + tx.quote_name(d.sha256) + ")";
  // exactly these two key columns, unique, valid and unconditional: what ON CONFLICT can infer
  auto idx = tx.exec_params(
      "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = "
      "to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS "
      "NULL AND i.indnkeyatts = 2 AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM "
      "pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])) = "
      "(SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[$2, $3]::text[]) x) ORDER BY 1 LIMIT 1",
      t.quoted, d.owner_column, d.sha256);
  if (!idx.empty()) r.index = idx[0][0].as<std::string>();
  return r;
}

std::optional<std::string> existing_document(pqxx::transaction_base& tx, const config::DocumentsSpec& d,
                                             const DocumentRow& row) {
  const TableInfo t = described(tx, d);
  auto r = tx.exec_params("SELECT " + tx.quote_name(d.id_column) + "::text FROM " + t.quoted + " WHERE " +
                              tx.quote_name(d.owner_column) + " = $1::" + t.column_types.at(d.owner_column) + " AND " +
                              tx.quote_name(d.sha256) + " = $2::" + t.column_types.at(d.sha256),
                          row.owner_id, row.sha256);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::string>();
}

StoredDocument insert_document(pqxx::transaction_base& tx, const config::DocumentsSpec& d, const DocumentRow& row,
                               const std::string& bookkeeping_schema) {
  const TableInfo t = described(tx, d);
  const auto cols = value_columns(d);
  // Values travel as one text[] parameter, each cast to its column's type (rule 12).
  std::vector<std::optional<std::string>> values;
  std::string names, casts;
  for (size_t i = 0; i < cols.size(); ++i) {
    values.push_back(value_of(row, cols[i].first));
    names += (i ? ", " : "") + tx.quote_name(cols[i].second);
    casts += std::string(i ? ", " : "") + "v[" + std::to_string(i + 1) + "]::" + t.column_types.at(cols[i].second);
  }
  StoredDocument out;
  auto ins = tx.exec_params("INSERT INTO " + t.quoted + " (" + names + ") SELECT " + casts +
                                " FROM (SELECT $1::text[] AS v) p "
                                "ON CONFLICT (" +
                                tx.quote_name(d.owner_column) + ", " + tx.quote_name(d.sha256) +
                                ") DO NOTHING RETURNING " + tx.quote_name(d.id_column) + "::text",
                            text_array_literal(values));
  if (ins.empty()) {  // an event for the same file and owner committed first
    out.id = existing_document(tx, d, row).value_or("");
    return out;
  }
  out.id = ins[0][0].as<std::string>();
  out.inserted = true;
  tx.exec_params(
      "INSERT INTO " + tx.quote_name(bookkeeping_schema) +
          ".lineage (batch_id, entity, table_name, first_row, "
          "last_row, row_numbers, record_ids, actions, tiers) VALUES ($1::uuid, 'document', $2, 1, 1, '{1}', "
          "ARRAY[$3::text], ARRAY['i'::\"char\"], '{NULL}')",
      row.batch_id, t.canonical, out.id);
  return out;
}

}  // namespace ingestd::engine
