#include "handlers/engine/catalog.hpp"

// libpqxx 6.4's tablewriter is deprecated in favour of stream_to, whose 6.4 version cannot
// write a raw COPY line; the one use of the old class is here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <pqxx/tablewriter>

namespace ingestd::engine {

TableInfo describe_table(pqxx::transaction_base& tx, const std::string& table) {
  TableInfo t;
  auto rel = tx.exec_params(
      "SELECT c.oid::bigint, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = to_regclass($1)",
      table);
  if (rel.empty()) return t;
  t.exists = true;
  const auto oid = rel[0][0].as<int64_t>();
  t.canonical = rel[0][1].as<std::string>() + "." + rel[0][2].as<std::string>();
  t.quoted = tx.quote_name(rel[0][1].as<std::string>()) + "." + tx.quote_name(rel[0][2].as<std::string>());
  auto cols = tx.exec_params(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
      "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' FROM pg_attribute a "
      "WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
      oid);
  for (const auto& c : cols) {
    t.column_types[c[0].as<std::string>()] = c[1].as<std::string>();
    if (c[2].as<bool>()) t.required_columns.push_back(c[0].as<std::string>());
  }
  auto pk = tx.exec_params("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
                           "a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::bigint::oid AND i.indisprimary",
                           oid);
  if (pk.size() == 1) t.pk = pk[0][0].as<std::string>();
  return t;
}

/// Fills the id facts once the entity's id column is known.
void describe_id(pqxx::transaction_base& tx, TableInfo& t, const std::string& id_column) {
  auto r = tx.exec_params(
      "SELECT format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), "
      "pg_get_serial_sequence($1, a.attname), a.attidentity "
      "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
      "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
      t.quoted, id_column);
  if (r.empty()) return;
  t.id_type = r[0][0].as<std::string>();
  if (!r[0][2].is_null()) t.id_default = "nextval(" + tx.quote(r[0][2].as<std::string>()) + "::regclass)";
  else if (!r[0][1].is_null()) t.id_default = r[0][1].as<std::string>();
  t.id_always_identity = !r[0][3].is_null() && r[0][3].as<std::string>() == "a";
}

void append_array_element(std::string& literal, const std::optional<std::string>& v) {
  if (!v) {
    literal += "NULL";
    return;
  }
  literal += '"';
  for (char c : *v) {
    if (c == '"' || c == '\\') literal += '\\';
    literal += c;
  }
  literal += '"';
}

void append_copy_value(std::string& line, const std::optional<std::string>& v) {
  if (!v) {
    line += "\\N";
    return;
  }
  append_copy_value(line, std::string_view(*v));
}

void append_copy_value(std::string& line, std::string_view v) {
  size_t plain = 0;  // start of the run of characters copied as they are
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r') continue;
    line.append(v.data() + plain, i - plain);
    line += c == '\\' ? "\\\\" : c == '\t' ? "\\t" : c == '\n' ? "\\n" : "\\r";
    plain = i + 1;
  }
  line.append(v.data() + plain, v.size() - plain);
}

struct CopyIn::Impl {
  pqxx::tablewriter writer;
  bool done = false;
};

CopyIn::CopyIn(pqxx::transaction_base& tx, const std::string& table, const std::vector<std::string>& columns)
    : impl_(new Impl{pqxx::tablewriter(tx, table, columns.begin(), columns.end())}) {}

CopyIn::~CopyIn() { delete impl_; }

void CopyIn::line(const std::string& copy_text) { impl_->writer.write_raw_line(copy_text); }

void CopyIn::complete() {
  if (impl_->done) return;
  impl_->writer.complete();
  impl_->done = true;
}

}  // namespace ingestd::engine

#pragma GCC diagnostic pop
