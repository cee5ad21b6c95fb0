// `ingestd check`: the config was loaded and validated by main; here its datasets are checked
// against the database's tables and columns.
#include <iostream>

#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "handlers/engine/loader.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd {

namespace {

/// Formats the config language knows but this binary has no source for (checked offline too).
std::vector<std::string> format_problems(const config::Config& cfg) {
  std::vector<std::string> out;
  for (const auto& [name, ds] : cfg.datasets)
    if (!engine::has_file_source(ds.format))
      out.push_back("datasets." + name + ".format: " + std::string(config::to_string(ds.format)) +
                    " has no reader in this version of ingestd; the formats it reads: csv");
  return out;
}

}  // namespace

int cmd_check(const config::Config& cfg, const std::string& config_path, bool offline) {
  if (auto problems = format_problems(cfg); !problems.empty()) {
    for (auto& p : problems) std::cerr << config_path << ": " << p << "\n";
    return 2;
  }
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
