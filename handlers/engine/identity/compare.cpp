#include "handlers/engine/identity/compare.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace ingestd::engine {

namespace {

/// UTF-8 to code points; a malformed byte stands for itself (keys are valid UTF-8).
std::u32string code_points(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n == 1 || i + n > s.size()) {
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::optional<std::chrono::sys_days> iso_date(std::string_view s) {
  int y = 0;
  unsigned m = 0, d = 0;
  if (s.size() != 10 || std::sscanf(std::string(s).c_str(), "%d-%u-%u", &y, &m, &d) != 3) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd};
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

namespace {

bool ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

/// Jaro–Winkler from the characters two sequences match within the window and how many of
/// those are out of order.
template <class S>
double winkler(const S& a, const S& b, size_t matches, size_t out_of_order) {
  const double m = double(matches);
  const double jaro = (m / double(a.size()) + m / double(b.size()) + (m - double(out_of_order / 2)) / m) / 3;
  size_t prefix = 0;
  while (prefix < 4 && prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  return jaro + double(prefix) * 0.1 * (1 - jaro);
}

/// Jaro–Winkler over two sequences of characters (bytes for ASCII, code points otherwise).
template <class S>
double jaro_winkler_of(const S& a, const S& b) {
  if (a.empty() && b.empty()) return 1;
  if (a.empty() || b.empty()) return 0;
  const size_t window = std::max(a.size(), b.size()) / 2 > 0 ? std::max(a.size(), b.size()) / 2 - 1 : 0;
  thread_local std::vector<char> ma, mb;  // scoring runs millions of pairs: no allocation each
  ma.assign(a.size(), 0);
  mb.assign(b.size(), 0);
  size_t matches = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const size_t lo = i > window ? i - window : 0, hi = std::min(b.size(), i + window + 1);
    for (size_t j = lo; j < hi; ++j)
      if (!mb[j] && a[i] == b[j]) {
        ma[i] = mb[j] = 1;
        ++matches;
        break;
      }
  }
  if (!matches) return 0;
  size_t out_of_order = 0;
  for (size_t i = 0, j = 0; i < a.size(); ++i) {
    if (!ma[i]) continue;
    while (!mb[j]) ++j;
    out_of_order += a[i] != b[j++];
  }
  return winkler(a, b, matches, out_of_order);
}

/// jaro_winkler_of for ASCII strings of at most 64 characters (nearly every key a fuzzy tier
/// compares): the matched characters as bits of two words, nothing written to memory.
double jaro_winkler_short(std::string_view a, std::string_view b) {
  const size_t la = a.size(), lb = b.size();
  if (!la && !lb) return 1;
  if (!la || !lb) return 0;
  const size_t window = std::max(la, lb) / 2 > 0 ? std::max(la, lb) / 2 - 1 : 0;
  uint64_t ma = 0, mb = 0;
  size_t matches = 0;
  for (size_t i = 0; i < la; ++i) {
    const size_t lo = i > window ? i - window : 0, hi = std::min(lb, i + window + 1);
    for (size_t j = lo; j < hi; ++j)
      if (!(mb >> j & 1) && a[i] == b[j]) {
        ma |= uint64_t(1) << i;
        mb |= uint64_t(1) << j;
        ++matches;
        break;
      }
  }
  if (!matches) return 0;
  size_t out_of_order = 0;
  for (uint64_t x = ma, y = mb; x; x &= x - 1, y &= y - 1)
    out_of_order += a[size_t(std::countr_zero(x))] != b[size_t(std::countr_zero(y))];
  return winkler(a, b, matches, out_of_order);
}

/// Edits between a and b, exact up to `cap`; past it, cap + 1. Only the diagonal band of
/// width 2·cap + 1 is filled, and a row whose cells all exceed cap ends the search: a
/// comparison asks only whether two values are within its thresholds, and most pairs a block
/// brings are strangers, far apart.
template <class S>
size_t levenshtein_of(const S& a, const S& b, size_t cap) {
  const size_t n = a.size(), m = b.size(), over = cap + 1;
  if ((n > m ? n - m : m - n) > cap) return over;
  thread_local std::vector<size_t> row;  // row[j]: the last row's value at j; outside its band, over
  row.resize(m + 1);
  for (size_t j = 0; j <= m; ++j) row[j] = std::min(j, over);
  for (size_t i = 1; i <= n; ++i) {
    const size_t lo = i > cap ? i - cap : 1, hi = cap >= m ? m : std::min(m, i + cap);
    size_t diag = row[lo - 1];
    size_t left = lo == 1 ? std::min(i, over) : over;
    row[lo - 1] = left;
    size_t least = left;
    for (size_t j = lo; j <= hi; ++j) {
      const size_t up = row[j];
      const size_t cell = std::min({up + 1, left + 1, diag + (a[i - 1] != b[j - 1]), over});
      diag = up;
      row[j] = left = cell;
      least = std::min(least, cell);
    }
    if (least > cap) return over;
  }
  return std::min(row[m], over);
}

/// Jaro–Winkler of a and b, or 0 where an upper bound shows it below `floor`: most pairs a
/// block brings are strangers whose letters barely overlap. Matched characters are at most
/// the characters of either string that occur in the other; with none out of order and the
/// common prefix counted, the measure's own arithmetic (winkler) gives the bound, equal to the
/// measure where it is reached.
double jaro_winkler_above(std::string_view a, std::string_view b, double floor) {
  const size_t la = a.size(), lb = b.size();
  if (!la || !lb || la > 64 || lb > 64) return jaro_winkler(a, b);
  uint64_t in_a[2] = {0, 0}, in_b[2] = {0, 0};
  unsigned char high = 0;
  for (char ch : a) {
    const auto c = static_cast<unsigned char>(ch);
    high |= c;
    in_a[(c >> 6) & 1] |= uint64_t(1) << (c & 63);
  }
  for (char ch : b) {
    const auto c = static_cast<unsigned char>(ch);
    high |= c;
    in_b[(c >> 6) & 1] |= uint64_t(1) << (c & 63);
  }
  if (high & 0x80) return jaro_winkler(a, b);  // not ASCII: by code point
  size_t a_in_b = 0, b_in_a = 0;
  for (char ch : a) a_in_b += in_b[(static_cast<unsigned char>(ch) >> 6) & 1] >> (ch & 63) & 1;
  for (char ch : b) b_in_a += in_a[(static_cast<unsigned char>(ch) >> 6) & 1] >> (ch & 63) & 1;
  const size_t most = std::min(a_in_b, b_in_a);
  if (!most || winkler(a, b, most, 0) < floor) return 0;  // the measure had every one matched in order
  return jaro_winkler_short(a, b);
}

}  // namespace

double jaro_winkler(std::string_view a, std::string_view b) {
  if (ascii(a) && ascii(b)) return a.size() <= 64 && b.size() <= 64 ? jaro_winkler_short(a, b) : jaro_winkler_of(a, b);
  return jaro_winkler_of(code_points(a), code_points(b));
}

size_t levenshtein(std::string_view a, std::string_view b, size_t cap) {
  if (ascii(a) && ascii(b)) {
    // A bound first: every alignment pairs at most as many equal characters as the two share
    // (counted by the low four bits, which only counts more), and each character of the
    // longer left unpaired costs an edit. Two strangers' dates share few digits in place.
    const size_t longer = std::max(a.size(), b.size());
    if (cap < longer && longer < 256) {
      uint8_t count[16] = {};
      for (char c : a) ++count[c & 15];
      size_t shared = 0;
      for (char c : b)
        if (count[c & 15]) {
          --count[c & 15];
          ++shared;
        }
      if (longer - shared > cap) return cap + 1;
    }
    return levenshtein_of(a, b, cap);
  }
  return levenshtein_of(code_points(a), code_points(b), cap);
}

size_t comparison_level(const config::FuzzyComparison& c, std::string_view a, std::string_view b) {
  using Method = config::FuzzyComparison::Method;
  if (a == b) return 0;
  size_t level = 1;
  if (c.method == Method::Date) {
    const auto da = iso_date(a), db = iso_date(b);
    if (c.transposed) {
      // day and month swapped: YYYY-MM-DD against YYYY-DD-MM
      if (a.size() == 10 && b.size() == 10 && a.substr(0, 5) == b.substr(0, 5) && a.substr(5, 2) == b.substr(8, 2) &&
          a.substr(8, 2) == b.substr(5, 2))
        return level;
      ++level;
    }
    for (double days : c.thresholds) {
      if (da && db && std::abs((*da - *db).count()) <= days) return level;
      ++level;
    }
    return level;
  }
  if (c.method == Method::JaroWinkler) {
    // thresholds descend (the config says so): below the last, the pair disagrees
    const double s = c.thresholds.empty() ? 0 : jaro_winkler_above(a, b, c.thresholds.back());
    for (double t : c.thresholds) {
      if (s >= t) return level;
      ++level;
    }
  } else if (c.method == Method::Levenshtein) {
    // edits past the widest threshold (the last: the config has them ascending, from 1) all
    // read as "disagrees": counted no further
    const double widest = c.thresholds.empty() ? 0 : c.thresholds.back();
    const size_t d = c.thresholds.empty() ? 0 : levenshtein(a, b, widest >= 1e9 ? SIZE_MAX - 1 : size_t(widest));
    for (double k : c.thresholds) {
      if (double(d) <= k) return level;
      ++level;
    }
  }
  if (c.initial) {
    // one side is a single letter, the other's first (both keys are case-folded)
    const auto ca = code_points(a), cb = code_points(b);
    if ((ca.size() == 1 || cb.size() == 1) && !ca.empty() && !cb.empty() && ca[0] == cb[0]) return level;
    ++level;
  }
  return level;
}

std::string level_name(const config::FuzzyComparison& c, size_t level) {
  using Method = config::FuzzyComparison::Method;
  if (level == 0) return "exact";
  size_t l = 1;
  if (c.transposed && level == l++) return "day_month_transposed";
  for (double t : c.thresholds)
    if (level == l++)
      return c.method == Method::JaroWinkler ? "jaro_winkler>=" + num(t)
             : c.method == Method::Levenshtein ? "levenshtein<=" + num(t)
                                               : "within_" + num(t) + "_days";
  if (c.initial && level == l++) return "initial";
  return "disagrees";
}

void PairScorer::default_mu(const config::FuzzyComparison& c, std::vector<double>& m, std::vector<double>& u) {
  // Exact agreement: 0.85 of true matches, 1% of others; the in-between levels share 0.10 and
  // 4%; disagreement: the rest. Training (`ingestd train`) replaces these with the data's own.
  const size_t n = c.levels(), mid = n - 2;
  m.assign(n, 0);
  u.assign(n, 0);
  m[0] = mid ? 0.85 : 0.95;
  u[0] = 0.01;
  for (size_t l = 1; l + 1 < n; ++l) {
    m[l] = 0.10 / double(mid);
    u[l] = 0.04 / double(mid);
  }
  m[n - 1] = 0.05;
  u[n - 1] = mid ? 0.95 : 0.99;
}

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%%", share * 100);
  return buf;
}

std::string score_level(const config::FuzzyTier& tier, size_t comparison, const FieldScore& s) {
  if (s.level < 0) return "missing";
  const std::string name = level_name(tier.compare[comparison], size_t(s.level));
  if (s.share > 0) return name + " (common: " + percent(s.share) + " of rows)";
  return s.given < 0 ? name : name + " (with " + tier.compare[size_t(s.given)].field + ")";
}

std::vector<TogetherIndex> together_index(const config::FuzzyTier& tier) {
  std::vector<TogetherIndex> out;
  for (const auto& t : tier.together) out.push_back({tier.comparison_of(t.first), tier.comparison_of(t.second), t.u});
  std::sort(out.begin(), out.end(),
            [](const auto& x, const auto& y) { return std::pair(x.second, x.first) < std::pair(y.second, y.first); });
  return out;
}

PairScorer::PairScorer(const config::FuzzyTier& tier) : tier_(tier), together_(together_index(tier)) {
  std::vector<double> exact_u;
  std::vector<double> exact_m;
  for (const auto& c : tier.compare) {
    std::vector<double> m = c.m, u = c.u;
    if (m.size() != c.levels() || u.size() != c.levels()) default_mu(c, m, u);
    std::vector<double> w;
    for (size_t l = 0; l < c.levels(); ++l) w.push_back(std::log2(m[l] / u[l]));
    auto& common = common_.emplace_back();
    if (c.frequent_rest > 0) {
      // term frequencies: agreeing on a value is as likely by chance as a stranger holding it
      w[0] = std::log2(m[0] / c.frequent_rest);
      for (const auto& [value, share] : c.frequent) common.emplace(value, std::pair(std::log2(m[0] / share), share));
    }
    weights_.push_back(std::move(w));
    exact_m.push_back(m[0]);
    exact_u.push_back(u[0]);
  }
  // agreeing on the second once the first agrees is as likely by chance as u(both) / u(first)
  for (const auto& t : together_) given_weight_.push_back(std::log2(exact_m[t.second] * exact_u[t.first] / t.u));
}

std::vector<FieldScore> PairScorer::fields(KeyView a, KeyView b) const {
  std::vector<FieldScore> out;
  score(a, b, out);
  return out;
}

double PairScorer::score(KeyView a, KeyView b, std::vector<FieldScore>& out) const {
  out.assign(tier_.compare.size(), FieldScore{});
  for (size_t i = 0; i < out.size(); ++i) {
    if (!a[i] || !b[i]) continue;
    const size_t l = comparison_level(tier_.compare[i], *a[i], *b[i]);
    out[i] = {int(l), weights_[i][l]};
    if (l == 0 && !common_[i].empty())
      if (const auto it = common_[i].find(*a[i]); it != common_[i].end()) {
        out[i].weight = it->second.first;
        out[i].share = it->second.second;
      }
  }
  for (size_t i = 0; i < out.size() && !together_.empty(); ++i)
    if (out[i].level == 0)
      if (const auto* t = given_of(together_, i, [&](size_t f) { return out[f].level == 0; })) {
        out[i].weight = given_weight_[size_t(t - together_.data())];
        out[i].given = int(t->first);
        out[i].share = 0;
      }
  return total(out);
}

std::vector<FieldScore> PairScorer::fields(const std::vector<std::optional<std::string>>& a,
                                           const std::vector<std::optional<std::string>>& b) const {
  auto refs = [](const std::vector<std::optional<std::string>>& v) {
    KeyRefs out;
    for (const auto& k : v) out.push_back(k ? &*k : nullptr);
    return out;
  };
  return fields(refs(a), refs(b));
}

double PairScorer::total(const std::vector<FieldScore>& f) {
  double t = 0;
  for (const auto& s : f) t += s.weight;
  return t;
}

}  // namespace ingestd::engine
