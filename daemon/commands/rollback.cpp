// `ingestd rollback BATCH`: the engine's rollback (DESIGN §5 rule 11), from the command line.
#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "daemon/commands/commands.hpp"
#include "daemon/schema.hpp"
#include "handlers/engine/rollback.hpp"

namespace ingestd {

int cmd_rollback(const config::Config& cfg, const std::string& batch, bool dry_run, const engine::Actor& actor,
                 bool as_json) {
  auto c = connect_migrated(cfg);
  auto r = engine::rollback_batch(*c, cfg, batch, dry_run, actor, nullptr);
  nlohmann::json out = {
      {"batch_id", batch}, {"status", engine::to_string(r.status)}, {"errors", r.errors}, {"rollback", r.stats}};
  std::cout << out.dump(as_json ? -1 : 2) << std::endl;
  return exit_code(r.status);
}

}  // namespace ingestd
