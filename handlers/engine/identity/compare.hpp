// Field comparisons of a fuzzy tier (DESIGN §5 rule 6): string similarities, the agreement
// level of two keys, and the Fellegi–Sunter weight of a candidate pair. Pure: no database.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/model.hpp"

namespace ingestd::engine {

/// Jaro–Winkler similarity of two UTF-8 strings, by code point (prefix scale 0.1, up to 4).
double jaro_winkler(std::string_view a, std::string_view b);
/// Edits (insert, delete, substitute) between two UTF-8 strings, by code point; more than
/// `cap` read as cap + 1 (counted no further).
size_t levenshtein(std::string_view a, std::string_view b, size_t cap = SIZE_MAX - 1);

/// The level two present keys agree at: 0 = exact, …, levels()-1 = disagrees. Dates are ISO
/// (YYYY-MM-DD), as the engine keys them.
size_t comparison_level(const config::FuzzyComparison& c, std::string_view a, std::string_view b);
/// What a level means, for explanations: "exact", "jaro_winkler>=0.92", "transposed", …
std::string level_name(const config::FuzzyComparison& c, size_t level);

/// @brief One field's part of a pair's score.
struct FieldScore {
  int level = -1;      // -1: missing on a side (weight 0)
  double weight = 0;   // log2(m/u) of the level
  int given = -1;      // exact, taken given this comparison's exact agreement (FuzzyTogether)
  double share = 0;    // exact on a common value (FuzzyComparison::frequent): its share of the rows
};

/// A share as a percentage, 3 significant digits: 0.0123 -> "1.23%".
std::string percent(double share);

/// How a field's part of a score reads in explanations: "missing", "exact", "exact (with
/// postcode)", "exact (common: 1.2% of rows)".
std::string score_level(const config::FuzzyTier& tier, size_t comparison, const FieldScore& s);

/// @brief Comparisons that agree together (FuzzyTogether) by index, first < second.
struct TogetherIndex {
  size_t first, second;
  double u;
};

/// The tier's together pairs by comparison index, ordered by second then first.
std::vector<TogetherIndex> together_index(const config::FuzzyTier& tier);

/// The pair whose first's exact agreement comparison `b`'s is taken given: the first in
/// `together` with second b and an exactly agreeing first (`exact(first)`); nullptr: none.
template <class Exact>
const TogetherIndex* given_of(const std::vector<TogetherIndex>& together, size_t b, Exact exact) {
  for (const auto& t : together)
    if (t.second == b && exact(t.first)) return &t;
  return nullptr;
}

/// Keys by reference, one per comparison (nullptr: missing): scoring millions of pairs copies
/// no strings.
using KeyRefs = std::vector<const std::string*>;
/// A view of such keys (part of a FuzzySide's one array).
using KeyView = std::span<const std::string* const>;

/// @brief A fuzzy tier's comparisons with their weights, ready to score pairs.
class PairScorer {
 public:
  explicit PairScorer(const config::FuzzyTier& tier);
  /// The weights per comparison and level: log2(m/u), from the tier's m/u or the defaults;
  /// exact agreement on a value not listed as common, where the tier has term frequencies:
  /// log2(m / frequent_rest).
  const std::vector<std::vector<double>>& weights() const { return weights_; }
  /// Scores two sides' keys, one per comparison (in the tier's order); the sum is the match weight.
  std::vector<FieldScore> fields(KeyView a, KeyView b) const;
  /// The same into `out`, whose room is reused (a run scores millions of pairs, most of them
  /// strangers never shown: no allocation each); returns the sum.
  double score(KeyView a, KeyView b, std::vector<FieldScore>& out) const;
  std::vector<FieldScore> fields(const std::vector<std::optional<std::string>>& a,
                                 const std::vector<std::optional<std::string>>& b) const;
  static double total(const std::vector<FieldScore>& f);
  /// The defaults when a comparison has no m/u: agreement likely for a match, rare by chance.
  static void default_mu(const config::FuzzyComparison& c, std::vector<double>& m, std::vector<double>& u);

 private:
  const config::FuzzyTier& tier_;
  std::vector<std::vector<double>> weights_;
  std::vector<TogetherIndex> together_;
  std::vector<double> given_weight_;  // [together_ index] the second's exact weight given the first
  /// [comparison] exact agreement on a common value: value -> (weight, share of the rows)
  std::vector<std::unordered_map<std::string, std::pair<double, double>>> common_;
};

}  // namespace ingestd::engine
