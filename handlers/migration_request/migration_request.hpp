// job.requested: run a configured migration job or a built-in (rollback, checks).
#pragma once

#include "handlers/handler.hpp"

namespace ingestd::migration_request {

Outcome handle(const Event& ev, Services& svc, EventCommit& commit);

}  // namespace ingestd::migration_request
