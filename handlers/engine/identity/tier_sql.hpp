// How an identity tier looks in SQL against the target's own rows (DESIGN §5 rule 6): the
// expression of each field's key over a stored row, the condition that finds a key through
// the target's index, and the index that serves it — checked with the planner itself.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/matcher.hpp"

namespace ingestd::engine {

/// @brief One field of a tier, as SQL over a target row aliased `t`.
struct TierFieldSql {
  int field = 0;            // index into the entity's fields
  std::string key_expr;     // the field's key over t (what an index on the tier holds)
  std::string index_expr;   // the same over the bare column, for CREATE INDEX
  std::string key_text;     // the same as text, as the engine's key of the value (C++ form)
  std::string probe_type;   // type a probed key is cast to before comparing with key_expr
  std::string probe_function;  // blocking: the function applied to a probed key too ("" = none)
};

/// @brief A tier of one entity against its table.
struct TierSql {
  IdentityTier tier;
  std::string bookkeeping_quoted;  // the schema that holds name_key
  std::vector<TierFieldSql> fields;
  /// `key_expr = $param` for every field; `param(i)` names the i-th key part.
  template <class F>
  std::string condition(F&& param) const {
    std::string c;
    for (size_t i = 0; i < fields.size(); ++i)
      c += (i ? " AND " : "") + fields[i].key_expr + " = " + probe(i, param(i));
    return c;
  }
  /// A probed key as the i-th key expression holds it.
  std::string probe(size_t i, const std::string& param) const {
    const auto& f = fields[i];
    return f.probe_function.empty() ? param + "::" + f.probe_type : f.probe_function + "(" + param + "::text)";
  }
  /// The composite key of the tier over t as text (NULL when a field is NULL): joined like
  /// the C++ composite key.
  std::string composite_text() const;
};

/// The tiers of `entity` over `table` (described with its columns). `bookkeeping` is the quoted
/// schema that holds name_key.
std::vector<TierSql> tier_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                              const std::string& bookkeeping);

/// One field's key as SQL over a target row aliased `t` (what tier_sql() puts in a tier).
TierFieldSql field_sql(pqxx::transaction_base& tx, const config::Entity& entity, int field, const TableInfo& table,
                       const std::string& bookkeeping);

/// `function` (a name the config allows) qualified by the quoted schema it is installed in
/// (public first); "" when it is not installed (fuzzystrmatch's dmetaphone and soundex).
std::string qualified_function(pqxx::transaction_base& tx, const std::string& function);

/// The blocking rules of the entity's fuzzy tier as tiers (number = the rule's, from 1): a
/// term with a phonetic function wraps the key in it, on both sides. A function PostgreSQL
/// does not have (fuzzystrmatch not installed) is added to `missing_functions`.
std::vector<TierSql> blocking_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                  const std::string& bookkeeping, std::vector<std::string>& missing_functions);

/// @brief Which index serves a tier, or the statement that would make one.
struct TierIndex {
  int tier = 0;
  std::string index;         // "" = none serves it
  std::string create_index;  // CREATE INDEX CONCURRENTLY … for the tier
};

/// The index that serves a tier: a valid, unconditional btree whose leading columns are the
/// tier's columns and key expressions; and the statement that makes one, named
/// TABLE_ingestd_<kind><number>, with `trailing` (quoted) as its last column when given.
TierIndex tier_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& tier,
                     const std::string& kind = "tier", const std::string& trailing = "");

}  // namespace ingestd::engine
