#include "handlers/engine/identity/training.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "handlers/engine/identity/compare.hpp"

namespace ingestd::engine {

namespace {

/// Identical level vectors counted once: EM then runs over the distinct patterns.
std::map<LevelVector, double> patterns(const std::vector<LevelVector>& pairs) {
  std::map<LevelVector, double> out;
  for (const auto& p : pairs) out[p] += 1;
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// P(pattern | match) and P(pattern | non-match) as products over the present levels.
std::pair<double, double> likelihoods(const LevelVector& g, const std::vector<std::vector<double>>& m,
                                      const std::vector<std::vector<double>>& u) {
  double pm = 1, pu = 1;
  for (size_t k = 0; k < g.size(); ++k) {
    if (g[k] < 0) continue;
    pm *= m[k][size_t(g[k])];
    pu *= u[k][size_t(g[k])];
  }
  return {pm, pu};
}

/// One EM round: new m and lambda from the posteriors; returns the largest change.
double em_round(const std::map<LevelVector, double>& pats, std::vector<std::vector<double>>& m,
                const std::vector<std::vector<double>>& u, double& lambda) {
  std::vector<std::vector<double>> num_m(m.size());
  std::vector<double> den(m.size(), 0);  // [comparison] expected matches with the field present
  for (size_t k = 0; k < m.size(); ++k) num_m[k].assign(m[k].size(), 0);
  double matches = 0, total = 0;
  for (const auto& [g, count] : pats) {
    const auto [pm, pu] = likelihoods(g, m, u);
    const double p = lambda * pm / (lambda * pm + (1 - lambda) * pu);
    matches += p * count;
    total += count;
    for (size_t k = 0; k < g.size(); ++k) {
      if (g[k] < 0) continue;
      num_m[k][size_t(g[k])] += p * count;
      den[k] += p * count;
    }
  }
  double moved = std::abs(matches / total - lambda);
  lambda = std::clamp(matches / total, 1e-9, 1 - 1e-9);
  for (size_t k = 0; k < m.size(); ++k)
    for (size_t l = 0; l < m[k].size(); ++l) {
      // a level no match shows keeps a floor: log2(m/u) stays finite
      const double v = den[k] > 0 ? std::max(num_m[k][l] / den[k], 1e-6) : m[k][l];
      moved = std::max(moved, std::abs(v - m[k][l]));
      m[k][l] = v;
    }
  return moved;
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

std::vector<std::pair<uint32_t, uint32_t>> blocked_pairs(const std::vector<std::vector<std::optional<std::string>>>& keys,
                                                         size_t max_block) {
  std::set<std::pair<uint32_t, uint32_t>> out;
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
        for (size_t y = x + 1; y < rows.size(); ++y) out.emplace(rows[x], rows[y]);
  }
  return {out.begin(), out.end()};
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

TrainedWeights estimate_weights(const config::FuzzyTier& tier, const std::vector<LevelVector>& blocked,
                                const std::vector<LevelVector>& random) {
  TrainedWeights w;
  w.blocked_pairs = blocked.size();
  w.random_pairs = random.size();
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
    w.m.push_back(std::move(m));
  }
  const auto pats = patterns(blocked);
  w.lambda = 0.1;
  if (pats.empty()) return w;
  for (w.iterations = 1; w.iterations <= 500; ++w.iterations)
    if (em_round(pats, w.m, w.u, w.lambda) < 1e-7) {
      w.converged = true;
      break;
    }
  return w;
}

std::string weights_yaml(const config::FuzzyTier& tier, const TrainedWeights& w, const std::string& dataset,
                         const std::string& entity) {
  std::string out = "# m/u probabilities of the fuzzy tier, written by `ingestd train`: u from " +
                    std::to_string(w.random_pairs) + " random pairs, m by EM over " + std::to_string(w.blocked_pairs) +
                    " blocked pairs (lambda " + num(w.lambda) + ", " + std::to_string(w.iterations) + " rounds" +
                    (w.converged ? "" : ", not converged") + ").\n# Match weight for a posterior of 0.5: " +
                    num(w.weight_for(0.5)) + "; 0.99: " + num(w.weight_for(0.99)) + "; 0.999: " + num(w.weight_for(0.999)) +
                    "\ndataset: " + dataset + "\nentity: " + entity + "\npairs: " + std::to_string(w.blocked_pairs) +
                    "\niterations: " + std::to_string(w.iterations) + "\nfields:\n";
  for (size_t k = 0; k < tier.compare.size(); ++k) {
    std::string m, u;
    for (size_t l = 0; l < w.m[k].size(); ++l) {
      m += (l ? ", " : "") + num(w.m[k][l]);
      u += (l ? ", " : "") + num(w.u[k][l]);
    }
    out += "  " + tier.compare[k].field + ": {m: [" + m + "], u: [" + u + "]}\n";
  }
  return out;
}

}  // namespace ingestd::engine
