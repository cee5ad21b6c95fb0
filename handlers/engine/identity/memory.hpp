// Identity memory (DESIGN §4 identity_keys): after a chunk merges, the keys each record does not
// hold in its own columns — the second e-mail fill_nulls did not store, the value an overwrite
// replaced — so it is still found by them. Computed from the resolution, without the database.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/resolver.hpp"

namespace ingestd::engine {

/// @brief A record known before the chunk, as the database gave it.
struct KnownState {
  FieldKeys own;                            // [field] key of each identity field's stored value
  std::vector<std::vector<std::string>> memory;  // [tier] keys identity memory already holds
};

/// @brief A key to remember for a resolved record.
struct MemoryKey {
  int record = 0;  // index into Resolution::records
  int tier = 0;    // 1-based
  std::string key;
};

/// @brief What the chunk leaves each record holding.
struct RecordKeys {
  std::vector<MemoryKey> remember;
  std::vector<int> held_tier;  // [record] highest-priority tier its own columns hold a key at (0: none)
};

/// Simulates the merge of each record's rows (fill_nulls: the stored value, else the first;
/// overwrite: the last; keep: the stored one, or the founding row's for a new record) on the
/// identity fields' keys, and returns the keys the records carried but will not hold.
RecordKeys record_keys(const config::Entity& entity, const Matcher& matcher, const Resolution& res,
                       const std::vector<const FieldKeys*>& row_keys, const std::vector<TierKeys>& row_tier_keys,
                       const std::vector<KnownState>& known);

}  // namespace ingestd::engine
