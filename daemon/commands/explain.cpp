// `ingestd explain BATCH ROW` (why a row landed where it did) and `ingestd explain --record
// TABLE ID` (which rows made a record): read-only, from the bookkeeping schema.
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/commands/table.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/explain.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

std::string show(const json& v) { return v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump(); }

void print_row(const json& j) {
  std::cout << "batch " << show(j["batch_id"]) << " (" << show(j.value("target", json())) << "), row " << j["row"] << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : j["entities"])
    rows.push_back({show(e["entity"]), show(e["table"]), show(e["record_id"]), show(e["action"]), show(e["tier"]),
                    show(e["tier_fields"]), show(e.value("score", json()))});
  if (!rows.empty()) print_table({"ENTITY", "TABLE", "RECORD", "ACTION", "TIER", "TIER FIELDS", "SCORE"}, rows);
  for (const auto& e : j["entities"])
    for (const auto& p : e.value("fuzzy", json::array())) {
      std::cout << "  " << show(e["entity"]) << " " << show(p["decision"]) << " with record " << show(p["record_id"])
                << ", match weight " << show(p["score"]) << ":\n";
      std::vector<std::vector<std::string>> fields;
      for (const auto& f : p["fields"]) fields.push_back({show(f["field"]), show(f["level"]), show(f["weight"])});
      print_table({"  FIELD", "LEVEL", "WEIGHT"}, fields);
    }
  for (const auto& e : j["entities"])
    for (const auto& c : e.value("batch_changes", json::array()))
      std::cout << "  " << show(e["entity"]) << " " << show(e["record_id"]) << ": " << show(c["column"]) << " "
                << show(c["before"]) << " -> " << show(c["after"]) << "\n";
  for (const auto& e : j["errors"])
    std::cout << "  " << show(e["code"]) << (e["field"].is_null() ? "" : " " + show(e["field"])) << ": "
              << show(e["message"]) << "\n";
  for (const auto& q : j["review"])
    std::cout << "  review item " << q["id"] << " (" << show(q["status"]) << "): " << show(q["reasons"]) << "\n";
}

void print_record(const json& j) {
  std::cout << show(j["table"]) << " record " << show(j["record_id"]) << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : j["rows"])
    rows.push_back({show(r["batch_id"]), show(r["row"]), show(r["entity"]), show(r["action"]), show(r["tier"])});
  if (rows.empty()) std::cout << "  no input row landed on it\n";
  else print_table({"BATCH", "ROW", "ENTITY", "ACTION", "TIER"}, rows);
  for (const auto& c : j["changes"])
    std::cout << "  " << show(c["at"]) << " batch " << show(c["batch_id"]) << ": " << show(c["column"]) << " "
              << show(c["before"]) << " -> " << show(c["after"]) << "\n";
  for (const auto& k : j["identity_memory"])
    std::cout << "  remembered key, tier " << k["tier"] << ": " << show(k["key"]) << "\n";
}

/// What `explain` prints, read in one read-only transaction.
int explain(pqxx::connection& c, const config::Config& cfg, const std::string& a, const std::string& b, bool record,
            bool as_json) {
  pqxx::read_transaction tx(c);
  json j;
  if (record) {
    j = engine::explain_record(tx, cfg, a, b);
  } else {
    int64_t row = 0;
    size_t used = 0;
    try {
      row = std::stoll(b, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != b.size() || row < 1) {
      std::cerr << "ingestd explain: ROW must be a row number (1 or more), got " << b << "\n";
      return 2;
    }
    j = engine::explain_row(tx, cfg, a, row);
    if (!j.contains("target")) {
      std::cerr << "ingestd explain: no batch " << a << "\n";
      return 1;
    }
  }
  if (as_json) std::cout << j.dump(2) << std::endl;
  else if (record) print_record(j);
  else print_row(j);
  return 0;
}

}  // namespace

int cmd_explain(const config::Config& cfg, const std::string& a, const std::string& b, bool record, bool as_json) {
  return run_read_only(cfg, "explain", [&](pqxx::connection& c) { return explain(c, cfg, a, b, record, as_json); });
}

}  // namespace ingestd
