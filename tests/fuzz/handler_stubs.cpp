// The fuzz target links the registry alone: the handlers themselves are not called.
#include "handlers/file_arrival/file_arrival.hpp"
#include "handlers/migration_request/migration_request.hpp"

namespace ingestd {
Outcome file_arrival::handle(const Event&, Services&, EventCommit&) { return {}; }
Outcome migration_request::handle(const Event&, Services&, EventCommit&) { return {}; }
}  // namespace ingestd
