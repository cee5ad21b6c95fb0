#include "handlers/engine/explain.hpp"

#include "handlers/engine/catalog.hpp"

namespace ingestd::engine {

namespace {

using nlohmann::json;

std::string text(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }
json maybe(const pqxx::field& f) { return f.is_null() ? json(nullptr) : json(f.c_str()); }

/// A lineage action code (i, u, n, r) as the word `row_lineage` shows.
std::string action_word(const std::string& code) {
  return code == "i" ? "inserted" : code == "u" ? "updated" : code == "n" ? "unchanged" : "review";
}

/// The fields of tier `tier` (1-based) of `entity`, from the config.
json tier_fields(const config::Dataset* ds, const std::string& entity, const pqxx::field& tier) {
  if (!ds || tier.is_null()) return nullptr;
  const int t = tier.as<int>();
  for (const auto& e : ds->entities) {
    if (e.name != entity) continue;
    if (t >= 1 && size_t(t) <= e.identity.size()) return e.identity[size_t(t - 1)];
    if (e.fuzzy && size_t(t) == e.identity.size() + 1) return "fuzzy";
  }
  return nullptr;
}

json changes_of(pqxx::transaction_base& tx, const std::string& bk, const std::string& table, const std::string& record,
                const std::string& batch) {
  auto r = tx.exec_params("SELECT batch_id::text, column_name, before, after, at::text FROM " + bk +
                              ".changes WHERE table_name = $1 AND record_id = $2 AND ($3 = '' OR batch_id::text = $3) "
                              "ORDER BY at, column_name",
                          table, record, batch);
  json out = json::array();
  for (const auto& c : r)
    out.push_back({{"batch_id", text(c[0])}, {"column", text(c[1])}, {"before", maybe(c[2])}, {"after", maybe(c[3])},
                   {"at", text(c[4])}});
  return out;
}

/// The pairs a fuzzy tier scored for a row (merged, or in review): each candidate's match
/// weight and every field's comparison level and weight.
json fuzzy_pairs(pqxx::transaction_base& tx, const std::string& bk, const std::string& batch, const std::string& entity,
                 int64_t row) {
  json out = json::array();
  for (const auto& m : tx.exec_params("SELECT record_id, decision, score, fields::text FROM " + bk +
                                          ".match_scores WHERE batch_id::text = $1 AND row_number = $2 AND entity = $3 "
                                          "ORDER BY score DESC, record_id",
                                      batch, row, entity))
    out.push_back({{"record_id", text(m[0])}, {"decision", text(m[1])}, {"score", m[2].as<double>()},
                   {"fields", json::parse(text(m[3]))}});
  return out;
}

}  // namespace

json explain_row(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& batch_id, int64_t row) {
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  auto b = tx.exec_params("SELECT dataset_or_job, status FROM " + bk + ".batches WHERE id::text = $1", batch_id);
  json out = {{"batch_id", batch_id}, {"row", row}, {"entities", json::array()}, {"errors", json::array()},
              {"review", json::array()}};
  if (b.empty()) return out;
  out["target"] = text(b[0][0]);
  out["batch_status"] = text(b[0][1]);
  const config::Dataset* ds = config::dataset_of(cfg, text(b[0][0]));
  auto lin = tx.exec_params("SELECT u.entity, u.table_name, u.record_id, u.action, u.tier, u.score FROM " + bk +
                                ".lineage l CROSS JOIN LATERAL (SELECT l.entity, l.table_name, l.record_ids[i] AS "
                                "record_id, l.actions[i]::text AS action, l.tiers[i] AS tier, l.scores[i] AS score "
                                "FROM array_position(l.row_numbers, $2::bigint) AS i) u WHERE l.batch_id::text = $1 AND "
                                "$2::bigint BETWEEN l.first_row AND l.last_row AND array_position(l.row_numbers, $2::bigint) "
                                "IS NOT NULL ORDER BY l.first_row",
                            batch_id, row);
  for (const auto& l : lin) {
    json e = {{"entity", text(l[0])}, {"table", text(l[1])}, {"record_id", maybe(l[2])}, {"action", action_word(text(l[3]))},
              {"tier", l[4].is_null() ? json(nullptr) : json(l[4].as<int>())},
              {"tier_fields", tier_fields(ds, text(l[0]), l[4])},
              {"score", l[5].is_null() ? json(nullptr) : json(l[5].as<double>())}};
    if (!l[2].is_null()) e["batch_changes"] = changes_of(tx, bk, text(l[1]), text(l[2]), batch_id);
    if (!l[5].is_null()) e["fuzzy"] = fuzzy_pairs(tx, bk, batch_id, text(l[0]), row);
    out["entities"].push_back(e);
  }
  for (const auto& e : tx.exec_params("SELECT field, code, message FROM " + bk +
                                          ".row_errors WHERE batch_id::text = $1 AND row_number = $2",
                                      batch_id, row))
    out["errors"].push_back({{"field", maybe(e[0])}, {"code", text(e[1])}, {"message", text(e[2])}});
  for (const auto& q : tx.exec_params("SELECT id, table_name, status, reasons, record_id FROM " + bk +
                                          ".review_queue WHERE batch_id::text = $1 AND (candidate->>'row_number')::bigint "
                                          "= $2 ORDER BY id",
                                      batch_id, row))
    out["review"].push_back({{"id", q[0].as<int64_t>()}, {"table", text(q[1])}, {"status", text(q[2])},
                             {"reasons", maybe(q[3])}, {"record_id", maybe(q[4])}});
  return out;
}

json explain_record(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& table,
                    const std::string& record_id) {
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  TableInfo t = describe_table(tx, table);
  const std::string canonical = t.exists ? t.canonical : table;
  json out = {{"table", canonical}, {"record_id", record_id}, {"rows", json::array()}};
  // lineage is stored per chunk: the chunks of this table that name the record
  auto rows = tx.exec_params("SELECT l.batch_id::text, u.row_number, l.entity, u.action, u.tier FROM " + bk +
                                 ".lineage l CROSS JOIN LATERAL unnest(l.row_numbers, l.record_ids, l.actions, l.tiers) "
                                 "AS u(row_number, record_id, action, tier) WHERE l.table_name = $1 AND $2 = ANY "
                                 "(l.record_ids) AND u.record_id = $2 ORDER BY l.batch_id, u.row_number",
                             canonical, record_id);
  for (const auto& r : rows) {
    out["rows"].push_back({{"batch_id", text(r[0])}, {"row", r[1].as<int64_t>()}, {"entity", text(r[2])},
                           {"action", action_word(text(r[3]))},
                           {"tier", r[4].is_null() ? json(nullptr) : json(r[4].as<int>())}});
  }
  out["changes"] = changes_of(tx, bk, canonical, record_id, "");
  json memory = json::array();
  for (const auto& k : tx.exec_params("SELECT tier, key, batch_id::text FROM " + bk +
                                          ".identity_keys WHERE table_name = $1 AND record_id = $2 ORDER BY tier, key",
                                      canonical, record_id))
    memory.push_back({{"tier", k[0].as<int>()}, {"key", text(k[1])}, {"batch_id", maybe(k[2])}});
  out["identity_memory"] = memory;
  return out;
}

}  // namespace ingestd::engine
