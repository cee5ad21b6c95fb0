#include "handlers/engine/review_decision.hpp"

#include <map>
#include <set>

#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/merge/sql_builder.hpp"
#include "handlers/engine/review.hpp"

namespace ingestd::engine {

using nlohmann::json;

namespace {

/// A reviewed value as the text a parameter carries.
std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

/// An on_insert value as SQL: a variable from the batch row `b`, or the literal (parameter `p`).
std::string stamp_expr(const std::string& spec, const std::string& param) {
  if (spec == "$now") return "now()";
  if (spec == "$tier") return "NULL";
  if (spec == "$batch_id") return "b.id::text";
  if (spec == "$source_system" || spec == "$program" || spec == "$submitted_by") return "b." + spec.substr(1);
  return param;
}

/// The record a completed row is: found through the entity's exact tiers as a load finds it.
OneRowMatch find_reviewed(pqxx::transaction_base& tx, const std::string& bk, const ReviewTarget& t,
                          const std::string& batch_id, const json& values) {
  const auto matcher = make_matcher(
      *t.entity, MatchTarget{bk, t.table.quoted, tx.quote_name(t.entity->id_column), t.table.id_type},
      tier_sql(tx, *t.entity, t.table, bk));
  const std::map<std::string, std::string> no_vars;
  StepSql sql(tx, nullptr, t.table.canonical, batch_id, t.entity->name, no_vars);
  return match_one_row(sql, *matcher, reviewed_field_keys(*t.entity, values));
}

/// One waiting item, completed: its references filled from `decided`, then matched or created.
json complete_item(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                   const std::string& batch_id, const pqxx::row& item, std::map<std::string, std::string>& decided,
                   const std::string& actor) {
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  const int64_t id = item[0].as<int64_t>();
  const std::string table = item[1].as<std::string>();
  json values = json::parse(item[2].as<std::string>());
  const ReviewTarget t = review_target(tx, cfg, dataset_or_job, table);
  if (!t.entity) return {{"review_id", id}, {"status", "waiting"}, {"why", "no entity writes " + table}};
  for (const auto& f : t.entity->fields)
    if (f.ref) {
      if (!decided.count(*f.ref)) return {{"review_id", id}, {"status", "waiting"}, {"why", "waits for " + *f.ref}};
      values[f.name] = decided.at(*f.ref);
    }
  const OneRowMatch found = find_reviewed(tx, bk, t, batch_id, values);
  const std::string queue = bk + ".review_queue";
  if (!found.claimants.empty()) {
    tx.exec_params("UPDATE " + queue + " SET status = 'open', candidate = $2::jsonb, reasons = $3 WHERE id = $1", id,
                   values.dump(), "records " + sql::join(found.claimants, ", ") + " claim this row");
    return {{"review_id", id}, {"status", "open"}, {"table", table}};
  }
  const bool is_new = found.id.empty();
  const std::string record =
      is_new ? insert_reviewed(tx, cfg.postgres.bookkeeping_schema, t, values, batch_id) : found.id;
  if (!is_new) fill_reviewed(tx, cfg.postgres.bookkeeping_schema, t, values, batch_id, record);
  remember_reviewed_keys(tx, cfg.postgres.bookkeeping_schema, *t.entity, t.table, values, record, batch_id);
  settle_lineage(tx, cfg.postgres.bookkeeping_schema, batch_id, table, values.value("row_number", int64_t{0}), record,
                 is_new);
  const std::string status = is_new ? "distinct" : "merged";
  tx.exec_params("UPDATE " + queue + " SET status = $2, record_id = $3, candidate = $4::jsonb, decided_by = $5, "
                 "decided_at = now() WHERE id = $1",
                 id, status, record, values.dump(), actor);
  decided[t.entity->name] = record;
  return {{"review_id", id}, {"status", status}, {"table", table}, {"record_id", record}};
}

}  // namespace

ReviewTarget review_target(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                           const std::string& table) {
  ReviewTarget t;
  const config::Dataset* ds = config::dataset_of(cfg, dataset_or_job);
  if (!ds) return t;
  for (const auto& e : ds->entities) {
    auto info = describe_table(tx, e.table);
    if (info.exists && info.canonical == table) {
      t.entity = &e;
      t.table = info;
      describe_id(tx, t.table, e.id_column);
    }
  }
  return t;
}

std::string insert_reviewed(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const ReviewTarget& t,
                            const json& values, const std::string& batch_id) {
  const std::string idq = tx.quote_name(t.entity->id_column);
  std::string cols = idq, vals = "(" + t.table.id_default + ")";
  std::vector<std::optional<std::string>> params{batch_id};
  std::set<std::string> written{t.entity->id_column};
  auto add = [&](const std::string& column, const std::string& expr) {
    if (!written.insert(column).second) return;
    cols += ", " + tx.quote_name(column);
    vals += ", (" + expr + ")::" + t.table.column_types.at(column);
  };
  for (const auto& f : t.entity->fields) {
    if (!values.contains(f.name) || values[f.name].is_null()) continue;
    params.push_back(value_text(values[f.name]));
    add(f.column, "$" + std::to_string(params.size()));
  }
  for (const auto& [column, spec] : t.entity->on_insert) {
    if (spec.empty() || spec[0] != '$') params.push_back(spec);
    add(column, stamp_expr(spec, "$" + std::to_string(params.size())));
  }
  return tx
      .exec_params("INSERT INTO " + t.table.quoted + " (" + cols + ") SELECT " + vals + " FROM " +
                       tx.quote_name(bookkeeping_schema) + ".batches b WHERE b.id = $1::uuid RETURNING " + idq +
                       "::text",
                   pqxx::prepare::make_dynamic_params(params))[0][0]
      .as<std::string>();
}

void fill_reviewed(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const ReviewTarget& t,
                   const json& values, const std::string& batch_id, const std::string& into) {
  const std::string tq = t.table.quoted, idq = tx.quote_name(t.entity->id_column);
  for (const auto& f : t.entity->fields) {
    if (!values.contains(f.name) || values[f.name].is_null() || f.column == t.entity->id_column) continue;
    const std::string v = value_text(values[f.name]);
    const std::string col = tx.quote_name(f.column), type = t.table.column_types.at(f.column);
    tx.exec_params("INSERT INTO " + tx.quote_name(bookkeeping_schema) +
                       ".changes (batch_id, table_name, record_id, column_name, before, after) "
                       "SELECT $1::uuid, $2, $3, $4, NULL, $5 FROM " +
                       tq + " WHERE " + idq + "::text = $3 AND " + col + " IS NULL",
                   batch_id, t.table.canonical, into, f.column, v);
    tx.exec_params(
        "UPDATE " + tq + " SET " + col + " = $2::" + type + " WHERE " + idq + "::text = $1 AND " + col + " IS NULL",
        into, v);
  }
}

json complete_waiting_rows(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& dataset_or_job,
                           const std::string& batch_id, int64_t row_number, const std::string& entity,
                           const std::string& record_id, const std::string& actor) {
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  // in the order the load queued them: the dataset's entity order, so a chain completes in one pass
  auto items = tx.exec_params("SELECT id, table_name, candidate::text FROM " + bk + ".review_queue WHERE batch_id = "
                              "$1::uuid AND status = 'waiting' AND (candidate->>'row_number')::bigint = $2 ORDER BY id "
                              "FOR UPDATE",
                              batch_id, row_number);
  std::map<std::string, std::string> decided{{entity, record_id}};
  json out = json::array();
  for (const auto& item : items) out.push_back(complete_item(tx, cfg, dataset_or_job, batch_id, item, decided, actor));
  return out;
}

}  // namespace ingestd::engine
