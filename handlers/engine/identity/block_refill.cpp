#include "handlers/engine/identity/block_refill.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace ingestd::engine {

size_t spare_places(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<const FieldKeys*>& rows) {
  size_t over_rules = 0;  // equality rules with an open block over max_candidates
  for (const auto& rule : blocks.open) {
    bool over = false;
    for (const auto& [key, block] : rule) over = over || block.over;
    over_rules += over;
  }
  if (!over_rules) return 0;
  size_t holders = 0;  // rows that may give a record a never_across value
  for (const auto* row : rows) holders += FuzzyMatcher::holds_never(m.side(*row));
  return holders * over_rules * size_t(m.tier().max_candidates);
}

SpareRefill::SpareRefill(StepSql& sql, const Matcher& matcher, std::vector<KnownRecord>& known,
                         std::vector<KnownState>& states, size_t spares, bool last)
    : sql_(sql), matcher_(matcher), known_(known), states_(states), first_(known.size()), next_(known.size()),
      last_(last) {
  known_.resize(first_ + spares, KnownRecord{{}, {}, true});
  states_.resize(first_ + spares);
}

void SpareRefill::drop() {
  index_.clear();
  indexed_ = false;
  known_.resize(first_);
  states_.resize(first_);
  next_ = first_;
}

int SpareRefill::record_of(const std::string& id) {
  if (!indexed_) {  // the records known before the slice, once: most slices never ask
    for (size_t k = 0; k < first_; ++k) index_.emplace(known_[k].id, int(k));
    indexed_ = true;
  }
  const auto it = index_.find(id);
  return it == index_.end() ? -1 : it->second;
}

std::vector<std::pair<int, std::string>> SpareRefill::numbered(std::vector<std::string> ids) {
  std::vector<std::pair<int, std::string>> out;
  for (auto& id : ids) out.emplace_back(record_of(id), std::move(id));
  return out;
}

std::vector<int> SpareRefill::fetch(const std::vector<std::string>& ids) {
  for (auto& f : matcher_.fetch(sql_, ids)) {
    if (next_ == known_.size()) {
      if (!last_) throw Exhausted{};
      // not expected (spare_places() bounds them): the record is left out of the block's
      // candidates, though it counts, rather than the chunk failed
      spdlog::warn("fuzzy tier: no spare place for record {} of an open block back within max_candidates", f.id);
      continue;
    }
    known_[next_] = KnownRecord{std::move(f.id), {}, true};
    index_.emplace(known_[next_].id, int(next_));
    states_[next_] = {std::move(f.own), std::move(f.memory)};
    ++next_;
  }
  std::vector<int> out;
  for (const auto& id : ids) out.push_back(record_of(id));
  return out;
}

std::vector<std::pair<int, std::string>> SpareRefill::first(size_t r, const std::vector<std::string>& values,
                                                            bool open, size_t n) {
  return numbered(matcher_.fuzzy()->members(sql_, r, values, open, n));
}

Resolution resolve_fuzzy(StepSql& sql, const Matcher& matcher, const config::Entity& entity, const Blocks& blocks,
                         std::vector<KnownRecord>& known, std::vector<KnownState>& states,
                         const std::vector<const FieldKeys*>& rows, const std::vector<TierKeys>& tier_keys,
                         FuzzyVerdicts& verdicts) {
  // A spare place costs about as much memory as a known record, and the bound (spare_places())
  // is far more than a slice needs: an open block over max_candidates must lose members until it
  // holds no more, and few do. So a slice starts with a sixteenth of its rows, and one that needs
  // more is resolved again with four times as many (a slice of a few rows: none), up to the bound.
  const FuzzyMatcher& fuzzy = *matcher.fuzzy();
  const size_t tiers = matcher.tiers().size(), bound = spare_places(fuzzy, blocks, rows);
  for (size_t spares = std::min(bound, rows.size() / 16);; spares = std::min(bound, 4 * spares + 64)) {
    SpareRefill refill(sql, matcher, known, states, spares, spares == bound);
    try {
      RecordHoldings holdings(entity, matcher, states, rows);
      std::vector<const FieldKeys*> keys;
      keys.reserve(states.size());
      for (const auto& s : states) keys.push_back(&s.own);
      FuzzyRun run(fuzzy, blocks, known, keys, rows, &refill);
      run.tier = int(tiers) + 1;
      Resolution res = resolve_rows(tier_keys, known, tiers, &run, &holdings);
      verdicts.explained = run.explanations();
      verdicts.fetched = refill.fetched();
      verdicts.over = run.over();
      return res;
    } catch (const SpareRefill::Exhausted&) {
      refill.drop();
    }
  }
}

}  // namespace ingestd::engine
