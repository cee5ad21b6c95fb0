#include "handlers/engine/identity/fuzzy_matcher.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

namespace {

int field_index(const config::Entity& entity, const std::string& name) {
  for (size_t k = 0; k < entity.fields.size(); ++k)
    if (entity.fields[k].name == name) return int(k);
  return -1;
}

}  // namespace

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

FuzzyMatcher::FuzzyMatcher(const config::Entity& entity, MatchTarget target, std::vector<TierSql> rules)
    : tier_(*entity.fuzzy), target_(std::move(target)), rules_(std::move(rules)), scorer_(*entity.fuzzy),
      fields_(fuzzy_fields(entity)) {
  for (const auto& rule : rules_)
    for (int f : rule.tier.fields) column_of_.emplace(f, column_of_.size() + 1);
  for (const auto& c : tier_.compare) compare_fields_.push_back(field_index(entity, c.field));
  for (const auto& n : tier_.never_across) never_fields_.push_back(field_index(entity, n));
}

std::vector<std::optional<std::string>> FuzzyMatcher::compare_keys(const FieldKeys& keys) const {
  std::vector<std::optional<std::string>> out;
  out.reserve(compare_fields_.size());
  for (int f : compare_fields_) out.push_back(size_t(f) < keys.size() ? keys[size_t(f)] : std::nullopt);
  return out;
}

bool FuzzyMatcher::conflicts(const FieldKeys& a, const FieldKeys& b) const {
  for (int f : never_fields_) {
    const auto k = size_t(f);
    if (k < a.size() && k < b.size() && a[k] && b[k] && *a[k] != *b[k]) return true;
  }
  return false;
}

Blocks FuzzyMatcher::block(StepSql& sql, const std::vector<const FieldKeys*>& rows) const {
  Blocks out;
  out.known.resize(rows.size());
  out.earlier.resize(rows.size());
  if (rows.empty() || rules_.empty()) return out;
  const size_t width = column_of_.size();
  const std::string probe = "pg_temp.ingestd_fprobe_" + std::to_string(width);
  auto col = [&](int field) { return "p.k" + std::to_string(column_of_.at(field)); };
  sql.exec("DO $ingestd$ BEGIN IF to_regclass('" + probe + "') IS NULL THEN CREATE TEMP TABLE " + probe.substr(8) +
               " (i int, " + sql::join_n(width, ", ", [](size_t i) { return "k" + std::to_string(i + 1) + " text"; }) +
               ") ON COMMIT DELETE ROWS; END IF; END $ingestd$; DELETE FROM " + probe,
           "candidates");
  {
    std::vector<std::string> cols{"i"};
    for (size_t i = 0; i < width; ++i) cols.push_back("k" + std::to_string(i + 1));
    CopyIn copy(sql.tx(), probe, cols);
    std::string line;
    for (size_t i = 0; i < rows.size(); ++i) {
      line = std::to_string(i);
      std::vector<std::optional<std::string>> ks(width);
      for (const auto& [f, c] : column_of_) ks[c - 1] = (*rows[i])[size_t(f)];
      for (const auto& k : ks) {
        line += '\t';
        append_copy_value(line, k);
      }
      copy.line(line);
    }
    copy.complete();
  }
  // the target's records in each row's blocks: one probe of the rule's index per row, the
  // lowest ids first (the index ends with the id)
  std::vector<std::string> known_sql, block_keys;
  for (const auto& rule : rules_) {
    std::string present;
    for (int f : rule.tier.fields) present += " AND " + col(f) + " IS NOT NULL";
    known_sql.push_back("SELECT p.i, x.rid FROM " + probe + " p CROSS JOIN LATERAL (SELECT t." + target_.id +
                        "::text AS rid FROM " + target_.table + " t WHERE " +
                        rule.condition([&](size_t i) { return col(rule.tier.fields[i]); }) + " ORDER BY t." +
                        target_.id + " LIMIT " + std::to_string(tier_.max_candidates) + ") x WHERE true" + present);
    block_keys.push_back(sql::join_n(rule.fields.size(), " || E'\\x1f' || ",
                                     [&](size_t i) { return "(" + rule.probe(i, col(rule.tier.fields[i])) + ")::text"; }));
  }
  for (const auto& row : sql.probe(sql::join(known_sql, " UNION ") + " ORDER BY 1, 2", "candidates"))
    out.known[row[0].as<size_t>()].push_back(row[1].as<std::string>());
  // the chunk's own rows in each row's blocks: the latest max_candidates before it
  auto keys = sql.exec("SELECT p.i, " + sql::join(block_keys, ", ") + " FROM " + probe + " p ORDER BY p.i", "candidates");
  std::vector<std::unordered_map<std::string, std::vector<int>>> groups(rules_.size());
  const auto cap = size_t(tier_.max_candidates);
  for (const auto& row : keys) {
    const auto i = row[0].as<size_t>();
    std::set<int> earlier;
    for (size_t r = 0; r < rules_.size(); ++r) {
      if (row[int(r) + 1].is_null()) continue;
      auto& g = groups[r][row[int(r) + 1].as<std::string>()];
      for (size_t j = g.size() > cap ? g.size() - cap : 0; j < g.size(); ++j) earlier.insert(g[j]);
      g.push_back(int(i));
    }
    out.earlier[i].assign(earlier.begin(), earlier.end());
  }
  return out;
}

FuzzyRun::FuzzyRun(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<std::string>& known_ids,
                   const std::vector<const FieldKeys*>& known_keys, const std::vector<const FieldKeys*>& rows)
    : m_(m), blocks_(blocks), rows_(rows) {
  tier = 0;
  merge_at = m.tier().merge_at;
  review_at = m.tier().review_at;
  for (size_t k = 0; k < known_ids.size(); ++k) {
    known_index_.emplace(known_ids[k], int(k));
    records_.push_back(*known_keys[k]);
  }
}

std::vector<std::pair<int, double>> FuzzyRun::candidates(size_t row, const std::vector<int>& row_records) {
  std::set<int> records;
  for (const auto& id : blocks_.known[row])
    if (auto it = known_index_.find(id); it != known_index_.end()) records.insert(it->second);
  for (int j : blocks_.earlier[row])
    if (row_records[size_t(j)] >= 0) records.insert(row_records[size_t(j)]);
  const FieldKeys& keys = *rows_[row];
  const auto mine = m_.compare_keys(keys);
  std::vector<std::pair<int, double>> out;
  std::vector<PairExplanation> shown;
  for (int r : records) {
    const FieldKeys& theirs = records_[size_t(r)];
    if (m_.conflicts(keys, theirs)) continue;
    PairExplanation e{r, 0, m_.scorer().fields(mine, m_.compare_keys(theirs))};
    e.score = PairScorer::total(e.fields);
    out.emplace_back(r, e.score);
    if (e.score >= review_at) shown.push_back(std::move(e));
  }
  std::stable_sort(shown.begin(), shown.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
  if (!shown.empty()) explained_[row] = std::move(shown);
  return out;
}

void FuzzyRun::landed(size_t row, int record) {
  if (size_t(record) >= records_.size()) records_.resize(size_t(record) + 1);
  FieldKeys& held = records_[size_t(record)];
  const FieldKeys& keys = *rows_[row];
  if (held.size() < keys.size()) held.resize(keys.size());
  for (size_t f = 0; f < keys.size(); ++f)
    if (!held[f] && keys[f]) held[f] = keys[f];
}

}  // namespace ingestd::engine
