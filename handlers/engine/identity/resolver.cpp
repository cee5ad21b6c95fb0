#include "handlers/engine/identity/resolver.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace ingestd::engine {

namespace {

/// The keys every record holds, and who holds a key.
class KeyIndex {
 public:
  explicit KeyIndex(size_t tiers) : holders_(tiers), held_(0) {}

  int add_record() {
    held_.emplace_back(holders_.size());
    return int(held_.size()) - 1;
  }
  void add(int record, size_t tier, const std::string& key) {
    auto& keys = held_[size_t(record)][tier];
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;
    keys.push_back(key);
    holders_[tier][key].push_back(record);
  }
  bool holds_any(int record, size_t tier) const { return !held_[size_t(record)][tier].empty(); }
  const std::vector<int>* holders(size_t tier, const std::string& key) const {
    auto it = holders_[tier].find(key);
    return it == holders_[tier].end() ? nullptr : &it->second;
  }

 private:
  std::vector<std::unordered_map<std::string, std::vector<int>>> holders_;  // [tier] key -> records
  std::vector<std::vector<std::vector<std::string>>> held_;                 // [record][tier] -> keys
};

/// Records sharing a key with the row, each at its best tier, minus those a higher-tier
/// conflict rules out; in record order.
std::vector<std::pair<int, int>> candidates(const TierKeys& row, const KeyIndex& index, size_t tiers) {
  std::map<int, int> best;  // record -> tier (1-based)
  for (size_t t = 0; t < tiers; ++t) {
    if (!row[t]) continue;
    if (const auto* hs = index.holders(t, *row[t]))
      for (int r : *hs) best.emplace(r, int(t) + 1);  // tiers ascend: the first is the best
  }
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
  KeyIndex index(tiers);
  auto index_known = [&](int r) {
    const auto& k = known[size_t(r)];
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
      const TierKeys held = own->landed(i, d.record);
      for (size_t t = 0; t < tiers && t < held.size(); ++t)
        if (held[t]) index.add(d.record, t, *held[t]);
    }
    row_records.push_back(d.record);
    if (fuzzy) fuzzy->landed(i, d.record);
    res.rows.push_back(std::move(d));
  }
  return res;
}

}  // namespace ingestd::engine
