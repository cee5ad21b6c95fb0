#include "handlers/engine/sql.hpp"

#include <chrono>
#include <cstdio>
#include <functional>
#include <regex>
#include <set>

namespace ingestd::engine {

using config::MergePolicy;

TableInfo describe_table(pqxx::transaction_base& tx, const std::string& table) {
  TableInfo t;
  auto rel = tx.exec_params(
      "SELECT c.oid::bigint, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = to_regclass($1)",
      table);
  if (rel.empty()) return t;
  t.exists = true;
  const auto oid = rel[0][0].as<int64_t>();
  t.canonical = rel[0][1].as<std::string>() + "." + rel[0][2].as<std::string>();
  t.quoted = tx.quote_name(rel[0][1].as<std::string>()) + "." + tx.quote_name(rel[0][2].as<std::string>());
  auto cols = tx.exec_params(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
      "WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped",
      oid);
  for (const auto& c : cols) t.column_types[c[0].as<std::string>()] = c[1].as<std::string>();
  auto pk = tx.exec_params("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
                           "a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::bigint::oid AND i.indisprimary",
                           oid);
  if (pk.size() == 1) t.pk = pk[0][0].as<std::string>();
  return t;
}

/// Fills the id facts once the entity's id column is known.
void describe_id(pqxx::transaction_base& tx, TableInfo& t, const std::string& id_column) {
  auto r = tx.exec_params(
      "SELECT format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), "
      "pg_get_serial_sequence($1, a.attname), a.attidentity "
      "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
      "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
      t.quoted, id_column);
  if (r.empty()) return;
  t.id_type = r[0][0].as<std::string>();
  if (!r[0][2].is_null()) t.id_default = "nextval(" + tx.quote(r[0][2].as<std::string>()) + "::regclass)";
  else if (!r[0][1].is_null()) t.id_default = r[0][1].as<std::string>();
  t.id_always_identity = !r[0][3].is_null() && r[0][3].as<std::string>() == "a";
}

void append_copy_value(std::string& line, const std::optional<std::string>& v) {
  if (!v) {
    line += "\\N";
    return;
  }
  for (char c : *v) {
    switch (c) {
      case '\\': line += "\\\\"; break;
      case '\t': line += "\\t"; break;
      case '\n': line += "\\n"; break;
      case '\r': line += "\\r"; break;
      default: line += c;
    }
  }
}

EntitySql::EntitySql(pqxx::transaction_base& tx, const TableInfo& table, const config::Entity& entity,
                     const std::string& bookkeeping_schema, const std::string& batch_id,
                     const std::map<std::string, std::string>& vars)
    : tx_(tx), table_(table), entity_(entity), bk_(tx.quote_name(bookkeeping_schema)), batch_id_(batch_id),
      vars_(vars) {
  for (size_t k = 0; k < entity_.fields.size(); ++k)
    if (entity_.fields[k].lookup && entity_.fields[k].on_missing == config::OnMissing::Defer) deferred_.push_back(k);
}

pqxx::result EntitySql::probe(const std::string& sql, const char* op) {
  // Statements that reach a big table (identity_keys, the target) one index probe per row of
  // a work table. The planner's estimates for them are unreliable: a young target or key table
  // looks small enough to scan, a table grown since autovacuum last looked looks smaller than
  // it is, and an expression index has no statistics at all. A scan per probe would make a
  // chunk quadratic, so index scans are the only choice here (a probed id column must be
  // indexed, as a primary key is).
  tx_.exec("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_hashjoin = off; "
           "SET LOCAL enable_mergejoin = off");
  auto r = exec(sql, op);
  tx_.exec("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_hashjoin; RESET enable_mergejoin");
  return r;
}

pqxx::result EntitySql::exec(const std::string& sql, const char* op) {
  // The placeholders :table :batch :entity and :var_NAME become parameters, never text.
  std::vector<std::optional<std::string>> params;
  std::string out;
  static const std::regex ph(R"(:(table|batch|entity|var_[a-z_]+)\b)");
  auto begin = std::sregex_iterator(sql.begin(), sql.end(), ph);
  size_t last = 0;
  std::map<std::string, int> index;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out += sql.substr(last, size_t(m.position()) - last);
    last = size_t(m.position() + m.length());
    std::string name = m[1].str();
    auto [pos, fresh] = index.emplace(name, int(index.size()) + 1);
    if (fresh) {
      if (name == "table") params.emplace_back(table_.canonical);
      else if (name == "batch") params.emplace_back(batch_id_);
      else if (name == "entity") params.emplace_back(entity_.name);
      else {
        auto v = vars_.find(name.substr(4));
        params.push_back(v == vars_.end() || v->second.empty() ? std::nullopt : std::optional<std::string>(v->second));
      }
    }
    out += "$" + std::to_string(pos->second) + "::text";
  }
  out += sql.substr(last);
  return tx_.exec_params(out, pqxx::prepare::make_dynamic_params(params));
}

std::vector<std::string> EntitySql::staging_columns() const {
  std::vector<std::string> cols{"row_number", "grp", "chunk_tier", "grp_first"};
  for (size_t k = 0; k < entity_.fields.size(); ++k) cols.push_back("f" + std::to_string(k));
  for (size_t k : deferred_) cols.push_back("d" + std::to_string(k));
  return cols;
}

void EntitySql::create_staging() {
  // The work tables live as long as the connection: creating and dropping nine temp tables
  // per entity and chunk was half the server time of a small event (catalog rows for each
  // table, its columns and its type). They are created once, ON COMMIT DELETE ROWS, and
  // emptied after each use (clear_staging); the two whose columns follow the entity's
  // fields are named after their shape, so every entity and config version has its own.
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
  tx_.exec("DO $ingestd$ BEGIN " + body + "END $ingestd$");
}

void EntitySql::clear_staging(size_t staged_rows) {
  // Within one transaction the tables serve again (the next entity of an atomic load, the
  // halves of a chunk split around a refused row). DELETE is cheapest for a few rows; for a
  // big chunk TRUNCATE, so later statements do not scan dead rows. Commit empties them too.
  if (staged_rows >= 1000) {
    tx_.exec("TRUNCATE " + work_tables_);
    return;
  }
  std::string sql;
  for (size_t b = 0, e; b < work_tables_.size(); b = e + 2) {
    e = work_tables_.find(", ", b);
    if (e == std::string::npos) e = work_tables_.size();
    sql += "DELETE FROM " + work_tables_.substr(b, e - b) + "; ";
  }
  tx_.exec(sql);
}

std::string EntitySql::value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const {
  const std::string type = table_.column_types.at(column);
  std::string e;
  if (spec == "$now") e = "now()";
  else if (spec == "$batch_id") e = ":batch";
  else if (spec == "$tier") e = tier_expr;
  else if (spec.size() > 1 && spec[0] == '$') e = ":var_" + spec.substr(1);
  else e = tx_.quote(spec);
  return "(" + e + ")::" + type;
}

EntityCounts EntitySql::resolve_and_merge(size_t staged_rows) {
  // Statistics steer the planner away from nested loops over a big chunk; for a few rows
  // (small events) the ANALYZEs would cost more than the statements they steer.
  const bool analyze = staged_rows >= 1000;
  const auto& fields = entity_.fields;
  const std::string T = table_.quoted;
  const std::string id = tx_.quote_name(entity_.id_column);
  const std::string idt = table_.id_type;

  // Sorts and hashes over a whole chunk spill to disk at the default 4MB; raise work_mem for
  // this transaction only (never lower what the operator set). The temp tables' statistics
  // need only a small sample to steer the planner away from nested loops. JIT compiling costs
  // a few hundred milliseconds a statement, more than it saves on a chunk.
  exec("SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')) / 1024, 65536)::text || "
       "'kB', true), set_config('default_statistics_target', '10', true), set_config('jit', 'off', true)",
       "stage");
  // 1. the keys each group holds, per tier, came with the rows (ingestd_gk)
  // temp tables have no statistics until analyzed; without them the planner picks nested
  // loops that turn a 50,000-row chunk quadratic
  if (analyze) exec("ANALYZE " + stg_, "stage");
  if (analyze) exec("ANALYZE ingestd_gk", "stage");
  // 2. candidate records by remembered keys, best tier per (group, record); a record whose
  //    keys at a higher tier all differ from the group's is not a candidate (rule 6).
  //    Each key of the chunk is one probe of the keys' hash index (LATERAL … OFFSET 0 keeps it
  //    a probe): the cost follows the chunk, not the size of identity_keys, whatever the
  //    planner believes about a table that grew since it was last analyzed. The row's table,
  //    tier and key are compared too, so a hash collision is one more row read, not a match.
  //    The hits are kept: a matched record's keys that hit need not be written again.
  //    The probes go in hash order, so neighbouring probes share index pages; a candidate record
  //    must still exist in the target (one probe per candidate, not per key).
  probe("INSERT INTO ingestd_hits SELECT gk.grp, gk.tier, gk.key, k.record_id FROM (SELECT *, hashtextextended(key, "
       "tier) AS h FROM ingestd_gk ORDER BY 4) gk CROSS JOIN LATERAL (SELECT ik.record_id FROM " + bk_ +
           ".identity_keys ik WHERE hashtextextended(ik.key, ik.tier) = gk.h AND ik.table_name = :table AND ik.tier = "
           "gk.tier AND ik.key = gk.key OFFSET 0) k",
       "match");
  probe("INSERT INTO ingestd_cand SELECT c.grp, c.record_id, c.tier FROM (SELECT grp, record_id, min(tier) "
       "AS tier FROM ingestd_hits GROUP BY 1, 2) c CROSS JOIN LATERAL (SELECT 1 FROM " + T + " t WHERE t." + id +
           " = c.record_id::" + idt + " OFFSET 0) x",
       "match");
  // The tiers at which each candidate record holds keys, read once; a candidate is blocked
  // when its group and the record both hold keys at a tier above the one they share.
  probe("INSERT INTO ingestd_rt SELECT DISTINCT c.record_id, k.tier FROM (SELECT DISTINCT record_id FROM "
       "ingestd_cand WHERE tier > 1) c CROSS JOIN LATERAL (SELECT ik.tier FROM " + bk_ +
           ".identity_keys ik WHERE ik.table_name = :table AND ik.record_id = c.record_id OFFSET 0) k",
       "match");
  if (analyze) exec("ANALYZE ingestd_rt", "match");
  if (analyze) exec("ANALYZE ingestd_cand", "match");
  // equality joins only (hashable); the tier comparison is a filter on top
  exec("SET LOCAL enable_nestloop = off", "match");
  exec("INSERT INTO ingestd_blocked SELECT DISTINCT c.grp, c.record_id FROM ingestd_cand c "
       "JOIN ingestd_rt rt ON rt.record_id = c.record_id JOIN ingestd_gk gk ON gk.grp = c.grp AND gk.tier = rt.tier "
       "WHERE rt.tier < c.tier",
       "match");
  exec("DELETE FROM ingestd_cand c USING ingestd_blocked b WHERE c.grp = b.grp AND c.record_id = b.record_id", "match");
  exec("RESET enable_nestloop", "match");
  // 3. one decision per group: insert, match, or review when two records claim it
  //    A new record's id comes from the id column's default (its sequence) right here.
  exec("INSERT INTO ingestd_res SELECT g.grp, "
       "CASE WHEN count(c.record_id) = 1 THEN min(c.record_id) WHEN count(c.record_id) = 0 THEN (" +
           table_.id_default + ")::text END AS record_id, min(c.tier) AS tier, "
       "CASE WHEN count(c.record_id) = 0 THEN 'insert' WHEN count(c.record_id) = 1 THEN 'match' ELSE 'review' END "
       "AS action, false AS changed, string_agg(c.record_id || ' (tier ' || c.tier || ')', ', ') AS candidates "
       "FROM (SELECT DISTINCT grp FROM " + stg_ + ") g LEFT JOIN ingestd_cand c USING (grp) GROUP BY g.grp",
       "match");
  if (analyze) exec("ANALYZE ingestd_res", "match");

  // 4. one value per record and field: the first non-null (last for overwrite). The rows come
  //    sorted once by (record, row); array_agg keeps its input order (temp tables are never
  //    scanned by parallel workers, so no partial aggregates reorder it). An ORDER BY inside
  //    each aggregate would sort every group once per field.
  // tier: how the record was matched, or for a new one how its rows were grouped (NULL: one row)
  std::string agg = "INSERT INTO " + agg_ + " SELECT s.record_id, bool_or(s.action = 'insert') AS is_new, "
                    "coalesce(min(s.tier), min(s.chunk_tier)) AS tier";
  std::string inner;
  for (size_t k = 0; k < fields.size(); ++k) {
    const std::string f = "s.f" + std::to_string(k);
    inner += ", " + f;
    const bool last = fields[k].merge.value_or(entity_.merge) == MergePolicy::Overwrite;
    agg += ", (array_agg(" + f + ") FILTER (WHERE " + f + " IS NOT NULL))[" +
           (last ? "count(" + f + ")" : std::string("1")) + "] AS f" + std::to_string(k);
  }
  agg += " FROM (SELECT r.record_id, r.action, r.tier, s.chunk_tier" + inner +
         " FROM " + stg_ + " s JOIN ingestd_res r USING (grp) WHERE r.action <> 'review' "
         "ORDER BY r.record_id, s.row_number) s GROUP BY s.record_id";
  exec(agg, "merge");

  // 5. new records
  {
    std::string cols = id, vals = "a.record_id::" + idt;
    std::set<std::string> seen{entity_.id_column};
    for (size_t k = 0; k < fields.size(); ++k) {
      if (!seen.insert(fields[k].column).second) continue;
      cols += ", " + tx_.quote_name(fields[k].column);
      vals += ", a.f" + std::to_string(k);
    }
    for (const auto& [col, spec] : entity_.on_insert) {
      if (!seen.insert(col).second) continue;
      cols += ", " + tx_.quote_name(col);
      vals += ", " + value_expr(col, spec, "a.tier");
    }
    exec("INSERT INTO " + T + " (" + cols + ")" + (table_.id_always_identity ? " OVERRIDING SYSTEM VALUE" : "") +
             " SELECT " + vals + " FROM " + agg_ + " a WHERE a.is_new",
         "insert");
  }

  // 6. matched records: record what is overwritten, then update only what changes
  std::vector<std::pair<std::string, std::string>> chg;  // column, change condition
  std::vector<size_t> chg_field;
  for (size_t k = 0; k < fields.size(); ++k) {
    MergePolicy p = fields[k].merge.value_or(entity_.merge);
    if (p == MergePolicy::Keep || fields[k].column == entity_.id_column) continue;
    const std::string tc = "t." + tx_.quote_name(fields[k].column), af = "a.f" + std::to_string(k);
    const bool json = table_.column_types.at(fields[k].column) == "json";
    std::string cond = p == MergePolicy::FillNulls
                           ? "(" + tc + " IS NULL AND " + af + " IS NOT NULL)"
                           : "(" + af + " IS NOT NULL AND " + tc + (json ? "::text" : "") + " IS DISTINCT FROM " + af +
                                 (json ? "::text" : "") + ")";
    chg.emplace_back(fields[k].column, cond);
    chg_field.push_back(k);
  }
  if (!chg.empty()) {
    std::string any;
    for (auto& [c, cond] : chg) any += (any.empty() ? "" : " OR ") + cond;
    std::string vals;
    for (size_t i = 0; i < chg.size(); ++i)
      vals += (i ? ", " : "") + std::string("(") + tx_.quote(chg[i].first) + ", t." + tx_.quote_name(chg[i].first) +
              "::text, a.f" + std::to_string(chg_field[i]) + "::text, " + chg[i].second + ")";
    for (const auto& [col, spec] : entity_.on_update)
      vals += ", (" + tx_.quote(col) + ", t." + tx_.quote_name(col) + "::text, " + value_expr(col, spec, "a.tier") +
              "::text, true)";
    // The target is reached by its primary key, one probe per matched record (LATERAL … OFFSET 0
    // here, nested loops for the UPDATE): a hash join would read the whole table for every
    // chunk, a cost that grows with the table, not with the chunk.
    probe("INSERT INTO " + bk_ + ".changes (batch_id, table_name, record_id, column_name, before, after) "
         "SELECT :batch::uuid, :table, a.record_id, v.col, v.before, v.after FROM " + agg_ + " a CROSS JOIN LATERAL "
         "(SELECT * FROM " + T + " t WHERE t." + id + " = a.record_id::" + idt + " OFFSET 0) t CROSS JOIN LATERAL "
         "(VALUES " + vals + ") v(col, before, after, chg) WHERE NOT a.is_new AND (" + any + ") AND v.chg",
         "merge");
    std::string set;
    for (size_t i = 0; i < chg.size(); ++i) {
      const std::string c = tx_.quote_name(chg[i].first);
      set += (i ? ", " : "") + c + " = CASE WHEN " + chg[i].second + " THEN a.f" + std::to_string(chg_field[i]) +
             " ELSE t." + c + " END";
    }
    for (const auto& [col, spec] : entity_.on_update) set += ", " + tx_.quote_name(col) + " = " + value_expr(col, spec, "a.tier");
    probe("WITH u AS (UPDATE " + T + " t SET " + set + " FROM " + agg_ + " a WHERE NOT a.is_new AND t." + id +
             " = a.record_id::" + idt + " AND (" + any + ") RETURNING a.record_id) "
             "INSERT INTO ingestd_chg SELECT record_id FROM u",
         "merge");
    exec("UPDATE ingestd_res r SET changed = true FROM ingestd_chg c WHERE r.record_id = c.record_id", "merge");
  }

  // 7. remember every key this batch saw for its records (identity memory)
  //    A new record holds no key yet: a plain insert, in index order (the key index is the most
  //    expensive part of a load). A matched record may hold some already: its keys the probes
  //    found are left out, which needs no unique index, as the table's advisory lock keeps
  //    other loads out until commit.
  exec("INSERT INTO " + bk_ + ".identity_keys (table_name, tier, key, record_id, batch_id) "
       "SELECT :table, gk.tier, gk.key, r.record_id, :batch::uuid FROM ingestd_gk gk JOIN ingestd_res r "
       "USING (grp) WHERE r.action = 'insert' ORDER BY hashtextextended(gk.key, gk.tier)",
       "keys");
  if (analyze) exec("ANALYZE ingestd_hits", "keys");
  exec("SET LOCAL enable_nestloop = off", "keys");
  exec("INSERT INTO " + bk_ + ".identity_keys (table_name, tier, key, record_id, batch_id) "
       "SELECT DISTINCT :table, gk.tier, gk.key, r.record_id, :batch::uuid FROM ingestd_gk gk JOIN ingestd_res r "
       "USING (grp) WHERE r.action = 'match' AND NOT EXISTS (SELECT 1 FROM ingestd_hits h WHERE h.grp = gk.grp AND "
       "h.tier = gk.tier AND h.key = gk.key AND h.record_id = r.record_id)",
       "keys");
  exec("RESET enable_nestloop", "keys");

  // 7b. lookups left for a later phase (resolve_refs), per record that got the row
  for (size_t k : deferred_) {
    const auto& f = fields[k];
    exec("INSERT INTO " + bk_ + ".deferred_refs (batch_id, table_name, record_id, column_name, lookup_table, "
         "lookup_key, value) SELECT DISTINCT :batch::uuid, :table, r.record_id, " + tx_.quote(f.column) + ", " +
             tx_.quote(f.lookup->table) + ", " + tx_.quote(f.lookup->key) + ", s.d" + std::to_string(k) +
             " FROM " + stg_ + " s JOIN ingestd_res r USING (grp) WHERE r.action <> 'review' AND s.d" +
             std::to_string(k) + " IS NOT NULL",
         "defer");
  }

  // 8. rows two records claim wait for a person
  {
    std::string obj = "'row_number', s.row_number";
    for (size_t k = 0; k < fields.size(); ++k) obj += ", " + tx_.quote(fields[k].name) + ", s.f" + std::to_string(k);
    exec("INSERT INTO " + bk_ + ".review_queue (batch_id, table_name, candidate, reasons) "
         "SELECT :batch::uuid, :table, jsonb_build_object(" + obj + "), 'matches ' || r.candidates "
         "FROM " + stg_ + " s JOIN ingestd_res r USING (grp) WHERE r.action = 'review'",
         "review");
  }

  // 9. lineage, and this chunk's counts from it
  auto counts = exec(
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

std::vector<std::tuple<int64_t, std::string, bool>> EntitySql::row_records() {
  std::vector<std::tuple<int64_t, std::string, bool>> out;
  auto r = exec("SELECT s.row_number, r.record_id, r.action = 'review' FROM " + stg_ + " s JOIN ingestd_res r USING (grp)",
                "lineage");
  out.reserve(r.size());
  for (const auto& row : r)
    out.emplace_back(row[0].as<int64_t>(), row[1].is_null() ? "" : row[1].as<std::string>(), row[2].as<bool>());
  return out;
}

}  // namespace ingestd::engine
