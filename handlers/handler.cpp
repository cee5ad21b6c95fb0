#include "handlers/handler.hpp"

namespace ingestd {

std::string first_line(std::string message) {
  if (auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  return message;
}

Outcome fail_batch(Services& svc, EventCommit& commit, const std::string& batch_id, const std::string& why,
                   const nlohmann::json& extra) {
  Outcome o = Outcome::failed(why, batch_id);
  o.extra = extra;
  pqxx::work tx(svc.db);
  const std::string qs = tx.quote_name(svc.cfg.postgres.bookkeeping_schema);
  tx.exec_params("UPDATE " + qs + ".batches SET status = 'failed', error_summary = $2::jsonb, stats = stats || $3::jsonb, "
                 "finished_at = now() WHERE id = $1::uuid",
                 batch_id, nlohmann::json::array({why}).dump(), extra.dump());
  commit.write(tx, o);
  tx.commit();
  o.committed = true;
  return o;
}

EntityCounts& EntityCounts::operator+=(const EntityCounts& o) {
  inserted += o.inserted;
  updated += o.updated;
  unchanged += o.unchanged;
  rejected += o.rejected;
  review += o.review;
  for (auto& [t, n] : o.tier_matches) tier_matches[t] += n;
  return *this;
}

nlohmann::json EntityCounts::to_json() const {
  nlohmann::json j = {{"inserted", inserted}, {"updated", updated}, {"unchanged", unchanged},
                      {"rejected", rejected}, {"review", review}};
  if (!tier_matches.empty()) {
    nlohmann::json t = nlohmann::json::object();
    for (auto& [k, v] : tier_matches) t[std::to_string(k)] = v;
    j["matched_by_tier"] = t;
  }
  return j;
}

}  // namespace ingestd
