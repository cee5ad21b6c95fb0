#include "handlers/handler.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

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
  }
}

std::string HandlerSpec::target(const Event& ev) const {
  const auto& p = ev.payload;
  return p.is_object() && p.contains(target_field) && p[target_field].is_string() ? p[target_field].get<std::string>()
                                                                                  : "";
}

bool HandlerSpec::is_builtin(const std::string& t) const {
  return std::find(builtin_targets.begin(), builtin_targets.end(), t) != builtin_targets.end();
}

EntityCounts& EntityCounts::operator+=(const EntityCounts& o) {
  inserted += o.inserted;
  updated += o.updated;
  unchanged += o.unchanged;
  rejected += o.rejected;
  review += o.review;
  skipped += o.skipped;
  for (auto& [t, n] : o.tier_matches) tier_matches[t] += n;
  return *this;
}

nlohmann::json EntityCounts::to_json() const {
  nlohmann::json j = {{"inserted", inserted}, {"updated", updated}, {"unchanged", unchanged},
                      {"rejected", rejected}, {"review", review}};
  if (skipped) j["skipped"] = skipped;
  if (!tier_matches.empty()) {
    nlohmann::json t = nlohmann::json::object();
    for (auto& [k, v] : tier_matches) t[std::to_string(k)] = v;
    j["matched_by_tier"] = t;
  }
  return j;
}

}  // namespace ingestd
