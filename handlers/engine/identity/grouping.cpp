#include "handlers/engine/identity/grouping.hpp"

#include <numeric>
#include <set>
#include <unordered_map>

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

Grouping group_rows(const std::vector<std::vector<std::optional<std::string>>>& tier_keys, size_t tiers) {
  const size_t n = tier_keys.size();
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  // keys[root][tier]: every key the group holds at that tier, for conflict blocking
  std::vector<std::vector<std::set<std::string>>> keys(n, std::vector<std::set<std::string>>(tiers));
  for (size_t i = 0; i < n; ++i)
    for (size_t t = 0; t < tiers; ++t)
      if (tier_keys[i][t]) keys[i][t].insert(*tier_keys[i][t]);
  Grouping g;
  g.join_tier.assign(n, 0);
  auto find = [&](int x) {
    while (parent[size_t(x)] != x) {
      parent[size_t(x)] = parent[size_t(parent[size_t(x)])];
      x = parent[size_t(x)];
    }
    return x;
  };
  auto conflicts = [&](int a, int b, size_t below) {
    for (size_t t = 0; t < below; ++t) {
      const auto& ka = keys[size_t(a)][t];
      const auto& kb = keys[size_t(b)][t];
      if (ka.empty() || kb.empty()) continue;
      bool shared = false;
      for (const auto& k : ka)
        if (kb.count(k)) { shared = true; break; }
      if (!shared) return true;
    }
    return false;
  };
  for (size_t t = 0; t < tiers; ++t) {
    std::unordered_map<std::string, std::vector<int>> holders;  // key -> rows holding it
    for (size_t i = 0; i < n; ++i)
      if (tier_keys[i][t]) holders[*tier_keys[i][t]].push_back(int(i));
    for (auto& [key, rows] : holders) {
      for (size_t j = 1; j < rows.size(); ++j) {
        // join row j to the first earlier row of this key whose group does not conflict
        for (size_t h = 0; h < j; ++h) {
          int ra = find(rows[h]), rb = find(rows[j]);
          if (ra == rb) break;
          if (conflicts(ra, rb, t)) continue;
          parent[size_t(rb)] = ra;
          for (size_t u = 0; u < tiers; ++u) keys[size_t(ra)][u].insert(keys[size_t(rb)][u].begin(), keys[size_t(rb)][u].end());
          keys[size_t(rb)].assign(tiers, {});
          if (g.join_tier[size_t(rows[j])] == 0) g.join_tier[size_t(rows[j])] = int(t) + 1;
          break;
        }
      }
    }
  }
  g.group.resize(n);
  for (size_t i = 0; i < n; ++i) g.group[i] = find(int(i));
  return g;
}

}  // namespace ingestd::engine
