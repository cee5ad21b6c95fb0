#include "handlers/engine/identity/memory.hpp"

#include <algorithm>
#include <set>

namespace ingestd::engine {

namespace {

/// The rows that landed on each record, in input order.
std::vector<std::vector<size_t>> rows_by_record(const Resolution& res) {
  std::vector<std::vector<size_t>> out(res.records.size());
  for (size_t i = 0; i < res.rows.size(); ++i)
    if (res.rows[i].kind != RowDecision::Kind::Review) out[size_t(res.rows[i].record)].push_back(i);
  return out;
}

/// The identity fields' keys a record's own columns hold after its rows merged; `between`
/// gets the tier keys they held after each row but the last (a composite key an overwrite
/// later broke was held, and found rows, in between).
FieldKeys merged_own(const config::Entity& entity, const Matcher& matcher, const std::vector<size_t>& rows,
                     const std::vector<const FieldKeys*>& row_keys, const FieldKeys* before,
                     std::vector<std::set<std::string>>& between) {
  FieldKeys own = before ? *before : *row_keys[rows.front()];  // a new record: its founding row's
  own.resize(entity.fields.size());
  for (size_t k = before ? 0 : 1; k < rows.size(); ++k) {
    merge_row_keys(entity, own, *row_keys[rows[k]]);
    if (k + 1 == rows.size()) break;
    const auto held = matcher.keys(own);
    for (size_t t = 0; t < held.size() && t < between.size(); ++t)
      if (held[t]) between[t].insert(*held[t]);
  }
  return own;
}

}  // namespace

namespace {

/// Whether field `f`'s policy makes the row's key replace the record's: fill_nulls where the
/// record has none, overwrite where the row has one (keep: never).
bool takes_row_key(const config::Entity& entity, size_t f, const FieldKeys& own, const FieldKeys& row) {
  if (!row[f]) return false;
  const auto policy = entity.fields[f].merge.value_or(entity.merge);
  return policy == config::MergePolicy::Overwrite ||
         (policy == config::MergePolicy::FillNulls && !(f < own.size() && own[f]));
}

}  // namespace

void merge_row_keys(const config::Entity& entity, FieldKeys& own, const FieldKeys& row) {
  own.resize(entity.fields.size());
  for (size_t f = 0; f < entity.fields.size() && f < row.size(); ++f)
    if (takes_row_key(entity, f, own, row)) own[f] = row[f];
}

bool row_changes_keys(const config::Entity& entity, const FieldKeys& own, const FieldKeys& row) {
  for (size_t f = 0; f < entity.fields.size() && f < row.size(); ++f)
    if (takes_row_key(entity, f, own, row) && !(f < own.size() && own[f] == row[f])) return true;
  return false;
}

TierKeys RecordHoldings::landed(size_t row, int record) {
  const auto r = size_t(record);
  auto it = own_.find(record);
  if (it == own_.end()) {
    // a row that changes nothing a known record holds leaves it holding the keys it had
    if (r < known_.size() && !row_changes_keys(entity_, known_[r].own, *rows_[row])) return {};
    if (r >= known_.size()) {
      if (r >= founder_.size()) founder_.resize(r + 1, -1);
      if (founder_[r] < 0) {  // the record this row founds holds the row's own keys: nothing to add
        founder_[r] = int(row);
        return {};
      }
    }
    // a second row on a new record, or the first on a known one: from now on its merged keys
    it = own_.emplace(record, r >= known_.size() ? *rows_[size_t(founder_[r])] : known_[r].own).first;
  }
  merge_row_keys(entity_, it->second, *rows_[row]);
  return matcher_.keys(it->second);
}

std::vector<std::vector<std::string>> RecordHoldings::stored(int record) const {
  const KnownState& k = known_[size_t(record)];
  return stored_keys(matcher_, k.own, k.memory);
}

RecordKeys record_keys(const config::Entity& entity, const Matcher& matcher, const Resolution& res,
                       const std::vector<const FieldKeys*>& row_keys, const std::vector<TierKeys>& row_tier_keys,
                       const std::vector<KnownState>& known) {
  const size_t tiers = matcher.tiers().size();
  RecordKeys out;
  out.held_tier.assign(res.records.size(), 0);
  const auto rows = rows_by_record(res);
  // a key the record will not hold is remembered, unless memory holds it already
  auto remember = [&](size_t r, const KnownState* k, size_t t, const std::string& key) {
    if (k && t < k->memory.size() && std::count(k->memory[t].begin(), k->memory[t].end(), key)) return;
    out.remember.push_back({int(r), int(t) + 1, key});
  };
  for (size_t r = 0; r < res.records.size(); ++r) {
    if (rows[r].empty()) continue;  // a known record no row landed on
    const KnownState* k = res.records[r].known >= 0 ? &known[size_t(res.records[r].known)] : nullptr;
    if (!k && rows[r].size() == 1) {  // a new record of one row holds that row's keys: nothing to remember
      const auto& keys = row_tier_keys[rows[r].front()];
      for (size_t t = 0; t < tiers && t < keys.size() && !out.held_tier[r]; ++t)
        if (keys[t]) out.held_tier[r] = int(t) + 1;
      continue;
    }
    if (k && rows[r].size() == 1 && !row_changes_keys(entity, k->own, *row_keys[rows[r].front()])) {
      // a known record one row left as it was: it holds its keys; the row's others are remembered
      const auto held = matcher.keys(k->own);
      const auto& keys = row_tier_keys[rows[r].front()];
      for (size_t t = 0; t < tiers; ++t) {
        if (held[t] && !out.held_tier[r]) out.held_tier[r] = int(t) + 1;
        if (t < keys.size() && keys[t] && !(held[t] && *held[t] == *keys[t])) remember(r, k, t, *keys[t]);
      }
      continue;
    }
    const auto before = k ? matcher.keys(k->own) : std::vector<std::optional<std::string>>(tiers);
    std::vector<std::set<std::string>> between(tiers);
    const auto after = matcher.keys(merged_own(entity, matcher, rows[r], row_keys, k ? &k->own : nullptr, between));
    for (size_t t = 0; t < tiers; ++t) {
      if (after[t] && !out.held_tier[r]) out.held_tier[r] = int(t) + 1;
      std::set<std::string> carried = std::move(between[t]);
      if (before[t]) carried.insert(*before[t]);
      for (size_t i : rows[r])
        if (row_tier_keys[i][t]) carried.insert(*row_tier_keys[i][t]);
      for (const auto& key : carried)
        if (!(after[t] && *after[t] == key)) remember(r, k, t, key);
    }
  }
  return out;
}

}  // namespace ingestd::engine
