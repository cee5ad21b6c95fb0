// The composite key of a tier: its fields' keys joined (DESIGN §5 rule 6).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ingestd::engine {

/// The composite key of each tier for one row: the fields' keys joined by U+001F, or nullopt
/// when a field of the tier is missing (a tier applies only when all its fields are present).
std::vector<std::optional<std::string>> composite_keys(const std::vector<std::optional<std::string>>& field_keys,
                                                       const std::vector<std::vector<int>>& tiers);

}  // namespace ingestd::engine
