// `ingestd merge TABLE LOSER --into WINNER [--dry-run] [--json]`: two existing records of a
// dataset entity's table become one (handlers/engine/record_merge.hpp); `ingestd rollback
// BATCH` undoes it.
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/record_merge.hpp"

namespace ingestd {

namespace {

using json = nlohmann::json;

json as_json(const engine::RecordMergeResult& r) {
  using S = engine::RecordMergeResult::Status;
  json out = {{"batch_id", r.batch_id.empty() ? json() : json(r.batch_id)},
              {"table", r.table.empty() ? json() : json(r.table)},
              {"winner", r.winner.empty() ? json() : json(r.winner)},
              {"loser", r.loser.empty() ? json() : json(r.loser)},
              {"status", std::string(engine::to_string(r.status))}};
  if (r.status == S::Refused) {
    out["errors"] = r.errors;
    return out;
  }
  out["filled"] = r.filled;
  out["changes"] = r.changes;
  out["repointed"] = r.repointed;
  out["identity_keys_moved"] = r.identity_keys_moved;
  return out;
}

std::string show(const json& v) { return v.is_null() ? "NULL" : v.is_string() ? v.get<std::string>() : v.dump(); }

/// What an operator reads: what changed (or would), then the batch to roll back.
void print_text(const engine::RecordMergeResult& r) {
  const bool dry = r.status == engine::RecordMergeResult::Status::DryRun;
  std::cout << (dry ? "dry run, nothing changed: would merge " : "merged ") << r.table << " " << r.loser << " into "
            << r.winner << "\n";
  for (const auto& c : r.changes)
    std::cout << "  " << r.winner << "." << show(c["column"]) << ": " << show(c["before"]) << " -> " << show(c["after"])
              << "\n";
  if (r.changes.empty()) std::cout << "  no column of " << r.winner << " changes (by its merge policy)\n";
  for (const auto& [column, n] : r.repointed.items())
    std::cout << "  " << column << ": " << n.get<int64_t>() << " row(s) repointed to " << r.winner << "\n";
  std::cout << "  identity keys moved: " << r.identity_keys_moved << "\n";
  std::cout << (dry ? "  (batch " + r.batch_id + " was rolled back)\n"
                    : "  batch " + r.batch_id + " (undo: ingestd rollback " + r.batch_id + ")\n");
}

}  // namespace

int cmd_merge(const config::Config& cfg, const std::string& table, const std::string& loser, const std::string& winner,
              bool dry_run, bool json_output, const engine::Actor& actor) {
  if (table.empty() || loser.empty() || winner.empty()) {
    std::cerr << "ingestd merge: TABLE, LOSER and --into WINNER must not be empty\n";
    return 2;
  }
  auto c = connect_migrated(cfg);
  const auto r = engine::merge_records(*c, cfg, {table, loser, winner, dry_run, actor});
  const bool refused = r.status == engine::RecordMergeResult::Status::Refused;
  if (refused)
    for (const auto& e : r.errors) std::cerr << (e.rfind("refused", 0) == 0 ? "ingestd merge: " : "  ") << e << "\n";
  if (json_output)
    std::cout << as_json(r).dump() << std::endl;
  else if (!refused)
    print_text(r);
  return refused ? 1 : 0;
}

}  // namespace ingestd
