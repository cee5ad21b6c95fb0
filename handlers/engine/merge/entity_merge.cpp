#include "handlers/engine/merge/entity_merge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory_resource>
#include <set>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "handlers/engine/identity/block_refill.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

using config::MergePolicy;

EntityMerge::EntityMerge(pqxx::transaction_base& tx, Metrics* metrics, const TableInfo& table,
                         const config::Entity& entity, const Matcher& matcher, const std::string& bookkeeping_schema,
                         const std::string& batch_id, const std::map<std::string, std::string>& vars)
    : sql_(tx, metrics, table.canonical, batch_id, entity.name, vars), table_(table), entity_(entity), matcher_(matcher),
      bk_(tx.quote_name(bookkeeping_schema)) {
  for (size_t k = 0; k < entity_.fields.size(); ++k)
    if (entity_.fields[k].lookup && entity_.fields[k].on_missing == config::OnMissing::Defer) deferred_.push_back(k);
}

EntityCounts EntityMerge::run(const StagedPart& part) {
  // Statistics steer the planner away from nested loops over a big chunk; for a few rows
  // (small events) the ANALYZEs would cost more than the statements they steer.
  const bool analyze = part.rows.size() + part.waiting.size() >= 1000;
  // Finding and inserting hold a per-table lock until commit, so instances racing on the same
  // new person still create one record (rule 6).
  sql_.exec("SELECT pg_advisory_xact_lock(hashtextextended('ingestd:table:' || :table, 0))", "lock");
  create_work_tables();
  tune();
  const Decisions d = decide(part);
  sql_.timed("stage", [&] { stage(part, d); });
  if (analyze) sql_.exec("ANALYZE " + stg_, "stage");
  EntityCounts counts = record_lineage();
  if (matcher_.fuzzy()) sql_.timed("scores", [&] { record_scores(part, d, counts); });
  // A chunk that creates nothing and changes nothing (the same rows again) needs neither the
  // per-record values nor a pass over its records: a record changes only if one of its rows
  // does (the lineage step decided that from the stored values).
  if (counts.inserted || counts.updated) aggregate();
  if (counts.inserted) insert_new();
  if (counts.updated) merge_matched();
  remember(d);
  defer_lookups();
  queue_reviews();
  return counts;
}

void EntityMerge::create_work_tables() {
  // The work tables live as long as the connection: creating and dropping temp tables per
  // entity and chunk was half the server time of a small event (catalog rows for each table,
  // its columns and its type). They are created once, ON COMMIT DELETE ROWS, and emptied after
  // each use (clear); they are named after their shape, so every entity and config version
  // has its own.
  std::string stg = "row_number bigint, record_id text COLLATE \"C\", is_new bool, action text, tier int, "
                    "rec_tier int, founds bool, reasons text, score real, review_record text, solo bool";
  std::string agg = "record_id text COLLATE \"C\", is_new bool, tier int";
  for (size_t k = 0; k < entity_.fields.size(); ++k) {
    const std::string col = "f" + std::to_string(k) + " " + table_.column_types.at(entity_.fields[k].column);
    stg += ", " + col;
    agg += ", " + col;
  }
  for (size_t k : deferred_) stg += ", d" + std::to_string(k) + " text";
  char shape[17];
  snprintf(shape, sizeof shape, "%016zx", std::hash<std::string>{}(stg + "|" + agg));
  stg_ = std::string("ingestd_stg2_") + shape;
  agg_ = std::string("ingestd_agg2_") + shape;
  std::string body;
  work_tables_.clear();
  for (const auto& [name, cols] : {std::pair{stg_, stg}, std::pair{agg_, agg}}) {
    body += "IF to_regclass('pg_temp." + name + "') IS NULL THEN CREATE TEMP TABLE " + name + " (" + cols +
            ") ON COMMIT DELETE ROWS; END IF; ";
    work_tables_ += (work_tables_.empty() ? "pg_temp." : ", pg_temp.") + name;
  }
  sql_.exec("DO $ingestd$ BEGIN " + body + "END $ingestd$", "stage");
}

void EntityMerge::clear(size_t staged_rows) {
  // Within one transaction the tables serve again (the next entity of an atomic load, the
  // halves of a chunk split around a refused row). DELETE is cheapest for a few rows; for a
  // big chunk TRUNCATE, so later statements do not scan dead rows. Commit empties them too.
  if (staged_rows >= 1000) sql_.exec("TRUNCATE " + work_tables_, "stage");
  else sql_.exec("DELETE FROM pg_temp." + stg_ + "; DELETE FROM pg_temp." + agg_, "stage");
}

void EntityMerge::tune() {
  // Sorts and hashes over a whole chunk spill to disk at the default 4MB; raise work_mem for
  // this transaction only (never lower what the operator set). JIT compiling costs a few
  // hundred milliseconds a statement, more than it saves on a chunk. Typed keys compare with
  // the engine's as ISO text.
  sql_.exec("SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')) / 1024, 65536)::text || "
            "'kB', true), set_config('default_statistics_target', '10', true), set_config('jit', 'off', true), "
            "set_config('DateStyle', 'ISO, YMD', true)",
            "stage");
}

std::vector<std::string> EntityMerge::draw_ids(size_t n) {
  // New records take ids from the id column's default (its sequence), in input order.
  std::vector<std::string> ids;
  if (n == 0) return ids;
  auto r = sql_.exec("SELECT (" + table_.id_default + ")::text FROM generate_series(1, " + std::to_string(n) + ")",
                     "decide");
  for (const auto& row : r) ids.push_back(row[0].as<std::string>());
  return ids;
}

std::vector<FoundRecord> EntityMerge::find_known(const StagedPart& part, const std::vector<const FieldKeys*>& row_keys,
                                                 Blocks& blocks) {
  const size_t tiers = matcher_.tiers().size();
  // the keys the chunk looks for, once each
  std::vector<ProbeKey> probes;
  // views of part.tier_keys, their nodes from one arena: freed at once, not one by one
  std::pmr::monotonic_buffer_resource arena;
  std::vector<std::pmr::unordered_set<std::string_view>> seen;
  seen.reserve(tiers);
  for (size_t t = 0; t < tiers; ++t) seen.emplace_back(&arena).reserve(part.rows.size());
  for (size_t i = 0; i < part.rows.size(); ++i)
    for (size_t t = 0; t < tiers; ++t) {
      const auto& key = part.tier_keys[i][t];
      if (!key || !seen[t].emplace(*key).second) continue;
      probes.push_back(probe_key(matcher_, t, *key, part.rows[i]->keys[part.entity]));
    }
  auto found = matcher_.find(sql_, probes);
  if (const FuzzyMatcher* fuzzy = matcher_.fuzzy()) {
    // and the records the fuzzy tier's blocks lead to, that no exact key found. A row is never
    // judged by the fuzzy tier when a found record holds the key of its first tier with one (no
    // tier above can rule that record out): its blocks need no probe (a file loaded again).
    std::vector<std::unordered_set<std::string>> held(tiers);
    for (const auto& f : found) {
      const KnownRecord k = known_record(matcher_, f);  // its keys as the resolver indexes them
      for (size_t t = 0; t < tiers && t < k.keys.size(); ++t) held[t].insert(k.keys[t].begin(), k.keys[t].end());
    }
    std::vector<char> probed(part.rows.size(), 1);
    for (size_t i = 0; i < part.rows.size(); ++i)
      for (size_t t = 0; t < tiers; ++t)
        if (const auto& key = part.tier_keys[i][t]) {
          probed[i] = !held[t].count(*key);
          break;
        }
    blocks = fuzzy->block(sql_, row_keys, probed);
    std::unordered_set<std::string> have;
    std::vector<std::string> more;
    for (const auto& f : found) have.insert(f.id);
    for (auto& id : blocks.known_ids())
      if (!have.count(id)) more.push_back(std::move(id));
    blocked_records_ = more.size() + blocks.named() / 16;
    for (auto& f : matcher_.fetch(sql_, more)) {
      f.by_blocks = true;
      found.push_back(std::move(f));
    }
    std::vector<const FieldKeys*> stored;
    for (const auto& f : found) stored.push_back(&f.own);
    fuzzy->add_codes(sql_, blocks, stored);  // the block keys their stored values make
  }
  return found;
}

EntityMerge::Decisions EntityMerge::decide(const StagedPart& part) {
  Decisions d;
  const size_t tiers = matcher_.tiers().size();
  std::vector<const FieldKeys*> row_keys;
  for (Row* r : part.rows) row_keys.push_back(&r->keys[part.entity]);
  Blocks blocks;
  std::vector<KnownRecord> known;
  {
    auto found = find_known(part, row_keys, blocks);
    known.reserve(found.size());
    d.known.reserve(found.size());
    for (auto& f : found) {
      // one only the fuzzy tier's blocks found is keyed when a row lands on it (OwnKeys::stored)
      known.push_back(f.by_blocks ? KnownRecord{std::move(f.id), {}, true} : known_record(matcher_, f));
      d.known.push_back({std::move(f.own), std::move(f.memory)});
    }
  }
  if (matcher_.fuzzy()) {
    FuzzyVerdicts verdicts;
    d.res = resolve_fuzzy(sql_, matcher_, entity_, blocks, known, d.known, row_keys, part.tier_keys, verdicts);
    d.explained = std::move(verdicts.explained);
    blocked_records_ += verdicts.fetched;
    over_blocks_ += verdicts.over;
  } else {
    RecordHoldings holdings(entity_, matcher_, d.known, row_keys);
    d.res = resolve_rows(part.tier_keys, known, tiers, nullptr, &holdings);
  }
  size_t fresh = 0;
  for (const auto& r : d.res.records) fresh += r.known < 0;
  auto ids = draw_ids(fresh);
  size_t next = 0;
  for (const auto& r : d.res.records) d.ids.push_back(r.known >= 0 ? known[size_t(r.known)].id : ids[next++]);
  d.keys = record_keys(entity_, matcher_, d.res, row_keys, part.tier_keys, d.known);
  return d;
}

std::vector<int> EntityMerge::record_tiers(const Decisions& d) {
  // $tier: a new record's highest tier it holds a key at; a matched one's best tier of its rows
  std::vector<int> rec_tier(d.res.records.size(), 0);
  for (size_t r = 0; r < d.res.records.size(); ++r)
    if (d.res.records[r].known < 0) rec_tier[r] = d.keys.held_tier[r];
  for (const auto& row : d.res.rows)
    if (row.kind == RowDecision::Kind::Match && d.res.records[size_t(row.record)].known >= 0) {
      int& t = rec_tier[size_t(row.record)];
      if (!t || row.tier < t) t = row.tier;
    }
  return rec_tier;
}

void EntityMerge::stage(const StagedPart& part, const Decisions& d) {
  std::vector<std::string> cols{"row_number", "record_id", "is_new", "action", "tier", "rec_tier", "founds", "reasons",
                                "score", "review_record", "solo"};
  for (size_t k = 0; k < entity_.fields.size(); ++k) cols.push_back("f" + std::to_string(k));
  for (size_t k : deferred_) cols.push_back("d" + std::to_string(k));
  const std::vector<int> rec_tier = record_tiers(d);
  // A new record whose only row is this one takes the row's values as they are: it is
  // inserted straight from the staging table, without the aggregate (most rows of a new file).
  std::vector<int> landed(d.res.records.size(), 0);
  for (const auto& rd : d.res.rows)
    if (rd.kind != RowDecision::Kind::Review) ++landed[size_t(rd.record)];
  rows_out_.clear();
  CopyIn copy(sql_.tx(), "pg_temp." + stg_, cols);
  std::string line;
  auto row_line = [&](const Row& r, const std::optional<std::string>& id, bool is_new, const char* action,
                      const std::optional<std::string>& tier, const std::optional<std::string>& rtier, bool founds,
                      const std::optional<std::string>& reasons, bool values, const RowDecision* rd, bool solo) {
    line = std::to_string(r.number) + '\t';
    append_copy_value(line, id);
    line += is_new ? "\tt\t" : "\tf\t";
    line += action;
    for (const auto* v : {&tier, &rtier}) {
      line += '\t';
      append_copy_value(line, *v);
    }
    line += founds ? "\tt\t" : "\tf\t";
    append_copy_value(line, reasons);
    line += '\t';
    append_copy_value(line, rd && rd->score ? std::optional<std::string>(std::to_string(*rd->score)) : std::nullopt);
    line += '\t';
    // Only a scored (fuzzy) review names a best candidate: a row that two records claim by exact
    // keys has no better one, and `review merge` without --into must not pick the first.
    append_copy_value(line, rd && rd->score && !rd->candidates.empty()
                                ? std::optional<std::string>(d.ids[size_t(rd->candidates[0].first)])
                                : std::nullopt);
    line += solo ? "\tt" : "\tf";
    for (const auto& v : r.values[part.entity]) {
      line += '\t';
      append_copy_value(line, values ? v : std::nullopt);
    }
    for (size_t k : deferred_) {
      line += '\t';
      append_copy_value(line, values ? r.deferred[part.entity][k] : std::nullopt);
    }
    copy.line(line);
    rows_out_.emplace_back(r.number, id.value_or(""), action[0] == 'r' || action[0] == 'w');
  };
  auto num = [](int v) { return v ? std::optional<std::string>(std::to_string(v)) : std::nullopt; };
  for (size_t i = 0; i < part.rows.size(); ++i) {
    const RowDecision& rd = d.res.rows[i];
    if (rd.kind == RowDecision::Kind::Review) {
      row_line(*part.rows[i], std::nullopt, false, "review", std::nullopt, std::nullopt, false, review_reason(d, i), true,
               &rd, false);
      continue;
    }
    const auto rec = size_t(rd.record);
    const bool is_new = d.res.records[rec].known < 0;
    row_line(*part.rows[i], d.ids[rec], is_new, is_new ? "insert" : "match", num(rd.tier), num(rec_tier[rec]), rd.founds,
             std::nullopt, true, &rd, is_new && landed[rec] == 1);
  }
  // a row whose referenced record is in review waits with its values, completed by the decision
  for (Row* r : part.waiting)
    row_line(*r, std::nullopt, false, "wait", std::nullopt, std::nullopt, false, wait_reason(), true, nullptr, false);
  copy.complete();
}

std::vector<size_t> EntityMerge::mergeable_fields() const {
  std::vector<size_t> out;
  for (size_t k = 0; k < entity_.fields.size(); ++k)
    if (entity_.fields[k].merge.value_or(entity_.merge) != MergePolicy::Keep &&
        entity_.fields[k].column != entity_.id_column)
      out.push_back(k);
  return out;
}

void EntityMerge::aggregate() {
  // One value per record and field: the first non-null (last for overwrite; the founding row's
  // for keep, which only a new record uses). The rows come sorted once by (record, row);
  // array_agg keeps its input order (temp tables are never scanned by parallel workers, so no
  // partial aggregates reorder it). An ORDER BY inside each aggregate would sort every group
  // once per field.
  const auto& fields = entity_.fields;
  const std::string values = sql::join_n(fields.size(), "", [&](size_t k) {
    const std::string f = "s.f" + std::to_string(k);
    const auto policy = fields[k].merge.value_or(entity_.merge);
    if (policy == MergePolicy::Keep) return ", (array_agg(" + f + ") FILTER (WHERE s.founds))[1] AS f" + std::to_string(k);
    return ", (array_agg(" + f + ") FILTER (WHERE " + f + " IS NOT NULL))[" +
           (policy == MergePolicy::Overwrite ? "count(" + f + ")" : std::string("1")) + "] AS f" + std::to_string(k);
  });
  sql_.exec("INSERT INTO " + agg_ + " SELECT s.record_id, bool_or(s.is_new), min(s.rec_tier)" + values +
                " FROM (SELECT * FROM " + stg_ + " WHERE action NOT IN ('review', 'wait') AND NOT solo ORDER BY record_id, row_number) s "
                "GROUP BY "
                "s.record_id",
            "aggregate");
}

EntityCounts EntityMerge::record_lineage() {
  // Each row's action as if the rows had come one at a time: a row updates its record when it
  // fills a field neither the stored record nor an earlier row of the chunk had (fill_nulls),
  // or brings a value different from the latest before it (overwrite). Decided before the
  // records change, from their stored values; one lineage row per entity and chunk. Its arrays
  // are in row order: the rows come sorted once, and array_agg keeps its input order (see
  // aggregate()), where an ORDER BY inside each aggregate would sort the chunk five times.
  // A row that is the only row of its new record (solo: most of a new file) founds it: it
  // needs neither the windows' sort nor the target, and skips both.
  sql::Quoter q(sql_.tx());
  std::vector<std::string> windows, conds;
  for (size_t k : mergeable_fields()) {
    const std::string f = "w.f" + std::to_string(k), s = "s.f" + std::to_string(k), n = std::to_string(k);
    const std::string col = q.col("t", entity_.fields[k].column);
    const bool json = table_.column_types.at(entity_.fields[k].column) == "json";
    if (entity_.fields[k].merge.value_or(entity_.merge) == MergePolicy::FillNulls) {
      windows.push_back("count(" + s + ") OVER (PARTITION BY s.record_id ORDER BY s.row_number ROWS BETWEEN UNBOUNDED "
                        "PRECEDING AND 1 PRECEDING) AS p" + n);
      conds.push_back("(" + f + " IS NOT NULL AND " + col + " IS NULL AND w.p" + n + " = 0)");
    } else {
      windows.push_back("lag(" + s + ") OVER (PARTITION BY s.record_id, " + s + " IS NULL ORDER BY s.row_number) AS l" + n);
      const std::string as = json ? "::text" : "";
      conds.push_back("(" + f + " IS NOT NULL AND " + f + as + " IS DISTINCT FROM coalesce(w.l" + n + as + ", " + col +
                      as + "))");
    }
  }
  const std::string changed = conds.empty() ? "false" : sql::join(conds, " OR ");
  const std::string target =
      conds.empty() ? "" : " LEFT JOIN LATERAL (SELECT * FROM " + table_.quoted + " t WHERE NOT w.is_new AND t." +
                               q.id(entity_.id_column) + " = w.record_id::" + table_.id_type + " OFFSET 0) t ON true";
  auto counts = sql_.probe(
      "WITH w AS (SELECT s.*" + std::string(windows.empty() ? "" : ", " + sql::join(windows, ", ")) + " FROM " + stg_ +
          " s WHERE s.action NOT IN ('review', 'wait') AND NOT s.solo), d AS (SELECT w.row_number, w.record_id, CASE WHEN "
          "w.founds THEN 'i' WHEN " + changed + " THEN 'u' ELSE 'n' END AS action, CASE WHEN w.founds THEN NULL ELSE w.tier "
          "END AS tier, w.score FROM w" + target + " UNION ALL SELECT row_number, record_id, 'i', NULL, score FROM " + stg_ +
          " WHERE solo UNION ALL SELECT row_number, NULL, 'r', NULL, score FROM " + stg_ + " WHERE action IN ('review', "
          "'wait')), "
          "ins AS (INSERT INTO " + bk_ + ".lineage (batch_id, entity, table_name, first_row, last_row, row_numbers, "
          "record_ids, actions, tiers, scores) SELECT :batch::uuid, :entity, :table, min(row_number), max(row_number), "
          "array_agg(row_number), array_agg(record_id), array_agg(action::\"char\"), array_agg(tier::smallint), CASE WHEN "
          "bool_or(score IS NOT NULL) THEN array_agg(score) END FROM (SELECT * FROM d ORDER BY row_number) d HAVING "
          "count(*) > 0) "
          "SELECT action, tier, count(*) FROM d GROUP BY 1, 2",
      "lineage");
  EntityCounts c;
  for (const auto& row : counts) {
    const char action = row[0].as<std::string>()[0];
    const int64_t n = row[2].as<int64_t>();
    if (action == 'i') c.inserted += n;
    else if (action == 'u') c.updated += n;
    else if (action == 'n') c.unchanged += n;
    else c.review += n;
    if ((action == 'u' || action == 'n') && !row[1].is_null()) c.tier_matches[row[1].as<int>()] += n;
  }
  return c;
}

void EntityMerge::insert_new() {
  sql::Quoter q(sql_.tx());
  std::vector<std::string> cols{q.id(entity_.id_column)}, vals{"a.record_id::" + table_.id_type};
  std::set<std::string> seen{entity_.id_column};
  for (size_t k = 0; k < entity_.fields.size(); ++k) {
    if (!seen.insert(entity_.fields[k].column).second) continue;
    cols.push_back(q.id(entity_.fields[k].column));
    vals.push_back("a.f" + std::to_string(k));
  }
  // the aggregated records, and the one-row ones as staged (aggregate() left them out)
  const std::string fields = sql::join_n(entity_.fields.size(), "", [](size_t k) { return ", f" + std::to_string(k); });
  for (const auto& [col, spec] : entity_.on_insert) {
    if (!seen.insert(col).second) continue;
    cols.push_back(q.id(col));
    vals.push_back(value_expr(col, spec, "a.tier"));
  }
  sql_.exec("INSERT INTO " + table_.quoted + " (" + sql::join(cols, ", ") + ")" +
                (table_.id_always_identity ? " OVERRIDING SYSTEM VALUE" : "") + " SELECT " + sql::join(vals, ", ") +
                " FROM (SELECT record_id, tier" + fields + " FROM " + agg_ + " WHERE is_new UNION ALL SELECT record_id, "
                "rec_tier" + fields + " FROM " + stg_ + " WHERE solo) a ORDER BY a.record_id",
            "insert");
}

void EntityMerge::merge_matched() {
  // Record what is overwritten, then update only what changes (rule 7).
  sql::Quoter q(sql_.tx());
  struct Change {
    std::string column, cond;
    size_t field;
  };
  std::vector<Change> chg;
  for (size_t k : mergeable_fields()) {
    const auto& f = entity_.fields[k];
    const std::string tc = q.col("t", f.column), af = "a.f" + std::to_string(k);
    const std::string as_text = table_.column_types.at(f.column) == "json" ? "::text" : "";
    chg.push_back({f.column,
                   f.merge.value_or(entity_.merge) == MergePolicy::FillNulls
                       ? "(" + tc + " IS NULL AND " + af + " IS NOT NULL)"
                       : "(" + af + " IS NOT NULL AND " + tc + as_text + " IS DISTINCT FROM " + af + as_text + ")",
                   k});
  }
  if (chg.empty()) return;
  const std::string any = sql::join_n(chg.size(), " OR ", [&](size_t i) { return chg[i].cond; });
  std::string vals = sql::join_n(chg.size(), ", ", [&](size_t i) {
    return "(" + q.lit(chg[i].column) + ", " + q.col("t", chg[i].column) + "::text, a.f" + std::to_string(chg[i].field) +
           "::text, " + chg[i].cond + ")";
  });
  std::string set = sql::join_n(chg.size(), ", ", [&](size_t i) {
    return q.id(chg[i].column) + " = CASE WHEN " + chg[i].cond + " THEN a.f" + std::to_string(chg[i].field) + " ELSE " +
           q.col("t", chg[i].column) + " END";
  });
  for (const auto& [col, spec] : entity_.on_update) {
    vals += ", (" + q.lit(col) + ", " + q.col("t", col) + "::text, " + value_expr(col, spec, "a.tier") + "::text, true)";
    set += ", " + q.id(col) + " = " + value_expr(col, spec, "a.tier");
  }
  const std::string by_id = "t." + q.id(entity_.id_column) + " = a.record_id::" + table_.id_type;
  // The target is reached by its primary key, one probe per matched record (LATERAL … OFFSET 0
  // here, nested loops for the UPDATE): a hash join would read the whole table for every
  // chunk, a cost that grows with the table, not with the chunk.
  sql_.probe("INSERT INTO " + bk_ + ".changes (batch_id, table_name, record_id, column_name, before, after) SELECT "
             ":batch::uuid, :table, a.record_id, v.col, v.before, v.after FROM " + agg_ + " a CROSS JOIN LATERAL (SELECT "
             "* FROM " + table_.quoted + " t WHERE " + by_id + " OFFSET 0) t CROSS JOIN LATERAL (VALUES " + vals +
             ") v(col, before, after, chg) WHERE NOT a.is_new AND (" + any + ") AND v.chg",
             "update");
  sql_.probe("UPDATE " + table_.quoted + " t SET " + set + " FROM " + agg_ + " a WHERE NOT a.is_new AND " + by_id +
             " AND (" + any + ")",
             "update");
}

void EntityMerge::remember(const Decisions& d) {
  std::vector<std::tuple<std::string, int, std::string>> keys;
  keys.reserve(d.keys.remember.size());
  for (const auto& m : d.keys.remember) keys.emplace_back(d.ids[size_t(m.record)], m.tier, m.key);
  sql_.timed("keys", [&] { matcher_.remember(sql_, keys); });
}

void EntityMerge::defer_lookups() {
  // Lookups left for a later phase (resolve_refs), per record that got the row.
  sql::Quoter q(sql_.tx());
  for (size_t k : deferred_) {
    const auto& f = entity_.fields[k];
    const std::string dk = "s.d" + std::to_string(k);
    sql_.exec("INSERT INTO " + bk_ + ".deferred_refs (batch_id, table_name, record_id, column_name, lookup_table, "
              "lookup_key, value) SELECT DISTINCT :batch::uuid, :table, s.record_id, " + q.lit(f.column) + ", " +
                  q.lit(f.lookup->table) + ", " + q.lit(f.lookup->key) + ", " + dk + " FROM " + stg_ +
                  " s WHERE s.action NOT IN ('review', 'wait') AND " + dk + " IS NOT NULL",
              "deferred");
  }
}

std::string EntityMerge::wait_reason() const {
  std::string refs;
  for (const auto& f : entity_.fields)
    if (f.ref) refs += (refs.empty() ? "" : ", ") + *f.ref;
  return "waits for the review of this row's " + refs;
}

void EntityMerge::queue_reviews() {
  // Rows two records claim wait for a person; rows of an entity whose reference is among them
  // wait for that decision (status waiting, not listed).
  sql::Quoter q(sql_.tx());
  const std::string obj = "'row_number', s.row_number" + sql::join_n(entity_.fields.size(), "", [&](size_t k) {
                            return ", " + q.lit(entity_.fields[k].name) + ", s.f" + std::to_string(k);
                          });
  sql_.exec("INSERT INTO " + bk_ + ".review_queue (batch_id, table_name, candidate, reasons, record_id, score, "
            "status) SELECT :batch::uuid, :table, jsonb_build_object(" + obj + "), s.reasons, s.review_record, s.score, "
            "CASE WHEN s.action = 'wait' THEN 'waiting' ELSE 'open' END FROM " + stg_ +
                " s WHERE s.action IN ('review', 'wait') AND s.reasons IS NOT NULL ORDER BY s.row_number",
            "review");
}

std::vector<std::tuple<int64_t, std::string, bool>> EntityMerge::row_records() { return rows_out_; }

std::string EntityMerge::value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const {
  std::string e;
  if (spec == "$now") e = "now()";
  else if (spec == "$batch_id") e = ":batch";
  else if (spec == "$tier") e = tier_expr;
  else if (std::find(config::kStampVariables.begin(), config::kStampVariables.end(), spec) !=
           config::kStampVariables.end())
    e = ":var_" + spec.substr(1);  // the event's own: source_system, program, submitted_by
  else e = sql_.tx().quote(spec);
  return "(" + e + ")::" + table_.column_types.at(column);
}

}  // namespace ingestd::engine
