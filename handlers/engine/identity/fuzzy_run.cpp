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
  ordered_.resize(2 * blocks.known.size());
  for (size_t r = 0; r < blocks.known.size(); ++r) similar_.emplace_back(m.similarity(r));
  for (size_t r = 0; r < blocks.known.size(); ++r)
    for (const auto& [key, ids] : blocks.known[r]) {
      auto& out = known_[r][key];
      for (const auto& id : ids) {
        // one not fetched (it conflicts with every row of its blocks) still takes its place
        const auto it = index.find(id);
        out.push_back(it == index.end() ? -1 : it->second);
      }
    }
  for (size_t r = 0; r < blocks.open.size() && r < known_open_.size(); ++r)
    for (const auto& [key, block] : blocks.open[r]) {
      auto& out = known_open_[r][key];
      out.full = block.full;
      for (const auto& id : block.ids)
        if (const auto it = index.find(id); it != index.end()) out.records.push_back(it->second);  // all were fetched
    }
  rows_.reserve(rows.size());
  for (const auto* r : rows) {
    rows_.push_back(m.side(*r));
    open_rows_.push_back(m.open_row(*r));
  }
}

template <class Take>
void FuzzyRun::take_stored(size_t r, const std::string& key, bool open, size_t cap, Take&& take) {
  const auto o = known_open_[r].find(key);
  const auto k = known_[r].find(key);
  const auto j = joined_[r].find(key);
  const bool cut = open ? o != known_open_[r].end() && o->second.full : k != known_[r].end() && k->second.size() >= cap;
  const size_t stored = open ? (o != known_open_[r].end() ? o->second.records.size() : 0)
                             : (k != known_[r].end() ? k->second.size() : 0);
  static const std::vector<int> kNone;
  const std::vector<int>& joined = j != joined_[r].end() ? j->second : kNone;
  // a full open block that rows of the slice moved members out of (gave them a never_across
  // value): its partial index would leave them out, and the next ones past the cut take their
  // places
  bool departed = false;
  if (open && cut && joined.empty()) {
    size_t held = 0;
    for (int m : o->second.records) held += !FuzzyMatcher::holds_never(side_of(m));
    departed = held < cap;
  }
  if (refill_ && (departed || (!joined.empty() && (cut || stored + joined.size() > cap)))) {
    // the block as its index orders it now: records completed into it placed by id among the
    // stored members (the last ones fall past the cut), members that left it skipped, and
    // the next past the cut in their places, fetched now
    Ordered& ord = ordered_[open ? m_.rules() + r : r][key];
    const auto v = blocks_.values[r].find(key);
    const auto* values = v == blocks_.values[r].end() ? nullptr : &v->second;
    if (ord.joined != joined.size()) ord = {joined.size(), 0, {}};
    std::vector<int> records;
    for (;;) {
      // the members up to the block's places: an open block's that the slice did not know lay
      // past the cut when it began (the ones that left it make room), fetched now
      records.clear();
      std::vector<std::string> unknown;
      size_t held = 0;
      for (const auto& [m, id] : ord.members) {
        if (held == cap) break;
        if (open && m < 0) unknown.push_back(id);
        held += !(open && m >= 0 && FuzzyMatcher::holds_never(side_of(m)));
        records.push_back(m);
      }
      if (!unknown.empty()) {
        const auto fetched = refill_->fetch(unknown);
        for (size_t i = 0, u = 0; i < records.size() && u < fetched.size(); ++i)
          if (records[i] < 0) ord.members[i].first = records[i] = fetched[u++];
      }
      if (ord.asked && (held == cap || ord.members.size() < ord.asked)) break;
      ord.asked = ord.asked ? 2 * ord.asked : cap + joined.size();
      ord.members = refill_->first(r, values, open, joined, ord.asked);
    }
    take(records);
    return;
  }
  if (!open) {
    if (k != known_[r].end()) take(k->second);
  } else if (o != known_open_[r].end()) {
    take(o->second.records);
  }
  take(joined);  // within the block's places: all of them
}

std::vector<int> FuzzyRun::blocked_records(size_t row, const std::vector<int>&) {
  // A block as the target would hold it had every earlier row been loaded before: its stored
  // records, lowest ids first (take_stored: those that left an open block replaced, those
  // completed into it placed by id), then the ones the chunk made, in the order they were made
  // (their ids are drawn in that order); the first max_candidates of them. So cutting a file
  // into chunks changes nothing an equality rule decides. A trigram rule still takes the chunk's
  // records (made or completed) after the stored ones, in the order they came to hold a similar
  // key.
  std::vector<int> out;
  const auto cap = size_t(m_.tier().max_candidates);
  seen_.resize(records_.size(), -1);
  for (size_t r = 0; r < m_.rules(); ++r) {
    const auto key = m_.rule_key(r, rows_[row], blocks_);
    if (!key) continue;
    size_t taken = 0;
    // an open block (the row holds every never_across value) holds only records that hold none,
    // as its partial index does: one that came to hold one in this chunk has left it
    const bool open = open_rows_[row] && m_.similarity(r) == 0;
    auto take = [&](const std::vector<int>& records) {
      for (int k : records) {
        if (taken == cap) return;
        if (open && k >= 0 && FuzzyMatcher::holds_never(side_of(k))) continue;
        ++taken;
        if (k < 0 || seen_[size_t(k)] == int(row)) continue;
        seen_[size_t(k)] = int(row);
        out.push_back(k);
      }
    };
    if (m_.similarity(r) == 0) {
      take_stored(r, *key, open, cap, take);
      if (const auto it = chunk_[r].find(*key); it != chunk_[r].end()) take(it->second);
    } else {
      if (const auto it = known_[r].find(*key); it != known_[r].end()) take(it->second);
      // a trigram rule: the records this chunk gave a key similar to the row's, in that order
      if (const auto g = blocks_.trigrams.find(*key); g != blocks_.trigrams.end())
        take(similar_[r].similar(g->first, g->second, cap));
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
