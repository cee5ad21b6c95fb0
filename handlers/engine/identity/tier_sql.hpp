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
  /// A name: key_expr is the bookkeeping schema's name_key of the column (a blocking term's
  /// phonetic code is made of it), and the engine makes the key of a fetched value itself
  /// (engine::name_key) from `column_text`, the value as text.
  bool name = false;
  std::string column_text;
  std::string probe_type;   // type a probed key is cast to before comparing with key_expr
  std::string probe_function;  // blocking: the function applied to a probed key too ("" = none)
  /// blocking by trigrams: a key is found when pg_trgm's similarity to the probed one is at
  /// least this (0 = found when equal), by `similarity_function` (schema-qualified when installed)
  double similarity = 0;
  std::string similarity_function;
  /// The schema-qualified name of an object pg_trgm installs beside similarity() (its `%`
  /// operator, its operator classes); bare when pg_trgm is not installed.
  std::string trgm_object(const std::string& name) const;
};

/// @brief A tier of one entity against its table.
struct TierSql {
  IdentityTier tier;
  std::string bookkeeping_quoted;  // the schema that holds name_key
  std::vector<TierFieldSql> fields;
  /// `key_expr = $param` for every field; `param(i)` names the i-th key part. An equality tier
  /// or rule: a trigram rule's probe says similar() instead.
  template <class F>
  std::string condition(F&& param) const {
    std::string c;
    for (size_t i = 0; i < fields.size(); ++i) c += (i ? " AND " : "") + fields[i].key_expr + " = " + probe(i, param(i));
    return c;
  }
  /// `key_expr % $param AND similarity(key_expr, $param) >= t`: the operator finds the keys
  /// through the index at the session's pg_trgm.similarity_threshold (at most t), the function
  /// keeps those at t, compared as the engine compares (FuzzyRun, trigram_similarity()).
  /// `at_threshold`: the session's threshold is t, so the operator alone says it.
  std::string similar(size_t i, const std::string& param, bool at_threshold = false) const;
  /// The lowest similarity of the tier's trigram terms (0: it has none).
  double lowest_similarity() const;
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

/// pg_trgm's similarity of two values with `a` and `b` distinct trigrams, `shared` of them in
/// common: shared / (a + b − shared), in single precision as pg_trgm computes it; 0 when either
/// has none.
double trigram_similarity(size_t shared, size_t a, size_t b);
/// The same from their trigram sets (each sorted, without repeats, as show_trgm() gives them).
double trigram_similarity(const std::vector<std::string>& a, const std::vector<std::string>& b);

/// A float8 literal that reads back as exactly `v`.
std::string float8_literal(double v);

/// @brief Which index serves a tier, or the statement that would make one.
struct TierIndex {
  int tier = 0;
  std::string index;         // "" = none serves it
  std::string create_index;  // CREATE INDEX CONCURRENTLY … for the tier
};

/// The index that serves a tier: a valid, unconditional btree whose leading columns are the
/// tier's columns and key expressions; and the statement that makes one, named
/// TABLE_ingestd_<kind><number>, with `trailing` (quoted) as its last column when given. With a
/// `predicate` (over the bare columns), a partial btree with that predicate.
TierIndex tier_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& tier,
                     const std::string& kind = "tier", const std::string& trailing = "",
                     const std::string& predicate = "");

/// The index that serves a trigram blocking rule: a valid, unconditional GIN or GiST index
/// whose first column is the rule's key expression with pg_trgm's operator class; and the
/// statement that makes a GIN one, named TABLE_ingestd_block<number>, without a pending list
/// (fastupdate = off): every probe would read a pending list through, and a load fills one.
TierIndex trigram_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& rule);

}  // namespace ingestd::engine
