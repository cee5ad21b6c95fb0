#include "handlers/engine/identity/training.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "handlers/engine/identity/compare.hpp"

namespace ingestd::engine {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// P(pattern | match) and P(pattern | non-match) as products over the present levels; a
/// comparison agreeing together with an earlier one (`together`) counts by their joint u.
std::pair<double, double> likelihoods(const LevelVector& g, const std::vector<std::vector<double>>& m,
                                      const std::vector<std::vector<double>>& u,
                                      const std::vector<TogetherIndex>& together) {
  double pm = 1, pu = 1;
  for (size_t k = 0; k < g.size(); ++k) {
    if (g[k] < 0) continue;
    pm *= m[k][size_t(g[k])];
    pu *= u[k][size_t(g[k])];
    if (g[k] == 0 && !together.empty())
      if (const auto* t = given_of(together, k, [&](size_t f) { return g[f] == 0; }))
        pu *= t->u / (u[t->first][0] * u[k][0]);
  }
  return {pm, pu};
}

/// The posterior that a pair of pattern `g` is a match, with `lambda` the share of matches.
double posterior(const LevelVector& g, const std::vector<std::vector<double>>& m, const std::vector<std::vector<double>>& u,
                 const std::vector<TogetherIndex>& together, double lambda) {
  const auto [pm, pu] = likelihoods(g, m, u, together);
  return lambda * pm / (lambda * pm + (1 - lambda) * pu);
}

/// One EM round: new m and lambda from the posteriors; returns the largest change. `seen`:
/// per comparison, the expected matches with the field present.
double em_round(const Patterns& pats, std::vector<std::vector<double>>& m, const std::vector<std::vector<double>>& u,
                const std::vector<TogetherIndex>& together, double& lambda, std::vector<double>& seen) {
  std::vector<std::vector<double>> num_m(m.size());
  seen.assign(m.size(), 0);
  for (size_t k = 0; k < m.size(); ++k) num_m[k].assign(m[k].size(), 0);
  double matches = 0, total = 0;
  for (const auto& [g, count] : pats) {
    const double p = posterior(g, m, u, together, lambda);
    matches += p * count;
    total += count;
    for (size_t k = 0; k < g.size(); ++k) {
      if (g[k] < 0) continue;
      num_m[k][size_t(g[k])] += p * count;
      seen[k] += p * count;
    }
  }
  double moved = std::abs(matches / total - lambda);
  lambda = std::clamp(matches / total, 1e-9, 1 - 1e-9);
  for (size_t k = 0; k < m.size(); ++k)
    for (size_t l = 0; l < m[k].size(); ++l) {
      // a level no match shows keeps a floor: log2(m/u) stays finite
      const double v = seen[k] > 0 ? std::max(num_m[k][l] / seen[k], 1e-6) : m[k][l];
      moved = std::max(moved, std::abs(v - m[k][l]));
      m[k][l] = v;
    }
  return moved;
}

/// The share of matches among `pats` with m and u fixed (EM for lambda alone).
double matches_share(const Patterns& pats, const std::vector<std::vector<double>>& m,
                     const std::vector<std::vector<double>>& u, const std::vector<TogetherIndex>& together) {
  double lambda = 0.1;
  for (int round = 0; round < 500; ++round) {
    double matches = 0, total = 0;
    for (const auto& [g, count] : pats) {
      matches += count * posterior(g, m, u, together, lambda);
      total += count;
    }
    const double next = std::clamp(matches / total, 1e-9, 1 - 1e-9);
    const bool still = std::abs(next - lambda) < 1e-9;
    lambda = next;
    if (still) break;
  }
  return lambda;
}

}  // namespace

double TrainedWeights::weight_for(double posterior) const {
  return std::log2(posterior / (1 - posterior)) - std::log2(lambda / (1 - lambda));
}

LevelVector pair_levels(const config::FuzzyTier& tier, const std::vector<std::optional<std::string>>& a,
                        const std::vector<std::optional<std::string>>& b) {
  LevelVector out(tier.compare.size(), -1);
  for (size_t k = 0; k < out.size(); ++k)
    if (a[k] && b[k]) out[k] = int8_t(comparison_level(tier.compare[k], *a[k], *b[k]));
  return out;
}

std::vector<BlockedPair> blocked_pairs(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                       size_t max_block) {
  std::vector<BlockedPair> out;
  const size_t rules = keys.empty() ? 0 : keys.front().size();
  for (size_t r = 0; r < rules; ++r) {
    std::map<std::string, std::vector<uint32_t>> blocks;  // ordered: the same pairs every run
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i][r]) {
        auto& b = blocks[*keys[i][r]];
        if (b.size() < max_block) b.push_back(uint32_t(i));
      }
    for (const auto& [key, rows] : blocks)
      for (size_t x = 0; x < rows.size(); ++x)
        for (size_t y = x + 1; y < rows.size(); ++y) out.push_back({rows[x], rows[y], uint32_t(r)});
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<TogetherIndex> agreeing_together(const config::FuzzyTier& tier, const std::vector<LevelVector>& random) {
  const size_t n = tier.compare.size();
  std::vector<double> agree(n, 0);
  std::vector<std::vector<double>> both(n, std::vector<double>(n, 0));
  for (const auto& g : random) {
    const auto agreeing = std::count(g.begin(), g.end(), 0);
    for (size_t a = 0; a < n; ++a)
      if (g[a] == 0) {
        agree[a] += 1;
        if (agreeing <= 3)
          for (size_t b = a + 1; b < n; ++b) both[a][b] += g[b] == 0;
      }
  }
  const double pairs = double(random.size());
  std::vector<TogetherIndex> out;
  for (size_t b = 0; b < n; ++b)
    for (size_t a = 0; a < b; ++a)
      if (both[a][b] >= 10 && both[a][b] * pairs >= 10 * agree[a] * agree[b]) out.push_back({a, b, both[a][b] / pairs});
  return out;
}

std::vector<std::vector<bool>> left_out_comparisons(const config::FuzzyTier& tier,
                                                    const std::vector<TogetherIndex>& together) {
  const size_t n = tier.compare.size();
  std::vector<std::vector<bool>> out;
  for (const auto& rule : tier.blocking) {
    std::vector<bool> left(n, false);
    for (const auto& term : rule)
      if (const size_t a = tier.comparison_of(term.field); a < n) {
        left[a] = true;
        for (const auto& t : together)
          if (t.first == a || t.second == a) left[t.first] = left[t.second] = true;
      }
    out.push_back(std::move(left));
  }
  return out;
}

BlockedPatterns count_patterns(const std::vector<BlockedPair>& blocked, const std::vector<std::vector<bool>>& left_out,
                               const std::function<LevelVector(uint32_t, uint32_t)>& levels) {
  BlockedPatterns out;
  out.rule.resize(left_out.size());
  for (size_t i = 0; i < blocked.size();) {
    const uint32_t a = blocked[i].a, b = blocked[i].b;
    const LevelVector g = levels(a, b);
    LevelVector any = g;
    for (; i < blocked.size() && blocked[i].a == a && blocked[i].b == b; ++i) {
      const auto& left = left_out[blocked[i].rule];
      LevelVector mine = g;
      for (size_t k = 0; k < g.size(); ++k)
        if (left[k]) mine[k] = any[k] = -1;
      out.rule[blocked[i].rule][mine] += 1;
    }
    out.any[any] += 1;
    ++out.pairs;
  }
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> random_pairs(size_t rows, size_t n) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  if (rows < 2) return out;
  const double all = double(rows) * double(rows - 1) / 2;
  if (all <= double(n)) {
    for (uint32_t i = 0; i < rows; ++i)
      for (uint32_t j = i + 1; j < rows; ++j) out.emplace_back(i, j);
    return out;
  }
  std::mt19937_64 gen(20261202);  // fixed: the same file trains the same weights
  std::uniform_int_distribution<uint32_t> pick(0, uint32_t(rows - 1));
  std::set<std::pair<uint32_t, uint32_t>> seen;
  while (seen.size() < n) {
    uint32_t i = pick(gen), j = pick(gen);
    if (i == j) continue;
    if (i > j) std::swap(i, j);
    if (seen.emplace(i, j).second) out.emplace_back(i, j);
  }
  return out;
}

std::vector<CommonValues> common_values(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                        size_t comparisons) {
  constexpr size_t kLeastRows = 10, kMost = 100;
  constexpr double kTimesRest = 2;
  std::vector<CommonValues> out(comparisons);
  for (size_t k = 0; k < comparisons; ++k) {
    std::unordered_map<std::string_view, size_t> count;
    double rows = 0;
    for (const auto& r : keys)
      if (k < r.size() && r[k]) {
        ++count[*r[k]];
        ++rows;
      }
    std::vector<std::pair<std::string_view, size_t>> by_rows(count.begin(), count.end());
    std::sort(by_rows.begin(), by_rows.end(),
              [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    // from value i on: their rows, and their rows squared
    std::vector<double> rows_from(by_rows.size() + 1, 0), squares_from(by_rows.size() + 1, 0);
    for (size_t i = by_rows.size(); i-- > 0;) {
      const double c = double(by_rows[i].second);
      rows_from[i] = rows_from[i + 1] + c;
      squares_from[i] = squares_from[i + 1] + c * c;
    }
    auto rest = [&](size_t i) { return rows_from[i] > 0 ? squares_from[i] / (rows_from[i] * rows) : 1 / rows; };
    size_t listed = 0;
    while (listed < by_rows.size() && listed < kMost && by_rows[listed].second >= kLeastRows &&
           double(by_rows[listed].second) / rows >= kTimesRest * rest(listed + 1))
      ++listed;
    if (!listed) continue;
    for (size_t i = 0; i < listed; ++i) out[k].values.emplace_back(by_rows[i].first, double(by_rows[i].second) / rows);
    out[k].rest = rest(listed);
  }
  return out;
}

TrainedWeights estimate_weights(const config::FuzzyTier& tier, const BlockedPatterns& blocked,
                                const std::vector<LevelVector>& random, std::vector<TogetherIndex> together,
                                std::vector<std::vector<bool>> left_out) {
  TrainedWeights w;
  w.together = std::move(together);
  w.blocked_pairs = blocked.pairs;
  w.random_pairs = random.size();
  std::vector<std::vector<double>> start;
  for (const auto& c : tier.compare) {
    std::vector<double> counts(c.levels(), 1.0);  // Laplace: a level never seen is rare, not impossible
    const size_t k = w.u.size();
    for (const auto& g : random)
      if (g[k] >= 0) counts[size_t(g[k])] += 1;
    double sum = 0;
    for (double x : counts) sum += x;
    for (double& x : counts) x /= sum;
    w.u.push_back(std::move(counts));
    std::vector<double> m, u;
    PairScorer::default_mu(c, m, u);
    start.push_back(m);
    w.m.push_back(std::vector<double>(m.size(), 0));
  }
  // per rule: m of the comparisons it does not leave out, and the matches it saw with each present
  std::vector<double> seen_all(tier.compare.size(), 0);
  w.converged = true;
  for (size_t r = 0; r < blocked.rule.size(); ++r) {
    w.rule_pairs.push_back(0);
    for (const auto& [g, count] : blocked.rule[r]) w.rule_pairs.back() += size_t(count);
    if (blocked.rule[r].empty()) continue;
    auto m = start;
    double lambda = 0.1;
    std::vector<double> seen;
    bool done = false;
    for (int round = 1; round <= 500 && !done; ++round, ++w.iterations)
      done = em_round(blocked.rule[r], m, w.u, w.together, lambda, seen) < 1e-7;
    w.converged = w.converged && done;
    for (size_t k = 0; k < m.size(); ++k)
      if (!left_out[r][k] && seen[k] > 0) {
        for (size_t l = 0; l < m[k].size(); ++l) w.m[k][l] += seen[k] * m[k][l];
        seen_all[k] += seen[k];
      }
  }
  for (size_t k = 0; k < w.m.size(); ++k) {
    w.estimated.push_back(seen_all[k] > 0);
    for (size_t l = 0; l < w.m[k].size(); ++l) w.m[k][l] = seen_all[k] > 0 ? w.m[k][l] / seen_all[k] : start[k][l];
  }
  w.left_out = std::move(left_out);
  w.lambda = blocked.any.empty() ? 0.1 : matches_share(blocked.any, w.m, w.u, w.together);
  return w;
}

std::string weights_yaml(const config::FuzzyTier& tier, const TrainedWeights& w, const std::string& dataset,
                         const std::string& entity) {
  std::string out = "# m/u probabilities of the fuzzy tier, written by `ingestd train`: u from " +
                    std::to_string(w.random_pairs) + " random pairs, m by EM per blocking rule over " +
                    std::to_string(w.blocked_pairs) + " blocked pairs (lambda " + num(w.lambda) + ", " + std::to_string(w.iterations) + " rounds" +
                    (w.converged ? "" : ", not converged") + ").\n# Match weight for a posterior of 0.5: " +
                    num(w.weight_for(0.5)) + "; 0.99: " + num(w.weight_for(0.99)) + "; 0.999: " + num(w.weight_for(0.999)) +
                    "\ndataset: " + dataset + "\nentity: " + entity + "\nrows: " + std::to_string(w.rows) +
                    "  # against a table of more records a match weight is lowered by log2(records / rows)\npairs: " +
                    std::to_string(w.blocked_pairs) +
                    "\niterations: " + std::to_string(w.iterations) + "\nfields:\n";
  for (size_t k = 0; k < tier.compare.size(); ++k) {
    std::string m, u;
    for (size_t l = 0; l < w.m[k].size(); ++l) {
      m += (l ? ", " : "") + num(w.m[k][l]);
      u += (l ? ", " : "") + num(w.u[k][l]);
    }
    out += "  " + tier.compare[k].field + ": {m: [" + m + "], u: [" + u + "]}" +
           (w.estimated[k] ? "" : "  # m: the defaults, no rule could learn it") + "\n";
  }
  if (!w.together.empty()) out += "# fields agreeing together far more often than chance: u of agreeing on both\ntogether:\n";
  for (const auto& t : w.together)
    out += "  - {fields: [" + tier.compare[t.first].field + ", " + tier.compare[t.second].field + "], u: " + num(t.u) +
           "}\n";
  bool any = false;
  for (size_t k = 0; k < w.common.size() && k < tier.compare.size(); ++k) {
    if (w.common[k].values.empty()) continue;
    if (!any)
      out += "# values so common that agreeing on one is weak evidence: u of an exact agreement on each (its share of\n"
             "# the rows), and on any other value (rest)\nfrequent:\n";
    any = true;
    out += "  " + tier.compare[k].field + ":\n    rest: " + num(w.common[k].rest) + "\n    values:\n";
    for (const auto& [value, share] : w.common[k].values)
      out += "      " + nlohmann::json(value).dump() + ": " + num(share) + "\n";
  }
  return out;
}

}  // namespace ingestd::engine
