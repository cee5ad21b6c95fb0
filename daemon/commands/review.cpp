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
#include "handlers/engine/catalog.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

struct ReviewTarget {
  const config::Entity* entity = nullptr;
  engine::TableInfo table;
};

/// @brief An open review item, locked for the decision.
struct ReviewItem {
  std::string batch, table, dataset_or_job;
  json candidate;
  std::string suggested;  // the fuzzy tier's best candidate record, "" = none
};

/// The entity a review item belongs to: the one of the batch's dataset writing its table.
ReviewTarget review_target(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                           const std::string& table) {
  ReviewTarget t;
  const config::Dataset* ds = config::dataset_of(cfg, dataset_or_job);
  if (!ds) return t;
  for (const auto& e : ds->entities) {
    auto info = engine::describe_table(tx, e.table);
    if (info.exists && info.canonical == table) {
      t.entity = &e;
      t.table = info;
      engine::describe_id(tx, t.table, e.id_column);
    }
  }
  return t;
}

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

/// A candidate's value as the text a parameter carries.
std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

/// A new record from the candidate's values; returns its id.
std::string insert_distinct(pqxx::transaction_base& tx, const ReviewTarget& t, const json& cand) {
  const std::string idq = tx.quote_name(t.entity->id_column);
  std::string cols = idq, vals = "(" + t.table.id_default + ")";
  std::vector<std::optional<std::string>> params;
  for (const auto& f : t.entity->fields) {
    if (!cand.contains(f.name) || cand[f.name].is_null()) continue;
    params.push_back(value_text(cand[f.name]));
    cols += ", " + tx.quote_name(f.column);
    vals += ", $" + std::to_string(params.size()) + "::" + t.table.column_types.at(f.column);
  }
  return tx
      .exec_params(
          "INSERT INTO " + t.table.quoted + " (" + cols + ") VALUES (" + vals + ") RETURNING " + idq + "::text",
          pqxx::prepare::make_dynamic_params(params))[0][0]
      .as<std::string>();
}

/// Fills what record `into` lacks from the candidate, remembering each filled value so a
/// rollback of the batch can undo it. Returns an exit code (0: merged).
int merge_into(pqxx::transaction_base& tx, const std::string& bk, const ReviewTarget& t, const ReviewItem& item,
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
  const json& cand = item.candidate;
  for (const auto& f : t.entity->fields) {
    if (!cand.contains(f.name) || cand[f.name].is_null()) continue;
    const std::string v = value_text(cand[f.name]);
    const std::string col = tx.quote_name(f.column), type = t.table.column_types.at(f.column);
    tx.exec_params("INSERT INTO " + bk +
                       ".changes (batch_id, table_name, record_id, column_name, before, after) "
                       "SELECT $1::uuid, $2, $3, $4, NULL, $5 FROM " +
                       tq + " WHERE " + idq + "::text = $3 AND " + col + " IS NULL",
                   item.batch, item.table, into, f.column, v);
    tx.exec_params(
        "UPDATE " + tq + " SET " + col + " = $2::" + type + " WHERE " + idq + "::text = $1 AND " + col + " IS NULL",
        into, v);
  }
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
  ReviewTarget t = review_target(tx, cfg, item->dataset_or_job, item->table);
  if (!t.entity) {
    std::cerr << "ingestd review: the config no longer has the dataset entity that writes " << item->table << "\n";
    return 1;
  }
  // without --into, a row the fuzzy tier sent to review merges into its best candidate
  std::string record = into.empty() ? item->suggested : into;
  if (action == "distinct") {
    record = insert_distinct(tx, t, item->candidate);
  } else if (action == "merge") {
    if (int rc = merge_into(tx, bk, t, *item, record); rc != 0) return rc;
  } else {
    std::cerr << "ingestd review: unknown action " << action << " (list, merge, distinct)\n";
    return 2;
  }
  // the decision's keys, so the next row with them finds this record
  engine::remember_reviewed_keys(tx, cfg.postgres.bookkeeping_schema, *t.entity, t.table, item->candidate, record,
                                 item->batch);
  record_decision(tx, engine::Bookkeeping(cfg.postgres.bookkeeping_schema), id, action, *item, record, actor);
  tx.commit();
  std::cout
      << json({{"review_id", id}, {"status", action == "merge" ? "merged" : "distinct"}, {"record_id", record}}).dump()
      << std::endl;
  return 0;
}

}  // namespace ingestd
