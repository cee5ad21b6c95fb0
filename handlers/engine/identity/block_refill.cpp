#include "handlers/engine/identity/block_refill.hpp"

#include <spdlog/spdlog.h>

namespace ingestd::engine {

size_t spare_places(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<const FieldKeys*>& rows) {
  size_t full_rules = 0;  // equality rules with a full open block
  for (const auto& rule : blocks.open) {
    bool full = false;
    for (const auto& [key, block] : rule) full = full || block.full;
    full_rules += full;
  }
  if (!full_rules) return 0;
  size_t holders = 0;  // rows that may give a record a never_across value
  for (const auto* row : rows) holders += FuzzyMatcher::holds_never(m.side(*row));
  return holders * full_rules;
}

SpareRefill::SpareRefill(StepSql& sql, const Matcher& matcher, std::vector<KnownRecord>& known,
                         std::vector<KnownState>& states, size_t spares)
    : sql_(sql), matcher_(matcher), known_(known), states_(states), first_(known.size()), next_(known.size()) {
  known_.resize(first_ + spares, KnownRecord{{}, {}, true});
  states_.resize(first_ + spares);
}

std::vector<std::pair<int, std::string>> SpareRefill::numbered(std::vector<std::string> ids) {
  if (index_.empty())
    for (size_t k = 0; k < first_; ++k) index_.emplace(known_[k].id, int(k));
  std::vector<std::pair<int, std::string>> out;
  for (auto& id : ids) {
    const auto it = index_.find(id);
    out.emplace_back(it == index_.end() ? -1 : it->second, std::move(id));
  }
  return out;
}

std::vector<int> SpareRefill::fetch(const std::vector<std::string>& ids) {
  numbered({});  // the index, once
  for (auto& f : matcher_.fetch(sql_, ids)) {
    if (next_ == known_.size()) {
      // not expected (spare_places() bounds them): the record is left out of the block's
      // candidates, its place taken, rather than the chunk failed
      spdlog::warn("fuzzy tier: no spare place for record {} past a full open block's cut", f.id);
      continue;
    }
    index_.emplace(f.id, int(next_));
    known_[next_] = KnownRecord{std::move(f.id), {}, true};
    states_[next_] = {std::move(f.own), std::move(f.memory)};
    ++next_;
  }
  std::vector<int> out;
  for (const auto& id : ids) {
    const auto it = index_.find(id);
    out.push_back(it == index_.end() ? -1 : it->second);
  }
  return out;
}

std::vector<std::pair<int, std::string>> SpareRefill::more(size_t r, const std::vector<std::string>& values,
                                                           const std::string& after, size_t n) {
  // every member of an open block is fetched: the ones the slice did not know yet, now
  auto out = numbered(matcher_.fuzzy()->open_members_after(sql_, r, values, after, n));
  std::vector<std::string> unknown;
  for (const auto& [k, id] : out)
    if (k < 0) unknown.push_back(id);
  if (unknown.empty()) return out;
  const auto fetched = fetch(unknown);
  for (size_t i = 0, u = 0; i < out.size(); ++i)
    if (out[i].first < 0) out[i].first = fetched[u++];
  std::erase_if(out, [](const auto& m) { return m.first < 0; });  // gone since the slice began
  return out;
}

std::vector<std::pair<int, std::string>> SpareRefill::first(size_t r, const std::vector<std::string>* values,
                                                            bool open, const std::vector<int>& joined, size_t n) {
  std::vector<std::string> ids;
  for (int k : joined) ids.push_back(known_[size_t(k)].id);
  return numbered(matcher_.fuzzy()->members_with(sql_, r, values, open, ids, n));
}

}  // namespace ingestd::engine
