// The fuzzy tier of an entity (DESIGN §5 rule 6): its blocking rules find candidate records
// in the target through the target's indexes, and the earlier rows of the chunk that share a
// block; pairs are scored field by field (Fellegi–Sunter). The decision stays the resolver's:
// FuzzyJudge is what it asks about a row no exact key placed.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/identity/compare.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/resolver.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/merge/statement.hpp"

namespace ingestd::engine {

/// Phonetic codes PostgreSQL gave: function -> value -> code ("": none).
using PhoneticCodes = std::map<std::string, std::unordered_map<std::string, std::string>>;

/// @brief A chunk's blocks: the target records holding each block key the chunk's rows have
/// (each distinct key probed once), and the phonetic codes of the values the chunk met, so a
/// block key is made the same way for rows and records, in C++. A block holding more than
/// max_candidates records is too common to tell people apart: it gives no candidates, and its
/// members are neither named nor fetched.
struct Blocks {
  /// [rule] key -> the ids of its records, or "" for one no row may be scored against (it is
  /// not fetched but counts towards max_candidates); for the blocks of max_candidates records or fewer
  std::vector<std::unordered_map<std::string, std::vector<std::string>>> known;
  std::vector<std::unordered_set<std::string>> over;  // [rule] keys whose block held more than max_candidates
  /// @brief An open block (open_blocks()) as the slice began: the records of the key holding no
  /// never_across value; what a row holding every never_across value is blocked with under an
  /// equality rule.
  struct Open {
    std::vector<std::string> ids;  // every one of them, when not over
    bool over = false;             // it held more than max_candidates: ids empty
  };
  std::vector<std::unordered_map<std::string, Open>> open;  // [rule] key -> its open block
  /// [rule] key -> its values as probed, for every open block over max_candidates: what such a
  /// block is looked up by again when rows of the slice bring it back within (BlockRefill).
  std::vector<std::unordered_map<std::string, std::vector<std::string>>> values;
  /// function -> value -> code: the matcher's, kept over the slices and chunks of a load
  /// (FuzzyMatcher::codes_), so a common name is coded once, not once a slice
  std::shared_ptr<PhoneticCodes> codes = std::make_shared<PhoneticCodes>();
  /// A trigram rule's values -> their trigrams (pg_trgm's show_trgm(), sorted): the chunk's
  /// records are found by similarity in C++ exactly as the target's through its index.
  std::unordered_map<std::string, std::vector<std::string>> trigrams;
  /// The records some row of their blocks may be scored against: a record whose never_across
  /// value differs from every such row's is named in its blocks (it counts towards
  /// max_candidates) but never fetched.
  std::unordered_set<std::string> wanted;
  /// The records to fetch: every wanted one, once each, ascending.
  std::vector<std::string> known_ids() const;
  /// The places the blocks (not the open ones) name, over all keys.
  size_t named() const;
  /// The target's records when the batch began (FuzzyMatcher's table_records).
  double table_records = -1;
};

/// Separates the terms of a block key (a control character no key holds).
inline constexpr char kBlockKeySeparator = '\x1f';

/// Adds to `codes` the code `function` (schema-qualified) gives each of `values`, from
/// PostgreSQL: "" when it gives none.
void phonetic_codes(pqxx::transaction_base& tx, const std::string& function, const std::set<std::string>& values,
                    std::unordered_map<std::string, std::string>& codes);

/// @brief What a fuzzy tier reads of a row or record: comparison, never_across and blocking keys,
/// into field keys that outlive it (rows, fetched records). In one array: a side is made for
/// every record a row meets, tens of thousands a slice.
struct FuzzySide {
  KeyRefs keys;                   // the comparisons', then the never_across ones, then the blocking ones
  uint32_t compares = 0, nevers = 0;
  KeyView compare() const { return {keys.data(), compares}; }
  KeyView never() const { return {keys.data() + compares, nevers}; }
  KeyView block() const { return {keys.data() + compares + nevers, keys.size() - compares - nevers}; }
};

/// The index of the entity's field `name` (-1: none).
int field_index(const config::Entity& entity, const std::string& name);

/// Whether the entity's fuzzy tier gives open blocks to the rows that hold every never_across
/// value: its first exact tiers are its never_across fields, one field each. A record holding
/// one of such a row's values is then found by that tier, and places the row (or conflicts with
/// it at a tier above), and every other record holding one conflicts with it: the fuzzy tier
/// could score only records that hold none, so that row's blocks hold only those (through
/// partial indexes, open_predicate()), not among records it could never be.
bool open_blocks(const config::Entity& entity);

/// `(key) IS NULL AND …` over the never_across fields: by default over their bare columns
/// (index_expr), the predicate of the partial indexes behind open blocks; with
/// &TierFieldSql::key_expr, the same over a target row aliased `t` (what a probe says).
std::string open_predicate(const std::vector<TierFieldSql>& never,
                           std::string TierFieldSql::*expr = &TierFieldSql::index_expr);

/// The never_across fields of the entity's fuzzy tier as SQL over `table`, in the tier's order
/// (a name that is no field of the entity is left out).
std::vector<TierFieldSql> never_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                    const std::string& bookkeeping);

/// The target's records as PostgreSQL estimates them (pg_class.reltuples; -1: never counted).
/// Read once when a batch begins, so the table-size term is the same for every chunk of it,
/// whenever autovacuum counts the table again: the outcome does not depend on its timing, nor on
/// the chunking.
double table_records(pqxx::transaction_base& tx, const std::string& table);

/// Fields an entity's fuzzy tier reads (blocking, comparisons, never_across), ascending; their
/// keys are kept for every row.
std::vector<int> fuzzy_fields(const config::Entity& entity);

/// @brief The fuzzy tier against its table.
class FuzzyMatcher {
 public:
  /// `never`: the never_across fields' SQL, in the tier's order; `table_records`: the target's
  /// records when the batch began (table_records()), for the table-size term.
  FuzzyMatcher(const config::Entity& entity, MatchTarget target, std::vector<TierSql> rules,
               std::vector<TierFieldSql> never = {}, double table_records = -1);
  const config::FuzzyTier& tier() const { return tier_; }
  const PairScorer& scorer() const { return scorer_; }
  /// Fields whose keys the tier reads (blocking, comparisons, never_across), ascending.
  const std::vector<int>& fields() const { return fields_; }
  /// The target's records in the blocks of the rows (their field keys); a block holding more
  /// than max_candidates is marked over instead. `probed`: [row] its blocks are looked up (empty: every
  /// row's); a row an exact key surely places is never scored, so its blocks need no probe.
  /// Every row's blocking values get their phonetic codes and trigrams (records take its keys).
  Blocks block(StepSql& sql, const std::vector<const FieldKeys*>& rows, const std::vector<char>& probed = {}) const;
  /// The first `n` ids, lowest first, of rule `r`'s block of `values` (`open`: its open block)
  /// as the table holds it now.
  std::vector<std::string> members(StepSql& sql, size_t r, const std::vector<std::string>& values, bool open,
                                   size_t n) const;
  /// The row (its field keys) is blocked with open blocks under the equality rules (open_blocks()).
  bool open_row(const FieldKeys& keys) const;
  /// The side holds a never_across value.
  static bool holds_never(const FuzzySide& side);
  /// Adds to `blocks` the phonetic codes of the blocking values `sides` hold (PostgreSQL's
  /// functions, the ones the indexes hold).
  void add_codes(StepSql& sql, Blocks& blocks, const std::vector<const FieldKeys*>& sides) const;
  /// The block key of rule `r` for a side (nullopt: a term is missing).
  std::optional<std::string> rule_key(size_t r, const FuzzySide& side, const Blocks& blocks) const;
  size_t rules() const { return rules_.size(); }
  /// Rule `r` finds keys similar to a row's at least this (0: equal ones).
  double similarity(size_t r) const { return rules_[r].lowest_similarity(); }
  /// The keys the comparisons and never_across read, in the tier's order.
  FuzzySide side(const FieldKeys& keys) const;
  /// Two sides hold different values of a never_across field: never one record.
  static bool conflicts(const FuzzySide& a, const FuzzySide& b);

 private:
  /// Adds to `blocks` the trigrams (PostgreSQL's show_trgm()) of the values the rows hold for a
  /// trigram rule: a record of the chunk is found by a key one of them gave it. A stored value
  /// needs none: the target's records are found through the index.
  void add_trigrams(StepSql& sql, Blocks& blocks, const std::vector<const FieldKeys*>& rows) const;
  /// Copies the rows' blocking keys into a temp table; returns its name.
  std::string stage_probe(StepSql& sql, const std::vector<const FieldKeys*>& rows, const std::vector<char>& probed) const;

  const config::FuzzyTier& tier_;
  MatchTarget target_;
  std::vector<TierSql> rules_;
  std::vector<TierFieldSql> never_sql_;
  double table_records_;
  bool open_ = false;      // open_blocks()
  std::string open_where_;  // over t: the record holds no never_across value (open_predicate())
  PairScorer scorer_;
  std::vector<int> fields_, compare_fields_, never_fields_;
  std::map<int, size_t> column_of_;  // field -> probe column (k1…); FuzzySide::block()[column - 1]
  std::vector<int> side_fields_;     // [key of a FuzzySide] its field: comparisons, never_across, columns
  /// The codes of the values the load met so far (a function's code of a value never
  /// changes), handed to each slice's Blocks; started afresh past kMaxCodes values. A load
  /// is one thread's: only it reads and adds to them.
  mutable std::shared_ptr<PhoneticCodes> codes_ = std::make_shared<PhoneticCodes>();
};

/// @brief The records of a chunk under a trigram rule, in the order they came to hold its key,
/// found by their similarity to a row's key. Similarity is worked out once per pair of distinct
/// keys (a common surname is held by many records), as keys arrive.
class SimilarBlock {
 public:
  /// Finds keys at least `similarity` similar (0: none, the rule is not a trigram rule).
  explicit SimilarBlock(double similarity = 0) : similarity_(similarity) {}
  /// `key` outlives the block (a key of Blocks::trigrams), `trigrams` its trigrams.
  void add(int record, std::string_view key, const std::vector<std::string>& trigrams);
  /// The first `cap` records whose key is similar to `key` (with `trigrams`), in the order
  /// they came.
  std::vector<int> similar(std::string_view key, const std::vector<std::string>& trigrams, size_t cap) const;

 private:
  double similarity_;
  /// @brief The keys found similar to one asked about, among the first `checked` keys.
  struct Found {
    uint32_t checked = 0;
    std::vector<uint32_t> keys;
  };
  std::unordered_map<std::string_view, uint32_t> key_index_;       // key -> its index
  std::vector<const std::vector<std::string>*> trigrams_;           // [key]
  std::vector<std::vector<std::pair<uint32_t, int>>> holders_;      // [key] (arrival, record), in order
  std::unordered_map<std::string_view, std::vector<uint32_t>> postings_;  // trigram -> keys, ascending
  uint32_t arrivals_ = 0;
  mutable std::unordered_map<std::string_view, Found> found_;
  mutable std::vector<uint32_t> shared_;   // [key] trigrams in common with the one asked about
  mutable std::vector<uint32_t> touched_;  // keys whose shared_ is not 0
};

/// @brief Where an open block's members come from when it was over max_candidates as the slice
/// began and rows of the slice gave some of them a never_across value: the block's partial
/// index then leaves them out, and the block may hold max_candidates or fewer again, as a later
/// chunk's probe would find it.
class BlockRefill {
 public:
  virtual ~BlockRefill() = default;
  /// The first `n` members of a block (FuzzyMatcher::members()) as the table holds it, each as
  /// the resolver numbers it (-1: the slice does not know it; fetch() it) and its id.
  virtual std::vector<std::pair<int, std::string>> first(size_t r, const std::vector<std::string>& values, bool open,
                                                         size_t n) = 0;
  /// The records with these ids, which the slice did not know, fetched into spare places, as
  /// the resolver numbers them.
  virtual std::vector<int> fetch(const std::vector<std::string>& ids) = 0;
};

/// @brief A pair's score, as explanations show it.
struct PairExplanation {
  int record = -1;  // index into Resolution::records
  double score = 0;
  std::vector<FieldScore> fields;  // per comparison
  double table = 0;                // the table-size term (FuzzyRun::table_term_), in score
};

/// @brief The fuzzy tier's say over one chunk: scores a row against the records its blocks
/// lead to, as they stand when the row's turn comes.
class FuzzyRun : public FuzzyJudge {
 public:
  /// `known`/`known_keys`: the known records in the resolver's order; `rows`: each row's
  /// field keys.
  /// `refill` (when given) fetches the members of an open block that was over max_candidates
  /// and is not any more, records of it having left.
  FuzzyRun(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<KnownRecord>& known,
           const std::vector<const FieldKeys*>& known_keys, const std::vector<const FieldKeys*>& rows,
           BlockRefill* refill = nullptr);
  std::vector<std::pair<int, double>> candidates(size_t row, const std::vector<int>& row_records) override;
  void landed(size_t row, int record) override;
  /// The best pair of each row the tier scored (merged or sent to review).
  const std::map<size_t, std::vector<PairExplanation>>& explanations() const { return explained_; }
  /// How many blocks (a row's, under a rule) gave no candidates as they held more than max_candidates.
  size_t over() const { return over_; }

 private:
  /// The records row `row`'s blocks lead to, as the resolver numbers them, once each.
  std::vector<int> blocked_records(size_t row, const std::vector<int>& row_records);

  const FuzzyMatcher& m_;
  const Blocks& blocks_;
  std::vector<FuzzySide> rows_;     // [row]
  /// Registers a record under the block keys its held values now complete.
  void register_keys(int record);
  /// A record's side, made for a known record when first needed.
  const FuzzySide& side_of(int record);

  std::vector<std::unordered_map<std::string, std::vector<int>>> known_;  // [rule] key -> known records
  /// @brief An open block as the slice began: its members (none when over).
  struct OpenMembers {
    std::vector<int> records;
    bool over = false;  // it held more than max_candidates
  };
  std::vector<std::unordered_map<std::string, OpenMembers>> known_open_;  // [rule] open block
  BlockRefill* refill_ = nullptr;
  std::vector<char> open_rows_;  // [row] blocked with open blocks under the equality rules
  /// What every pair's match weight gets for the table's size: -log2(records / trained_rows)
  /// when the table holds more records than the weights were trained on, else 0. A pair
  /// agrees by chance with more people in a bigger table, so the same weight is weaker
  /// evidence there; the thresholds keep the meaning they had on the training file.
  double table_term_ = 0;
  /// [rule] key -> records made here that got it (an equality rule)
  std::vector<std::unordered_map<std::string, std::vector<int>>> chunk_;
  /// [rule] key -> known records a row completed it for (an equality rule)
  std::vector<std::unordered_map<std::string, std::vector<int>>> joined_;
  /// [rule] key -> stored members of its open block, over when the slice began, that rows of the
  /// slice gave a never_across value (they left it)
  std::vector<std::unordered_map<std::string, size_t>> departed_;
  /// @brief An open block that was over and lost members: what the table held of it when last
  /// asked (BlockRefill::first), while no more left.
  struct Refilled {
    size_t departed = 0;
    bool over = true;
    std::vector<int> members;
  };
  std::vector<std::unordered_map<std::string, Refilled>> refilled_;  // [rule] open block
  /// Into `members`, the records rule `r`'s block `key` (open: its open block) holds at the row's
  /// turn: the stored ones (-1: not fetched), those rows of the slice completed the key for, and
  /// those made here; false (and `members` left partial) when they are more than `cap`.
  bool block_members(size_t r, const std::string& key, bool open, size_t cap, std::vector<int>& members);
  /// The stored members of an open block that was over when the slice began (after members
  /// left it), into `members`; false when still over `cap`.
  bool refill_open(size_t r, const std::string& key, size_t cap, std::vector<int>& members);
  size_t over_ = 0;  // blocks (row by rule) left out as over max_candidates
  std::vector<SimilarBlock> similar_;  // [rule] a trigram rule's records that got a key here
  std::vector<std::vector<bool>> keyed_;  // [record][rule] its key for the rule is registered (or stored)
  std::vector<FuzzySide> records_;  // [record] what it holds so far (fill nulls)
  std::vector<const FieldKeys*> known_keys_;  // [known record] its stored keys
  std::vector<char> built_;                    // [known record] records_ holds its side
  std::vector<int> seen_;           // [record] the last row that listed it
  std::map<size_t, std::vector<PairExplanation>> explained_;
  std::vector<FieldScore> scored_;  // the pair being scored, its room reused
};

}  // namespace ingestd::engine
