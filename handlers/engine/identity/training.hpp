// `ingestd train`: m and u probabilities of a fuzzy tier's comparison levels estimated from the
// data (Fellegi–Sunter). u from random pairs (almost all of them two different people); m by
// expectation maximisation over the pairs the blocking rules make, u held fixed, one rule at a
// time without the comparisons that rule's pairs agree on because the rule paired them (as
// Splink does): otherwise EM reads the blocking fields' agreement as the mark of a match.
// Deterministic: a fixed seed, pairs in a fixed order. Pure: no database.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/identity/compare.hpp"

namespace ingestd::engine {

/// Each comparison's level for one pair (-1: a side is missing).
using LevelVector = std::vector<int8_t>;

/// Level patterns and how many pairs show each.
using Patterns = std::map<LevelVector, double>;

/// @brief The blocked pairs training learns from, counted by level pattern.
struct BlockedPatterns {
  std::vector<Patterns> rule;  // [rule]: the pairs it makes, its left-out comparisons at -1
  Patterns any;                // every pair once, the comparisons left out by any rule pairing it at -1
  size_t pairs = 0;            // distinct pairs
};

/// @brief A comparison's term frequencies: the values so common that agreeing on one is weak
/// evidence, with their share of the rows holding the field, and for any other value the chance
/// that a stranger holds the same one (FuzzyComparison::frequent).
struct CommonValues {
  std::vector<std::pair<std::string, double>> values;  // most common first, then by value
  double rest = 0;                                     // 0: no value is common
};

/// Per comparison (keys[row][comparison]): a value is common when at least 10 rows hold it and
/// its share is at least twice the chance for the values less common than it,
/// sum(share^2) / sum(share) over those (a value no row holds counts as one row's). At most 100
/// per comparison.
std::vector<CommonValues> common_values(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                        size_t comparisons);

/// @brief What training learned.
struct TrainedWeights {
  std::vector<std::vector<double>> m, u;  // [comparison][level]
  double lambda = 0;                      // share of matches among the blocked pairs
  int iterations = 0;                     // EM rounds, all rules together
  bool converged = false;                 // every rule's EM
  size_t blocked_pairs = 0, random_pairs = 0;
  size_t rows = 0;                          // the file's rows trained on
  std::vector<std::vector<bool>> left_out;  // [rule][comparison]
  std::vector<size_t> rule_pairs;           // [rule]
  std::vector<bool> estimated;              // [comparison]: m from the data (else the defaults)
  std::vector<TogetherIndex> together;      // agreeing_together()
  std::vector<CommonValues> common;         // [comparison] common_values(); empty: none
  /// The match weight at which a blocked pair is a match with `posterior` probability.
  double weight_for(double posterior) const;
};

/// Levels of every comparison of `tier` between two rows' comparison keys.
LevelVector pair_levels(const config::FuzzyTier& tier, const std::vector<std::optional<std::string>>& a,
                        const std::vector<std::optional<std::string>>& b);

/// @brief Two rows sharing the key of a blocking rule.
struct BlockedPair {
  uint32_t a, b;  // rows, a < b
  uint32_t rule;
  auto operator<=>(const BlockedPair&) const = default;
};

/// Pairs of rows sharing a block key, per rule, ordered by rows then rule: a pair two rules make
/// comes twice, once per rule. A block bigger than `max_block` rows contributes its first
/// max_block rows only.
std::vector<BlockedPair> blocked_pairs(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                       size_t max_block);

/// Comparisons that agree exactly together at least 10 times as often as chance (suburb with
/// postcode), at least 10 times, among the random pairs that agree exactly on at most one more
/// (a random pair agreeing on much else is likely a match: a small file holds many); u: their
/// share of all random pairs. Ordered by second then first.
std::vector<TogetherIndex> agreeing_together(const config::FuzzyTier& tier, const std::vector<LevelVector>& random);

/// Per blocking rule, the comparisons its pairs cannot teach m: those on the rule's own fields,
/// and those that agree together with one of them: pairs of that rule agree on them because
/// the rule made them pairs, match or not.
std::vector<std::vector<bool>> left_out_comparisons(const config::FuzzyTier& tier,
                                                    const std::vector<TogetherIndex>& together);

/// The blocked pairs' level patterns, per rule and all together (`blocked` ordered as
/// blocked_pairs gives it); `levels(a, b)` gives a pair's levels.
BlockedPatterns count_patterns(const std::vector<BlockedPair>& blocked, const std::vector<std::vector<bool>>& left_out,
                               const std::function<LevelVector(uint32_t, uint32_t)>& levels);

/// `n` distinct random pairs (i < j) of `rows` rows from a fixed seed (all pairs when fewer).
std::vector<std::pair<uint32_t, uint32_t>> random_pairs(size_t rows, size_t n);

/// Estimates m, u and lambda: u from `random` (Laplace-smoothed); then per rule, EM for m and
/// that rule's share of matches over its pairs with u fixed, from the defaults, until nothing
/// moves by 1e-7 or 500 rounds; a comparison's m is the rules' estimates weighed by the matches
/// each saw with the field present. lambda: the share of matches among all blocked pairs by
/// those m and u. A comparison every rule leaves out keeps the defaults (`estimated` false).
/// Where two comparisons of `together` agree, a non-match's chance of it is their u, as the
/// scorer takes it (PairScorer).
TrainedWeights estimate_weights(const config::FuzzyTier& tier, const BlockedPatterns& blocked,
                                const std::vector<LevelVector>& random, std::vector<TogetherIndex> together,
                                std::vector<std::vector<bool>> left_out);

/// The weights file the tier's `weights:` names: YAML, numbers with 6 significant digits.
std::string weights_yaml(const config::FuzzyTier& tier, const TrainedWeights& w, const std::string& dataset,
                         const std::string& entity);

}  // namespace ingestd::engine
