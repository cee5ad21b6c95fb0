// Identity inside a chunk (DESIGN §5 rule 6): rows sharing a tier key become one group,
// unless a higher tier holds conflicting values (two cédulas sharing one e-mail).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ingestd::engine {

/// @brief Group of each row, and the tier (1-based) through which it joined; 0 = founded it.
struct Grouping {
  std::vector<int> group;
  std::vector<int> join_tier;
};

/// The composite key of each tier for one row: the fields' keys joined, or nullopt when a
/// field of the tier is missing (a tier applies only when all its fields are present).
std::vector<std::optional<std::string>> composite_keys(const std::vector<std::optional<std::string>>& field_keys,
                                                       const std::vector<std::vector<int>>& tiers);

/// Groups rows by their tier keys, highest tier first, never joining two groups whose keys
/// at a higher tier are both present and disjoint.
Grouping group_rows(const std::vector<std::vector<std::optional<std::string>>>& tier_keys, size_t tiers);

}  // namespace ingestd::engine
