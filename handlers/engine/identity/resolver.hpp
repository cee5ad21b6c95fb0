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
  /// Found only by a fuzzy tier's blocks: no row holds one of its keys, so they matter only
  /// once a row lands on it (then they are indexed, for the conflicts of later rows). Its
  /// `keys` may then be left empty: the resolver asks OwnKeys::stored for them (a slice of a
  /// big table fetches tens of thousands of such records, and rows land on few).
  bool fuzzy_only = false;
};

/// @brief What became of one row.
struct RowDecision {
  enum class Kind { New, Match, Review };
  Kind kind = Kind::New;
  int record = -1;  // New, Match: index into Resolution::records
  int tier = 0;     // Match: the tier (1-based) it matched at; New: 0
  bool founds = false;  // New: this row created the record
  std::vector<std::pair<int, int>> candidates;  // Review: (record, tier) of every record that claims it
  bool judged = false;                // the fuzzy tier was asked (no exact key placed the row)
  std::optional<double> score;        // judged: the best candidate's match weight, if it had any
  std::vector<double> candidate_scores;  // Review by the fuzzy tier: each candidate's weight
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

/// @brief What the resolver asks a fuzzy tier about a row no exact key placed.
class FuzzyJudge {
 public:
  virtual ~FuzzyJudge() = default;
  /// The records row `row` may be, each with its match weight (a conflicting never_across
  /// value already ruled out); `row_records`: where each earlier row landed (-1: review).
  virtual std::vector<std::pair<int, double>> candidates(size_t row, const std::vector<int>& row_records) = 0;
  /// Row `row` landed on `record` (new or matched): its keys count for later rows.
  virtual void landed(size_t row, int record) = 0;
  int tier = 0;  // 1-based, after the exact tiers
  double merge_at = 0, review_at = 0;
};

/// @brief What the resolver asks about the keys a record's own columns hold once a row landed
/// on it: its merge policy may combine the row's values with the record's (a birth date filled
/// in next to a kept name), and the target's index would find the record by that key in a
/// later chunk, so a later row of this chunk must too.
class OwnKeys {
 public:
  virtual ~OwnKeys() = default;
  virtual TierKeys landed(size_t row, int record) = 0;
  /// The keys known record `record` holds per tier (identity memory's, then its columns'), as
  /// known_record() gives them: asked for a fuzzy-only record given without them.
  virtual std::vector<std::vector<std::string>> stored(int record) const = 0;
};

/// Resolves `rows` in order against `known`. A row matches the records that hold one of its
/// keys, each at the highest tier they share, except those ruled out by a conflicting value
/// at a higher tier (the row and the record both hold a key there, and not the same one). No
/// record: a new one. One: it merges, and the record holds the row's keys from then on. More:
/// the row goes to review naming them, and changes nothing. A row no exact key places asks
/// `fuzzy` (when given): one record at or above merge_at merges it; more, or a best between
/// review_at and merge_at, send it to review; else it is new. `own` (when given) adds the keys
/// a record's columns come to hold.
Resolution resolve_rows(const std::vector<TierKeys>& rows, const std::vector<KnownRecord>& known, size_t tiers,
                        FuzzyJudge* fuzzy = nullptr, OwnKeys* own = nullptr);

}  // namespace ingestd::engine
