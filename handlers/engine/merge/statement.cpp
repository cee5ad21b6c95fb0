#include "handlers/engine/merge/statement.hpp"

#include <chrono>
#include <regex>

namespace ingestd::engine {

pqxx::result StepSql::exec(const std::string& sql, const char* op) {
  std::vector<std::optional<std::string>> params;
  std::string out;
  static const std::regex ph(R"(:(table|batch|entity|var_[a-z_]+)\b)");
  size_t last = 0;
  std::map<std::string, int> index;
  for (auto it = std::sregex_iterator(sql.begin(), sql.end(), ph); it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out += sql.substr(last, size_t(m.position()) - last);
    last = size_t(m.position() + m.length());
    std::string name = m[1].str();
    auto [pos, fresh] = index.emplace(name, int(index.size()) + 1);
    if (fresh) {
      if (name == "table") params.emplace_back(table_);
      else if (name == "batch") params.emplace_back(batch_);
      else if (name == "entity") params.emplace_back(entity_);
      else {
        auto v = vars_.find(name.substr(4));
        params.push_back(v == vars_.end() || v->second.empty() ? std::nullopt : std::optional<std::string>(v->second));
      }
    }
    out += "$" + std::to_string(pos->second) + "::text";
  }
  out += sql.substr(last);
  const auto t0 = std::chrono::steady_clock::now();
  // without parameters the simple protocol, which also takes several statements at once
  auto r = params.empty() ? tx_.exec(out) : tx_.exec_params(out, pqxx::prepare::make_dynamic_params(params));
  if (metrics_) metrics_->observe_db(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return r;
}

pqxx::result StepSql::probe(const std::string& sql, const char* op, bool bitmap) {
  // Statements that reach a big table (identity_keys, the target) one index probe per row of
  // a work table. The planner's estimates for them are unreliable: a young target or key table
  // looks small enough to scan, a table grown since autovacuum last looked looks smaller than
  // it is, and an expression index has no statistics at all. A scan per probe would make a
  // chunk quadratic, so index scans are the only choice here (a probed id column must be
  // indexed, as a primary key is). A GIN index is read by bitmap scans only: where one serves,
  // forbidding them would leave the primary key's full scan as the cheapest plan.
  tx_.exec(std::string("SET LOCAL enable_seqscan = off; ") + (bitmap ? "" : "SET LOCAL enable_bitmapscan = off; ") +
           "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off");
  auto r = exec(sql, op);
  tx_.exec("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_hashjoin; RESET enable_mergejoin");
  return r;
}

pqxx::result StepSql::hash_join(const std::string& sql, const char* op) {
  tx_.exec("SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_seqscan = off");
  auto r = exec(sql, op);
  tx_.exec("RESET enable_nestloop; RESET enable_mergejoin; RESET enable_seqscan");
  return r;
}

}  // namespace ingestd::engine
