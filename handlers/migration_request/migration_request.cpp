#include "handlers/migration_request/migration_request.hpp"

namespace ingestd::migration_request {

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  Outcome o;
  o.kind = Outcome::Kind::Done;
  o.status = "failed";
  const std::string job = ev.payload.value("job", "");
  // Jobs are the next capability on this path (issue: migration-request jobs); until then a
  // request gets a clear terminal answer instead of waiting forever.
  o.errors.push_back("job " + job + " cannot run yet: migration jobs are not implemented in this version");
  return o;
}

}  // namespace ingestd::migration_request
