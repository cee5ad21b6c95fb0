// GET /status (DESIGN §7): what this instance is doing now. The worker thread posts the current
// event, recent results and the partition assignment; civetweb threads read them.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/model.hpp"
#include "daemon/pg_pool.hpp"

namespace ingestd {

class StatusBoard {
 public:
  /// Reads the running batches on connections leased from `readers`.
  StatusBoard(const config::Config& cfg, std::string instance, PgPool& readers);

  /// The event being processed now (`nullptr` between events).
  void set_current(nlohmann::json event);
  /// A result message, kept among the 20 most recent.
  void add_result(const nlohmann::json& result);
  /// The partitions assigned to this instance, as `topic[partition]@offset`.
  void set_assignment(std::vector<std::string> partitions);

  /// The /status document: `ready` as /readyz says, running batches with progress and rate
  /// from their checkpoints, the current event, recent results and the assignment.
  std::string render(bool ready);

 private:
  nlohmann::json running_batches();

  std::string schema_, instance_;
  PgPool& readers_;
  std::mutex mu_;
  nlohmann::json current_ = nullptr;
  std::deque<nlohmann::json> recent_;
  std::vector<std::string> assignment_;
};

}  // namespace ingestd
