// `ingestd review list`: the open items, oldest first, each row beside the records that claim
// it, with the fuzzy tier's level and weight per field where it scored the pair.
#include <regex>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/review.hpp"

namespace ingestd::engine {

namespace {

using nlohmann::json;

std::string text_of(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

/// The entity of the item's batch that writes `table` (nullptr: the config no longer has it).
const config::Entity* entity_of(pqxx::transaction_base& tx, const config::Config& cfg, const std::string& target,
                                const std::string& table, TableInfo& info) {
  const config::Dataset* ds = config::dataset_of(cfg, target);
  if (!ds) return nullptr;
  for (const auto& e : ds->entities) {
    info = describe_table(tx, e.table);
    if (info.exists && info.canonical == table) return &e;
  }
  return nullptr;
}

/// A record's values by field name, as the table holds them now (null: it is gone).
json record_values(pqxx::transaction_base& tx, const config::Entity& e, const TableInfo& t, const std::string& id) {
  auto r = tx.exec_params("SELECT to_jsonb(t)::text FROM " + t.quoted + " t WHERE t." + tx.quote_name(e.id_column) +
                              "::text = $1",
                          id);
  if (r.empty()) return nullptr;
  const json row = json::parse(r[0][0].c_str());
  json out = json::object();
  for (const auto& f : e.fields) out[f.name] = row.value(f.column, json());
  return out;
}

/// The records that claim the item: the fuzzy tier's scored pairs, else the exact tiers'
/// "matches ID (tier N)" of its reasons.
json candidates_of(pqxx::transaction_base& tx, const std::string& bk, const pqxx::row& item, int64_t row) {
  json out = json::array();
  for (const auto& m : tx.exec_params("SELECT record_id, score, fields::text FROM " + bk + ".match_scores WHERE "
                                      "batch_id::text = $1 AND row_number = $2 AND table_name = $3 AND decision = "
                                      "'review' ORDER BY score DESC, record_id",
                                      text_of(item[1]), row, text_of(item[2])))
    out.push_back({{"record_id", text_of(m[0])}, {"score", m[1].as<double>()}, {"fields", json::parse(m[2].c_str())}});
  if (!out.empty()) return out;
  static const std::regex claim(R"((\S+) \(tier (\d+)\))");
  const std::string why = text_of(item[4]);
  for (std::sregex_iterator it(why.begin(), why.end(), claim), end; it != end; ++it)
    out.push_back({{"record_id", (*it)[1].str()}, {"tier", std::stoi((*it)[2].str())}});
  return out;
}

}  // namespace

json review_items(pqxx::transaction_base& tx, const config::Config& cfg, const ReviewPage& page) {
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  auto items = tx.exec_params("SELECT q.id, q.batch_id::text, q.table_name, q.candidate::text, q.reasons, "
                              "b.dataset_or_job FROM " + bk + ".review_queue q LEFT JOIN " + bk + ".batches b ON b.id = "
                              "q.batch_id WHERE q.status = 'open' AND q.id > $1 ORDER BY q.id LIMIT $2",
                              page.after, page.limit);
  json out = json::array();
  for (const auto& item : items) {
    json values = json::parse(item[3].c_str());
    const int64_t row = values.value("row_number", int64_t{0});
    values.erase("row_number");
    json j = {{"id", item[0].as<int64_t>()}, {"batch_id", text_of(item[1])}, {"row", row}, {"table", text_of(item[2])},
              {"reasons", text_of(item[4])}, {"values", values}, {"candidates", candidates_of(tx, bk, item, row)}};
    TableInfo t;
    if (const config::Entity* e = entity_of(tx, cfg, text_of(item[5]), text_of(item[2]), t)) {
      j["entity"] = e->name;
      for (auto& c : j["candidates"]) c["values"] = record_values(tx, *e, t, c["record_id"].get<std::string>());
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace ingestd::engine
