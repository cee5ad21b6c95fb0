// `ingestd train`: m and u probabilities of a fuzzy tier's comparison levels estimated from the
// data (Fellegi–Sunter). u from random pairs (almost all of them two different people); m and
// the share of matches by expectation maximisation over the pairs the blocking rules make, u
// held fixed. Deterministic: a fixed seed, pairs in a fixed order. Pure: no database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"

namespace ingestd::engine {

/// Each comparison's level for one pair (-1: a side is missing).
using LevelVector = std::vector<int8_t>;

/// @brief What training learned.
struct TrainedWeights {
  std::vector<std::vector<double>> m, u;  // [comparison][level]
  double lambda = 0;                      // share of matches among the blocked pairs
  int iterations = 0;
  bool converged = false;
  size_t blocked_pairs = 0, random_pairs = 0;
  /// The match weight at which a blocked pair is a match with `posterior` probability.
  double weight_for(double posterior) const;
};

/// Levels of every comparison of `tier` between two rows' comparison keys.
LevelVector pair_levels(const config::FuzzyTier& tier, const std::vector<std::optional<std::string>>& a,
                        const std::vector<std::optional<std::string>>& b);

/// Pairs (i < j) of rows sharing a block key, over all rules, each once, in order. A block
/// bigger than `max_block` rows contributes its first max_block rows only.
std::vector<std::pair<uint32_t, uint32_t>> blocked_pairs(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                                         size_t max_block);

/// `n` distinct random pairs (i < j) of `rows` rows from a fixed seed (all pairs when fewer).
std::vector<std::pair<uint32_t, uint32_t>> random_pairs(size_t rows, size_t n);

/// Estimates m, u and lambda: u from `random` (Laplace-smoothed), then EM for m and lambda over
/// `blocked` with u fixed, from the defaults, until nothing moves by 1e-7 or 500 rounds.
TrainedWeights estimate_weights(const config::FuzzyTier& tier, const std::vector<LevelVector>& blocked,
                                const std::vector<LevelVector>& random);

/// The weights file the tier's `weights:` names: YAML, numbers with 6 significant digits.
std::string weights_yaml(const config::FuzzyTier& tier, const TrainedWeights& w, const std::string& dataset,
                         const std::string& entity);

}  // namespace ingestd::engine
