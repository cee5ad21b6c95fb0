// The built-in jobs: `checks` (a configured job's checks alone) and `rollback`.
#include "handlers/engine/rollback.hpp"
#include "handlers/migration_request/job_support.hpp"

namespace ingestd::migration_request {

Outcome checks_only(const Event& ev, Services& svc, EventCommit& commit) {
  const std::string name = str(params_of(ev), "job");
  if (!svc.cfg.jobs.count(name)) return Outcome::failed("job checks needs params.job naming a configured job; got '" + name + "'");
  const config::Job& job = svc.cfg.jobs.at(name);
  Outcome o;
  pqxx::work tx(svc.db);
  bool passed = true;
  o.extra["job"] = name;
  o.extra["checks"] = run_checks(tx, job, passed);
  o.status = passed ? engine::ResultStatus::Completed : engine::ResultStatus::Failed;
  if (!passed) o.errors.push_back("job " + name + ": checks failed");
  engine::Bookkeeping(svc.cfg.postgres.bookkeeping_schema).audit(tx, actor_of(ev, svc.cfg), "checks", "", o.extra);
  commit.write(tx, o);
  tx.commit();
  o.committed = true;
  return o;
}

Outcome rollback(const Event& ev, Services& svc, EventCommit& commit) {
  const auto& params = params_of(ev);
  if (!params.contains("batch_id") || !params["batch_id"].is_string())
    return Outcome::failed("job rollback needs params.batch_id (the batch to roll back)");
  const std::string batch = params["batch_id"].get<std::string>();
  const bool dry_run = ev.payload.value("dry_run", false);
  Outcome o;
  engine::rollback_batch(svc.db, svc.cfg, batch, dry_run, actor_of(ev, svc.cfg),
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

}  // namespace ingestd::migration_request
