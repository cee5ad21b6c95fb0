#include "handlers/engine/identity/tier_sql.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <regex>

#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

namespace {

bool string_type(const std::string& t) {
  return t == "text" || t.rfind("character", 0) == 0 || t == "citext" || t == "name";
}

}  // namespace

std::string TierFieldSql::trgm_object(const std::string& name) const {
  const auto dot = similarity_function.rfind('.');
  return dot == std::string::npos ? name : similarity_function.substr(0, dot + 1) + name;
}

std::string TierSql::similar(size_t i, const std::string& param, bool at_threshold) const {
  const auto& f = fields[i];
  const std::string op = f.similarity_function.find('.') == std::string::npos ? "%" : "OPERATOR(" + f.trgm_object("%") + ")";
  const std::string found = f.key_expr + " " + op + " " + param + "::text";
  if (at_threshold) return "(" + found + ")";  // pg_trgm: similarity (float4) >= the threshold (float8)
  return "(" + found + " AND " + f.similarity_function + "(" + f.key_expr + ", " + param + "::text)::float8 >= " +
         float8_literal(f.similarity) + "::float8)";
}

double TierSql::lowest_similarity() const {
  double low = 0;
  for (const auto& f : fields)
    if (f.similarity > 0 && (low == 0 || f.similarity < low)) low = f.similarity;
  return low;
}

std::string float8_literal(double v) {
  char t[32];
  snprintf(t, sizeof t, "%.17g", v);
  return t;
}

double trigram_similarity(size_t shared, size_t a, size_t b) {
  if (a == 0 || b == 0) return 0;
  // pg_trgm's cnt_sml(): float4 arithmetic, compared with a float8 threshold
  return double(float(shared) / float(a + b - shared));
}

double trigram_similarity(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t shared = 0;
  for (auto x = a.begin(), y = b.begin(); x != a.end() && y != b.end();) {
    if (*x < *y) {
      ++x;
    } else if (*y < *x) {
      ++y;
    } else {
      ++shared, ++x, ++y;
    }
  }
  return trigram_similarity(shared, a.size(), b.size());
}

std::string TierSql::composite_text() const {
  return "(" + sql::join_n(fields.size(), " || E'\\x1f' || ", [&](size_t i) { return fields[i].key_text; }) + ")";
}

TierFieldSql field_sql(pqxx::transaction_base& tx, const config::Entity& entity, int k, const TableInfo& table,
                       const std::string& bookkeeping) {
  const config::Field& f = entity.fields[size_t(k)];
  const std::string bare = tx.quote_name(f.column), col = "t." + bare;
  const std::string type = table.column_types.count(f.column) ? table.column_types.at(f.column) : "text";
  TierFieldSql fs;
  fs.field = k;
  if (f.normalize.kind == config::Normalizer::Kind::Name) {
    fs.key_expr = bookkeeping + ".name_key(" + col + ")";
    fs.index_expr = bookkeeping + ".name_key(" + bare + ")";
    fs.key_text = fs.key_expr;
    fs.probe_type = "text";
    fs.name = true;
    fs.column_text = col + "::text";
  } else {
    fs.key_expr = col;
    fs.index_expr = bare;
    fs.probe_type = string_type(type) ? "text" : type;
    fs.key_text = type == "boolean" ? "CASE WHEN " + col + " THEN 't' ELSE 'f' END" : col + "::text";
  }
  return fs;
}

std::vector<TierSql> tier_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                              const std::string& bookkeeping) {
  std::vector<TierSql> out;
  for (const auto& tier : identity_tiers(entity)) {
    TierSql ts;
    ts.tier = tier;
    ts.bookkeeping_quoted = bookkeeping;
    for (int k : tier.fields) ts.fields.push_back(field_sql(tx, entity, k, table, bookkeeping));
    out.push_back(std::move(ts));
  }
  return out;
}

std::string qualified_function(pqxx::transaction_base& tx, const std::string& function) {
  auto r = tx.exec_params("SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                          "WHERE p.proname = $1 ORDER BY n.nspname = 'public' DESC, n.nspname LIMIT 1",
                          function);
  return r.empty() ? "" : tx.quote_name(r[0][0].as<std::string>()) + "." + function;
}

std::vector<TierSql> blocking_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                  const std::string& bookkeeping, std::vector<std::string>& missing_functions) {
  std::vector<TierSql> out;
  if (!entity.fuzzy) return out;
  std::map<std::string, std::string> schema_of;  // function -> schema.function, "" = not installed
  auto qualified = [&](const std::string& function) {
    if (!schema_of.count(function)) {
      schema_of[function] = qualified_function(tx, function);
      if (schema_of[function].empty()) missing_functions.push_back(function);
    }
    return schema_of[function].empty() ? function : schema_of[function];
  };
  for (const auto& rule : entity.fuzzy->blocking) {
    TierSql ts;
    ts.tier.number = int(out.size()) + 1;
    ts.bookkeeping_quoted = bookkeeping;
    for (const auto& term : rule) {
      int k = 0;
      while (entity.fields[size_t(k)].name != term.field) ++k;
      ts.tier.fields.push_back(k);
      TierFieldSql fs = field_sql(tx, entity, k, table, bookkeeping);
      if (term.trigram()) {
        // the key as text, found by pg_trgm's similarity to the probed key
        fs.key_expr = fs.name ? fs.key_expr : "(" + fs.key_text + ")";
        fs.index_expr = fs.name ? fs.index_expr : fs.index_expr + "::text";
        fs.key_text = fs.key_expr;
        fs.probe_type = "text";
        fs.similarity = term.similarity;
        fs.similarity_function = qualified("similarity");
      } else if (!term.function.empty()) {
        const std::string fn = qualified(term.function);
        // the phonetic code of the key (a name's case- and accent-folded key)
        fs.key_expr = fn + "(" + fs.key_expr + "::text)";
        fs.index_expr = fn + "(" + fs.index_expr + "::text)";
        fs.key_text = fs.key_expr;
        fs.probe_function = fn;
      }
      ts.fields.push_back(std::move(fs));
    }
    out.push_back(std::move(ts));
  }
  return out;
}

namespace {

/// An index column or a tier field, reduced to what identifies it: no quotes, spaces,
/// parentheses, text casts or bookkeeping-schema prefix.
std::string bare(std::string s, std::string schema) {
  auto drop_all = [](std::string& x, const std::string& what) {
    for (size_t p; !what.empty() && (p = x.find(what)) != std::string::npos;) x.erase(p, what.size());
  };
  drop_all(s, "\"");
  drop_all(schema, "\"");
  drop_all(s, schema + ".");
  drop_all(s, "::text");
  // a function's schema (fuzzystrmatch's dmetaphone is printed bare or as public.dmetaphone)
  static const std::regex fn_schema(R"([A-Za-z_][A-Za-z0-9_]*\.(?=[A-Za-z_][A-Za-z0-9_]*\())");
  s = std::regex_replace(s, fn_schema, "");
  std::string out;
  for (char c : s)
    if (c != ' ' && c != '(' && c != ')') out += c;
  return out;
}

}  // namespace

namespace {

/// TABLE_ingestd_<kind><number>, cut to PostgreSQL's 63 bytes from the left.
std::string index_name(const TableInfo& table, const std::string& kind, int number) {
  std::string name = table.canonical.substr(table.canonical.find('.') + 1) + "_ingestd_" + kind + std::to_string(number);
  return name.size() > 63 ? name.substr(name.size() - 63) : name;
}

}  // namespace

TierIndex trigram_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& rule) {
  TierIndex ti;
  ti.tier = rule.tier.number;
  const TierFieldSql& f = rule.fields.at(0);
  const std::string name = index_name(table, "block", ti.tier);
  ti.create_index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + tx.quote_name(name) + " ON " + table.quoted +
                    " USING gin ((" + f.index_expr + ") " + f.trgm_object("gin_trgm_ops") + ") WITH (fastupdate = off)";
  const std::string want = bare(f.index_expr, rule.bookkeeping_quoted);
  auto idx = tx.exec_params("SELECT c.relname, pg_get_indexdef(i.indexrelid, 1, false) FROM pg_index i JOIN pg_class c "
                            "ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_opclass o ON o.oid = "
                            "i.indclass[0] WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indpred IS NULL "
                            "AND (a.amname, o.opcname) IN (('gin', 'gin_trgm_ops'), ('gist', 'gist_trgm_ops')) "
                            "ORDER BY c.relname",
                            table.quoted);
  for (const auto& row : idx)
    if (bare(row[1].as<std::string>(), rule.bookkeeping_quoted) == want) {
      ti.index = row[0].as<std::string>();
      break;
    }
  return ti;
}

TierIndex tier_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& tier, const std::string& kind,
                     const std::string& trailing, const std::string& predicate) {
  TierIndex ti;
  ti.tier = tier.tier.number;
  const std::string name = index_name(table, kind, ti.tier);
  // Columns that are not name keys lead: tiers that share their names (name + birth date, name
  // + phone) then get indexes that cannot serve each other, so the planner never probes one tier
  // through the other's index and filters its third column over everyone with a common name.
  std::vector<std::string> lead, names;
  for (const auto& f : tier.fields)
    (f.name ? names : lead).push_back(f.index_expr);
  lead.insert(lead.end(), names.begin(), names.end());
  if (!trailing.empty()) lead.push_back(trailing);
  ti.create_index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + tx.quote_name(name) + " ON " + table.quoted + " (" +
                    sql::join(lead, ", ") + ")" + (predicate.empty() ? "" : " WHERE " + predicate);
  // An index serves the tier when it is a valid, unconditional btree whose leading columns are
  // exactly the tier's columns and key expressions, in any order: every probe is then one
  // descent of it, whatever its statistics say.
  const std::string schema = tier.fields.empty() ? "" : tier.bookkeeping_quoted;
  std::vector<std::string> want;
  for (const auto& f : tier.fields) want.push_back(bare(f.index_expr, schema));
  std::sort(want.begin(), want.end());
  // (a partial one serves a partial probe when its predicate is the probe's, as printed)
  auto idx = tx.exec_params("SELECT c.relname, i.indnkeyatts, ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, false) FROM "
                            "generate_series(1, i.indnkeyatts) k), coalesce(pg_get_expr(i.indpred, i.indrelid), '') "
                            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                            "WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND (i.indpred IS NULL) = $2 AND "
                            "a.amname = 'btree' ORDER BY c.relname",
                            table.quoted, predicate.empty());
  const std::string want_predicate = bare(predicate, schema);
  for (const auto& row : idx) {
    if (row[1].as<size_t>() < want.size() || bare(row[3].as<std::string>(), schema) != want_predicate) continue;
    std::vector<std::string> have;
    auto parser = row[2].as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
      if (item.first == pqxx::array_parser::string_value && have.size() < want.size())
        have.push_back(bare(item.second, schema));
    std::sort(have.begin(), have.end());
    if (have == want) {
      ti.index = row[0].as<std::string>();
      break;
    }
  }
  return ti;
}

}  // namespace ingestd::engine
