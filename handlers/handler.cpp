#include "handlers/handler.hpp"

#include <algorithm>

namespace ingestd {

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
  for (auto& [b, n] : o.fuzzy_bands) fuzzy_bands[b] += n;
  match_weights.insert(match_weights.end(), o.match_weights.begin(), o.match_weights.end());
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
  if (!fuzzy_bands.empty()) {
    nlohmann::json b = {{"merged", 0}, {"review", 0}, {"new", 0}};
    for (auto& [k, v] : fuzzy_bands) b[k] = v;
    j["fuzzy"] = b;
  }
  return j;
}

}  // namespace ingestd
