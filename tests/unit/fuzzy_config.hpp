// A fuzzy tier's config for the unit tests of fuzzy matching: an entity with an exact tier and
// a fuzzy one whose body the test gives, and the problems such a config is refused with.
#pragma once

#include <string>
#include <vector>

#include "config/loader.hpp"

namespace fuzzy_config {

inline const std::string kFuzzyBase = R"(postgres:
  url: postgresql://localhost/app
datasets:
  d:
    entities:
      person:
        table: persons
        identity:
          - [ssn]
          - fuzzy:
)";

/// The fields the tiers above name.
inline const std::string kFuzzyFields = R"(        fields:
          ssn: {column: ssn, from: S}
          given: {column: given, from: G, normalize: name}
          surname: {column: surname, from: N, normalize: name}
          dob: {column: dob, from: B, type: date}
)";

/// The config with this fuzzy tier body (lines indented under `- fuzzy:`).
inline ingestd::config::Config load_fuzzy(const std::string& fuzzy_body) {
  return ingestd::config::load_config_text(kFuzzyBase + fuzzy_body + kFuzzyFields, "ingestd.yaml");
}

/// The problems the config with this fuzzy tier body is refused with (none: it loads).
inline std::vector<std::string> problems_of(const std::string& fuzzy_body) {
  try {
    load_fuzzy(fuzzy_body);
  } catch (const ingestd::config::ConfigError& e) {
    return e.problems;
  }
  return {};
}

/// Some problem names both `a` and `b`.
inline bool has(const std::vector<std::string>& ps, const std::string& a, const std::string& b = "") {
  for (const auto& p : ps)
    if (p.find(a) != std::string::npos && p.find(b) != std::string::npos) return true;
  return false;
}

}  // namespace fuzzy_config
