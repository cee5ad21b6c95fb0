#include "handlers/engine/rollback.hpp"

#include <algorithm>
#include <map>

#include "handlers/engine/sql.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

namespace {

bool valid_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

RollbackResult rollback_batch(pqxx::connection& conn, const config::Config& cfg, const std::string& batch_id,
                              bool dry_run, const std::string& actor,
                              const std::function<void(pqxx::transaction_base&, const RollbackResult&)>& final_step) {
  RollbackResult out;
  auto refuse = [&](pqxx::transaction_base& tx, const std::string& why) {
    out.status = "failed";
    out.errors.insert(out.errors.begin(), why);
    if (final_step) final_step(tx, out);
    return out;
  };
  pqxx::work tx(conn);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  if (!valid_uuid(batch_id)) {
    auto r = refuse(tx, "batch id " + batch_id + " is not a UUID");
    tx.commit();
    return r;
  }
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "rollback:" + batch_id);
  auto b = tx.exec_params("SELECT status, dataset_or_job, dry_run FROM " + bk + ".batches WHERE id = $1::uuid FOR UPDATE",
                          batch_id);
  if (b.empty()) {
    auto r = refuse(tx, "no batch " + batch_id);
    tx.commit();
    return r;
  }
  const std::string status = b[0][0].as<std::string>();
  const std::string dataset = b[0][1].as<std::string>();
  if (status == "rolled_back" || status == "running" || status == "pending" || b[0][2].as<bool>()) {
    auto r = refuse(tx, "batch " + batch_id + " is " + (b[0][2].as<bool>() ? "a dry run" : status) +
                            "; only completed batches can be rolled back");
    tx.commit();
    return r;
  }

  // Later batches that changed what this batch wrote: rolling back would erase their work.
  auto conflicts = tx.exec_params(
      "SELECT DISTINCT c2.batch_id::text, c.table_name, c.record_id, c.column_name FROM " + bk + ".changes c JOIN " + bk +
          ".changes c2 ON c2.table_name = c.table_name AND c2.record_id = c.record_id AND c2.column_name = c.column_name "
          "AND c2.batch_id <> c.batch_id AND c2.at > c.at JOIN " + bk +
          ".batches b2 ON b2.id = c2.batch_id AND b2.status <> 'rolled_back' WHERE c.batch_id = $1::uuid "
          "UNION SELECT DISTINCT c2.batch_id::text, c2.table_name, c2.record_id, c2.column_name FROM " + bk +
          ".row_lineage l JOIN " + bk + ".changes c2 ON c2.table_name = l.table_name AND c2.record_id = l.record_id "
          "AND c2.batch_id <> l.batch_id JOIN " + bk + ".batches b2 ON b2.id = c2.batch_id AND b2.status <> 'rolled_back' "
          "WHERE l.batch_id = $1::uuid AND l.action = 'inserted' ORDER BY 2, 3, 4 LIMIT 100",
      batch_id);
  if (!conflicts.empty()) {
    for (const auto& c : conflicts)
      out.errors.push_back("batch " + c[0].as<std::string>() + " later changed " + c[1].as<std::string>() + "." +
                           c[3].as<std::string>() + " of record " + c[2].as<std::string>());
    auto r = refuse(tx, "refused: " + std::to_string(conflicts.size()) +
                            " value(s) written by this batch were changed later; roll those batches back first");
    tx.exec_params("INSERT INTO " + bk + ".audit (actor, action, batch_id, payload) VALUES ($1, 'rollback_refused', "
                   "$2::uuid, $3::jsonb)",
                   actor, batch_id, nlohmann::json(r.errors).dump());
    tx.commit();
    return r;
  }

  // Entities in dataset order; delete in reverse so references go before what they reference.
  auto ents = tx.exec_params("SELECT entity, table_name, min(row_number) FROM " + bk +
                                 ".row_lineage WHERE batch_id = $1::uuid GROUP BY 1, 2",
                             batch_id);
  std::vector<std::pair<std::string, std::string>> order;  // entity, table
  for (const auto& e : ents) order.emplace_back(e[0].as<std::string>(), e[1].as<std::string>());
  // tables the batch changed without an entity of its own: writebacks, resolved references
  auto other = tx.exec_params("SELECT DISTINCT table_name FROM " + bk + ".changes WHERE batch_id = $1::uuid", batch_id);
  for (const auto& o : other) {
    const std::string table = o[0].as<std::string>();
    if (std::none_of(order.begin(), order.end(), [&](auto& p) { return p.second == table; })) order.emplace_back("", table);
  }
  std::string ds_name = dataset;
  if (cfg.jobs.count(dataset)) ds_name = cfg.jobs.at(dataset).dataset;  // a job batch: its dataset's entities
  const config::Dataset* ds = cfg.datasets.count(ds_name) ? &cfg.datasets.at(ds_name) : nullptr;
  auto rank = [&](const std::string& entity) {
    if (entity.empty()) return 2000;  // restored first: they may reference the entities' records
    if (ds)
      for (size_t i = 0; i < ds->entities.size(); ++i)
        if (ds->entities[i].name == entity) return int(i);
    return 1000;
  };
  std::sort(order.begin(), order.end(), [&](auto& a, auto& b) { return rank(a.first) > rank(b.first); });
  auto id_column = [&](const std::string& entity) -> std::string {
    if (ds)
      for (const auto& e : ds->entities)
        if (e.name == entity) return e.id_column;
    return "id";
  };

  nlohmann::json stats = nlohmann::json::object();
  try {
    for (const auto& [entity, table] : order) {
      TableInfo t = describe_table(tx, table);
      if (!t.exists) continue;
      const std::string id_col = entity.empty() ? t.pk : id_column(entity);
      if (id_col.empty()) continue;
      describe_id(tx, t, id_col);
      const std::string id = tx.quote_name(id_col);
      auto del = tx.exec_params("DELETE FROM " + t.quoted + " t USING (SELECT DISTINCT record_id FROM " + bk +
                                    ".row_lineage WHERE batch_id = $1::uuid AND table_name = $2 AND action = 'inserted') "
                                    "l WHERE t." + id + " = l.record_id::" + t.id_type,
                                batch_id, table);
      stats[table]["deleted"] = int64_t(del.affected_rows());
      // Restore every overwritten column to the value it had before this batch (the
      // earliest before-value where the batch touched a column twice).
      auto cols = tx.exec_params("SELECT DISTINCT column_name FROM " + bk +
                                     ".changes WHERE batch_id = $1::uuid AND table_name = $2",
                                 batch_id, table);
      int64_t restored = 0;
      for (const auto& c : cols) {
        const std::string col = c[0].as<std::string>();
        if (!t.column_types.count(col)) continue;
        auto up = tx.exec_params("UPDATE " + t.quoted + " t SET " + tx.quote_name(col) + " = c.before::" +
                                     t.column_types.at(col) + " FROM (SELECT DISTINCT ON (record_id) record_id, before FROM " +
                                     bk + ".changes WHERE batch_id = $1::uuid AND table_name = $2 AND column_name = $3 "
                                     "ORDER BY record_id, at) c WHERE t." + id + " = c.record_id::" + t.id_type,
                                 batch_id, table, col);
        restored += int64_t(up.affected_rows());
      }
      stats[table]["restored_values"] = restored;
    }
  } catch (const pqxx::foreign_key_violation& e) {
    tx.abort();
    pqxx::work tx2(conn);
    const std::string msg = first_line(e.what());
    out.errors.clear();
    auto r = refuse(tx2, "refused: records inserted by this batch are referenced by other rows (" + msg + ")");
    tx2.commit();
    return r;
  }
  // the batch's keys belong to the records its rows landed on (lineage); that index finds them
  auto keys = tx.exec_params("DELETE FROM " + bk + ".identity_keys k USING (SELECT DISTINCT table_name, record_id FROM " +
                                 bk + ".row_lineage WHERE batch_id = $1::uuid AND record_id IS NOT NULL) l "
                                 "WHERE k.table_name = l.table_name AND k.record_id = l.record_id AND k.batch_id = $1::uuid",
                             batch_id);
  stats["identity_keys_removed"] = int64_t(keys.affected_rows());
  auto defs = tx.exec_params("DELETE FROM " + bk + ".deferred_refs WHERE batch_id = $1::uuid", batch_id);
  stats["deferred_refs_removed"] = int64_t(defs.affected_rows());
  tx.exec_params("UPDATE " + bk + ".review_queue SET status = 'rolled_back' WHERE batch_id = $1::uuid AND status = 'open'",
                 batch_id);
  tx.exec_params("UPDATE " + bk + ".batches SET status = 'rolled_back', stats = stats || jsonb_build_object('rollback', "
                 "$2::jsonb), finished_at = now() WHERE id = $1::uuid",
                 batch_id, stats.dump());
  tx.exec_params("INSERT INTO " + bk + ".audit (actor, action, batch_id, payload) VALUES ($1, $2, $3::uuid, $4::jsonb)",
                 actor, dry_run ? "rollback_dry_run" : "rollback", batch_id, stats.dump());
  out.stats = stats;
  out.status = dry_run ? "dry_run" : "completed";
  if (dry_run) {
    tx.abort();
    pqxx::work tx2(conn);
    if (final_step) final_step(tx2, out);
    tx2.commit();
    return out;
  }
  if (final_step) final_step(tx, out);
  tx.commit();
  return out;
}

}  // namespace ingestd::engine
