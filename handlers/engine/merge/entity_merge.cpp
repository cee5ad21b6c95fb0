#include "handlers/engine/merge/entity_merge.hpp"

#include <cstdio>
#include <functional>
#include <set>
#include <string_view>

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
  const bool analyze = part.rows.size() >= 1000;
  // Matching and inserting hold a per-table lock until commit, so instances racing on the
  // same new person still create one record (rule 6).
  sql_.exec("SELECT pg_advisory_xact_lock(hashtextextended('ingestd:table:' || :table, 0))", "lock");
  create_work_tables();
  stage(part);
  tune(analyze);
  matcher_.find_candidates(sql_, analyze);
  decide(analyze);
  aggregate();
  insert_new();
  merge_matched();
  matcher_.remember_keys(sql_, analyze);
  defer_lookups();
  queue_reviews();
  return record_lineage();
}

void EntityMerge::create_work_tables() {
  // The work tables live as long as the connection: creating and dropping nine temp tables
  // per entity and chunk was half the server time of a small event (catalog rows for each
  // table, its columns and its type). They are created once, ON COMMIT DELETE ROWS, and
  // emptied after each use (clear); the two whose columns follow the entity's fields are
  // named after their shape, so every entity and config version has its own.
  std::string stg = "row_number bigint, grp int, chunk_tier int, grp_first bool";
  std::string agg = "record_id text COLLATE \"C\", is_new bool, tier int";
  for (size_t k = 0; k < entity_.fields.size(); ++k) {
    const std::string col = "f" + std::to_string(k) + " " + table_.column_types.at(entity_.fields[k].column);
    stg += ", " + col;
    agg += ", " + col;
  }
  for (size_t k : deferred_) stg += ", d" + std::to_string(k) + " text";
  char shape[17];
  snprintf(shape, sizeof shape, "%016zx", std::hash<std::string>{}(stg + "|" + agg));
  stg_ = std::string("ingestd_stg_") + shape;
  agg_ = std::string("ingestd_agg_") + shape;
  const std::pair<std::string, std::string> tables[] = {
      {stg_, stg},
      {"ingestd_gk", "grp int, tier int, key text"},
      {"ingestd_hits", "grp int, tier int, key text, record_id text COLLATE \"C\""},
      {"ingestd_cand", "grp int, record_id text COLLATE \"C\", tier int"},
      {"ingestd_rt", "record_id text COLLATE \"C\", tier int"},
      {"ingestd_blocked", "grp int, record_id text COLLATE \"C\""},
      {"ingestd_res", "grp int, record_id text COLLATE \"C\", tier int, action text, changed bool, candidates text"},
      {agg_, agg},
      {"ingestd_chg", "record_id text COLLATE \"C\""}};
  std::string body;
  work_tables_.clear();
  for (const auto& [name, cols] : tables) {
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
  if (staged_rows >= 1000) {
    sql_.exec("TRUNCATE " + work_tables_, "stage");
    return;
  }
  std::string stmts;
  for (size_t b = 0, e; b < work_tables_.size(); b = e + 2) {
    e = work_tables_.find(", ", b);
    if (e == std::string::npos) e = work_tables_.size();
    stmts += "DELETE FROM " + work_tables_.substr(b, e - b) + "; ";
  }
  sql_.exec(stmts, "stage");
}

void EntityMerge::stage(const StagedPart& part) {
  // The rows, with the group the chunk's own identity pass gave them.
  std::vector<std::string> cols{"row_number", "grp", "chunk_tier", "grp_first"};
  for (size_t k = 0; k < entity_.fields.size(); ++k) cols.push_back("f" + std::to_string(k));
  for (size_t k : deferred_) cols.push_back("d" + std::to_string(k));
  const auto& g = part.grouping;
  std::vector<std::vector<size_t>> members;  // group -> its rows, in order
  {
    CopyIn copy(sql_.tx(), "pg_temp." + stg_, cols);
    std::string line;
    for (size_t i = 0; i < part.rows.size(); ++i) {
      const Row& r = *part.rows[i];
      const auto grp = size_t(g.group[i]);
      if (grp >= members.size()) members.resize(grp + 1);
      // the first row of each group: a new record's lineage says "inserted" there only
      const bool first = members[grp].empty();
      members[grp].push_back(i);
      line = std::to_string(r.number) + '\t' + std::to_string(grp) + '\t' +
             (g.join_tier[i] > 0 ? std::to_string(g.join_tier[i]) : "\\N") + (first ? "\tt" : "\tf");
      for (const auto& v : r.values[part.entity]) {
        line += '\t';
        append_copy_value(line, v);
      }
      for (size_t k : deferred_) {
        line += '\t';
        append_copy_value(line, r.deferred[part.entity][k]);
      }
      copy.line(line);
    }
    copy.complete();
  }
  // The keys each group holds, once per (group, tier, key): the probes' input. Made here,
  // where the keys already are, rather than by the server from a key column per tier.
  // Duplicates are looked for among each group's own rows (usually one or two), not in a
  // set of every key of the chunk.
  CopyIn gk(sql_.tx(), "pg_temp.ingestd_gk", {"grp", "tier", "key"});
  std::set<std::string_view> in_group;
  std::string line;
  for (size_t grp = 0; grp < members.size(); ++grp)
    for (size_t t = 0; t < matcher_.tiers().size(); ++t) {
      in_group.clear();
      for (size_t i : members[grp]) {
        const auto& key = part.tier_keys[i][t];
        if (!key || (members[grp].size() > 1 && !in_group.insert(*key).second)) continue;
        line = std::to_string(grp) + '\t' + std::to_string(matcher_.tiers()[t].number) + '\t';
        append_copy_value(line, key);
        gk.line(line);
      }
    }
  gk.complete();
}

void EntityMerge::tune(bool analyze) {
  // Sorts and hashes over a whole chunk spill to disk at the default 4MB; raise work_mem for
  // this transaction only (never lower what the operator set). The temp tables' statistics
  // need only a small sample to steer the planner away from nested loops. JIT compiling costs
  // a few hundred milliseconds a statement, more than it saves on a chunk.
  sql_.exec("SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')) / 1024, 65536)::text || "
            "'kB', true), set_config('default_statistics_target', '10', true), set_config('jit', 'off', true)",
            "stage");
  // temp tables have no statistics until analyzed; without them the planner picks nested
  // loops that turn a 50,000-row chunk quadratic
  if (analyze) sql_.exec("ANALYZE " + stg_, "stage");
  if (analyze) sql_.exec("ANALYZE ingestd_gk", "stage");
}

void EntityMerge::decide(bool analyze) {
  // One decision per group: insert, match, or review when two records claim it. A new
  // record's id comes from the id column's default (its sequence) right here.
  sql_.exec("INSERT INTO ingestd_res SELECT g.grp, CASE WHEN count(c.record_id) = 1 THEN min(c.record_id) WHEN "
            "count(c.record_id) = 0 THEN (" + table_.id_default + ")::text END AS record_id, min(c.tier) AS tier, "
            "CASE WHEN count(c.record_id) = 0 THEN 'insert' WHEN count(c.record_id) = 1 THEN 'match' ELSE 'review' END "
            "AS action, false AS changed, string_agg(c.record_id || ' (tier ' || c.tier || ')', ', ') AS candidates "
            "FROM (SELECT DISTINCT grp FROM " + stg_ + ") g LEFT JOIN ingestd_cand c USING (grp) GROUP BY g.grp",
            "decide");
  if (analyze) sql_.exec("ANALYZE ingestd_res", "decide");
}

void EntityMerge::aggregate() {
  // One value per record and field: the first non-null (last for overwrite). The rows come
  // sorted once by (record, row); array_agg keeps its input order (temp tables are never
  // scanned by parallel workers, so no partial aggregates reorder it). An ORDER BY inside
  // each aggregate would sort every group once per field. tier: how the record was matched,
  // or for a new one how its rows were grouped (NULL: one row).
  const auto& fields = entity_.fields;
  const std::string values = sql::join_n(fields.size(), "", [&](size_t k) {
    const std::string f = "s.f" + std::to_string(k);
    const bool last = fields[k].merge.value_or(entity_.merge) == MergePolicy::Overwrite;
    return ", (array_agg(" + f + ") FILTER (WHERE " + f + " IS NOT NULL))[" + (last ? "count(" + f + ")" : "1") +
           "] AS f" + std::to_string(k);
  });
  const std::string inner = sql::join_n(fields.size(), "", [](size_t k) { return ", s.f" + std::to_string(k); });
  sql_.exec("INSERT INTO " + agg_ + " SELECT s.record_id, bool_or(s.action = 'insert') AS is_new, coalesce(min(s.tier), "
            "min(s.chunk_tier)) AS tier" + values + " FROM (SELECT r.record_id, r.action, r.tier, s.chunk_tier" + inner +
            " FROM " + stg_ + " s JOIN ingestd_res r USING (grp) WHERE r.action <> 'review' ORDER BY r.record_id, "
            "s.row_number) s GROUP BY s.record_id",
            "aggregate");
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
  for (const auto& [col, spec] : entity_.on_insert) {
    if (!seen.insert(col).second) continue;
    cols.push_back(q.id(col));
    vals.push_back(value_expr(col, spec, "a.tier"));
  }
  sql_.exec("INSERT INTO " + table_.quoted + " (" + sql::join(cols, ", ") + ")" +
                (table_.id_always_identity ? " OVERRIDING SYSTEM VALUE" : "") + " SELECT " + sql::join(vals, ", ") +
                " FROM " + agg_ + " a WHERE a.is_new",
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
  for (size_t k = 0; k < entity_.fields.size(); ++k) {
    const auto& f = entity_.fields[k];
    MergePolicy p = f.merge.value_or(entity_.merge);
    if (p == MergePolicy::Keep || f.column == entity_.id_column) continue;
    const std::string tc = q.col("t", f.column), af = "a.f" + std::to_string(k);
    const std::string as_text = table_.column_types.at(f.column) == "json" ? "::text" : "";
    chg.push_back({f.column,
                   p == MergePolicy::FillNulls
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
  sql_.probe("WITH u AS (UPDATE " + table_.quoted + " t SET " + set + " FROM " + agg_ + " a WHERE NOT a.is_new AND " +
             by_id + " AND (" + any + ") RETURNING a.record_id) INSERT INTO ingestd_chg SELECT record_id FROM u",
             "update");
  sql_.exec("UPDATE ingestd_res r SET changed = true FROM ingestd_chg c WHERE r.record_id = c.record_id", "update");
}

void EntityMerge::defer_lookups() {
  // Lookups left for a later phase (resolve_refs), per record that got the row.
  sql::Quoter q(sql_.tx());
  for (size_t k : deferred_) {
    const auto& f = entity_.fields[k];
    const std::string d = "s.d" + std::to_string(k);
    sql_.exec("INSERT INTO " + bk_ + ".deferred_refs (batch_id, table_name, record_id, column_name, lookup_table, "
              "lookup_key, value) SELECT DISTINCT :batch::uuid, :table, r.record_id, " + q.lit(f.column) + ", " +
                  q.lit(f.lookup->table) + ", " + q.lit(f.lookup->key) + ", " + d + " FROM " + stg_ +
                  " s JOIN ingestd_res r USING (grp) WHERE r.action <> 'review' AND " + d + " IS NOT NULL",
              "deferred");
  }
}

void EntityMerge::queue_reviews() {
  // Rows two records claim wait for a person.
  sql::Quoter q(sql_.tx());
  const std::string obj = "'row_number', s.row_number" + sql::join_n(entity_.fields.size(), "", [&](size_t k) {
                            return ", " + q.lit(entity_.fields[k].name) + ", s.f" + std::to_string(k);
                          });
  sql_.exec("INSERT INTO " + bk_ + ".review_queue (batch_id, table_name, candidate, reasons) SELECT :batch::uuid, :table, "
            "jsonb_build_object(" + obj + "), 'matches ' || r.candidates FROM " + stg_ +
                " s JOIN ingestd_res r USING (grp) WHERE r.action = 'review'",
            "review");
}

EntityCounts EntityMerge::record_lineage() {
  auto counts = sql_.exec(
      "WITH lin AS (SELECT s.row_number, r.record_id, r.action, r.changed, coalesce(r.tier, s.chunk_tier) AS tier, "
      "s.grp_first FROM " + stg_ + " s JOIN ingestd_res r USING (grp)), "
      "ins AS (INSERT INTO " + bk_ + ".row_lineage (batch_id, row_number, entity, table_name, record_id, action, tier) "
      "SELECT :batch::uuid, row_number, :entity, :table, CASE WHEN action = 'review' THEN NULL ELSE record_id END, "
      "CASE WHEN action = 'review' THEN 'review' WHEN action = 'insert' AND grp_first THEN 'inserted' "
      "WHEN action = 'match' AND changed THEN 'updated' ELSE 'unchanged' END, "
      "CASE WHEN action = 'insert' AND grp_first THEN NULL ELSE tier END FROM lin "
      "RETURNING action, tier) SELECT action, tier, count(*) FROM ins GROUP BY 1, 2",
      "lineage");
  EntityCounts c;
  for (const auto& row : counts) {
    const std::string action = row[0].as<std::string>();
    const int64_t n = row[2].as<int64_t>();
    if (action == "inserted") c.inserted += n;
    else if (action == "updated") c.updated += n;
    else if (action == "unchanged") c.unchanged += n;
    else if (action == "review") c.review += n;
    if ((action == "updated" || action == "unchanged") && !row[1].is_null()) c.tier_matches[row[1].as<int>()] += n;
  }
  return c;
}

std::vector<std::tuple<int64_t, std::string, bool>> EntityMerge::row_records() {
  std::vector<std::tuple<int64_t, std::string, bool>> out;
  auto r = sql_.exec("SELECT s.row_number, r.record_id, r.action = 'review' FROM " + stg_ +
                         " s JOIN ingestd_res r USING (grp)",
                     "lineage");
  out.reserve(r.size());
  for (const auto& row : r)
    out.emplace_back(row[0].as<int64_t>(), row[1].is_null() ? "" : row[1].as<std::string>(), row[2].as<bool>());
  return out;
}

std::string EntityMerge::value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const {
  std::string e;
  if (spec == "$now") e = "now()";
  else if (spec == "$batch_id") e = ":batch";
  else if (spec == "$tier") e = tier_expr;
  else if (spec.size() > 1 && spec[0] == '$') e = ":var_" + spec.substr(1);
  else e = sql_.tx().quote(spec);
  return "(" + e + ")::" + table_.column_types.at(column);
}

}  // namespace ingestd::engine
