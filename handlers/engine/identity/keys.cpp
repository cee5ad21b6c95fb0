#include "handlers/engine/identity/keys.hpp"

namespace ingestd::engine {

std::vector<std::optional<std::string>> composite_keys(const std::vector<std::optional<std::string>>& field_keys,
                                                       const std::vector<std::vector<int>>& tiers) {
  std::vector<std::optional<std::string>> out(tiers.size());
  for (size_t t = 0; t < tiers.size(); ++t) {
    std::string k;
    bool complete = !tiers[t].empty();
    for (size_t i = 0; i < tiers[t].size() && complete; ++i) {
      const auto& v = field_keys[size_t(tiers[t][i])];
      if (!v) complete = false;
      else {
        if (i) k += '\x1f';  // unit separator: cannot occur in a normalized key
        k += *v;
      }
    }
    if (complete) out[t] = std::move(k);
  }
  return out;
}

}  // namespace ingestd::engine
