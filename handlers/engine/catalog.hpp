// What the catalog says about a table ingestd writes, and how values travel by COPY.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace ingestd::engine {

/// @brief A target table as the catalog describes it.
struct TableInfo {
  bool exists = false;
  std::string canonical;                           // schema.table, for identity_keys.table_name
  std::string quoted;                              // "schema"."table"
  std::map<std::string, std::string> column_types; // column -> format_type
  std::vector<std::string> required_columns;       // NOT NULL, no default, not identity or generated
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
void append_copy_value(std::string& line, std::string_view v);
inline void append_copy_value(std::string& line, const std::string& v) { append_copy_value(line, std::string_view(v)); }

/// Appends one element of a text[] literal: double-quoted with `"` and `\` escaped, or NULL.
void append_array_element(std::string& literal, const std::optional<std::string>& v);

/// A text[] parameter's literal ({"a","b\"c",NULL}): values travel as data, never as SQL text.
template <class Values>
std::string text_array_literal(const Values& values) {
  std::string a = "{";
  for (const auto& v : values) {
    if (a.size() > 1) a += ',';
    append_array_element(a, v);
  }
  return a + "}";
}

/// @brief COPY … FROM STDIN into one table, a raw COPY-text line at a time.
class CopyIn {
 public:
  CopyIn(pqxx::transaction_base& tx, const std::string& table, const std::vector<std::string>& columns);
  ~CopyIn();
  CopyIn(const CopyIn&) = delete;
  CopyIn& operator=(const CopyIn&) = delete;
  void line(const std::string& copy_text);
  /// Ends the COPY; must be called before the transaction is used again.
  void complete();

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ingestd::engine
