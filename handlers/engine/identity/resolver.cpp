#include "handlers/engine/identity/resolver.hpp"

#include <algorithm>
#include <deque>
#include <string_view>
#include <unordered_map>

namespace ingestd::engine {

namespace {

/// The keys every record holds, and who holds a key. Keys are views: of the rows' and the known
/// records' keys, which outlive the index, or of a copy keep() makes. Most keys have one holder
/// and most records a handful of keys, so neither gets a container of its own until it needs
/// one: a chunk's resolve allocates per record, not per key.
class KeyIndex {
 public:
  KeyIndex(size_t tiers, size_t expected) : holders_(tiers) {
    for (auto& h : holders_) h.reserve(expected);
    held_.reserve(expected);
  }

  int add_record() {
    held_.emplace_back();
    return int(held_.size()) - 1;
  }
  void add(int record, size_t tier, std::string_view key) {
    auto& keys = held_[size_t(record)];
    for (const auto& [t, k] : keys)
      if (t == tier && k == key) return;
    keys.emplace_back(tier, key);
    auto [it, fresh] = holders_[tier].try_emplace(key);
    if (fresh) it->second.first = record;
    else it->second.more.push_back(record);
  }
  /// A copy of `key` that lives as long as the index.
  std::string_view keep(std::string key) { return kept_.emplace_back(std::move(key)); }
  bool holds_any(int record, size_t tier) const {
    for (const auto& [t, k] : held_[size_t(record)])
      if (t == tier) return true;
    return false;
  }
  /// Calls `f(record)` for every holder of `key` at `tier`, in the order they came.
  template <class F>
  void for_each_holder(size_t tier, std::string_view key, F&& f) const {
    auto it = holders_[tier].find(key);
    if (it == holders_[tier].end()) return;
    f(it->second.first);
    for (int r : it->second.more) f(r);
  }

 private:
  struct Holders {
    int first = -1;
    std::vector<int> more;
  };
  std::vector<std::unordered_map<std::string_view, Holders>> holders_;  // [tier] key -> records
  std::vector<std::vector<std::pair<size_t, std::string_view>>> held_;  // [record] -> (tier, key)
  std::deque<std::string> kept_;
};

/// Records sharing a key with the row, each at its best tier, minus those a higher-tier
/// conflict rules out; in record order.
std::vector<std::pair<int, int>> candidates(const TierKeys& row, const KeyIndex& index, size_t tiers) {
  std::vector<std::pair<int, int>> best;  // (record, tier 1-based); tiers ascend: the first is the best
  for (size_t t = 0; t < tiers; ++t) {
    if (!row[t]) continue;
    index.for_each_holder(t, *row[t], [&](int r) {
      for (const auto& b : best)
        if (b.first == r) return;
      best.emplace_back(r, int(t) + 1);
    });
  }
  std::sort(best.begin(), best.end());
  std::vector<std::pair<int, int>> out;
  for (const auto& [r, tier] : best) {
    bool blocked = false;
    // it shares no key above `tier` (that tier would be its best): any key it holds there,
    // where the row holds one too, is a different value
    for (size_t u = 0; u + 1 < size_t(tier) && !blocked; ++u) blocked = row[u] && index.holds_any(r, u);
    if (!blocked) out.emplace_back(r, tier);
  }
  return out;
}

/// The fuzzy tier's verdict on a row no exact key placed: fills `d` (Match, Review) and says
/// whether it did.
bool judge(FuzzyJudge& fuzzy, size_t row, const std::vector<int>& row_records, RowDecision& d) {
  auto scored = fuzzy.candidates(row, row_records);
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  d.judged = true;
  if (!scored.empty()) d.score = scored.front().second;
  if (scored.empty() || scored.front().second < fuzzy.review_at) return false;
  const bool merges = scored.front().second >= fuzzy.merge_at &&
                      (scored.size() == 1 || scored[1].second < fuzzy.merge_at);
  if (merges) {
    d.kind = RowDecision::Kind::Match;
    d.record = scored.front().first;
    d.tier = fuzzy.tier;
    return true;
  }
  d.kind = RowDecision::Kind::Review;
  const double floor = scored.front().second >= fuzzy.merge_at ? fuzzy.merge_at : fuzzy.review_at;
  for (const auto& [record, score] : scored)
    if (score >= floor) {
      d.candidates.emplace_back(record, fuzzy.tier);
      d.candidate_scores.push_back(score);
    }
  return true;
}

}  // namespace

Resolution resolve_rows(const std::vector<TierKeys>& rows, const std::vector<KnownRecord>& known, size_t tiers,
                        FuzzyJudge* fuzzy, OwnKeys* own) {
  Resolution res;
  KeyIndex index(tiers, rows.size() + known.size());
  auto index_known = [&](int r) {
    const auto& k = known[size_t(r)];
    if (k.fuzzy_only && k.keys.empty() && own) {  // asked for now: kept by the index
      auto asked = own->stored(r);
      for (size_t t = 0; t < tiers && t < asked.size(); ++t)
        for (auto& key : asked[t]) index.add(r, t, index.keep(std::move(key)));
      return;
    }
    for (size_t t = 0; t < tiers && t < k.keys.size(); ++t)
      for (const auto& key : k.keys[t]) index.add(r, t, key);
  };
  for (size_t k = 0; k < known.size(); ++k) {
    index.add_record();
    res.records.push_back({int(k), -1});
    if (!known[k].fuzzy_only) index_known(int(k));
  }
  res.rows.reserve(rows.size());
  std::vector<int> row_records;  // where each row landed so far (-1: review), for the fuzzy tier
  row_records.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    RowDecision d;
    auto cands = candidates(rows[i], index, tiers);
    if (cands.empty() && fuzzy && judge(*fuzzy, i, row_records, d) && d.kind == RowDecision::Kind::Match)
      cands.emplace_back(d.record, d.tier);
    if (cands.size() > 1) {
      d.kind = RowDecision::Kind::Review;
      d.candidates = std::move(cands);
    }
    if (d.kind == RowDecision::Kind::Review) {  // two records claim it, or its score is in between
      row_records.push_back(-1);
      res.rows.push_back(std::move(d));
      continue;
    }
    if (cands.empty()) {
      d.kind = RowDecision::Kind::New;
      d.record = index.add_record();
      d.founds = true;
      res.records.push_back({-1, int(i)});
    } else {
      d.kind = RowDecision::Kind::Match;
      d.record = cands[0].first;
      d.tier = cands[0].second;
      auto& rec = res.records[size_t(d.record)];
      if (rec.first_row < 0) {
        rec.first_row = int(i);
        if (rec.known >= 0 && known[size_t(rec.known)].fuzzy_only) index_known(d.record);
      }
    }
    for (size_t t = 0; t < tiers; ++t)
      if (rows[i][t]) index.add(d.record, t, *rows[i][t]);
    if (own) {
      TierKeys held = own->landed(i, d.record);
      for (size_t t = 0; t < tiers && t < held.size(); ++t)
        if (held[t]) index.add(d.record, t, index.keep(std::move(*held[t])));
    }
    row_records.push_back(d.record);
    if (fuzzy) fuzzy->landed(i, d.record);
    res.rows.push_back(std::move(d));
  }
  return res;
}

}  // namespace ingestd::engine
