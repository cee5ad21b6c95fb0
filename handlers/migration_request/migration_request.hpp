// job.requested: run a configured migration job or a built-in (rollback, checks).
#pragma once

#include "handlers/handler.hpp"

namespace ingestd::migration_request {

Outcome handle(const Event& ev, Services& svc, EventCommit& commit);
/// The event's own checks (its job is configured or built in): the reason to dead-letter it, or "".
std::string validate(const config::Config& cfg, const Event& ev);
/// The built-in jobs (`rollback`, `checks`): accepted without a config entry, and no dataset's
/// success when they complete.
const std::vector<std::string>& builtin_jobs();

}  // namespace ingestd::migration_request
