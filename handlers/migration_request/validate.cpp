// job.requested's own checks, run before the event reaches the handler.
#include <algorithm>

#include "handlers/migration_request/migration_request.hpp"

namespace ingestd::migration_request {

std::string validate(const config::Config& cfg, const Event& ev) {
  const std::string job = ev.payload["job"].get<std::string>();
  const auto& builtin = builtin_jobs();
  if (!cfg.jobs.count(job) && std::find(builtin.begin(), builtin.end(), job) == builtin.end())
    return "unknown job " + excerpt(job);
  if (ev.from_cli) return "";
  // What an event may run is the config's to say: a rollback undoes a batch, so it must be listed.
  const auto& allowed = cfg.processing.event_jobs;
  const bool listed = allowed ? std::find(allowed->begin(), allowed->end(), job) != allowed->end() : job != "rollback";
  if (!listed)
    return "not allowed: job " + job + " may not be requested by an event (processing.event_jobs); an operator runs "
           "it with `ingestd run-job " + job + "`";
  return "";
}

}  // namespace ingestd::migration_request
