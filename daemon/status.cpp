#include "daemon/status.hpp"

#include <cmath>

#include <pqxx/pqxx>

#include "config/redact.hpp"
#include "daemon/logging.hpp"

namespace ingestd {

using json = nlohmann::json;

StatusBoard::StatusBoard(const config::Config& cfg, std::string instance, PgPool& readers)
    : schema_(cfg.postgres.bookkeeping_schema), instance_(std::move(instance)), readers_(readers) {}

void StatusBoard::set_current(json event) {
  std::lock_guard lk(mu_);
  current_ = std::move(event);
}

void StatusBoard::add_result(const json& result) {
  std::lock_guard lk(mu_);
  recent_.push_front(result);
  if (recent_.size() > 20) recent_.pop_back();
}

void StatusBoard::set_assignment(std::vector<std::string> partitions) {
  std::lock_guard lk(mu_);
  assignment_ = std::move(partitions);
}

namespace {

/// This instance's running batches with progress, rate and ETA, from their own checkpoints.
json read_running_batches(pqxx::connection& c, const std::string& schema, const std::string& instance) {
  json running = json::array();
  pqxx::read_transaction tx(c);
  auto r = tx.exec_params(
      "SELECT id::text, dataset_or_job, rows_done, rows_total, bytes_done, size_bytes, "
      "extract(epoch FROM now() - started_at)::float8, owner FROM " +
          tx.quote_name(schema) + ".batches WHERE status = 'running' AND owner = $1",
      instance);
  for (const auto& row : r) {
    const double secs = row[6].as<double>();
    const int64_t done = row[2].as<int64_t>();
    json b = {{"batch_id", row[0].c_str()},  {"target", row[1].c_str()},
              {"rows_done", done},           {"bytes_done", row[4].as<int64_t>()},
              {"seconds", std::round(secs)}, {"rows_per_second", secs > 0 ? std::round(double(done) / secs) : 0.0}};
    if (!row[3].is_null()) b["rows_total"] = row[3].as<int64_t>();
    if (!row[5].is_null() && row[5].as<int64_t>() > 0) {
      const double size = row[5].as<double>(), bytes = row[4].as<double>();
      b["size_bytes"] = row[5].as<int64_t>();
      b["percent"] = std::round(1000.0 * bytes / size) / 10;
      if (bytes > 0 && secs > 0) b["eta_seconds"] = std::round((size - bytes) / (bytes / secs));
    }
    running.push_back(b);
  }
  return running;
}

json unreachable(const std::exception& e) {
  return json::array({{{"error", std::string("PostgreSQL unreachable: ") + e.what()}}});
}

}  // namespace

json StatusBoard::running_batches() {
  // Read on a connection leased from the readers' pool: civetweb threads must not share the
  // worker's. A pooled connection may have died with a PostgreSQL restart since its last use:
  // then once more, on a fresh one.
  for (bool retried = false;; retried = true) {
    bool reused = false;
    try {
      auto c = readers_.acquire();
      reused = c.reused();
      return read_running_batches(*c, schema_, instance_);
    } catch (const PgPool::Busy& e) {
      component_logger("http")->warn("/status: {}", e.what());
      return json::array({{{"error", e.what()}}});
    } catch (const pqxx::broken_connection& e) {
      if (!reused || retried) return unreachable(e);
    } catch (const std::exception& e) {
      return unreachable(e);
    }
  }
}

std::string StatusBoard::render(bool ready) {
  json running = running_batches();
  std::lock_guard lk(mu_);
  json s = {{"instance", instance_},
            {"ready", ready},
            {"current_event", current_},
            {"running", running},
            {"recent", json(std::vector<json>(recent_.begin(), recent_.end()))},
            {"assignment", assignment_}};
  return config::redact(s.dump(2));
}

}  // namespace ingestd
