// The batch wrapper every handler runs its work in: a BatchError, a refused statement or any
// other error that retrying cannot fix fails the batch (recorded, result written); a retryable
// database error goes up to be retried.
#include <spdlog/spdlog.h>

#include "handlers/handler.hpp"

namespace ingestd {

Outcome fail_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::string& why,
                   const nlohmann::json& extra) {
  Outcome o = Outcome::failed(why, batch_id);
  o.extra = extra;
  pqxx::work tx(svc.db);
  engine::Bookkeeping(svc.cfg.postgres.bookkeeping_schema).fail(tx, batch_id, why, extra);
  commit.write(tx, o);
  tx.commit();
  o.committed = true;
  return o;
}

Outcome run_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::function<Outcome()>& work,
                  const std::function<std::string(const pqxx::sql_error&)>& describe) {
  try {
    return work();
  } catch (const engine::BatchError& e) {
    spdlog::warn("batch {}: {}", batch_id, e.what());
    return fail_batch(svc, commit, batch_id, e.what());
  } catch (const pqxx::sql_error& e) {
    if (engine::classify_db_error(e).retry()) throw;  // libpqxx 7: transaction_rollback is an sql_error
    const std::string why = describe(e);
    spdlog::error("batch {}: the database refused it: {}", batch_id, why);
    return fail_batch(svc, commit, batch_id, why);
  } catch (const std::exception& e) {
    // Everything else the work can throw (an unknown encoding, a rejects_dir that cannot be
    // created, a parser's own error) is as final: left to the worker it would fail the event
    // but leave its batch `running`, which rollback then refuses (issue 16).
    if (engine::transient_failure(e)) throw;
    spdlog::error("batch {}: {}", batch_id, e.what());
    return fail_batch(svc, commit, batch_id, excerpt(first_line(e.what()), 4000));
  }
}

}  // namespace ingestd
