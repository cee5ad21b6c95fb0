// Identity memory (DESIGN §4 identity_keys): after a chunk merges, the keys each record does not
// hold in its own columns — the second e-mail fill_nulls did not store, the value an overwrite
// replaced — so it is still found by them. Computed from the resolution, without the database.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/resolver.hpp"

namespace ingestd::engine {

/// @brief A record known before the chunk, as the database gave it.
struct KnownState {
  FieldKeys own;                            // [field] key of each identity field's stored value
  std::vector<std::vector<std::string>> memory;  // [tier] keys identity memory already holds (empty: none)
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

/// A row's identity keys merged into a record's (`own`) by each field's policy: fill_nulls
/// fills a missing key, overwrite takes the row's where it has one, keep leaves the record's.
void merge_row_keys(const config::Entity& entity, FieldKeys& own, const FieldKeys& row);
/// Whether merge_row_keys(entity, own, row) would change `own` (most rows that land on a
/// known record bring nothing new: the same file again).
bool row_changes_keys(const config::Entity& entity, const FieldKeys& own, const FieldKeys& row);

/// @brief The keys each record's own columns hold as a chunk's rows land on it (the resolver's
/// OwnKeys): known records start from their stored keys, new ones from their founding row's.
class RecordHoldings : public OwnKeys {
 public:
  RecordHoldings(const config::Entity& entity, const Matcher& matcher, const std::vector<KnownState>& known,
                 const std::vector<const FieldKeys*>& rows)
      : entity_(entity), matcher_(matcher), known_(known), rows_(rows) {}
  TierKeys landed(size_t row, int record) override;
  std::vector<std::vector<std::string>> stored(int record) const override;

 private:
  const config::Entity& entity_;
  const Matcher& matcher_;
  const std::vector<KnownState>& known_;
  const std::vector<const FieldKeys*>& rows_;
  std::unordered_map<int, FieldKeys> own_;  // [record] once a row merged into it
  std::vector<int> founder_;                // [record] the row that made a new record, -1: none yet
};

/// Simulates the merge of each record's rows (fill_nulls: the stored value, else the first;
/// overwrite: the last; keep: the stored one, or the founding row's for a new record) on the
/// identity fields' keys, and returns the keys the records carried (their rows' keys, and the
/// composite keys their columns held between two rows) but will not hold.
RecordKeys record_keys(const config::Entity& entity, const Matcher& matcher, const Resolution& res,
                       const std::vector<const FieldKeys*>& row_keys, const std::vector<TierKeys>& row_tier_keys,
                       const std::vector<KnownState>& known);

}  // namespace ingestd::engine
