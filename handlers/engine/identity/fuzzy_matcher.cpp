#include "handlers/engine/identity/fuzzy_matcher.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

int field_index(const config::Entity& entity, const std::string& name) {
  for (size_t k = 0; k < entity.fields.size(); ++k)
    if (entity.fields[k].name == name) return int(k);
  return -1;
}

bool open_blocks(const config::Entity& entity) {
  if (!entity.fuzzy || entity.fuzzy->never_across.empty()) return false;
  const auto& never = entity.fuzzy->never_across;
  if (entity.identity.size() < never.size()) return false;
  std::set<std::string> lead;
  for (size_t t = 0; t < never.size(); ++t) {
    if (entity.identity[t].size() != 1) return false;
    lead.insert(entity.identity[t][0]);
  }
  return lead == std::set<std::string>(never.begin(), never.end());
}

std::string open_predicate(const std::vector<TierFieldSql>& never, std::string TierFieldSql::*expr) {
  return sql::join_n(never.size(), " AND ", [&](size_t i) { return "(" + never[i].*expr + ") IS NULL"; });
}

std::vector<TierFieldSql> never_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                    const std::string& bookkeeping) {
  std::vector<TierFieldSql> out;
  if (!entity.fuzzy) return out;
  for (const auto& name : entity.fuzzy->never_across)
    if (const int k = field_index(entity, name); k >= 0) out.push_back(field_sql(tx, entity, k, table, bookkeeping));
  return out;
}

std::vector<int> fuzzy_fields(const config::Entity& entity) {
  std::set<int> all;
  if (!entity.fuzzy) return {};
  for (const auto& rule : entity.fuzzy->blocking)
    for (const auto& term : rule) all.insert(field_index(entity, term.field));
  for (const auto& c : entity.fuzzy->compare) all.insert(field_index(entity, c.field));
  for (const auto& n : entity.fuzzy->never_across) all.insert(field_index(entity, n));
  all.erase(-1);
  return {all.begin(), all.end()};
}

FuzzyMatcher::FuzzyMatcher(const config::Entity& entity, MatchTarget target, std::vector<TierSql> rules,
                           std::vector<TierFieldSql> never, double table_records)
    : tier_(*entity.fuzzy), target_(std::move(target)), rules_(std::move(rules)), never_sql_(std::move(never)),
      table_records_(table_records),
      open_(open_blocks(entity) && never_sql_.size() == entity.fuzzy->never_across.size()),
      scorer_(*entity.fuzzy),
      fields_(fuzzy_fields(entity)) {
  for (const auto& rule : rules_)
    for (int f : rule.tier.fields) column_of_.emplace(f, column_of_.size() + 1);
  open_where_ = open_predicate(never_sql_, &TierFieldSql::key_expr);
  for (const auto& c : tier_.compare) compare_fields_.push_back(field_index(entity, c.field));
  for (const auto& n : tier_.never_across) never_fields_.push_back(field_index(entity, n));
  side_fields_ = compare_fields_;
  side_fields_.insert(side_fields_.end(), never_fields_.begin(), never_fields_.end());
  side_fields_.resize(side_fields_.size() + column_of_.size());
  for (const auto& [f, c] : column_of_) side_fields_[compare_fields_.size() + never_fields_.size() + c - 1] = f;
}

FuzzySide FuzzyMatcher::side(const FieldKeys& keys) const {
  FuzzySide out;
  out.compares = uint32_t(compare_fields_.size());
  out.nevers = uint32_t(never_fields_.size());
  out.keys.resize(side_fields_.size());
  for (size_t i = 0; i < side_fields_.size(); ++i)
    if (const int f = side_fields_[i]; f >= 0 && size_t(f) < keys.size() && keys[size_t(f)]) out.keys[i] = &*keys[size_t(f)];
  return out;
}

bool FuzzyMatcher::open_row(const FieldKeys& keys) const {
  if (!open_) return false;
  for (int f : never_fields_)
    if (size_t(f) >= keys.size() || !keys[size_t(f)]) return false;
  return true;
}

bool FuzzyMatcher::holds_never(const FuzzySide& side) {
  for (const auto* v : side.never())
    if (v) return true;
  return false;
}

bool FuzzyMatcher::conflicts(const FuzzySide& a, const FuzzySide& b) {
  const KeyView x = a.never(), y = b.never();
  for (size_t k = 0; k < x.size() && k < y.size(); ++k)
    if (x[k] && y[k] && *x[k] != *y[k]) return true;
  return false;
}

std::vector<std::string> Blocks::known_ids() const {
  std::vector<std::string> ids(wanted.begin(), wanted.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

size_t Blocks::named() const {
  size_t n = 0;
  for (const auto& rule : known)
    for (const auto& [key, ids] : rule) n += ids.size();
  return n;
}

double table_records(pqxx::transaction_base& tx, const std::string& table) {
  return tx.exec("SELECT reltuples::float8 FROM pg_class WHERE oid = " + tx.quote(table) + "::regclass")[0][0]
      .as<double>();
}

Blocks FuzzyMatcher::block(StepSql& sql, const std::vector<const FieldKeys*>& rows,
                           const std::vector<char>& probed) const {
  Blocks out;
  out.known.resize(rules_.size());
  out.over.resize(rules_.size());
  out.open.resize(rules_.size());
  out.values.resize(rules_.size());
  if (rows.empty() || rules_.empty()) return out;
  out.table_records = table_records_;
  // a bound on the codes kept: a table of millions of different names would hold them all
  constexpr size_t kMaxCodes = 200000;
  size_t kept = 0;
  for (const auto& [function, codes] : *codes_) kept += codes.size();
  if (kept > kMaxCodes) codes_ = std::make_shared<PhoneticCodes>();
  out.codes = codes_;
  add_codes(sql, out, rows);
  add_trigrams(sql, out, rows);
  const std::string probe = stage_probe(sql, rows, probed);
  auto col = [&](int field) { return "p.k" + std::to_string(column_of_.at(field)); };
  size_t widest = 0;  // UNION ALL: every rule's query returns as many key columns
  for (const auto& rule : rules_) widest = std::max(widest, rule.fields.size());
  std::vector<std::string> known_sql, similar_sql;  // equal keys; similar keys (trigram rules)
  double lowest = 0;  // the `%` operator finds keys at pg_trgm.similarity_threshold: this one
  for (const auto& rule : rules_)
    if (const double s = rule.lowest_similarity(); s > 0 && (lowest == 0 || s < lowest)) lowest = s;
  for (size_t r = 0; r < rules_.size(); ++r) {
    const auto& rule = rules_[r];
    std::vector<std::string> cols;
    for (int f : rule.tier.fields) cols.push_back("k" + std::to_string(column_of_.at(f)));
    // each distinct key once: one probe of the rule's index, up to max_candidates + 1 records (a
    // block holding more gives no candidates: it is only counted); the key's values come back as
    // sent. `wanted`:
    // some row of the key may be scored against the record, i.e. no never_across field of its
    // stored values differs from the row's (a stored value is never replaced within a chunk,
    // FuzzyRun::landed), so a record every such row conflicts with is not fetched. Only the
    // wanted records come back by id, and with them how many the block holds (`places`): an
    // unwanted one still counts towards max_candidates, and nothing else of it is used.
    std::string groups = "SELECT DISTINCT " + sql::join(cols, ", ");
    std::string wanted = "true";
    if (never_sql_.size() == 1) {
      // one never_across field: no subplan per block member
      const std::string v = "(" + never_sql_[0].key_text + ")";
      groups = "SELECT " + sql::join(cols, ", ") + ", array_agg(n1) AS n1, bool_or(n1 IS NULL) AS z1";
      wanted = "(" + v + " IS NULL OR p.z1 OR " + v + " = ANY (p.n1))";
    } else if (!never_sql_.empty()) {
      groups = "SELECT " + sql::join(cols, ", ") + ", " +
               sql::join_n(never_sql_.size(), ", ", [](size_t i) {
                 return "array_agg(n" + std::to_string(i + 1) + ") AS n" + std::to_string(i + 1);
               });
      wanted = "EXISTS (SELECT 1 FROM unnest(" +
               sql::join_n(never_sql_.size(), ", ", [](size_t i) { return "p.n" + std::to_string(i + 1); }) +
               ") u(" + sql::join_n(never_sql_.size(), ", ", [](size_t i) { return "a" + std::to_string(i + 1); }) +
               ") WHERE NOT (" + sql::join_n(never_sql_.size(), " OR ", [&](size_t i) {
                 const std::string a = "u.a" + std::to_string(i + 1), v = "(" + never_sql_[i].key_text + ")";
                 return "(" + a + " IS NOT NULL AND " + v + " IS NOT NULL AND " + a + " <> " + v + ")";
               }) + "))";
    }
    const bool similar = rule.lowest_similarity() > 0;
    const std::string keyed = sql::join_n(cols.size(), " AND ", [&](size_t i) { return cols[i] + " IS NOT NULL"; });
    groups += " FROM " + probe + " WHERE " + keyed + (open_ && !similar ? " AND NOT o" : "") +
              (never_sql_.empty() ? "" : " GROUP BY " + sql::join(cols, ", "));
    // A trigram rule's similar keys come from its trigram index, then are ordered by id: the
    // fence (OFFSET 0) keeps the planner from walking the primary key in id order and testing
    // every row of the table until it has enough, which it prefers under the LIMIT. An equality
    // rule's index ends with the id: the order costs nothing there, and keeps the planner on it.
    const std::string where = similar ? rule.similar(0, col(rule.tier.fields[0]), rule.lowest_similarity() == lowest)
                                      : rule.condition([&](size_t i) { return col(rule.tier.fields[i]); });
    const std::string from = similar ? "(SELECT t.* FROM " + target_.table + " t WHERE " + where + " OFFSET 0) t"
                                     : target_.table + " t WHERE " + where;
    // One row per block key that has members: the wanted ones' ids and how many places the
    // block holds. An aggregate per key rather than a row per member under a window: less
    // executor work per probe, which counts where most blocks hold nobody (a big table of other
    // people: about 220 -> 150 ms for 14,000 keys of one rule). The ids need no order: FuzzyRun
    // takes all of a block's or none, and blocked_records sorts what it takes.
    const std::string limit = " LIMIT " + std::to_string(size_t(tier_.max_candidates) + 1);
    const std::string members = "SELECT t." + target_.id + "::text AS rid, " + wanted + " AS wanted FROM " + from +
                                " ORDER BY t." + target_.id + limit;
    const std::string block =
        "SELECT array_agg(m.rid) FILTER (WHERE m.wanted) AS rids, count(*) AS places FROM (" + members + ") m";
    // one answer per block key: its number (past the rules: an open block), its members' ids,
    // its places, and the key's values as sent (as many columns for every rule)
    auto answer = [&](size_t numbered, const std::string& keys, const std::string& of_key) {
      return "SELECT " + std::to_string(numbered) + ", x.rids, x.places, " +
             sql::join_n(cols.size(), ", ", [&](size_t i) { return "p." + cols[i] + "::text"; }) +
             sql::join_n(widest - cols.size(), "", [](size_t) { return ", NULL::text"; }) + " FROM (" + keys +
             ") p CROSS JOIN LATERAL (" + of_key + ") x WHERE x.places > 0";
    };
    (similar ? similar_sql : known_sql).push_back(answer(r, groups, block));
    if (open_ && !similar) {
      // the open blocks of the rows that hold every never_across value: only records holding
      // none, through the rule's partial index, every one wanted
      const std::string open_members = "SELECT t." + target_.id + "::text AS rid FROM " + target_.table + " t WHERE " +
                                       where + " AND " + open_where_ + " ORDER BY t." + target_.id + limit;
      known_sql.push_back(answer(rules_.size() + r,
                                 "SELECT DISTINCT " + sql::join(cols, ", ") + " FROM " + probe + " WHERE " + keyed + " AND o",
                                 "SELECT array_agg(m.rid) AS rids, count(*) AS places FROM (" + open_members + ") m"));
    }
  }
  pqxx::result found[2];
  if (!known_sql.empty()) found[0] = sql.probe(sql::join(known_sql, " UNION ALL "), "candidates");
  if (!similar_sql.empty()) {
    sql.exec("SELECT set_config('pg_trgm.similarity_threshold', '" + float8_literal(lowest) + "', true)", "candidates");
    found[1] = sql.probe(sql::join(similar_sql, " UNION ALL "), "candidates", /*bitmap=*/true);
  }
  FuzzySide probe_side;  // blocking keys only
  probe_side.keys.resize(column_of_.size());
  std::vector<std::pair<std::vector<std::string>*, size_t>> places;  // a block, the records it holds
  std::vector<std::unordered_set<std::string>> answered(2 * rules_.size());  // [numbered] block keys with an answer
  for (const auto& result : found)
    for (const auto& row : result) {
      const auto numbered = row[0].as<size_t>();
      const size_t r = numbered % rules_.size();  // past the rules: an open block
      const bool open = numbered >= rules_.size();
      std::vector<std::string> values;
      for (size_t i = 0; i < rules_[r].tier.fields.size(); ++i) values.push_back(row[int(i) + 3].as<std::string>());
      for (size_t i = 0; i < values.size(); ++i) probe_side.keys[column_of_.at(rules_[r].tier.fields[i]) - 1] = &values[i];
      if (auto key = rule_key(r, probe_side, out)) {
        // Values with one phonetic code make one block, the same members and places for each;
        // but which members are wanted follows the never_across values of each spelling's rows,
        // so every spelling's wanted ones are taken, once each. (Taking the first spelling's
        // alone left out members a row of another spelling may be: a row's candidates then
        // depended on which rows shared its slice.)
        const bool fresh = answered[numbered].insert(*key).second;
        Blocks::Open* o = open ? &out.open[r][*key] : nullptr;
        if (row[2].as<size_t>() > size_t(tier_.max_candidates)) {
          // too common to tell people apart: counted, never fetched
          if (o) {
            o->over = true;
            out.values[r].try_emplace(*key, values);  // rows of the slice may bring it back within
          } else {
            out.over[r].insert(*key);
          }
          continue;
        }
        auto& ids = o ? o->ids : out.known[r][*key];
        if (fresh) places.emplace_back(&ids, row[2].as<size_t>());
        if (row[1].is_null()) continue;  // nobody the key's rows may be scored against
        auto parser = row[1].as_array();
        for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
          if (item.first == pqxx::array_parser::string_value &&
              (fresh || std::find(ids.begin(), ids.end(), item.second) == ids.end())) {
            out.wanted.insert(item.second);
            ids.push_back(std::move(item.second));
          }
      }
    }
  // the records a block holds but no row may be scored against: places without an id
  for (auto& [ids, n] : places)
    if (ids->size() < n) ids->resize(n);
  return out;
}

std::vector<std::string> FuzzyMatcher::members(StepSql& sql, size_t r, const std::vector<std::string>& values,
                                               bool open, size_t n) const {
  auto& tx = sql.tx();
  std::vector<std::string> ids;
  for (const auto& row : sql.probe("SELECT t." + target_.id + "::text FROM " + target_.table + " t WHERE " +
                                       rules_[r].condition([&](size_t i) { return tx.quote(values.at(i)); }) +
                                       (open ? " AND " + open_where_ : std::string()) + " ORDER BY t." + target_.id +
                                       " LIMIT " + std::to_string(n),
                                   "candidates"))
    ids.push_back(row[0].as<std::string>());
  return ids;
}

void phonetic_codes(pqxx::transaction_base& tx, const std::string& function, const std::set<std::string>& values,
                    std::unordered_map<std::string, std::string>& codes) {
  if (values.empty()) return;
  for (const auto& row :
       tx.exec_params("SELECT v, " + function + "(v) FROM unnest($1::text[]) v", text_array_literal(values)))
    codes[row[0].as<std::string>()] = row[1].is_null() ? "" : row[1].as<std::string>();
}

namespace {

/// The values of `field` that `sides` hold and `have` lacks, once each.
template <class Map>
std::set<std::string> missing_values(int field, const std::vector<const FieldKeys*>& sides, const Map& have) {
  std::set<std::string> missing;
  for (const auto* s : sides)
    if (size_t(field) < s->size() && (*s)[size_t(field)] && !have.count(*(*s)[size_t(field)]))
      missing.insert(*(*s)[size_t(field)]);
  return missing;
}

}  // namespace

void FuzzyMatcher::add_codes(StepSql& sql, Blocks& blocks, const std::vector<const FieldKeys*>& sides) const {
  sql.timed("candidates", [&] {
    for (const auto& rule : rules_)
      for (const auto& term : rule.fields) {
        if (term.probe_function.empty()) continue;
        auto& codes = (*blocks.codes)[term.probe_function];
        phonetic_codes(sql.tx(), term.probe_function, missing_values(term.field, sides, codes), codes);
      }
  });
}

void FuzzyMatcher::add_trigrams(StepSql& sql, Blocks& blocks, const std::vector<const FieldKeys*>& rows) const {
  sql.timed("candidates", [&] {
    for (const auto& rule : rules_)
      for (const auto& term : rule.fields) {
        if (term.similarity == 0) continue;
        const auto missing = missing_values(term.field, rows, blocks.trigrams);
        if (missing.empty()) continue;
        for (const auto& row : sql.tx().exec_params("SELECT v, " + term.trgm_object("show_trgm") +
                                                        "(v) FROM unnest($1::text[]) v",
                                                    text_array_literal(missing))) {
          auto& grams = blocks.trigrams[row[0].as<std::string>()];
          auto parser = row[1].as_array();
          for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
            if (item.first == pqxx::array_parser::string_value) grams.push_back(item.second);
          std::sort(grams.begin(), grams.end());
          grams.erase(std::unique(grams.begin(), grams.end()), grams.end());
        }
      }
  });
}

std::optional<std::string> FuzzyMatcher::rule_key(size_t r, const FuzzySide& side, const Blocks& blocks) const {
  std::string key;
  const auto& rule = rules_[r];
  for (size_t i = 0; i < rule.fields.size(); ++i) {
    const size_t pos = column_of_.at(rule.tier.fields[i]) - 1;
    const KeyView block = side.block();
    const std::string* v = pos < block.size() ? block[pos] : nullptr;  // a new record holds none yet
    if (!v) return std::nullopt;
    if (i) key += kBlockKeySeparator;
    if (rule.fields[i].probe_function.empty()) {
      key += *v;
      continue;
    }
    const auto& codes = blocks.codes->at(rule.fields[i].probe_function);
    const auto it = codes.find(*v);
    if (it == codes.end() || it->second.empty()) return std::nullopt;
    key += it->second;
  }
  return key;
}

std::string FuzzyMatcher::stage_probe(StepSql& sql, const std::vector<const FieldKeys*>& rows,
                                      const std::vector<char>& probed) const {
  // the rows' blocking keys (k…) and never_across keys (n…), and whether the row is open (o)
  const size_t width = column_of_.size(), nevers = never_sql_.size();
  const std::string probe = "pg_temp.ingestd_fprobe_" + std::to_string(width) + "_" + std::to_string(nevers);
  std::vector<std::string> cols{"i"};
  for (size_t i = 0; i < width; ++i) cols.push_back("k" + std::to_string(i + 1));
  for (size_t i = 0; i < nevers; ++i) cols.push_back("n" + std::to_string(i + 1));
  sql.exec("DO $ingestd$ BEGIN IF to_regclass('" + probe + "') IS NULL THEN CREATE TEMP TABLE " + probe.substr(8) +
               " (i int, " + sql::join_n(cols.size() - 1, ", ", [&](size_t i) { return cols[i + 1] + " text"; }) +
               ", o boolean) ON COMMIT DELETE ROWS; END IF; END $ingestd$; " +
               (rows.size() >= 1000 ? "TRUNCATE " : "DELETE FROM ") + probe,  // as ExactMatcher's probe
           "candidates");
  cols.push_back("o");
  CopyIn copy(sql.tx(), probe, cols);
  std::string line;
  std::vector<std::optional<std::string>> ks(width);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!probed.empty() && !probed[i]) continue;
    line = std::to_string(i);
    for (const auto& [f, c] : column_of_) ks[c - 1] = (*rows[i])[size_t(f)];
    for (const auto& k : ks) {
      line += '\t';
      append_copy_value(line, k);
    }
    for (const auto& n : never_sql_) {
      line += '\t';
      append_copy_value(line, size_t(n.field) < rows[i]->size() ? (*rows[i])[size_t(n.field)] : std::nullopt);
    }
    line += open_row(*rows[i]) ? "\tt" : "\tf";
    copy.line(line);
  }
  copy.complete();
  return probe;
}

}  // namespace ingestd::engine
