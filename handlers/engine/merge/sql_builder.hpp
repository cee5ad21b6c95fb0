// Small helpers for the SQL text the merge steps assemble: identifiers from config are always
// quoted, values never appear in the text (DESIGN §5 rule 12).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace ingestd::engine::sql {

/// Items joined by `sep`, each made by `item(i)` for i in [0, n).
template <class F>
std::string join_n(size_t n, std::string_view sep, F&& item) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out += sep;
    out += item(i);
  }
  return out;
}

/// Items joined by `sep`.
inline std::string join(const std::vector<std::string>& items, std::string_view sep) {
  return join_n(items.size(), sep, [&](size_t i) { return items[i]; });
}

/// @brief Quotes identifiers from config with the connection's rules.
class Quoter {
 public:
  explicit Quoter(pqxx::transaction_base& tx) : tx_(tx) {}
  /// "name"
  std::string id(const std::string& name) const { return tx_.quote_name(name); }
  /// alias."name"
  std::string col(std::string_view alias, const std::string& name) const {
    return std::string(alias) + "." + tx_.quote_name(name);
  }
  /// 'literal' (only for identifiers used as data, e.g. a column name stored in changes)
  std::string lit(const std::string& text) const { return tx_.quote(text); }

 private:
  pqxx::transaction_base& tx_;
};

}  // namespace ingestd::engine::sql
