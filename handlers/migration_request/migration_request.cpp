#include "handlers/migration_request/migration_request.hpp"

#include "handlers/engine/rollback.hpp"

namespace ingestd::migration_request {

namespace {

Outcome rollback(const Event& ev, Services& svc, EventCommit& commit) {
  Outcome o;
  const auto& params = ev.payload.contains("params") && ev.payload["params"].is_object() ? ev.payload["params"]
                                                                                            : nlohmann::json::object();
  if (!params.contains("batch_id") || !params["batch_id"].is_string()) {
    o.status = "failed";
    o.errors.push_back("job rollback needs params.batch_id (the batch to roll back)");
    return o;
  }
  const std::string batch = params["batch_id"].get<std::string>();
  const bool dry_run = ev.payload.value("dry_run", false);
  const std::string actor = ev.payload.contains("submitted_by") && ev.payload["submitted_by"].is_string()
                                ? ev.payload["submitted_by"].get<std::string>()
                                : "kafka:" + ev.event_id;
  engine::rollback_batch(svc.db, svc.cfg, batch, dry_run, actor,
                         [&](pqxx::transaction_base& tx, const engine::RollbackResult& r) {
                           o.status = r.status;
                           o.errors = r.errors;
                           o.extra["rolled_back_batch"] = batch;
                           o.extra["rollback"] = r.stats;
                           commit.write(tx, o);
                           o.committed = true;
                         });
  return o;
}

}  // namespace

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  const std::string job = ev.payload.value("job", "");
  if (job == "rollback") return rollback(ev, svc, commit);
  Outcome o;
  o.status = "failed";
  // Migration jobs are the next capability on this path (issue: migration-request jobs);
  // until then a request gets a clear terminal answer instead of waiting forever.
  o.errors.push_back("job " + job + " cannot run yet: migration jobs are not implemented in this version");
  return o;
}

}  // namespace ingestd::migration_request
