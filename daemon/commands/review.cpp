// `ingestd review list|merge ID [--into RECORD]|distinct ID`: the review queue, where rows that
// two records claim, or that a fuzzy tier scored between review_at and merge_at, wait for a
// person's decision.
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/commands/table.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/bookkeeping.hpp"
#include "handlers/engine/review.hpp"
#include "handlers/engine/review_decision.hpp"
#include "handlers/engine/catalog.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

using engine::ReviewTarget;

/// @brief An open review item, locked for the decision.
struct ReviewItem {
  std::string batch, table, dataset_or_job;
  json candidate;
  std::string suggested;  // the fuzzy tier's best candidate record, "" = none
};

std::string show(const json& v) { return v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump(); }

/// One item as a person reads it: the row beside each record that claims it, field by field,
/// with the level and weight the fuzzy tier gave the field.
void print_item(const json& it) {
  std::cout << "review item " << it["id"] << ": batch " << show(it["batch_id"]) << " row " << it["row"] << ", "
            << show(it["table"]) << "\n  " << show(it["reasons"]) << "\n";
  std::vector<std::string> head{"FIELD", "ROW"};
  for (const auto& c : it["candidates"])
    head.push_back("RECORD " + show(c["record_id"]) +
                   (c.contains("score") ? " (" + show(c["score"]).substr(0, 6) + ")" : " (tier " + show(c["tier"]) + ")"));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [field, value] : it["values"].items()) {
    std::vector<std::string> line{field, show(value)};
    for (const auto& c : it["candidates"]) {
      std::string cell = c.contains("values") && c["values"].is_object() ? show(c["values"].value(field, json())) : "";
      for (const auto& f : c.value("fields", json::array()))
        if (f["field"] == field) cell += "  [" + show(f["level"]) + " " + show(f["weight"]) + "]";
      line.push_back(cell);
    }
    rows.push_back(std::move(line));
  }
  print_table(head, rows);
}

int list_items(pqxx::transaction_base& tx, const config::Config& cfg, const ReviewListOptions& o) {
  const json items = engine::review_items(tx, cfg, {o.after, o.limit});
  if (o.json) {
    for (const auto& it : items) std::cout << it.dump() << "\n";
    return 0;
  }
  if (items.empty()) std::cout << "review queue is empty" << (o.after ? " after item " + std::to_string(o.after) : "")
                               << "\n";
  for (const auto& it : items) print_item(it);
  if (int64_t(items.size()) == o.limit)
    std::cout << "more: ingestd review list --after " << items.back()["id"] << "\n";
  return 0;
}

/// The item `id` when it is open; otherwise says why not and returns nothing.
std::optional<ReviewItem> lock_open_item(pqxx::transaction_base& tx, const std::string& bk, int64_t id) {
  auto item =
      tx.exec_params("SELECT q.batch_id::text, q.table_name, q.candidate::text, q.status, b.dataset_or_job, q.record_id "
                     "FROM " + bk +
                         ".review_queue q LEFT JOIN " + bk +
                         ".batches b ON b.id = q.batch_id WHERE q.id = $1 "
                         "FOR UPDATE OF q",
                     id);
  if (item.empty()) {
    std::cerr << "ingestd review: no review item " << id << "\n";
    return std::nullopt;
  }
  if (text(item[0][3]) != "open") {
    std::cerr << "ingestd review: item " << id << " is already " << text(item[0][3]) << "\n";
    return std::nullopt;
  }
  return ReviewItem{text(item[0][0]), text(item[0][1]), text(item[0][4]), json::parse(text(item[0][2])),
                    text(item[0][5])};
}

/// Fills what record `into` lacks from the candidate, remembering each filled value so a
/// rollback of the batch can undo it. Returns an exit code (0: merged).
int merge_into(pqxx::transaction_base& tx, const std::string& schema, const ReviewTarget& t, const ReviewItem& item,
               const std::string& into) {
  if (into.empty()) {
    std::cerr << "ingestd review merge: --into RECORD names the record to merge into (the item names no candidate)\n";
    return 2;
  }
  const std::string tq = t.table.quoted, idq = tx.quote_name(t.entity->id_column);
  auto exists = tx.exec_params("SELECT 1 FROM " + tq + " WHERE " + idq + "::text = $1", into);
  if (exists.empty()) {
    std::cerr << "ingestd review merge: no record " << into << " in " << item.table << "\n";
    return 1;
  }
  engine::fill_reviewed(tx, schema, t, item.candidate, item.batch, into);
  return 0;
}

/// Closes the item with its decision, points the row's lineage at the record, audits it.
void record_decision(pqxx::transaction_base& tx, const engine::Bookkeeping& books, int64_t id,
                     const std::string& action, const ReviewItem& item, const std::string& record,
                     const engine::Actor& actor) {
  const std::string decided = action == "merge" ? "merged" : "distinct";
  tx.exec_params("UPDATE " + books.table(tx, "review_queue") +
                     " SET status = $2, record_id = $3, decided_by = $4, decided_at = now() WHERE id = $1",
                 id, decided, record, actor.name);
  if (item.candidate.contains("row_number"))
    engine::settle_lineage(tx, books.schema(), item.batch, item.table, item.candidate["row_number"].get<int64_t>(),
                           record, action != "merge");
  books.audit(tx, actor, "review_" + action, item.batch, {{"review_id", id}, {"record_id", record}});
}

}  // namespace

int cmd_review(const config::Config& cfg, const std::string& action, int64_t id, const std::string& into,
               const engine::Actor& actor, const ReviewListOptions& list) {
  if (action == "list")
    return run_read_only(cfg, "review list", [&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      return list_items(tx, cfg, list);
    });
  auto c = connect_migrated(cfg);
  pqxx::work tx(*c);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  const std::optional<ReviewItem> item = lock_open_item(tx, bk, id);
  if (!item) return 1;
  ReviewTarget t = engine::review_target(tx, cfg, item->dataset_or_job, item->table);
  if (!t.entity) {
    std::cerr << "ingestd review: the config no longer has the dataset entity that writes " << item->table << "\n";
    return 1;
  }
  // without --into, a row the fuzzy tier sent to review merges into its best candidate
  std::string record = into.empty() ? item->suggested : into;
  if (action == "distinct") {
    record = engine::insert_reviewed(tx, cfg.postgres.bookkeeping_schema, t, item->candidate, item->batch);
  } else if (action == "merge") {
    if (int rc = merge_into(tx, cfg.postgres.bookkeeping_schema, t, *item, record); rc != 0) return rc;
  } else {
    std::cerr << "ingestd review: unknown action " << action << " (list, merge, distinct)\n";
    return 2;
  }
  // the decision's keys, so the next row with them finds this record
  engine::remember_reviewed_keys(tx, cfg.postgres.bookkeeping_schema, *t.entity, t.table, item->candidate, record,
                                 item->batch);
  record_decision(tx, engine::Bookkeeping(cfg.postgres.bookkeeping_schema), id, action, *item, record, actor);
  // the row's leads (entities referencing this one) waited for the decision: complete them now
  const json completed =
      item->candidate.contains("row_number")
          ? engine::complete_waiting_rows(tx, cfg, item->dataset_or_job, item->batch,
                                          item->candidate["row_number"].get<int64_t>(), t.entity->name, record, actor.name)
          : json::array();
  tx.commit();
  std::cout << json({{"review_id", id},
                     {"status", action == "merge" ? "merged" : "distinct"},
                     {"record_id", record},
                     {"dependents", completed}})
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace ingestd
