// `ingestd check`: the config was loaded and validated by main; here its datasets are checked
// against the database's tables and columns, and its jobs' statements (check_jobs.cpp).
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/redact.hpp"
#include "daemon/commands/commands.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/errors.hpp"
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

/// @brief What `ingestd check` found: problems (exit 2) and the identity indexes it saw or made.
struct CheckReport {
  std::vector<std::string> problems, indexes, warnings;
  bool offline = false;
};

/// The index behind every identity tier; with `create`, the missing ones are made. A tier
/// without an index is a problem.
void check_identity_indexes(pqxx::connection& c, const config::Config& cfg, bool create, CheckReport& report) {
  for (const auto& [name, ds] : cfg.datasets) {
    auto reports = engine::identity_indexes(c, ds, cfg.postgres.bookkeeping_schema);
    if (create) engine::create_identity_indexes(c, reports);
    for (const auto& r : reports) {
      if (r.created) report.indexes.push_back(r.where + ": created: " + r.create_index);
      else if (!r.index.empty())
        report.indexes.push_back(r.where + ": " + r.table + " index " + r.index + engine::block_size_note(r));
      else report.problems.push_back(engine::missing_index_problem(r));
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

/// Prints the report: lines for a person (problems on stderr), or one JSON object. Every line
/// is redacted: problems quote what libpq and PostgreSQL said, which can quote a password.
int print_check(CheckReport r, const config::Config& cfg, const std::string& config_path, bool as_json) {
  for (auto* lines : {&r.problems, &r.indexes})
    for (auto& line : *lines) line = config::redact(line);
  const bool ok = r.problems.empty();
  if (as_json) {
    nlohmann::json j = {{"config", config_path}, {"ok", ok},        {"offline", r.offline},
                        {"problems", r.problems}, {"warnings", r.warnings}, {"indexes", r.indexes},
                        {"datasets", cfg.datasets.size()},
                        {"jobs", cfg.jobs.size()}};
    std::cout << j.dump() << std::endl;
  } else {
    for (const auto& line : r.indexes) std::cout << line << "\n";
    for (const auto& w : r.warnings) std::cerr << config_path << ": warning: " << w << "\n";
    for (const auto& p : r.problems) std::cerr << config_path << ": " << p << "\n";
    if (ok && r.offline) std::cout << config_path << ": ok (offline)\n";
    if (ok && !r.offline)
      std::cout << config_path << ": ok (" << cfg.datasets.size() << " datasets, " << cfg.jobs.size() << " jobs)\n";
  }
  return ok ? kExitCompleted : kExitUsage;
}

/// Checks against the database: tables, columns, job statements, identity indexes.
void check_online(const config::Config& cfg, bool create_indexes, CheckReport& report) {
  // Read-only unless asked to create indexes: then the bookkeeping schema (which holds
  // name_key, the function name indexes use) is brought up to date first.
  auto c = create_indexes ? connect_migrated(cfg) : std::make_unique<pqxx::connection>(cfg.postgres.url);
  for (const auto& [name, ds] : cfg.datasets) {
    for (auto& p : engine::check_dataset_schema(*c, ds)) report.problems.push_back(p);
    for (auto& w : engine::unwritten_required_columns(*c, ds)) report.warnings.push_back(w);
  }
  for (auto& p : check_job_statements(cfg, *c)) report.problems.push_back(p);
  if (report.problems.empty()) {
    if (!bookkeeping_ready(*c, cfg.postgres.bookkeeping_schema))
      report.problems.push_back("postgres.bookkeeping_schema: " + cfg.postgres.bookkeeping_schema + " is not migrated "
                                "yet, so the identity indexes cannot be checked; run `ingestd check --create-indexes` "
                                "or start the daemon once");
    else
      check_identity_indexes(*c, cfg, create_indexes, report);
  }
  if (create_indexes) engine::compact_identity_memory(*c, cfg);
}

}  // namespace

int cmd_check(const config::Config& cfg, const std::string& config_path, bool offline, bool create_indexes,
              bool as_json) {
  CheckReport report;
  report.problems = format_problems(cfg);
  report.offline = offline;
  warn_untrained(cfg, config_path);
  if (!offline && report.problems.empty()) {
    try {
      check_online(cfg, create_indexes, report);
    } catch (const pqxx::broken_connection& e) {
      report.problems.push_back("postgres.url: cannot connect: " + engine::first_line(e.what()));
    }
  }
  return print_check(report, cfg, config_path, as_json);
}

}  // namespace ingestd
