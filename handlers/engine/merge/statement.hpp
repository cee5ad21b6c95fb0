// How the merge steps talk to PostgreSQL: named placeholders become parameters, and every
// statement is timed under its step's name (ingestd_db_query_duration_seconds{op}).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "daemon/metrics.hpp"

namespace ingestd::engine {

/// @brief Runs one entity's statements in a transaction.
class StepSql {
 public:
  /// `table`, `batch`, `entity` and the event variables are what the placeholders stand for.
  StepSql(pqxx::transaction_base& tx, Metrics* metrics, std::string table, std::string batch, std::string entity,
          const std::map<std::string, std::string>& vars)
      : tx_(tx), metrics_(metrics), table_(std::move(table)), batch_(std::move(batch)), entity_(std::move(entity)),
        vars_(vars) {}

  pqxx::transaction_base& tx() const { return tx_; }
  const std::string& table() const { return table_; }
  const std::string& batch() const { return batch_; }
  /// Runs `sql` as step `op`. The placeholders :table :batch :entity and :var_NAME become
  /// text parameters, never text in the statement.
  pqxx::result exec(const std::string& sql, const char* op);
  /// Runs `work` (a COPY, say) and times it as step `op`.
  template <class F>
  void timed(const char* op, F&& work) {
    const auto t0 = std::chrono::steady_clock::now();
    work();
    if (metrics_) metrics_->observe_db(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  /// exec with index probes of the big tables as the only plan (nested loops, index scans).
  /// `bitmap`: bitmap scans stay allowed, for searches only a GIN index serves (trigrams).
  pqxx::result probe(const std::string& sql, const char* op, bool bitmap = false);
  /// exec with hash joins as the only join and no sequential scan: for a statement that reads
  /// a bounded set of a big table's rows once (through an index) and matches a work table
  /// against them, where a probe per work-table row would cost more.
  pqxx::result hash_join(const std::string& sql, const char* op);

 private:
  pqxx::transaction_base& tx_;
  Metrics* metrics_;
  std::string table_, batch_, entity_;
  const std::map<std::string, std::string>& vars_;
};

}  // namespace ingestd::engine
