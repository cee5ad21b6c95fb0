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

std::string open_predicate(const std::vector<TierFieldSql>& never) {
  return sql::join_n(never.size(), " AND ", [&](size_t i) { return "(" + never[i].index_expr + ") IS NULL"; });
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
                           std::vector<TierFieldSql> never)
    : tier_(*entity.fuzzy), target_(std::move(target)), rules_(std::move(rules)), never_sql_(std::move(never)),
      open_(open_blocks(entity) && never_sql_.size() == entity.fuzzy->never_across.size()),
      scorer_(*entity.fuzzy),
      fields_(fuzzy_fields(entity)) {
  for (const auto& rule : rules_)
    for (int f : rule.tier.fields) column_of_.emplace(f, column_of_.size() + 1);
  open_where_ = sql::join_n(never_sql_.size(), " AND ", [&](size_t i) { return "(" + never_sql_[i].key_expr + ") IS NULL"; });
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
  out.block.resize(column_of_.size());
  for (const auto& [f, c] : column_of_) out.block[c - 1] = key(f);
  return out;
}

bool FuzzyMatcher::open_row(const FuzzySide& side) const {
  if (!open_) return false;
  for (const auto* v : side.never)
    if (!v) return false;
  return true;
}

bool FuzzyMatcher::open_row(const FieldKeys& keys) const {
  if (!open_) return false;
  for (int f : never_fields_)
    if (size_t(f) >= keys.size() || !keys[size_t(f)]) return false;
  return true;
}

bool FuzzyMatcher::holds_never(const FuzzySide& side) {
  for (const auto* v : side.never)
    if (v) return true;
  return false;
}

bool FuzzyMatcher::conflicts(const FuzzySide& a, const FuzzySide& b) {
  for (size_t k = 0; k < a.never.size() && k < b.never.size(); ++k)
    if (a.never[k] && b.never[k] && *a.never[k] != *b.never[k]) return true;
  return false;
}

std::vector<std::string> Blocks::known_ids() const {
  std::vector<std::string> ids(wanted.begin(), wanted.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Blocks FuzzyMatcher::block(StepSql& sql, const std::vector<const FieldKeys*>& rows,
                           const std::vector<char>& probed) const {
  Blocks out;
  out.known.resize(rules_.size());
  out.open.resize(rules_.size());
  if (rows.empty() || rules_.empty()) return out;
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
    // each distinct key once: one probe of the rule's index, the lowest ids first (the index
    // ends with the id), cut at max_candidates; the key's values come back as sent. `wanted`:
    // some row of the key may be scored against the record, i.e. no never_across field of its
    // stored values differs from the row's (a stored value is never replaced within a chunk,
    // FuzzyRun::landed), so a record every such row conflicts with is not fetched. Only the
    // wanted records come back by id, and with them how many the block holds (`places`): an
    // unwanted one still takes its place under max_candidates, and nothing else of it is used.
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
    // every row of the table until it has max_candidates, which it prefers under the LIMIT.
    const std::string where = similar ? rule.similar(0, col(rule.tier.fields[0]), rule.lowest_similarity() == lowest)
                                      : rule.condition([&](size_t i) { return col(rule.tier.fields[i]); });
    const std::string from = similar ? "(SELECT t.* FROM " + target_.table + " t WHERE " + where + " OFFSET 0) t"
                                     : target_.table + " t WHERE " + where;
    // One row per block key that has members: the wanted ones' ids and how many places the
    // block holds. An aggregate per key rather than a row per member under a window: less
    // executor work per probe, which counts where most blocks hold nobody (a big table of other
    // people: about 220 -> 150 ms for 14,000 keys of one rule). The ids need no order: the
    // LIMIT chose them, a block's places never exceed max_candidates, so FuzzyRun takes all of
    // them, and blocked_records sorts what it takes.
    const std::string members = "SELECT t." + target_.id + "::text AS rid, " + wanted + " AS wanted FROM " + from +
                                " ORDER BY t." + target_.id + " LIMIT " + std::to_string(tier_.max_candidates);
    const std::string block =
        "SELECT array_agg(m.rid) FILTER (WHERE m.wanted) AS rids, count(*) AS places FROM (" + members + ") m";
    (similar ? similar_sql : known_sql).push_back("SELECT " + std::to_string(r) + ", x.rids, x.places, " +
                        sql::join_n(cols.size(), ", ", [&](size_t i) { return "p." + cols[i] + "::text"; }) +
                        sql::join_n(widest - cols.size(), "", [](size_t) { return ", NULL::text"; }) + " FROM (" +
                        groups + ") p CROSS JOIN LATERAL (" + block + ") x WHERE x.places > 0");
    if (open_ && !similar) {
      // the open blocks of the rows that hold every never_across value (numbered past the
      // rules): only records holding none, through the rule's partial index, every one wanted
      const std::string open_members = "SELECT t." + target_.id + "::text AS rid FROM " + target_.table + " t WHERE " +
                                       where + " AND " + open_where_ + " ORDER BY t." + target_.id + " LIMIT " +
                                       std::to_string(tier_.max_candidates);
      known_sql.push_back("SELECT " + std::to_string(rules_.size() + r) + ", x.rids, x.places, " +
                          sql::join_n(cols.size(), ", ", [&](size_t i) { return "p." + cols[i] + "::text"; }) +
                          sql::join_n(widest - cols.size(), "", [](size_t) { return ", NULL::text"; }) +
                          " FROM (SELECT DISTINCT " + sql::join(cols, ", ") + " FROM " + probe + " WHERE " + keyed +
                          " AND o) p CROSS JOIN LATERAL (SELECT array_agg(m.rid) AS rids, count(*) AS places FROM (" +
                          open_members + ") m) x WHERE x.places > 0");
    }
  }
  pqxx::result found[2];
  if (!known_sql.empty()) found[0] = sql.probe(sql::join(known_sql, " UNION ALL "), "candidates");
  if (!similar_sql.empty()) {
    sql.exec("SELECT set_config('pg_trgm.similarity_threshold', '" + float8_literal(lowest) + "', true)", "candidates");
    found[1] = sql.probe(sql::join(similar_sql, " UNION ALL "), "candidates", /*bitmap=*/true);
  }
  FuzzySide probe_side;
  probe_side.block.resize(column_of_.size());
  std::vector<std::pair<std::vector<std::string>*, size_t>> places;  // a block, the records it holds
  std::vector<std::unordered_map<std::string, std::string>> sent_by(2 * rules_.size());  // block key -> values probed
  for (const auto& result : found)
    for (const auto& row : result) {
      const auto numbered = row[0].as<size_t>();
      const size_t r = numbered % rules_.size();  // past the rules: an open block
      const bool open = numbered >= rules_.size();
      std::vector<std::string> values;
      for (size_t i = 0; i < rules_[r].tier.fields.size(); ++i) values.push_back(row[int(i) + 3].as<std::string>());
      for (size_t i = 0; i < values.size(); ++i) probe_side.block[column_of_.at(rules_[r].tier.fields[i]) - 1] = &values[i];
      if (auto key = rule_key(r, probe_side, out)) {
        // values with one phonetic code make one block, the same members for each: taken once
        std::string sent = sql::join(values, std::string(1, kBlockKeySeparator));
        if (const auto [it, fresh] = sent_by[numbered].emplace(*key, sent); !fresh && it->second != sent) continue;
        auto& ids = (open ? out.open : out.known)[r][*key];
        places.emplace_back(&ids, row[2].as<size_t>());
        if (row[1].is_null()) continue;  // nobody the key's rows may be scored against
        auto parser = row[1].as_array();
        for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
          if (item.first == pqxx::array_parser::string_value) {
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
        auto& codes = blocks.codes[term.probe_function];
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

void SimilarBlock::add(int record, std::string_view key, const std::vector<std::string>& trigrams) {
  auto [it, fresh] = key_index_.emplace(key, uint32_t(trigrams_.size()));
  if (fresh) {
    trigrams_.push_back(&trigrams);
    holders_.emplace_back();
    for (const auto& g : trigrams) postings_[g].push_back(it->second);
  }
  holders_[it->second].emplace_back(arrivals_++, record);
}

std::vector<int> SimilarBlock::similar(std::string_view key, const std::vector<std::string>& trigrams,
                                       size_t cap) const {
  Found& f = found_[key];
  const auto keys = uint32_t(trigrams_.size());
  if (f.checked < keys) {
    // the keys that came since this one was last asked about
    shared_.resize(keys, 0);
    for (const auto& g : trigrams)
      if (const auto it = postings_.find(g); it != postings_.end())
        for (auto k = std::lower_bound(it->second.begin(), it->second.end(), f.checked); k != it->second.end(); ++k)
          if (shared_[*k]++ == 0) touched_.push_back(*k);
    for (uint32_t k : touched_) {
      if (trigram_similarity(shared_[k], trigrams.size(), trigrams_[k]->size()) >= similarity_) f.keys.push_back(k);
      shared_[k] = 0;
    }
    touched_.clear();
    f.checked = keys;
  }
  // the first `cap` holders of each similar key, merged in order of arrival
  std::vector<std::pair<uint32_t, int>> hits;
  for (uint32_t k : f.keys) {
    const auto& h = holders_[k];
    hits.insert(hits.end(), h.begin(), h.begin() + long(std::min(cap, h.size())));
  }
  std::sort(hits.begin(), hits.end());
  if (hits.size() > cap) hits.resize(cap);
  std::vector<int> out;
  for (const auto& [arrival, record] : hits) out.push_back(record);
  return out;
}

std::optional<std::string> FuzzyMatcher::rule_key(size_t r, const FuzzySide& side, const Blocks& blocks) const {
  std::string key;
  const auto& rule = rules_[r];
  for (size_t i = 0; i < rule.fields.size(); ++i) {
    const size_t pos = column_of_.at(rule.tier.fields[i]) - 1;
    const std::string* v = pos < side.block.size() ? side.block[pos] : nullptr;  // a new record holds none yet
    if (!v) return std::nullopt;
    if (i) key += kBlockKeySeparator;
    if (rule.fields[i].probe_function.empty()) {
      key += *v;
      continue;
    }
    const auto& codes = blocks.codes.at(rule.fields[i].probe_function);
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
               ", o boolean) ON COMMIT DELETE ROWS; END IF; END $ingestd$; DELETE FROM " + probe,
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

FuzzyRun::FuzzyRun(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<std::string>& known_ids,
                   const std::vector<const FieldKeys*>& known_keys, const std::vector<const FieldKeys*>& rows)
    : m_(m), blocks_(blocks) {
  tier = 0;
  merge_at = m.tier().merge_at;
  review_at = m.tier().review_at;
  std::unordered_map<std::string, int> index;
  index.reserve(known_ids.size());
  for (size_t k = 0; k < known_ids.size(); ++k) index.emplace(known_ids[k], int(k));
  // a known record's side is made when a row first meets it: most are never met
  known_keys_ = known_keys;
  records_.resize(known_ids.size());
  built_.assign(known_ids.size(), 0);
  keyed_.resize(known_ids.size());
  // each block's target records as the resolver numbers them, looked up once per block
  known_.resize(blocks.known.size());
  known_open_.resize(blocks.known.size());
  chunk_.resize(blocks.known.size());
  for (size_t r = 0; r < blocks.known.size(); ++r) similar_.emplace_back(m.similarity(r));
  for (size_t r = 0; r < blocks.known.size(); ++r)
    for (const auto& [key, ids] : blocks.known[r]) {
      auto& out = known_[r][key];
      for (const auto& id : ids) {
        // one not fetched (it conflicts with every row of its blocks) still takes its place
        const auto it = index.find(id);
        out.push_back(it == index.end() ? -1 : it->second);
      }
    }
  for (size_t r = 0; r < blocks.open.size() && r < known_open_.size(); ++r)
    for (const auto& [key, ids] : blocks.open[r]) {
      auto& out = known_open_[r][key];
      for (const auto& id : ids)
        if (const auto it = index.find(id); it != index.end()) out.push_back(it->second);  // all were fetched
    }
  rows_.reserve(rows.size());
  for (const auto* r : rows) {
    rows_.push_back(m.side(*r));
    open_rows_.push_back(m.open_row(rows_.back()));
  }
}

std::vector<int> FuzzyRun::blocked_records(size_t row, const std::vector<int>&) {
  // A block as the target would hold it had every earlier row been loaded before: its stored
  // records (lowest ids first), then those that came to hold the key in this chunk, in order;
  // the first max_candidates of them. So cutting a file into chunks changes nothing.
  std::vector<int> out;
  const auto cap = size_t(m_.tier().max_candidates);
  seen_.resize(records_.size(), -1);
  for (size_t r = 0; r < m_.rules(); ++r) {
    const auto key = m_.rule_key(r, rows_[row], blocks_);
    if (!key) continue;
    size_t taken = 0;
    // an open block (the row holds every never_across value) holds only records that hold none,
    // as its partial index does: one that came to hold one in this chunk has left it
    const bool open = open_rows_[row] && m_.similarity(r) == 0;
    auto take = [&](const std::vector<int>& records) {
      for (int k : records) {
        if (taken == cap) return;
        if (open && k >= 0 && FuzzyMatcher::holds_never(side_of(k))) continue;
        ++taken;
        if (k < 0 || seen_[size_t(k)] == int(row)) continue;
        seen_[size_t(k)] = int(row);
        out.push_back(k);
      }
    };
    const auto& stored = open ? known_open_[r] : known_[r];
    if (const auto it = stored.find(*key); it != stored.end()) take(it->second);
    if (m_.similarity(r) > 0) {
      // a trigram rule: the records this chunk gave a key similar to the row's
      if (const auto g = blocks_.trigrams.find(*key); g != blocks_.trigrams.end())
        take(similar_[r].similar(g->first, g->second, cap));
    } else if (const auto it = chunk_[r].find(*key); it != chunk_[r].end()) {
      take(it->second);
    }
  }
  std::sort(out.begin(), out.end());  // the same order whatever the blocks' order
  return out;
}

std::vector<std::pair<int, double>> FuzzyRun::candidates(size_t row, const std::vector<int>& row_records) {
  const FuzzySide& mine = rows_[row];
  std::vector<std::pair<int, double>> out;
  std::vector<PairExplanation> shown;
  for (int r : blocked_records(row, row_records)) {
    const FuzzySide& theirs = side_of(r);
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

const FuzzySide& FuzzyRun::side_of(int record) {
  const auto r = size_t(record);
  if (r < built_.size() && !built_[r]) {
    records_[r] = m_.side(*known_keys_[r]);
    built_[r] = 1;
  }
  return records_[r];
}

void FuzzyRun::landed(size_t row, int record) {
  if (size_t(record) >= records_.size()) {
    records_.resize(size_t(record) + 1);
    keyed_.resize(size_t(record) + 1);
  }
  side_of(record);
  FuzzySide& held = records_[size_t(record)];
  auto& keyed = keyed_[size_t(record)];
  if (keyed.empty()) {
    // the keys its values make before this row: a known record is found by them through the
    // target's index already; a new record has none yet
    keyed.resize(m_.rules());
    for (size_t r = 0; r < m_.rules(); ++r) keyed[r] = m_.rule_key(r, held, blocks_).has_value();
  }
  const FuzzySide& keys = rows_[row];
  auto fill = [](auto& into, const auto& from) {
    if (into.size() < from.size()) into.resize(from.size());
    for (size_t k = 0; k < from.size(); ++k)
      if (!into[k] && from[k]) into[k] = from[k];
  };
  fill(held.compare, keys.compare);
  fill(held.never, keys.never);
  fill(held.block, keys.block);
  register_keys(record);
}

void FuzzyRun::register_keys(int record) {
  // fill_nulls only completes keys, never changes one: a key, once registered, stays right
  for (size_t r = 0; r < m_.rules(); ++r) {
    if (keyed_[size_t(record)][r]) continue;
    if (auto key = m_.rule_key(r, records_[size_t(record)], blocks_)) {
      if (m_.similarity(r) == 0) {
        chunk_[r][*key].push_back(record);
      } else if (const auto g = blocks_.trigrams.find(*key); g != blocks_.trigrams.end()) {
        similar_[r].add(record, g->first, g->second);
      }
      keyed_[size_t(record)][r] = true;
    }
  }
}

}  // namespace ingestd::engine
