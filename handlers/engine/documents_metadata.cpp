// What a document event's metadata must give (documents.hpp): checked when the event is vetted,
// before any batch, so it stands apart from the database work (the event fuzzer links it).
#include <algorithm>

#include "handlers/engine/documents.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

std::string metadata_text(const nlohmann::json& metadata, const std::string& key) {
  if (!metadata.is_object() || !metadata.contains(key)) return "";
  const auto& v = metadata[key];
  if (v.is_string()) return v.get<std::string>();
  return v.is_null() ? "" : v.dump();
}

const config::Entity& owner_entity(const config::Config& cfg, const config::DocumentsSpec& d) {
  const auto& ents = cfg.datasets.at(d.owner_dataset).entities;
  return *std::find_if(ents.begin(), ents.end(), [&](const auto& e) { return e.name == d.owner_entity; });
}

std::string owner_key_problem(const config::Config& cfg, const config::DocumentsSpec& d,
                              const nlohmann::json& metadata) {
  const config::Entity& owner = owner_entity(cfg, d);
  std::vector<std::string> tiers;
  for (const auto& tier : owner.identity) {
    std::vector<std::string> keys;
    bool whole = true;
    for (const auto& field : tier) {
      const auto m = std::find_if(d.match.begin(), d.match.end(), [&](const auto& mk) { return mk.first == field; });
      if (m == d.match.end())
        whole = false;
      else
        keys.push_back(m->second);
      if (m != d.match.end() && metadata_text(metadata, m->second).empty()) whole = false;
    }
    if (whole) return "";
    if (keys.size() == tier.size()) tiers.push_back(sql::join(keys, " + "));
  }
  return "metadata gives no key of the document's owner (" + d.owner_dataset + "." + owner.name +
         "): expected metadata " + sql::join(tiers, ", or ");
}

}  // namespace ingestd::engine
