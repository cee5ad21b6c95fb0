// job.requested's own checks, run before the event reaches the handler.
#include <algorithm>

#include "handlers/migration_request/migration_request.hpp"

namespace ingestd::migration_request {

std::string validate(const config::Config& cfg, const Event& ev) {
  const std::string job = ev.payload["job"].get<std::string>();
  const auto& builtin = builtin_jobs();
  if (!cfg.jobs.count(job) && std::find(builtin.begin(), builtin.end(), job) == builtin.end())
    return "unknown job " + excerpt(job);
  return "";
}

}  // namespace ingestd::migration_request
