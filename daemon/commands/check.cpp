// `ingestd check`: the config was loaded and validated by main; here its datasets are checked
// against the database's tables and columns, and its jobs' statements (check_jobs.cpp).
#include <filesystem>
#include <iostream>

#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/identity/compaction.hpp"
#include "handlers/engine/identity/index_check.hpp"
#include "handlers/engine/loader.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd {

namespace {

/// True when the bookkeeping schema has this binary's migrations (name_key among them).
bool bookkeeping_ready(pqxx::connection& c, const std::string& schema) {
  pqxx::read_transaction tx(c);
  return !tx.exec_params("SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 "
                         "AND p.proname = 'name_key'",
                         schema)
              .empty();
}

/// Formats the config language knows but this binary has no source for (checked offline too).
std::vector<std::string> format_problems(const config::Config& cfg) {
  std::vector<std::string> out;
  for (const auto& [name, ds] : cfg.datasets)
    if (!engine::has_file_source(ds.format))
      out.push_back("datasets." + name + ".format: " + std::string(config::to_string(ds.format)) +
                    " has no reader in this version of ingestd; the formats it reads: csv, jsonl, xlsx");
  return out;
}

/// The index behind every identity tier; with `create`, the missing ones are made. Problems
/// (a tier without an index) go to `problems`.
void check_identity_indexes(pqxx::connection& c, const config::Config& cfg, bool create,
                            std::vector<std::string>& problems) {
  for (const auto& [name, ds] : cfg.datasets) {
    auto reports = engine::identity_indexes(c, ds, cfg.postgres.bookkeeping_schema);
    if (create) engine::create_identity_indexes(c, reports);
    for (const auto& r : reports) {
      if (r.created) std::cout << r.where << ": created: " << r.create_index << "\n";
      else if (!r.index.empty())
        std::cout << r.where << ": " << r.table << " index " << r.index << engine::block_size_note(r) << "\n";
      else problems.push_back(engine::missing_index_problem(r));
    }
  }
}

/// A fuzzy tier whose weights file is not written yet scores with the default m/u: say so.
void warn_untrained(const config::Config& cfg, const std::string& config_path) {
  for (const auto& [name, ds] : cfg.datasets)
    for (const auto& e : ds.entities)
      if (e.fuzzy && !e.fuzzy->weights.empty() && !std::filesystem::exists(e.fuzzy->weights))
        std::cerr << config_path << ": warning: datasets." << name << ".entities." << e.name << " fuzzy tier: weights "
                  << "file " << e.fuzzy->weights << " does not exist yet, so the default m/u are used; write it with "
                  << "`ingestd train " << name << " FILE`\n";
}

}  // namespace

int cmd_check(const config::Config& cfg, const std::string& config_path, bool offline, bool create_indexes) {
  std::vector<std::string> problems = format_problems(cfg);
  warn_untrained(cfg, config_path);
  if (offline || !problems.empty()) {
    for (auto& p : problems) std::cerr << config_path << ": " << p << "\n";
    if (problems.empty()) std::cout << config_path << ": ok (offline)\n";
    return problems.empty() ? 0 : 2;
  }
  // Read-only unless asked to create indexes: then the bookkeeping schema (which holds
  // name_key, the function name indexes use) is brought up to date first.
  auto c = create_indexes ? connect_migrated(cfg) : std::make_unique<pqxx::connection>(cfg.postgres.url);
  for (const auto& [name, ds] : cfg.datasets)
    for (auto& p : engine::check_dataset_schema(*c, ds)) problems.push_back(p);
  for (auto& p : check_job_statements(cfg, *c)) problems.push_back(p);
  if (problems.empty()) {
    if (!bookkeeping_ready(*c, cfg.postgres.bookkeeping_schema))
      problems.push_back("postgres.bookkeeping_schema: " + cfg.postgres.bookkeeping_schema + " is not migrated yet, so "
                         "the identity indexes cannot be checked; run `ingestd check --create-indexes` or start the "
                         "daemon once");
    else
      check_identity_indexes(*c, cfg, create_indexes, problems);
  }
  if (create_indexes) engine::compact_identity_memory(*c, cfg);
  for (auto& p : problems) std::cerr << config_path << ": " << p << "\n";
  if (!problems.empty()) return 2;
  std::cout << config_path << ": ok (" << cfg.datasets.size() << " datasets, " << cfg.jobs.size() << " jobs)\n";
  return 0;
}

}  // namespace ingestd
