#include "handlers/handler.hpp"

namespace ingestd {

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
