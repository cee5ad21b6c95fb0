#include "handlers/engine/rollback.hpp"

#include <algorithm>
#include <map>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/record_merge.hpp"

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

/// Why the batch cannot be rolled back at all ("" = it can), and its dataset or job.
std::string refusal(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                    std::string& dataset_or_job) {
  if (!valid_uuid(batch_id)) return "batch id " + batch_id + " is not a UUID";
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "rollback:" + batch_id);
  auto b = tx.exec_params("SELECT status, dataset_or_job, dry_run FROM " + books.table(tx, "batches") +
                              " WHERE id = $1::uuid FOR UPDATE",
                          batch_id);
  if (b.empty()) return "no batch " + batch_id;
  const std::string status = b[0][0].as<std::string>();
  dataset_or_job = b[0][1].as<std::string>();
  if (status == "rolled_back" || status == "running" || status == "pending" || b[0][2].as<bool>())
    return "batch " + batch_id + " is " + (b[0][2].as<bool>() ? "a dry run" : status) +
           "; only completed batches can be rolled back";
  return "";
}

/// Later batches that changed what this batch wrote: rolling back would erase their work.
std::vector<std::string> later_changes(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id) {
  const std::string changes = books.table(tx, "changes"), batches = books.table(tx, "batches");
  auto conflicts = tx.exec_params(
      "SELECT DISTINCT c2.batch_id::text, c.table_name, c.record_id, c.column_name FROM " + changes + " c JOIN " + changes +
          " c2 ON c2.table_name = c.table_name AND c2.record_id = c.record_id AND c2.column_name = c.column_name "
          "AND c2.batch_id <> c.batch_id AND c2.at > c.at JOIN " + batches +
          " b2 ON b2.id = c2.batch_id AND b2.status <> 'rolled_back' WHERE c.batch_id = $1::uuid "
          "UNION SELECT DISTINCT c2.batch_id::text, c2.table_name, c2.record_id, c2.column_name FROM " +
          books.table(tx, "row_lineage") + " l JOIN " + changes +
          " c2 ON c2.table_name = l.table_name AND c2.record_id = l.record_id AND c2.batch_id <> l.batch_id JOIN " + batches +
          " b2 ON b2.id = c2.batch_id AND b2.status <> 'rolled_back' WHERE l.batch_id = $1::uuid AND l.action = 'inserted' "
          "ORDER BY 2, 3, 4 LIMIT 100",
      batch_id);
  std::vector<std::string> out;
  for (const auto& c : conflicts)
    out.push_back("batch " + c[0].as<std::string>() + " later changed " + c[1].as<std::string>() + "." +
                  c[3].as<std::string>() + " of record " + c[2].as<std::string>());
  return out;
}

/// A table the batch wrote, and the id column its records are found by.
struct UndoTarget {
  std::string entity, table, id_column;
};

/// The tables to undo, in reverse dataset order so references go before what they reference;
/// tables changed without an entity of their own (writebacks, resolved references) first.
std::vector<UndoTarget> undo_order(pqxx::transaction_base& tx, const Bookkeeping& books, const config::Config& cfg,
                                   const std::string& batch_id, const std::string& dataset_or_job) {
  std::vector<UndoTarget> order;
  for (const auto& e : tx.exec_params("SELECT DISTINCT entity, table_name FROM " + books.table(tx, "row_lineage") +
                                          " WHERE batch_id = $1::uuid",
                                      batch_id))
    order.push_back({e[0].as<std::string>(), e[1].as<std::string>(), ""});
  for (const auto& o : tx.exec_params("SELECT DISTINCT table_name FROM " + books.table(tx, "changes") +
                                          " WHERE batch_id = $1::uuid",
                                      batch_id)) {
    const std::string table = o[0].as<std::string>();
    if (std::none_of(order.begin(), order.end(), [&](auto& u) { return u.table == table; })) order.push_back({"", table, ""});
  }
  const config::Dataset* ds = config::dataset_of(cfg, dataset_or_job);  // a job batch: its dataset's entities
  auto rank = [&](const std::string& entity) {
    if (entity.empty()) return 2000;  // restored first: they may reference the entities' records
    if (ds)
      for (size_t i = 0; i < ds->entities.size(); ++i)
        if (ds->entities[i].name == entity) return int(i);
    return 1000;
  };
  std::sort(order.begin(), order.end(), [&](auto& a, auto& b) { return rank(a.entity) > rank(b.entity); });
  for (auto& u : order) {
    u.id_column =
        ds && ds->documents ? ds->documents->id_column : "id";  // a documents batch: its rows (stored files stay)
    if (ds)
      for (const auto& e : ds->entities)
        if (e.name == u.entity) u.id_column = e.id_column;
  }
  return order;
}

/// Deletes what the batch inserted into one table and restores what it overwrote there (the
/// earliest before-value where the batch touched a column twice).
nlohmann::json undo_table(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                          const UndoTarget& u) {
  nlohmann::json stats = nlohmann::json::object();
  TableInfo t = describe_table(tx, u.table);
  if (!t.exists) return stats;
  const std::string id_col = u.entity.empty() ? t.pk : u.id_column;
  if (id_col.empty()) return stats;
  describe_id(tx, t, id_col);
  const std::string id = tx.quote_name(id_col), changes = books.table(tx, "changes");
  auto del = tx.exec_params("DELETE FROM " + t.quoted + " t USING (SELECT DISTINCT record_id FROM " +
                                books.table(tx, "row_lineage") +
                                " WHERE batch_id = $1::uuid AND table_name = $2 AND action = 'inserted') l WHERE t." + id +
                                " = l.record_id::" + t.id_type,
                            batch_id, u.table);
  stats["deleted"] = int64_t(del.affected_rows());
  auto cols = tx.exec_params("SELECT DISTINCT column_name FROM " + changes + " WHERE batch_id = $1::uuid AND table_name = $2",
                             batch_id, u.table);
  int64_t restored = 0;
  for (const auto& c : cols) {
    const std::string col = c[0].as<std::string>();
    if (!t.column_types.count(col)) continue;
    auto up = tx.exec_params("UPDATE " + t.quoted + " t SET " + tx.quote_name(col) + " = c.before::" + t.column_types.at(col) +
                                 " FROM (SELECT DISTINCT ON (record_id) record_id, before FROM " + changes +
                                 " WHERE batch_id = $1::uuid AND table_name = $2 AND column_name = $3 ORDER BY record_id, "
                                 "at) c WHERE t." + id + " = c.record_id::" + t.id_type,
                             batch_id, u.table, col);
    restored += int64_t(up.affected_rows());
  }
  stats["restored_values"] = restored;
  return stats;
}

/// Forgets the batch's identity keys, deferred references and open review items.
void forget_batch(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id, nlohmann::json& stats) {
  // the batch's keys belong to the records its rows landed on (lineage); that index finds them
  auto keys = tx.exec_params("DELETE FROM " + books.table(tx, "identity_keys") +
                                 " k USING (SELECT DISTINCT table_name, record_id FROM " + books.table(tx, "row_lineage") +
                                 " WHERE batch_id = $1::uuid AND record_id IS NOT NULL) l "
                                 "WHERE k.table_name = l.table_name AND k.record_id = l.record_id AND k.batch_id = $1::uuid",
                             batch_id);
  stats["identity_keys_removed"] = int64_t(keys.affected_rows());
  auto defs = tx.exec_params("DELETE FROM " + books.table(tx, "deferred_refs") + " WHERE batch_id = $1::uuid", batch_id);
  stats["deferred_refs_removed"] = int64_t(defs.affected_rows());
  tx.exec_params("UPDATE " + books.table(tx, "review_queue") +
                     " SET status = 'rolled_back' WHERE batch_id = $1::uuid AND status IN ('open', 'waiting')",
                 batch_id);
}

}  // namespace

RollbackResult rollback_batch(pqxx::connection& conn, const config::Config& cfg, const std::string& batch_id,
                              bool dry_run, const Actor& actor,
                              const std::function<void(pqxx::transaction_base&, const RollbackResult&)>& final_step) {
  const Bookkeeping books(cfg.postgres.bookkeeping_schema);
  RollbackResult out;
  auto refuse = [&](pqxx::transaction_base& tx, const std::string& why) {
    out.status = ResultStatus::Failed;
    out.errors.insert(out.errors.begin(), why);
    if (final_step) final_step(tx, out);
    tx.commit();
    return out;
  };
  pqxx::work tx(conn);
  std::string dataset;
  if (auto why = refusal(tx, books, batch_id, dataset); !why.empty()) return refuse(tx, why);
  out.errors = later_changes(tx, books, batch_id);
  for (auto& m : later_merges(tx, books, batch_id)) out.errors.push_back(std::move(m));
  if (!out.errors.empty()) {
    out.errors.insert(out.errors.begin(), "refused: " + std::to_string(out.errors.size()) +
                                              " value(s) or record(s) written by this batch were changed or merged "
                                              "later; roll those batches back first");
    books.audit(tx, actor, "rollback_refused", batch_id, nlohmann::json(out.errors));
    out.status = ResultStatus::Failed;
    if (final_step) final_step(tx, out);
    tx.commit();
    return out;
  }
  nlohmann::json stats = nlohmann::json::object();
  try {
    if (has_record_merges(tx, books, batch_id)) {
      stats = undo_record_merges(tx, books, batch_id);  // a merge batch: its own reverse order
    } else {
      for (const auto& u : undo_order(tx, books, cfg, batch_id, dataset)) {
        auto s = undo_table(tx, books, batch_id, u);
        if (!s.empty()) stats[u.table] = s;
      }
    }
  } catch (const pqxx::foreign_key_violation& e) {
    tx.abort();
    pqxx::work tx2(conn);
    out.errors.clear();
    return refuse(tx2, "refused: records inserted by this batch are referenced by other rows (" + first_line(e.what()) + ")");
  } catch (const pqxx::integrity_constraint_violation& e) {
    // a merge's loser whose unique value a later row took, say
    tx.abort();
    pqxx::work tx2(conn);
    out.errors.clear();
    return refuse(tx2, "refused: the database does not allow undoing this batch (" + first_line(e.what()) + ")");
  }
  forget_batch(tx, books, batch_id, stats);
  BatchFinish fin;
  fin.status = BatchStatus::RolledBack;
  fin.stats = {{"rollback", stats}};
  books.finish(tx, batch_id, fin);
  books.audit(tx, actor, dry_run ? "rollback_dry_run" : "rollback", batch_id, stats);
  out.stats = stats;
  out.status = dry_run ? ResultStatus::DryRun : ResultStatus::Completed;
  if (!dry_run) {
    if (final_step) final_step(tx, out);
    tx.commit();
    return out;
  }
  tx.abort();
  pqxx::work tx2(conn);
  if (final_step) final_step(tx2, out);
  tx2.commit();
  return out;
}

}  // namespace ingestd::engine
