// Identity resolution of one chunk's rows, in input order (DESIGN §5 rule 6): each row is
// matched against the records known before the chunk and those earlier rows created or
// extended, exactly as if the rows arrived one at a time. So the outcome does not depend on
// how a file is cut into chunks. Pure: no database.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ingestd::engine {

/// A row's key per tier (index 0 = tier 1); nullopt where the row has none.
using TierKeys = std::vector<std::optional<std::string>>;

/// @brief A record that existed before the chunk, with every key it holds per tier: those its
/// own columns give and those identity memory remembers.
struct KnownRecord {
  std::string id;
  std::vector<std::vector<std::string>> keys;  // [tier] -> keys
};

/// @brief What became of one row.
struct RowDecision {
  enum class Kind { New, Match, Review };
  Kind kind = Kind::New;
  int record = -1;  // New, Match: index into Resolution::records
  int tier = 0;     // Match: the tier (1-based) it matched at; New: 0
  bool founds = false;  // New: this row created the record
  std::vector<std::pair<int, int>> candidates;  // Review: (record, tier) of every record that claims it
};

/// @brief A record the chunk's rows landed on: a known one, or one the chunk creates.
struct ResolvedRecord {
  int known = -1;      // index into the known records; -1 = created by this chunk
  int first_row = -1;  // the first row that landed on it
};

/// @brief The decisions for a chunk.
struct Resolution {
  std::vector<ResolvedRecord> records;
  std::vector<RowDecision> rows;
};

/// Resolves `rows` in order against `known`. A row matches the records that hold one of its
/// keys, each at the highest tier they share, except those ruled out by a conflicting value
/// at a higher tier (the row and the record both hold a key there, and not the same one). No
/// record: a new one. One: it merges, and the record holds the row's keys from then on. More:
/// the row goes to review naming them, and changes nothing.
Resolution resolve_rows(const std::vector<TierKeys>& rows, const std::vector<KnownRecord>& known, size_t tiers);

}  // namespace ingestd::engine
