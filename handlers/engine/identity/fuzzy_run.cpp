// The fuzzy tier within a chunk: the chunk's records found by trigram similarity
// (SimilarBlock) and the run that scores each row against the records its blocks lead to, as
// they stand when its turn comes (FuzzyRun). The blocks themselves: fuzzy_matcher.cpp.
#include "handlers/engine/identity/fuzzy_matcher.hpp"

#include <algorithm>
#include <cmath>

namespace ingestd::engine {

void SimilarBlock::add(int record, std::string_view key, const std::vector<std::string>& trigrams) {
  auto [it, fresh] = key_index_.emplace(key, uint32_t(trigrams_.size()));
  if (fresh) {
    trigrams_.push_back(&trigrams);
    holders_.emplace_back();
    for (const auto& g : trigrams) postings_[g].push_back(it->second);
  }
  holders_[it->second].emplace_back(arrivals_++, record);
}

std::vector<int> SimilarBlock::similar(std::string_view key, const std::vector<std::string>& trigrams,
                                       size_t cap) const {
  Found& f = found_[key];
  const auto keys = uint32_t(trigrams_.size());
  if (f.checked < keys) {
    // the keys that came since this one was last asked about
    shared_.resize(keys, 0);
    for (const auto& g : trigrams)
      if (const auto it = postings_.find(g); it != postings_.end())
        for (auto k = std::lower_bound(it->second.begin(), it->second.end(), f.checked); k != it->second.end(); ++k)
          if (shared_[*k]++ == 0) touched_.push_back(*k);
    for (uint32_t k : touched_) {
      if (trigram_similarity(shared_[k], trigrams.size(), trigrams_[k]->size()) >= similarity_) f.keys.push_back(k);
      shared_[k] = 0;
    }
    touched_.clear();
    f.checked = keys;
  }
  // the first `cap` holders of each similar key, merged in order of arrival
  std::vector<std::pair<uint32_t, int>> hits;
  for (uint32_t k : f.keys) {
    const auto& h = holders_[k];
    hits.insert(hits.end(), h.begin(), h.begin() + long(std::min(cap, h.size())));
  }
  std::sort(hits.begin(), hits.end());
  if (hits.size() > cap) hits.resize(cap);
  std::vector<int> out;
  for (const auto& [arrival, record] : hits) out.push_back(record);
  return out;
}

FuzzyRun::FuzzyRun(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<KnownRecord>& known,
                   const std::vector<const FieldKeys*>& known_keys, const std::vector<const FieldKeys*>& rows,
                   BlockRefill* refill)
    : m_(m), blocks_(blocks), refill_(refill) {
  tier = 0;
  merge_at = m.tier().merge_at;
  review_at = m.tier().review_at;
  if (const auto trained = double(m.tier().trained_rows); trained > 0 && blocks.table_records > trained)
    table_term_ = -std::log2(blocks.table_records / trained);
  std::unordered_map<std::string_view, int> index;
  index.reserve(known.size());
  for (size_t k = 0; k < known.size(); ++k)
    if (!known[k].id.empty()) index.emplace(known[k].id, int(k));  // "": a spare place (SpareRefill)
  // a known record's side is made when a row first meets it: most are never met
  known_keys_ = known_keys;
  // every row may found a record: room for all at once, not by doubling (a slice holds tens of
  // thousands of known records)
  records_.reserve(known.size() + rows.size());
  keyed_.reserve(known.size() + rows.size());
  seen_.reserve(known.size() + rows.size());
  records_.resize(known.size());
  built_.assign(known.size(), 0);
  keyed_.resize(known.size());
  // each block's target records as the resolver numbers them, looked up once per block
  known_.resize(blocks.known.size());
  known_open_.resize(blocks.known.size());
  chunk_.resize(blocks.known.size());
  joined_.resize(blocks.known.size());
  departed_.resize(blocks.known.size());
  refilled_.resize(blocks.known.size());
  for (size_t r = 0; r < blocks.known.size(); ++r) similar_.emplace_back(m.similarity(r));
  for (size_t r = 0; r < blocks.known.size(); ++r)
    for (const auto& [key, ids] : blocks.known[r]) {
      auto& out = known_[r][key];
      for (const auto& id : ids) {
        // one not fetched (it conflicts with every row of its blocks) still counts
        const auto it = index.find(id);
        out.push_back(it == index.end() ? -1 : it->second);
      }
    }
  for (size_t r = 0; r < blocks.open.size() && r < known_open_.size(); ++r)
    for (const auto& [key, block] : blocks.open[r]) {
      auto& out = known_open_[r][key];
      out.over = block.over;
      for (const auto& id : block.ids)
        if (const auto it = index.find(id); it != index.end()) out.records.push_back(it->second);  // all were fetched
    }
  rows_.reserve(rows.size());
  for (const auto* r : rows) {
    rows_.push_back(m.side(*r));
    open_rows_.push_back(m.open_row(*r));
  }
}

bool FuzzyRun::refill_open(size_t r, const std::string& key, size_t cap, std::vector<int>& members) {
  // Rows of the slice gave `departed` of its stored members a never_across value: its partial
  // index leaves them out once they are stored, and what is left may be max_candidates or
  // fewer. The table still holds them without one: the first cap + 1 + departed it holds are
  // asked for (each departed one is known here, so it is among them or past them), and those
  // left, fetched when the slice did not know them, are the block's stored members.
  const auto d = departed_[r].find(key);
  if (!refill_ || d == departed_[r].end()) return false;
  Refilled& f = refilled_[r][key];
  if (f.departed != d->second) {
    f = {d->second, true, {}};
    const auto v = blocks_.values[r].find(key);
    if (v == blocks_.values[r].end()) return false;  // not expected: an over open block has its values
    const size_t asked = cap + 1 + d->second;
    auto first = refill_->first(r, v->second, true, asked);
    std::vector<std::string> unknown;
    size_t held = 0;
    for (const auto& [m, id] : first) {
      if (m >= 0 && FuzzyMatcher::holds_never(side_of(m))) continue;  // departed
      ++held;
      if (m < 0) unknown.push_back(id);
    }
    // all asked for: at least cap + 1 are held, as every departed one is known
    f.over = held > cap;
    if (f.over) return false;
    const auto fetched = unknown.empty() ? std::vector<int>{} : refill_->fetch(unknown);
    size_t u = 0;
    for (const auto& [m, id] : first)
      if (m >= 0 && !FuzzyMatcher::holds_never(side_of(m))) f.members.push_back(m);
      else if (m < 0) f.members.push_back(u < fetched.size() ? fetched[u++] : -1);
  }
  if (f.over) return false;
  members.insert(members.end(), f.members.begin(), f.members.end());
  return true;
}

bool FuzzyRun::block_members(size_t r, const std::string& key, bool open, size_t cap, std::vector<int>& members) {
  // the block as the target would hold it had every earlier row been loaded before: an open
  // block holds only records holding no never_across value, as its partial index does
  auto add = [&](const std::vector<int>& records) {
    for (int k : records)
      if (!(open && k >= 0 && FuzzyMatcher::holds_never(side_of(k)))) members.push_back(k);
    return members.size() <= cap;
  };
  auto in = [&](const auto& map) -> const std::vector<int>* {
    const auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
  };
  if (open) {
    const auto o = known_open_[r].find(key);
    if (o != known_open_[r].end()) {
      if (o->second.over ? !refill_open(r, key, cap, members) : !add(o->second.records)) return false;
    }
  } else if (blocks_.over[r].count(key)) {
    return false;  // members never leave it: a stored key is never replaced (fill_nulls)
  } else if (const auto* stored = in(known_[r])) {
    members = *stored;  // the unfetched ones (-1) count too
  }
  if (members.size() > cap) return false;
  if (const auto* joined = in(joined_[r]); joined && !add(*joined)) return false;
  if (const auto* made = in(chunk_[r]); made && !add(*made)) return false;
  return true;
}

std::vector<int> FuzzyRun::blocked_records(size_t row, const std::vector<int>&) {
  // Each rule's block as the target would hold it had every earlier row been loaded before: its
  // stored records (those that left an open block out), the known records rows completed its
  // key for and those the chunk made; all of them, or none where they are more than
  // max_candidates. So cutting a file into chunks changes nothing an equality rule decides. A
  // trigram rule's block is the stored records with a similar key as the chunk began and the
  // chunk's records that came to hold one.
  std::vector<int> out, members;
  const auto cap = size_t(m_.tier().max_candidates);
  seen_.resize(records_.size(), -1);
  for (size_t r = 0; r < m_.rules(); ++r) {
    const auto key = m_.rule_key(r, rows_[row], blocks_);
    if (!key) continue;
    members.clear();
    bool within = true;
    if (m_.similarity(r) == 0) {
      // an open block (the row holds every never_across value) holds only records that hold none
      within = block_members(r, *key, open_rows_[row], cap, members);
    } else if (blocks_.over[r].count(*key)) {
      within = false;
    } else {
      if (const auto it = known_[r].find(*key); it != known_[r].end()) members = it->second;
      // a trigram rule: the records this chunk gave a key similar to the row's
      if (const auto g = blocks_.trigrams.find(*key); g != blocks_.trigrams.end() && members.size() <= cap) {
        const auto similar = similar_[r].similar(g->first, g->second, cap + 1 - members.size());
        members.insert(members.end(), similar.begin(), similar.end());
      }
      within = members.size() <= cap;
    }
    if (!within) {
      ++over_;
      continue;
    }
    for (int k : members) {
      if (k < 0 || seen_[size_t(k)] == int(row)) continue;
      seen_[size_t(k)] = int(row);
      out.push_back(k);
    }
  }
  std::sort(out.begin(), out.end());  // the same order whatever the blocks' order
  return out;
}

std::vector<std::pair<int, double>> FuzzyRun::candidates(size_t row, const std::vector<int>& row_records) {
  const FuzzySide& mine = rows_[row];
  std::vector<std::pair<int, double>> out;
  std::vector<PairExplanation> shown;
  const std::vector<int> blocked = blocked_records(row, row_records);
  for (int r : blocked) side_of(r);
  for (size_t i = 0; i < blocked.size(); ++i) {
    // a pair's time is mostly waiting for the candidate's keys, scattered over the heap: the
    // next candidates' are asked for ahead (their key array two ahead, its keys one ahead)
    if (i + 2 < blocked.size()) __builtin_prefetch(records_[size_t(blocked[i + 2])].keys.data());
    if (i + 1 < blocked.size())
      for (const std::string* k : records_[size_t(blocked[i + 1])].compare())
        if (k) __builtin_prefetch(k);
    const int r = blocked[i];
    const FuzzySide& theirs = records_[size_t(r)];
    if (FuzzyMatcher::conflicts(mine, theirs)) continue;
    const double score = m_.scorer().score(mine.compare(), theirs.compare(), scored_) + table_term_;
    out.emplace_back(r, score);
    if (score >= review_at) shown.push_back({r, score, scored_, table_term_});
  }
  std::stable_sort(shown.begin(), shown.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
  if (!shown.empty()) explained_[row] = std::move(shown);
  return out;
}

const FuzzySide& FuzzyRun::side_of(int record) {
  const auto r = size_t(record);
  if (r < built_.size() && !built_[r]) {
    records_[r] = m_.side(*known_keys_[r]);
    built_[r] = 1;
  }
  return records_[r];
}

void FuzzyRun::landed(size_t row, int record) {
  if (size_t(record) >= records_.size()) {
    records_.resize(size_t(record) + 1);
    keyed_.resize(size_t(record) + 1);
  }
  side_of(record);
  FuzzySide& held = records_[size_t(record)];
  auto& keyed = keyed_[size_t(record)];
  if (keyed.empty()) {
    // the keys its values make before this row: a known record is found by them through the
    // target's index already; a new record has none yet
    keyed.resize(m_.rules());
    for (size_t r = 0; r < m_.rules(); ++r) keyed[r] = m_.rule_key(r, held, blocks_).has_value();
  }
  const FuzzySide& keys = rows_[row];
  const bool stored = size_t(record) < built_.size();
  if (stored && !FuzzyMatcher::holds_never(held) && FuzzyMatcher::holds_never(keys)) {
    // a stored record holding no never_across value is given one (fill_nulls): it leaves the open
    // blocks its stored keys put it in
    const FuzzySide own = m_.side(*known_keys_[size_t(record)]);
    for (size_t r = 0; r < m_.rules(); ++r)
      if (const auto key = m_.similarity(r) == 0 ? m_.rule_key(r, own, blocks_) : std::nullopt) {
        const auto o = known_open_[r].find(*key);
        if (o != known_open_[r].end() && o->second.over) ++departed_[r][*key];
      }
  }
  if (held.keys.empty()) {
    held = keys;  // a record the chunk makes: what its first row holds
  } else {
    for (size_t k = 0; k < keys.keys.size() && k < held.keys.size(); ++k)
      if (!held.keys[k] && keys.keys[k]) held.keys[k] = keys.keys[k];
  }
  register_keys(record);
}

void FuzzyRun::register_keys(int record) {
  // fill_nulls only completes keys, never changes one: a key, once registered, stays right
  for (size_t r = 0; r < m_.rules(); ++r) {
    if (keyed_[size_t(record)][r]) continue;
    if (auto key = m_.rule_key(r, records_[size_t(record)], blocks_)) {
      if (m_.similarity(r) == 0) {
        // a known record joins by id (take_stored); one made here by when it was made, as the ids
        // drawn for them in that order place it
        auto& held = (size_t(record) < built_.size() ? joined_ : chunk_)[r][*key];
        held.insert(std::upper_bound(held.begin(), held.end(), record), record);
      } else if (const auto g = blocks_.trigrams.find(*key); g != blocks_.trigrams.end()) {
        similar_[r].add(record, g->first, g->second);
      }
      keyed_[size_t(record)][r] = true;
    }
  }
}

}  // namespace ingestd::engine
