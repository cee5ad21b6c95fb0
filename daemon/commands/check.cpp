// `ingestd check`: the config was loaded and validated by main; here its datasets are checked
// against the database's tables and columns.
#include <iostream>

#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "handlers/engine/loader.hpp"

namespace ingestd {

int cmd_check(const config::Config& cfg, const std::string& config_path, bool offline) {
  if (offline) {
    std::cout << config_path << ": ok (offline)\n";
    return 0;
  }
  pqxx::connection c(cfg.postgres.url);
  std::vector<std::string> problems;
  for (const auto& [name, ds] : cfg.datasets)
    for (auto& p : engine::check_dataset_schema(c, ds)) problems.push_back(config_path + ": " + p);
  for (auto& p : problems) std::cerr << p << "\n";
  if (!problems.empty()) return 2;
  std::cout << config_path << ": ok (" << cfg.datasets.size() << " datasets, " << cfg.jobs.size() << " jobs)\n";
  return 0;
}

}  // namespace ingestd
