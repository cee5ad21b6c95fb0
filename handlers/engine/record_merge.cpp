#include "handlers/engine/record_merge.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/review.hpp"

namespace ingestd::engine {

namespace {

using json = nlohmann::json;

/// @brief A merge refused before anything is committed: the reasons, one per line.
struct Refusal {
  std::vector<std::string> errors;
};

/// @brief The entity that writes the merged table, and the table as the catalog says.
struct MergeTarget {
  const config::Dataset* dataset = nullptr;
  const config::Entity* entity = nullptr;
  TableInfo table;
  std::string idq;  // the id column, quoted
};

/// @brief The two records, locked: their ids as the database prints them, the loser's row.
struct LockedPair {
  std::string loser, winner;
  std::string loser_row;  // to_jsonb(row)::text
};

/// @brief A foreign key that references the merged table.
struct ForeignKey {
  std::string name;  // constraint name
  TableInfo table;   // the referencing table
  std::vector<std::string> columns, referenced;
  /// A single-column key on the merged table's id: the kind a merge repoints.
  bool repointable(const std::string& id_column) const {
    return columns.size() == 1 && referenced.size() == 1 && referenced[0] == id_column;
  }
  std::string label() const { return table.canonical + "." + columns[0]; }
};

std::vector<std::string> json_strings(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  for (const auto& v : json::parse(text)) out.push_back(v.get<std::string>());
  return out;
}

/// The first entity, over the datasets in name order, that writes `table`.
MergeTarget find_writer(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& table) {
  MergeTarget t;
  t.table = describe_table(tx, table);
  if (!t.table.exists) throw Refusal{{"refused: no table " + table}};
  for (const auto& [name, ds] : cfg.datasets)
    for (const auto& e : ds.entities) {
      const TableInfo written = describe_table(tx, e.table);
      if (!written.exists || written.canonical != t.table.canonical) continue;
      t.dataset = &ds;
      t.entity = &e;
      describe_id(tx, t.table, e.id_column);
      if (t.table.id_type.empty())
        throw Refusal{{"refused: " + t.table.canonical + " has no column " + e.id_column + " (datasets." + name +
                       ".entities." + e.name + ".id)"}};
      t.idq = tx.quote_name(e.id_column);
      return t;
    }
  throw Refusal{{"refused: no dataset entity of the config writes " + t.table.canonical +
                 "; merge works on the records of an entity's table"}};
}

/// Takes the loader's per-table lock (rule 6: no load matches against a half-merged pair) and
/// locks both records.
LockedPair lock_records(pqxx::transaction_base& tx, const MergeTarget& t, const RecordMergeRequest& r) {
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('ingestd:table:' || $1, 0))", t.table.canonical);
  const std::string type = t.table.id_type;
  pqxx::result rows;
  try {
    rows = tx.exec_params("SELECT t." + t.idq + "::text, t." + t.idq + " = $1::" + type + ", t." + t.idq +
                              " = $2::" + type + ", to_jsonb(t)::text FROM " + t.table.quoted + " t WHERE t." + t.idq +
                              " IN ($1::" + type + ", $2::" + type + ") ORDER BY t." + t.idq + " FOR UPDATE",
                          r.loser, r.winner);
  } catch (const pqxx::data_exception& e) {
    throw Refusal{{"refused: ids of " + t.table.canonical + " are " + type + ": " + first_line(e.what())}};
  }
  LockedPair p;
  for (const auto& row : rows) {
    if (row[1].as<bool>() && row[2].as<bool>())
      throw Refusal{{"refused: " + r.loser + " and " + r.winner + " are the same record of " + t.table.canonical}};
    if (row[1].as<bool>()) {
      p.loser = row[0].as<std::string>();
      p.loser_row = row[3].as<std::string>();
    } else {
      p.winner = row[0].as<std::string>();
    }
  }
  std::vector<std::string> missing;
  if (p.loser.empty()) missing.push_back("refused: no record " + r.loser + " in " + t.table.canonical + " (the loser)");
  if (p.winner.empty())
    missing.push_back("refused: no record " + r.winner + " in " + t.table.canonical + " (the winner)");
  if (!missing.empty()) throw Refusal{missing};
  return p;
}

/// The foreign keys that reference the merged table (partitions' clones left out).
std::vector<ForeignKey> foreign_keys_to(pqxx::transaction_base& tx, const TableInfo& t) {
  auto rows = tx.exec_params(
      "SELECT c.conname, quote_ident(n.nspname) || '.' || quote_ident(r.relname), "
      "(SELECT json_agg(a.attname ORDER BY k.o) FROM unnest(c.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a "
      "ON a.attrelid = c.conrelid AND a.attnum = k.n)::text, "
      "(SELECT json_agg(a.attname ORDER BY k.o) FROM unnest(c.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a "
      "ON a.attrelid = c.confrelid AND a.attnum = k.n)::text "
      "FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace "
      "WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND c.conparentid = 0 ORDER BY n.nspname, r.relname, 1",
      t.quoted);
  std::vector<ForeignKey> out;
  for (const auto& row : rows)
    out.push_back({row[0].as<std::string>(), describe_table(tx, row[1].as<std::string>()),
                   json_strings(row[2].as<std::string>()), json_strings(row[3].as<std::string>())});
  return out;
}

/// How many rows reference the loser through `fk` (whatever its columns).
int64_t references_to(pqxx::transaction_base& tx, const MergeTarget& t, const ForeignKey& fk,
                      const std::string& loser) {
  std::string mine, theirs;
  for (size_t i = 0; i < fk.columns.size(); ++i) {
    mine += (i ? ", r." : "r.") + tx.quote_name(fk.columns[i]);
    theirs += (i ? ", l." : "l.") + tx.quote_name(fk.referenced[i]);
  }
  return tx
      .exec_params1("SELECT count(*) FROM " + fk.table.quoted + " r WHERE (" + mine + ") = (SELECT " + theirs +
                        " FROM " + t.table.quoted + " l WHERE l." + t.idq + " = $1::" + t.table.id_type + ")",
                    loser)[0]
      .as<int64_t>();
}

/// Foreign keys a merge cannot repoint and that reference the loser: each refuses the merge.
std::vector<std::string> unmovable_references(pqxx::transaction_base& tx, const MergeTarget& t,
                                              const std::vector<ForeignKey>& fks, const std::string& loser) {
  std::vector<std::string> out;
  for (const auto& fk : fks) {
    const bool repointable = fk.repointable(t.entity->id_column);
    // a repointed row is recorded by its primary key, for rollback to find it again
    if (repointable && !fk.table.pk.empty()) continue;
    const int64_t n = references_to(tx, t, fk, loser);
    if (n == 0) continue;
    std::string cols;
    for (const auto& c : fk.columns) cols += (cols.empty() ? "" : ", ") + c;
    out.push_back(std::to_string(n) + " row(s) of " + fk.table.canonical + " reference the loser through " + fk.name +
                  " (" + cols + ")" +
                  (repointable ? ": the table has no single-column primary key to record them by"
                               : ": merge repoints only single-column foreign keys to " + t.entity->id_column) +
                  "; repoint them by hand first");
  }
  return out;
}

/// The key columns of the referencing table's plain unique indexes that contain `column`.
std::vector<std::pair<std::string, std::vector<std::string>>> unique_indexes_with(pqxx::transaction_base& tx,
                                                                                  const TableInfo& table,
                                                                                  const std::string& column) {
  // partial and expression indexes are left to the database: it refuses the update, naming the key
  auto rows = tx.exec_params(
      "SELECT i.indexrelid::regclass::text, (SELECT json_agg(a.attname ORDER BY k.o) FROM unnest(i.indkey::int2[]) "
      "WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
      "WHERE k.o <= i.indnkeyatts)::text FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique "
      "AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY 1",
      table.quoted);
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& row : rows) {
    auto cols = json_strings(row[1].as<std::string>());
    if (std::find(cols.begin(), cols.end(), column) != cols.end()) out.emplace_back(row[0].as<std::string>(), cols);
  }
  return out;
}

/// Rows of the loser and of the winner that one unique index would no longer allow side by
/// side once the loser's rows point at the winner.
std::vector<std::string> index_conflicts(pqxx::transaction_base& tx, const ForeignKey& fk, const LockedPair& p,
                                         const std::string& index, const std::vector<std::string>& cols) {
  const TableInfo& r = fk.table;
  const std::string fkq = tx.quote_name(fk.columns[0]), type = r.column_types.at(fk.columns[0]);
  std::string same = "w." + fkq + " = $2::" + type, others = "json_build_array(";
  std::vector<std::string> named;
  for (const auto& c : cols) {
    if (c == fk.columns[0]) continue;
    same += " AND w." + tx.quote_name(c) + " = l." + tx.quote_name(c);
    others += std::string(named.empty() ? "" : ", ") + "l." + tx.quote_name(c) + "::text";
    named.push_back(c);
  }
  const std::string key = tx.quote_name(r.pk);
  auto rows = tx.exec_params("SELECT l." + key + "::text, w." + key + "::text, " + others + ")::text FROM " + r.quoted +
                                 " l JOIN " + r.quoted + " w ON " + same + " WHERE l." + fkq + " = $1::" + type +
                                 " ORDER BY l." + key + " LIMIT 100",
                             p.loser, p.winner);
  std::vector<std::string> out;
  std::string all_cols;
  for (const auto& c : cols) all_cols += (all_cols.empty() ? "" : ", ") + c;
  for (const auto& row : rows) {
    std::string values;
    auto v = json::parse(row[2].as<std::string>());
    for (size_t i = 0; i < named.size(); ++i) values += (i ? ", " : "") + named[i] + "=" + v[i].get<std::string>();
    out.push_back(r.canonical + " " + r.pk + "=" + row[0].as<std::string>() + " (loser's, " + values + ") and " + r.pk +
                  "=" + row[1].as<std::string>() + " (winner's) would collide on unique index " + index + " (" +
                  all_cols + ")");
  }
  return out;
}

/// Every unique-constraint conflict repointing would cause, over all repointable keys.
std::vector<std::string> repoint_conflicts(pqxx::transaction_base& tx, const MergeTarget& t,
                                           const std::vector<ForeignKey>& fks, const LockedPair& p) {
  std::vector<std::string> out;
  for (const auto& fk : fks) {
    if (!fk.repointable(t.entity->id_column) || fk.table.pk.empty()) continue;
    for (const auto& [index, cols] : unique_indexes_with(tx, fk.table, fk.columns[0])) {
      auto c = index_conflicts(tx, fk, p, index, cols);
      out.insert(out.end(), c.begin(), c.end());
    }
  }
  return out;
}

/// Points the rows that reference the loser at the winner, recording each in `changes`
/// (before = the loser's id) so rollback points them back. Returns rows moved per column.
json repoint(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id, const MergeTarget& t,
             const std::vector<ForeignKey>& fks, const LockedPair& p, json& repointed_columns) {
  json counts = json::object();
  for (const auto& fk : fks) {
    if (!fk.repointable(t.entity->id_column) || fk.table.pk.empty()) continue;
    const std::string col = tx.quote_name(fk.columns[0]), type = fk.table.column_types.at(fk.columns[0]);
    auto moved =
        tx.exec_params("WITH moved AS (UPDATE " + fk.table.quoted + " r SET " + col + " = $2::" + type + " WHERE r." +
                           col + " = $1::" + type + " RETURNING r." + tx.quote_name(fk.table.pk) +
                           "::text AS id) INSERT INTO " + books.table(tx, "changes") +
                           " (batch_id, table_name, record_id, column_name, before, after) "
                           "SELECT $3::uuid, $4, id, $5, $1::text, $2::text FROM moved",
                       p.loser, p.winner, batch_id, fk.table.canonical, fk.columns[0]);
    counts[fk.label()] = int64_t(moved.affected_rows());
    repointed_columns.push_back({{"table", fk.table.canonical}, {"column", fk.columns[0]}, {"key", fk.table.pk}});
  }
  return counts;
}

/// Points open review items that suggest the loser at the winner (a `review merge` without
/// `--into` would otherwise name a deleted record), recorded like a repointed reference so
/// rollback points them back.
void repoint_reviews(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                     const MergeTarget& t, const LockedPair& p, json& counts, json& repointed_columns) {
  const std::string queue = books.table(tx, "review_queue"), name = books.schema() + ".review_queue";
  auto moved = tx.exec_params("WITH moved AS (UPDATE " + queue + " q SET record_id = $2 WHERE q.table_name = $5 AND "
                              "q.record_id = $1 AND q.status = 'open' RETURNING q.id::text AS id) INSERT INTO " +
                                  books.table(tx, "changes") +
                                  " (batch_id, table_name, record_id, column_name, before, after) "
                                  "SELECT $3::uuid, $4, id, 'record_id', $1, $2 FROM moved",
                              p.loser, p.winner, batch_id, name, t.table.canonical);
  if (moved.affected_rows() == 0) return;
  counts[name + ".record_id"] = int64_t(moved.affected_rows());
  repointed_columns.push_back({{"table", name}, {"column", "record_id"}, {"key", "id"}});
}

/// @brief The winner columns the entity's merge policy lets the loser's values fill.
struct FillPlan {
  std::vector<std::string> columns, conds;  // conds over t (winner) and l (loser)
};

FillPlan fill_plan(pqxx::transaction_base& tx, const MergeTarget& t) {
  FillPlan plan;
  for (const auto& f : t.entity->fields) {
    const config::MergePolicy policy = f.merge.value_or(t.entity->merge);
    if (policy == config::MergePolicy::Keep || f.column == t.entity->id_column) continue;
    if (std::find(plan.columns.begin(), plan.columns.end(), f.column) != plan.columns.end()) continue;
    if (!t.table.column_types.count(f.column))
      throw Refusal{{"refused: entity " + t.entity->name + " maps field " + f.name + " to column " + f.column +
                     ", which " + t.table.canonical + " lacks (ingestd check names such mismatches)"}};
    const std::string w = "t." + tx.quote_name(f.column), l = "l." + tx.quote_name(f.column);
    const std::string as_text = t.table.column_types.at(f.column) == "json" ? "::text" : "";  // json has no =
    plan.columns.push_back(f.column);
    plan.conds.push_back(policy == config::MergePolicy::FillNulls
                             ? "(" + w + " IS NULL AND " + l + " IS NOT NULL)"
                             : "(" + l + " IS NOT NULL AND " + w + as_text + " IS DISTINCT FROM " + l + as_text + ")");
  }
  return plan;
}

/// Fills the winner from the loser's values (`loser_row`: the row as to_jsonb made it), recording
/// every changed column in `changes` the way the loader does.
void fill_winner(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                 const MergeTarget& t, const LockedPair& p, const std::string& loser_row, RecordMergeResult& out) {
  const FillPlan plan = fill_plan(tx, t);
  if (plan.columns.empty()) return;
  auto loser = [&](int param) {
    return "jsonb_populate_record(NULL::" + t.table.quoted + ", $" + std::to_string(param) + "::jsonb) l";
  };
  std::string vals, set, any;
  for (size_t i = 0; i < plan.columns.size(); ++i) {
    const std::string c = tx.quote_name(plan.columns[i]);
    vals += std::string(i ? ", " : "") + "(" + tx.quote(plan.columns[i]) + ", t." + c + "::text, l." + c + "::text, " +
            plan.conds[i] + ")";
    set += std::string(i ? ", " : "") + c + " = CASE WHEN " + plan.conds[i] + " THEN l." + c + " ELSE t." + c + " END";
    any += std::string(i ? " OR " : "") + plan.conds[i];
  }
  auto winner = [&](int param) { return "t." + t.idq + " = $" + std::to_string(param) + "::" + t.table.id_type; };
  auto changed = tx.exec_params(
      "INSERT INTO " + books.table(tx, "changes") +
          " (batch_id, table_name, record_id, column_name, before, after) SELECT $1::uuid, $2, "
          "$3::text, v.col, v.before, v.after FROM " +
          t.table.quoted + " t CROSS JOIN " + loser(4) + " CROSS JOIN LATERAL (VALUES " + vals +
          ") v(col, before, after, chg) WHERE " + winner(3) + " AND v.chg RETURNING column_name, before, after",
      batch_id, t.table.canonical, p.winner, loser_row);
  if (changed.empty()) return;
  tx.exec_params(
      "UPDATE " + t.table.quoted + " t SET " + set + " FROM " + loser(2) + " WHERE " + winner(1) + " AND (" + any + ")",
      p.winner, loser_row);
  for (const auto& col : plan.columns)  // in the entity's field order
    for (const auto& c : changed)
      if (c[0].as<std::string>() == col) {
        out.filled.push_back(col);
        out.changes.push_back({{"column", col},
                               {"before", c[1].is_null() ? json() : json(c[1].as<std::string>())},
                               {"after", c[2].is_null() ? json() : json(c[2].as<std::string>())}});
      }
}

/// Moves the loser's identity memory to the winner (a key the winner already remembers is
/// dropped instead); returns the loser's keys as they were, each marked moved or not.
std::string move_identity_keys(pqxx::transaction_base& tx, const Bookkeeping& books, const MergeTarget& t,
                               const LockedPair& p, RecordMergeResult& out) {
  const std::string keys = books.table(tx, "identity_keys");
  const std::string winner_has =
      "EXISTS (SELECT 1 FROM " + keys +
      " w WHERE w.table_name = $1 AND w.record_id = $3 AND w.tier = l.tier AND w.key = l.key)";
  const std::string as_json = "jsonb_build_object('tier', l.tier, 'key', l.key, 'batch_id', l.batch_id, 'moved', NOT " +
                              winner_has + ")";
  const std::string saved = tx.exec_params1("SELECT coalesce(jsonb_agg(" + as_json + "), '[]')::text FROM " + keys +
                                                " l WHERE l.table_name = $1 AND l.record_id = $2",
                                            t.table.canonical, p.loser, p.winner)[0]
                                .as<std::string>();
  tx.exec_params("DELETE FROM " + keys + " l WHERE l.table_name = $1 AND l.record_id = $2 AND " + winner_has,
                 t.table.canonical, p.loser, p.winner);
  const auto moved = tx.exec_params("UPDATE " + keys + " SET record_id = $3 WHERE table_name = $1 AND record_id = $2",
                                    t.table.canonical, p.loser, p.winner);
  out.identity_keys_moved = int64_t(moved.affected_rows());
  return saved;
}

/// The loser's field values by field name, as text: what review decisions remember keys from.
json candidate_of(const config::Entity& e, const std::string& loser_row) {
  const json row = json::parse(loser_row);
  json cand = json::object();
  for (const auto& f : e.fields) {
    if (!row.contains(f.column) || row[f.column].is_null()) continue;
    const json& v = row[f.column];
    cand[f.name] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return cand;
}

/// The loser's row as it is now (after repointing: a self-reference now names the winner).
std::string current_row(pqxx::transaction_base& tx, const MergeTarget& t, const std::string& id) {
  return tx
      .exec_params1(
          "SELECT to_jsonb(t)::text FROM " + t.table.quoted + " t WHERE t." + t.idq + " = $1::" + t.table.id_type,
          id)[0]
      .as<std::string>();
}

/// Creates the merge's batch (a batch of kind merge on the entity's dataset).
std::string create_batch(pqxx::transaction_base& tx, const Bookkeeping& books, const MergeTarget& t,
                         const RecordMergeRequest& r) {
  NewBatch nb;
  nb.kind = BatchKind::Merge;
  nb.target = t.dataset->name;
  nb.submitted_by = r.actor.name;
  nb.owner = r.actor.name;
  nb.dry_run = r.dry_run;
  return books.create(tx, nb);
}

/// Saves what only a merge knows (the loser's row, the repointed columns, its identity keys).
void record_merge_row(pqxx::transaction_base& tx, const Bookkeeping& books, const std::string& batch_id,
                      const MergeTarget& t, const LockedPair& p, const json& repointed_columns,
                      const std::string& saved_keys) {
  tx.exec_params("INSERT INTO " + books.table(tx, "record_merges") +
                     " (batch_id, table_name, id_column, loser_id, winner_id, loser_row, repointed, identity_keys) "
                     "VALUES ($1::uuid, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb)",
                 batch_id, t.table.canonical, t.entity->id_column, p.loser, p.winner, p.loser_row,
                 repointed_columns.dump(), saved_keys);
}

/// Ends the batch and audits it with what the merge did.
void finish_batch(pqxx::transaction_base& tx, const Bookkeeping& books, const RecordMergeRequest& r,
                  const RecordMergeResult& out) {
  const json what = {{"table", out.table},         {"winner", out.winner},
                     {"loser", out.loser},         {"filled", out.filled},
                     {"repointed", out.repointed}, {"identity_keys_moved", out.identity_keys_moved}};
  BatchFinish fin;
  fin.status = r.dry_run ? BatchStatus::DryRun : BatchStatus::Completed;
  fin.rows_total = 1;
  fin.updated = out.filled.empty() ? 0 : 1;
  fin.stats = {{"merge", what}};
  books.finish(tx, out.batch_id, fin);
  books.audit(tx, r.actor, r.dry_run ? "merge_dry_run" : "merge", out.batch_id, what);
}

/// The whole merge inside `tx`; throws Refusal before changing anything it must refuse.
void run_merge(pqxx::transaction_base& tx, const Bookkeeping& books, const config::Config& cfg,
               const RecordMergeRequest& r, RecordMergeResult& out) {
  out.table = r.table;  // as asked, until the database names them
  out.loser = r.loser;
  out.winner = r.winner;
  const MergeTarget t = find_writer(tx, cfg, r.table);
  out.table = t.table.canonical;
  const LockedPair p = lock_records(tx, t, r);
  out.loser = p.loser;
  out.winner = p.winner;
  const std::vector<ForeignKey> fks = foreign_keys_to(tx, t.table);
  // the lock the loader takes before matching in a referencing table: no lead appears between
  // the checks below and the repointing
  for (const auto& fk : fks)
    if (fk.repointable(t.entity->id_column) && fk.table.canonical != t.table.canonical)
      tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('ingestd:table:' || $1, 0))", fk.table.canonical);
  if (auto why = unmovable_references(tx, t, fks, p.loser); !why.empty()) {
    why.insert(why.begin(), "refused: rows reference the loser through foreign keys a merge does not repoint:");
    throw Refusal{why};
  }
  if (auto conflicts = repoint_conflicts(tx, t, fks, p); !conflicts.empty()) {
    conflicts.insert(conflicts.begin(), "refused: repointing the loser's rows to the winner would break " +
                                            std::to_string(conflicts.size()) +
                                            " unique constraint(s); resolve these rows first:");
    throw Refusal{conflicts};
  }
  out.batch_id = create_batch(tx, books, t, r);
  json repointed_columns = json::array();
  out.repointed = repoint(tx, books, out.batch_id, t, fks, p, repointed_columns);
  repoint_reviews(tx, books, out.batch_id, t, p, out.repointed, repointed_columns);
  const std::string loser_now = current_row(tx, t, p.loser);
  // deleted before the winner is filled, so a unique value moves from one to the other
  tx.exec_params("DELETE FROM " + t.table.quoted + " WHERE " + t.idq + " = $1::" + t.table.id_type, p.loser);
  fill_winner(tx, books, out.batch_id, t, p, loser_now, out);
  const std::string saved_keys = move_identity_keys(tx, books, t, p, out);
  // the loser's own keys (its columns are gone) now find the winner
  remember_reviewed_keys(tx, books.schema(), *t.entity, t.table, candidate_of(*t.entity, loser_now), p.winner,
                         out.batch_id);
  record_merge_row(tx, books, out.batch_id, t, p, repointed_columns, saved_keys);
  finish_batch(tx, books, r, out);
}

void audit_refusal(pqxx::connection& conn, const Bookkeeping& books, const RecordMergeRequest& r,
                   const RecordMergeResult& out) {
  pqxx::work tx(conn);
  books.audit(tx, r.actor, "merge_refused", "",
              {{"table", r.table}, {"loser", r.loser}, {"winner", r.winner}, {"errors", out.errors}});
  tx.commit();
}

}  // namespace

std::string_view to_string(RecordMergeResult::Status s) {
  switch (s) {
    case RecordMergeResult::Status::Merged: return "merged";
    case RecordMergeResult::Status::DryRun: return "dry_run";
    case RecordMergeResult::Status::Refused: return "refused";
  }
  return "refused";
}

RecordMergeResult merge_records(pqxx::connection& conn, const config::Config& cfg, const RecordMergeRequest& r) {
  const Bookkeeping books(cfg.postgres.bookkeeping_schema);
  RecordMergeResult out;
  try {
    pqxx::work tx(conn);
    run_merge(tx, books, cfg, r, out);
    out.status = r.dry_run ? RecordMergeResult::Status::DryRun : RecordMergeResult::Status::Merged;
    if (r.dry_run)
      tx.abort();
    else
      tx.commit();
    return out;
  } catch (const Refusal& e) {
    out.errors = e.errors;
  } catch (const pqxx::integrity_constraint_violation& e) {
    // what the checks above cannot see (a partial unique index, a trigger, a check): nothing committed
    out.errors = {"refused: the database does not allow this merge: " + first_line(e.what())};
  } catch (const pqxx::data_exception& e) {
    out.errors = {"refused: " + first_line(e.what())};
  }
  out.status = RecordMergeResult::Status::Refused;
  out.batch_id.clear();  // its batch row was rolled back with the rest
  audit_refusal(conn, books, r, out);
  return out;
}

}  // namespace ingestd::engine
