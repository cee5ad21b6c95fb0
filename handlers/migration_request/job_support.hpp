// What the job handlers share: event fields, the job's batch, its checks.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/handler.hpp"

namespace ingestd::migration_request {

/// A string field of a JSON object, or `def`.
std::string str(const nlohmann::json& p, const char* k, const std::string& def = "");
/// The event's params object (empty when absent).
const nlohmann::json& params_of(const Event& ev);
/// Who asked, for the audit: the operator's OS user for a job run from the command line; for
/// an event, its Kafka coordinates with the daemon's own principal and submitted_by as a claim.
engine::Actor actor_of(const Event& ev, const config::Config& cfg);
/// Creates the job's running batch in its own transaction, links the event to it and takes
/// its lock on the session (adopt it with BatchOwnership::Adopt).
std::string create_job_batch(Services& svc, const Event& ev, const std::string& job, bool dry_run);
/// Runs a job's checks in `tx`: [{name, expected, actual, passed}]; a check whose SQL fails
/// counts as failed with the database's message.
nlohmann::json run_checks(pqxx::transaction_base& tx, const config::Job& job, bool& all_passed);

Outcome migrate(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job);
Outcome resolve_refs(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job);
/// Built-in `checks`: runs a configured job's checks only.
Outcome checks_only(const Event& ev, Services& svc, EventCommit& commit);
/// Built-in `rollback`: rolls back params.batch_id.
Outcome rollback(const Event& ev, Services& svc, EventCommit& commit);

}  // namespace ingestd::migration_request
