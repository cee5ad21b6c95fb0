// The members a full open block's cut left out, fetched while a slice is resolved (BlockRefill),
// into places numbered for them before the resolver began: the resolver numbers the records
// known before the slice first, then the ones it makes, so a record fetched midway needs a
// number of the first kind.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/memory.hpp"
#include "handlers/engine/identity/resolver.hpp"

namespace ingestd::engine {

/// How many records a slice's refills may fetch at most: a record leaves an open block only when
/// a row holding a never_across value lands on it, and leaves one block per equality rule, and
/// each departure lets in one record past the cut. 0 when no open block is full.
size_t spare_places(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<const FieldKeys*>& rows);

/// @brief Fetches a full open block's next members into the spare places at the end of the
/// known records (KnownRecord with an empty id, fuzzy_only: nobody's until filled).
class SpareRefill : public BlockRefill {
 public:
  /// Appends `spares` empty places to `known` and `states` (the resolver reads a place once a
  /// row lands on it: after it is filled).
  SpareRefill(StepSql& sql, const Matcher& matcher, std::vector<KnownRecord>& known, std::vector<KnownState>& states,
              size_t spares);
  std::vector<std::pair<int, std::string>> more(size_t r, const std::vector<std::string>& values,
                                                const std::string& after, size_t n) override;
  std::vector<std::pair<int, std::string>> first(size_t r, const std::vector<std::string>* values, bool open,
                                                 const std::vector<int>& joined, size_t n) override;
  /// -1 for an id the table no longer holds.
  std::vector<int> fetch(const std::vector<std::string>& ids) override;
  /// The records fetched so far.
  size_t fetched() const { return next_ - first_; }

 private:
  StepSql& sql_;
  const Matcher& matcher_;
  std::vector<KnownRecord>& known_;
  std::vector<KnownState>& states_;
  size_t first_, next_;                         // the first spare place, the next free one
  std::unordered_map<std::string, int> index_;  // id -> known record, made at the first refill
  /// The known record of each id (-1: none).
  std::vector<std::pair<int, std::string>> numbered(std::vector<std::string> ids);
};

}  // namespace ingestd::engine
