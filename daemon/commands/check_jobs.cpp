// `ingestd check`, online, for jobs: every source database a job reads is reachable, and every
// statement a job runs (its source query, `after` statements and checks) is planned by
// PostgreSQL without being run, so a typo fails at check instead of in the middle of a job.
#include <cctype>
#include <memory>

#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd {

namespace {

using engine::first_line;

/// Statements EXPLAIN plans without running them; others (DDL, DO blocks) are run as written.
bool explainable(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '(')) ++i;
  std::string word;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])))
    word += char(std::tolower(static_cast<unsigned char>(sql[i++])));
  for (const char* k : {"select", "with", "insert", "update", "delete", "values", "table", "merge"})
    if (word == k) return true;
  return false;
}

/// Plans `sql` (EXPLAIN, never executed) in a transaction that is rolled back; "" when it plans.
std::string plan_problem(pqxx::connection& c, const std::string& sql, bool watermark) {
  if (!explainable(sql)) return "";
  try {
    pqxx::work tx(c);
    bool has_param = false;
    const std::string sent = watermark ? engine::watermark_as_parameter(sql, has_param) : sql;
    // the watermark's type is the column's: an unknown-typed NULL is planned against it
    if (has_param) tx.exec_params("EXPLAIN " + sent, nullptr);
    else tx.exec("EXPLAIN " + sent);
    tx.abort();
    return "";
  } catch (const pqxx::sql_error& e) {
    return first_line(e.what());
  }
}

/// The connection of a job's source database, one per database; nullptr (and a problem) when
/// it cannot be reached.
pqxx::connection* source_connection(const config::Config& cfg, const config::Job& job, pqxx::connection& target,
                                    std::map<std::string, std::unique_ptr<pqxx::connection>>& open,
                                    std::vector<std::string>& problems) {
  if (job.source_database.empty()) return &target;
  auto it = open.find(job.source_database);
  if (it != open.end()) return it->second.get();
  auto& slot = open[job.source_database];
  const auto src = cfg.sources.find(job.source_database);
  if (src == cfg.sources.end()) {
    problems.push_back("jobs." + job.name + ".source.database: no source " + job.source_database + " in sources");
    return nullptr;
  }
  try {
    slot = std::make_unique<pqxx::connection>(src->second.url);
  } catch (const std::exception& e) {
    problems.push_back("jobs." + job.name + ".source.database: cannot connect to sources." + job.source_database +
                       ": " + first_line(e.what()));
  }
  return slot.get();
}

}  // namespace

std::vector<std::string> check_job_statements(const config::Config& cfg, pqxx::connection& target) {
  std::vector<std::string> problems;
  std::map<std::string, std::unique_ptr<pqxx::connection>> sources;
  for (const auto& [name, job] : cfg.jobs) {
    if (job.kind != config::JobKind::Migrate) continue;
    const std::string at = "jobs." + name;
    if (pqxx::connection* src = source_connection(cfg, job, target, sources, problems))
      if (auto p = plan_problem(*src, job.source_sql, true); !p.empty())
        problems.push_back(at + ".source.sql: " + p + "; statement: " + job.source_sql);
    for (size_t i = 0; i < job.after.size(); ++i)
      if (auto p = plan_problem(target, job.after[i], false); !p.empty())
        problems.push_back(at + ".after[" + std::to_string(i) + "]: " + p + "; statement: " + job.after[i]);
    for (size_t i = 0; i < job.checks.size(); ++i)
      if (auto p = plan_problem(target, job.checks[i].sql, false); !p.empty())
        problems.push_back(at + ".checks[" + std::to_string(i) + "] (" + job.checks[i].name + "): " + p);
  }
  return problems;
}

}  // namespace ingestd
