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

FuzzySide FuzzyMatcher::side(const FieldKeys& keys) const {
  FuzzySide out;
  auto key = [&](int f) -> const std::string* {
    return size_t(f) < keys.size() && keys[size_t(f)] ? &*keys[size_t(f)] : nullptr;
  };
  for (int f : compare_fields_) out.compare.push_back(key(f));
  for (int f : never_fields_) out.never.push_back(key(f));
  return out;
}

bool FuzzyMatcher::conflicts(const FuzzySide& a, const FuzzySide& b) {
  for (size_t k = 0; k < a.never.size() && k < b.never.size(); ++k)
    if (a.never[k] && b.never[k] && *a.never[k] != *b.never[k]) return true;
  return false;
}

std::vector<std::string> Blocks::known_ids() const {
  std::set<std::string> ids;
  for (const auto& rule : known)
    for (const auto& [key, holders] : rule) ids.insert(holders.begin(), holders.end());
  return {ids.begin(), ids.end()};
}

Blocks FuzzyMatcher::block(StepSql& sql, const std::vector<const FieldKeys*>& rows) const {
  Blocks out;
  out.keys.assign(rows.size(), std::vector<std::optional<std::string>>(rules_.size()));
  out.known.resize(rules_.size());
  out.rows.resize(rules_.size());
  if (rows.empty() || rules_.empty()) return out;
  const std::string probe = stage_probe(sql, rows);
  auto col = [&](int field) { return "p.k" + std::to_string(column_of_.at(field)); };
  std::vector<std::string> known_sql, block_keys;
  for (size_t r = 0; r < rules_.size(); ++r) {
    const auto& rule = rules_[r];
    std::vector<std::string> cols;
    for (int f : rule.tier.fields) cols.push_back("k" + std::to_string(column_of_.at(f)));
    const std::string key = sql::join_n(rule.fields.size(), " || E'\\x1f' || ", [&](size_t i) {
      return "(" + rule.probe(i, col(rule.tier.fields[i])) + ")::text";
    });
    block_keys.push_back(key);
    // each distinct key once: one probe of the rule's index, the lowest ids first (the
    // index ends with the id), cut at max_candidates
    known_sql.push_back("SELECT " + std::to_string(r) + ", " + key + ", x.rid FROM (SELECT DISTINCT " +
                        sql::join(cols, ", ") + " FROM " + probe + " WHERE " +
                        sql::join_n(cols.size(), " AND ", [&](size_t i) { return cols[i] + " IS NOT NULL"; }) +
                        ") p CROSS JOIN LATERAL (SELECT t." + target_.id + "::text AS rid FROM " + target_.table +
                        " t WHERE " + rule.condition([&](size_t i) { return col(rule.tier.fields[i]); }) +
                        " ORDER BY t." + target_.id + " LIMIT " + std::to_string(tier_.max_candidates) + ") x");
  }
  for (const auto& row : sql.probe(sql::join(known_sql, " UNION ALL "), "candidates"))
    if (!row[1].is_null()) out.known[row[0].as<size_t>()][row[1].as<std::string>()].push_back(row[2].as<std::string>());
  auto keys = sql.exec("SELECT p.i, " + sql::join(block_keys, ", ") + " FROM " + probe + " p ORDER BY p.i", "candidates");
  for (const auto& row : keys) {
    const auto i = row[0].as<size_t>();
    for (size_t r = 0; r < rules_.size(); ++r) {
      if (row[int(r) + 1].is_null()) continue;
      out.keys[i][r] = row[int(r) + 1].as<std::string>();
      out.rows[r][*out.keys[i][r]].push_back(int(i));
    }
  }
  return out;
}

std::string FuzzyMatcher::stage_probe(StepSql& sql, const std::vector<const FieldKeys*>& rows) const {
  const size_t width = column_of_.size();
  const std::string probe = "pg_temp.ingestd_fprobe_" + std::to_string(width);
  sql.exec("DO $ingestd$ BEGIN IF to_regclass('" + probe + "') IS NULL THEN CREATE TEMP TABLE " + probe.substr(8) +
               " (i int, " + sql::join_n(width, ", ", [](size_t i) { return "k" + std::to_string(i + 1) + " text"; }) +
               ") ON COMMIT DELETE ROWS; END IF; END $ingestd$; DELETE FROM " + probe,
           "candidates");
  std::vector<std::string> cols{"i"};
  for (size_t i = 0; i < width; ++i) cols.push_back("k" + std::to_string(i + 1));
  CopyIn copy(sql.tx(), probe, cols);
  std::string line;
  std::vector<std::optional<std::string>> ks(width);
  for (size_t i = 0; i < rows.size(); ++i) {
    line = std::to_string(i);
    for (const auto& [f, c] : column_of_) ks[c - 1] = (*rows[i])[size_t(f)];
    for (const auto& k : ks) {
      line += '\t';
      append_copy_value(line, k);
    }
    copy.line(line);
  }
  copy.complete();
  return probe;
}

FuzzyRun::FuzzyRun(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<std::string>& known_ids,
                   const std::vector<const FieldKeys*>& known_keys, const std::vector<const FieldKeys*>& rows)
    : m_(m), blocks_(blocks) {
  tier = 0;
  merge_at = m.tier().merge_at;
  review_at = m.tier().review_at;
  std::unordered_map<std::string, int> index;
  for (size_t k = 0; k < known_ids.size(); ++k) {
    index.emplace(known_ids[k], int(k));
    records_.push_back(m.side(*known_keys[k]));
  }
  // each block's target records as the resolver numbers them, looked up once per block
  known_.resize(blocks.known.size());
  for (size_t r = 0; r < blocks.known.size(); ++r)
    for (const auto& [key, ids] : blocks.known[r]) {
      auto& out = known_[r][key];
      for (const auto& id : ids)
        if (auto it = index.find(id); it != index.end()) out.push_back(it->second);
    }
  rows_.reserve(rows.size());
  for (const auto* r : rows) rows_.push_back(m.side(*r));
}

std::vector<int> FuzzyRun::blocked_records(size_t row, const std::vector<int>& row_records) {
  std::vector<int> out;
  const auto cap = size_t(m_.tier().max_candidates);
  seen_.resize(records_.size(), -1);
  auto add = [&](int record) {
    if (seen_[size_t(record)] == int(row)) return;
    seen_[size_t(record)] = int(row);
    out.push_back(record);
  };
  for (size_t r = 0; r < blocks_.keys[row].size(); ++r) {
    const auto& key = blocks_.keys[row][r];
    if (!key) continue;
    if (auto it = known_[r].find(*key); it != known_[r].end())
      for (int k : it->second) add(k);
    // the chunk's earlier rows in the block: the latest max_candidates of them
    const auto& group = blocks_.rows[r].at(*key);
    const auto end = std::lower_bound(group.begin(), group.end(), int(row));
    for (auto j = end - std::min<ptrdiff_t>(end - group.begin(), ptrdiff_t(cap)); j != end; ++j)
      if (row_records[size_t(*j)] >= 0) add(row_records[size_t(*j)]);
  }
  std::sort(out.begin(), out.end());  // the same order whatever the blocks' order
  return out;
}

std::vector<std::pair<int, double>> FuzzyRun::candidates(size_t row, const std::vector<int>& row_records) {
  const FuzzySide& mine = rows_[row];
  std::vector<std::pair<int, double>> out;
  std::vector<PairExplanation> shown;
  for (int r : blocked_records(row, row_records)) {
    const FuzzySide& theirs = records_[size_t(r)];
    if (FuzzyMatcher::conflicts(mine, theirs)) continue;
    PairExplanation e{r, 0, m_.scorer().fields(mine.compare, theirs.compare)};
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
  FuzzySide& held = records_[size_t(record)];
  const FuzzySide& keys = rows_[row];
  auto fill = [](auto& into, const auto& from) {
    if (into.size() < from.size()) into.resize(from.size());
    for (size_t k = 0; k < from.size(); ++k)
      if (!into[k] && from[k]) into[k] = from[k];
  };
  fill(held.compare, keys.compare);
  fill(held.never, keys.never);
}

}  // namespace ingestd::engine
