// The fuzz target links the registry and the handlers' own validation: the handlers themselves
// are not called, and the built-in job list is the handler's (see builtin_jobs in
// migration_request.cpp; the fuzzer only needs names validation accepts).
#include "handlers/file_arrival/file_arrival.hpp"
#include "handlers/migration_request/migration_request.hpp"

namespace ingestd {
Outcome file_arrival::handle(const Event&, Services&, EventCommit&) { return {}; }
Outcome migration_request::handle(const Event&, Services&, EventCommit&) { return {}; }
const std::vector<std::string>& migration_request::builtin_jobs() {
  static const std::vector<std::string> names{"rollback", "checks"};
  return names;
}
}  // namespace ingestd
