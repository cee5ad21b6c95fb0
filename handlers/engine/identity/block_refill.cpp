#include "handlers/engine/identity/block_refill.hpp"

#include <stdexcept>

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

std::vector<std::pair<int, std::string>> SpareRefill::more(size_t r, const Blocks::Open& block,
                                                           const std::string& after, size_t n) {
  auto ids = matcher_.fuzzy()->open_members_after(sql_, r, block.values, after, n);
  if (index_.empty())
    for (size_t k = 0; k < first_; ++k) index_.emplace(known_[k].id, int(k));
  std::vector<std::string> unknown;
  for (const auto& id : ids)
    if (!index_.count(id)) unknown.push_back(id);
  for (auto& f : matcher_.fetch(sql_, unknown)) {
    if (next_ == known_.size()) throw std::logic_error("a fuzzy block's refill found no spare place");
    index_.emplace(f.id, int(next_));
    known_[next_] = KnownRecord{std::move(f.id), {}, true};
    states_[next_] = {std::move(f.own), std::move(f.memory)};
    ++next_;
  }
  std::vector<std::pair<int, std::string>> out;
  for (auto& id : ids)
    if (const auto it = index_.find(id); it != index_.end()) out.emplace_back(it->second, std::move(id));
  return out;
}

}  // namespace ingestd::engine
