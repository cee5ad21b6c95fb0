// `ingestd status [BATCH]`: running and recent batches with progress and rate, or one batch in
// detail, read from the bookkeeping tables.
#include <cmath>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/commands/table.hpp"
#include "daemon/schema.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

const char* const kBatchColumns =
    "id::text, kind, dataset_or_job, status, rows_done, rows_total, bytes_done, size_bytes, inserted, updated, "
    "unchanged, rejected, review, owner, started_at::text, finished_at::text, "
    "extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8, reject_file, stats::text, uri, "
    "error_summary::text, dry_run";

/// One row of kBatchColumns as the JSON `status --json` prints.
json batch_json(const pqxx::row& r) {
  json j = {{"batch_id", text(r[0])},
            {"kind", text(r[1])},
            {"target", text(r[2])},
            {"status", text(r[3])},
            {"rows_done", r[4].as<int64_t>()},
            {"inserted", r[8].as<int64_t>()},
            {"updated", r[9].as<int64_t>()},
            {"unchanged", r[10].as<int64_t>()},
            {"rejected", r[11].as<int64_t>()},
            {"review", r[12].as<int64_t>()},
            {"owner", text(r[13])},
            {"started_at", text(r[14])},
            {"finished_at", text(r[15])},
            {"seconds", r[16].as<double>()},
            {"dry_run", r[21].as<bool>()}};
  if (!r[5].is_null()) j["rows_total"] = r[5].as<int64_t>();
  if (!r[7].is_null()) {
    j["size_bytes"] = r[7].as<int64_t>();
    j["bytes_done"] = r[6].as<int64_t>();
  }
  double secs = r[16].as<double>();
  if (secs > 0) j["rows_per_second"] = std::round(double(r[4].as<int64_t>()) / secs);
  if (text(r[3]) == "running" && !r[7].is_null() && r[6].as<int64_t>() > 0 && secs > 0) {
    double rate = double(r[6].as<int64_t>()) / secs;
    j["eta_seconds"] = std::round(double(r[7].as<int64_t>() - r[6].as<int64_t>()) / rate);
  }
  if (!r[17].is_null()) j["reject_file"] = text(r[17]);
  if (!r[19].is_null()) j["uri"] = text(r[19]);
  if (!r[18].is_null()) j["stats"] = json::parse(text(r[18]));
  if (!r[20].is_null()) j["errors"] = json::parse(text(r[20]));
  return j;
}

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f %s", b, u[i]);
  return buf;
}

/// One batch: its fields, then its per-entity counts and first errors.
void print_batch(const json& j) {
  for (auto& [k, v] : j.items())
    if (k != "stats") std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
  if (j.contains("stats") && j["stats"].contains("counts")) {
    std::vector<std::vector<std::string>> rows;
    for (auto& [e, cnt] : j["stats"]["counts"].items())
      rows.push_back({e, std::to_string(cnt.value("inserted", 0)), std::to_string(cnt.value("updated", 0)),
                      std::to_string(cnt.value("unchanged", 0)), std::to_string(cnt.value("rejected", 0)),
                      std::to_string(cnt.value("review", 0))});
    std::cout << "\n";
    print_table({"ENTITY", "INSERTED", "UPDATED", "UNCHANGED", "REJECTED", "REVIEW"}, rows);
  }
  if (j.contains("stats") && j["stats"].contains("first_errors") && !j["stats"]["first_errors"].empty()) {
    std::cout << "\nfirst errors:\n";
    for (auto& e : j["stats"]["first_errors"]) std::cout << "  " << e.get<std::string>() << "\n";
  }
}

void print_running(const pqxx::result& running) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : running) {
    json j = batch_json(r);
    std::string progress = std::to_string(j["rows_done"].get<int64_t>()) + " rows";
    if (j.contains("size_bytes") && j["size_bytes"].get<int64_t>() > 0)
      progress +=
          " (" +
          std::to_string(int(100.0 * double(j["bytes_done"].get<int64_t>()) / double(j["size_bytes"].get<int64_t>()))) +
          "% of " + human_bytes(double(j["size_bytes"].get<int64_t>())) + ")";
    rows.push_back({j["batch_id"], j["target"], progress,
                    j.contains("rows_per_second") ? std::to_string(int64_t(j["rows_per_second"].get<double>())) : "",
                    j.contains("eta_seconds") ? std::to_string(int64_t(j["eta_seconds"].get<double>())) + "s" : "",
                    j["owner"]});
  }
  std::cout << "RUNNING\n";
  if (rows.empty())
    std::cout << "  (none)\n";
  else
    print_table({"BATCH", "TARGET", "PROGRESS", "ROWS/S", "ETA", "OWNER"}, rows);
}

void print_recent(const pqxx::result& recent) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : recent) {
    json j = batch_json(r);
    rows.push_back({j["batch_id"], j["target"], j["status"], std::to_string(j["rows_done"].get<int64_t>()),
                    std::to_string(j["inserted"].get<int64_t>()), std::to_string(j["updated"].get<int64_t>()),
                    std::to_string(j["rejected"].get<int64_t>()), j["finished_at"]});
  }
  std::cout << "\nRECENT\n";
  if (rows.empty())
    std::cout << "  (none)\n";
  else
    print_table({"BATCH", "TARGET", "STATUS", "ROWS", "INSERTED", "UPDATED", "REJECTED", "FINISHED"}, rows);
}

int status_of_batch(pqxx::transaction_base& tx, const std::string& bk, const std::string& batch, bool as_json) {
  auto r =
      tx.exec_params(std::string("SELECT ") + kBatchColumns + " FROM " + bk + ".batches WHERE id::text = $1", batch);
  if (r.empty()) {
    std::cerr << "ingestd status: no batch " << batch << "\n";
    return 1;
  }
  json j = batch_json(r[0]);
  if (as_json)
    std::cout << j.dump(2) << std::endl;
  else
    print_batch(j);
  return 0;
}

/// What `status` prints, read in one read-only transaction.
int print_status(pqxx::connection& c, const config::Config& cfg, const std::string& batch, bool as_json) {
  pqxx::read_transaction tx(c);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  if (!batch.empty()) return status_of_batch(tx, bk, batch, as_json);
  const std::string select = std::string("SELECT ") + kBatchColumns + " FROM " + bk + ".batches WHERE ";
  auto running = tx.exec(select + "status = 'running' ORDER BY started_at");
  auto recent = tx.exec(select + "status <> 'running' ORDER BY coalesce(finished_at, started_at) DESC LIMIT 15");
  auto open_review = tx.exec("SELECT count(*) FROM " + bk + ".review_queue WHERE status = 'open'")[0][0].as<int64_t>();
  auto deferred = tx.exec("SELECT count(*) FROM " + bk + ".deferred_refs")[0][0].as<int64_t>();
  if (as_json) {
    json j = {{"running", json::array()},
              {"recent", json::array()},
              {"review_open", open_review},
              {"deferred_refs_open", deferred}};
    for (const auto& r : running) j["running"].push_back(batch_json(r));
    for (const auto& r : recent) j["recent"].push_back(batch_json(r));
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  print_running(running);
  print_recent(recent);
  std::cout << "\nreview queue open: " << open_review << "    deferred references open: " << deferred << "\n";
  return 0;
}

}  // namespace

int cmd_status(const config::Config& cfg, const std::string& batch, bool as_json) {
  return run_read_only(cfg, "status", [&](pqxx::connection& c) { return print_status(c, cfg, batch, as_json); });
}

}  // namespace ingestd
