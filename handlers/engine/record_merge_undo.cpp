// Rollback of a merge batch (`ingestd merge`, record_merge.cpp): the reverse of the merge's
// steps, in the order the constraints need them, and the later merges that make a rollback wait.
#include <algorithm>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/record_merge.hpp"

namespace ingestd::engine {

using json = nlohmann::json;

bool has_record_merges(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id) {
  return !tx.exec_params("SELECT 1 FROM " + books.table(tx, "record_merges") + " WHERE batch_id = $1::uuid LIMIT 1",
                         batch_id)
              .empty();
}

namespace {

// Rollback of a merge batch: the reverse of the merge's steps, in the order the constraints
// need them.

/// @brief One record_merges row.
struct MergeRecord {
  std::string table, id_column, loser, winner, loser_row;
  json repointed, identity_keys;
};

/// Adds `n` to stats[table][what] (rollback's stats are per table).
void count(json& stats, const std::string& table, const char* what, int64_t n) {
  json& t = stats[table];
  if (!t.is_object()) t = json::object();
  t[what] = t.value(what, int64_t(0)) + n;
}

std::vector<MergeRecord> merges_of(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id) {
  std::vector<MergeRecord> out;
  // the latest first, should a batch ever hold several
  for (const auto& m :
       tx.exec_params("SELECT table_name, id_column, loser_id, winner_id, loser_row::text, "
                      "repointed::text, identity_keys::text FROM " +
                          books.table(tx, "record_merges") + " WHERE batch_id = $1::uuid ORDER BY id DESC",
                      batch_id))
    out.push_back({m[0].as<std::string>(), m[1].as<std::string>(), m[2].as<std::string>(), m[3].as<std::string>(),
                   m[4].as<std::string>(), json::parse(m[5].as<std::string>()), json::parse(m[6].as<std::string>())});
  return out;
}

/// The merged table, described with its id; throws when it is gone.
TableInfo merged_table(pqxx::transaction_base& tx, const MergeRecord& m) {
  TableInfo t = describe_table(tx, m.table);
  if (!t.exists)
    throw std::runtime_error("cannot undo the merge into " + m.table + " " + m.winner + ": the table is gone");
  describe_id(tx, t, m.id_column);
  return t;
}

/// A `changes` row of the merge that repointed a reference (before = the loser's id, in a
/// column the merge repointed); every other row of the winner is a filled value.
bool is_repoint(const MergeRecord& m, const std::string& table, const std::string& column, const pqxx::field& before) {
  if (before.is_null() || before.as<std::string>() != m.loser) return false;
  for (const auto& r : m.repointed)
    if (r["table"] == table && r["column"] == column) return true;
  return false;
}

/// Restores the winner's columns the merge filled; returns how many.
int64_t restore_winner(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                       const MergeRecord& m, const TableInfo& t) {
  auto rows = tx.exec_params("SELECT column_name, before FROM " + books.table(tx, "changes") +
                                 " WHERE batch_id = $1::uuid AND table_name = $2 AND record_id = $3",
                             batch_id, m.table, m.winner);
  int64_t restored = 0;
  for (const auto& c : rows) {
    const std::string col = c[0].as<std::string>();
    if (is_repoint(m, m.table, col, c[1]) || !t.column_types.count(col)) continue;
    std::optional<std::string> before;
    if (!c[1].is_null()) before = c[1].as<std::string>();
    restored += int64_t(tx.exec_params("UPDATE " + t.quoted + " SET " + tx.quote_name(col) +
                                           " = $1::" + t.column_types.at(col) + " WHERE " + tx.quote_name(m.id_column) +
                                           " = $2::" + t.id_type,
                                       before, m.winner)
                            .affected_rows());
  }
  return restored;
}

/// Inserts the loser again, with its id and the values it had (columns added since take their
/// defaults; generated columns are computed again).
void reinsert_loser(pqxx::transaction_base& tx, const MergeRecord& m, const TableInfo& t) {
  auto cols = tx.exec_params(
      "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
      "AND NOT a.attisdropped AND a.attgenerated = '' AND $2::jsonb ? a.attname ORDER BY a.attnum",
      t.quoted, m.loser_row);
  std::string list;
  for (const auto& c : cols) list += (list.empty() ? "" : ", ") + tx.quote_name(c[0].as<std::string>());
  tx.exec_params("INSERT INTO " + t.quoted + " (" + list + ") OVERRIDING SYSTEM VALUE SELECT " + list +
                     " FROM jsonb_populate_record(NULL::" + t.quoted + ", $1::jsonb)",
                 m.loser_row);
}

/// Points the rows the merge repointed back at the loser, counted per referencing table.
void repoint_back(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                  const MergeRecord& m, json& stats) {
  for (const auto& r : m.repointed) {
    const std::string table = r["table"], column = r["column"], key = r["key"];
    const TableInfo ref = describe_table(tx, table);
    if (!ref.exists || !ref.column_types.count(column) || !ref.column_types.count(key))
      throw std::runtime_error("cannot point " + table + "." + column + " back at " + m.table + " " + m.loser +
                               ": the table or column is gone");
    auto up = tx.exec_params(
        "UPDATE " + ref.quoted + " r SET " + tx.quote_name(column) + " = c.before::" + ref.column_types.at(column) +
            " FROM (SELECT record_id, before FROM " + books.table(tx, "changes") +
            " WHERE batch_id = $1::uuid AND table_name = $2 AND column_name = $3 AND before = $4) c "
            "WHERE r." +
            tx.quote_name(key) + " = c.record_id::" + ref.column_types.at(key),
        batch_id, table, column, m.loser);
    count(stats, table, "repointed_back", int64_t(up.affected_rows()));
  }
}

/// Gives the loser its identity memory back and forgets what the merge taught the winner.
void restore_identity_keys(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                           const MergeRecord& m, json& stats) {
  const std::string keys = books.table(tx, "identity_keys");
  const std::string saved = " jsonb_to_recordset($3::jsonb) s(tier int, key text, batch_id uuid, moved bool)";
  auto taught =
      tx.exec_params("DELETE FROM " + keys + " WHERE table_name = $1 AND record_id = $2 AND batch_id = $3::uuid",
                     m.table, m.winner, batch_id);
  count(stats, m.table, "identity_keys_removed", int64_t(taught.affected_rows()));
  tx.exec_params("DELETE FROM " + keys + " k USING" + saved +
                     " WHERE s.moved AND k.table_name = $1 AND k.record_id = $2 AND k.tier = s.tier AND k.key = s.key "
                     "AND k.batch_id IS NOT DISTINCT FROM s.batch_id",
                 m.table, m.winner, m.identity_keys.dump());
  auto back = tx.exec_params("INSERT INTO " + keys +
                                 " (table_name, tier, key, record_id, batch_id) SELECT $1, s.tier, "
                                 "s.key, $2, s.batch_id FROM" +
                                 saved,
                             m.table, m.loser, m.identity_keys.dump());
  count(stats, m.table, "identity_keys_restored", int64_t(back.affected_rows()));
}

}  // namespace

json undo_record_merges(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id) {
  json stats = json::object();
  for (const auto& m : merges_of(tx, books, batch_id)) {
    const TableInfo t = merged_table(tx, m);
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('ingestd:table:' || $1, 0))", t.canonical);
    // the winner first: a unique value it took from the loser must be free before the loser
    // returns; the loser before the rows that will point at it again
    count(stats, m.table, "restored_values", restore_winner(tx, books, batch_id, m, t));
    reinsert_loser(tx, m, t);
    count(stats, m.table, "reinserted", 1);
    repoint_back(tx, books, batch_id, m, stats);
    restore_identity_keys(tx, books, batch_id, m, stats);
  }
  return stats;
}

std::vector<std::string> later_merges(pqxx::transaction_base& tx, const Bookkeeping& books,
                                      const std::string& batch_id) {
  // a record of this batch: one its rows landed on (lineage), one it changed, one it merged into
  const std::string mine =
      "(SELECT 1 FROM " + books.table(tx, "lineage") +
      " l WHERE l.batch_id = $1::uuid AND l.table_name = m.table_name AND r.id = ANY(l.record_ids)) "
      "OR EXISTS (SELECT 1 FROM " +
      books.table(tx, "changes") +
      " c WHERE c.batch_id = $1::uuid AND c.table_name = m.table_name AND c.record_id = r.id) "
      "OR EXISTS (SELECT 1 FROM " +
      books.table(tx, "record_merges") +
      " o WHERE o.batch_id = $1::uuid AND o.table_name = m.table_name AND o.winner_id = r.id)";
  auto rows = tx.exec_params(
      "SELECT m.batch_id::text, m.table_name, m.loser_id, m.winner_id FROM " + books.table(tx, "record_merges") +
          " m JOIN " + books.table(tx, "batches") +
          " b ON b.id = m.batch_id AND b.status <> 'rolled_back' "
          "WHERE m.batch_id <> $1::uuid AND m.at > (SELECT started_at FROM " +
          books.table(tx, "batches") +
          " WHERE id = $1::uuid) AND EXISTS (SELECT 1 FROM (VALUES (m.loser_id), (m.winner_id)) r(id) WHERE EXISTS " +
          mine + ") ORDER BY m.at, m.id LIMIT 100",
      batch_id);
  std::vector<std::string> out;
  for (const auto& r : rows)
    out.push_back("batch " + r[0].as<std::string>() + " later merged record " + r[2].as<std::string>() + " of " +
                  r[1].as<std::string>() + " into " + r[3].as<std::string>());
  return out;
}

}  // namespace ingestd::engine
