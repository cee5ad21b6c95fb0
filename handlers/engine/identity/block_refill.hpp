// A slice's rows resolved with its fuzzy tier (resolve_fuzzy), and the members of an open block
// that was over max_candidates and is not any more, fetched while they are (BlockRefill) into places numbered for them
// before the resolver began: the resolver numbers the records known before the slice first,
// then the ones it makes, so a record fetched midway needs a number of the first kind.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/memory.hpp"
#include "handlers/engine/identity/resolver.hpp"

namespace ingestd::engine {

/// How many records a slice's refills may fetch at most: a record leaves an open block only when
/// a row holding a never_across value lands on it, and leaves one block per equality rule, and
/// each departure may bring an open block over max_candidates back within it, its members then
/// fetched. 0 when no open block is over.
size_t spare_places(const FuzzyMatcher& m, const Blocks& blocks, const std::vector<const FieldKeys*>& rows);

/// @brief Fetches an open block's members into the spare places at the end of the
/// known records (KnownRecord with an empty id, fuzzy_only: nobody's until filled).
class SpareRefill : public BlockRefill {
 public:
  /// Thrown when the spare places run out before `last` (the bound) was given.
  struct Exhausted {};
  /// Appends `spares` empty places to `known` and `states` (the resolver reads a place once a
  /// row lands on it: after it is filled); `last`: they are as many as spare_places() says.
  SpareRefill(StepSql& sql, const Matcher& matcher, std::vector<KnownRecord>& known, std::vector<KnownState>& states,
              size_t spares, bool last);
  std::vector<std::pair<int, std::string>> first(size_t r, const std::vector<std::string>& values, bool open,
                                                 size_t n) override;
  /// -1 for an id the table no longer holds.
  std::vector<int> fetch(const std::vector<std::string>& ids) override;
  /// The records fetched so far.
  size_t fetched() const { return next_ - first_; }
  /// Takes the spare places away again (known and states as they were given).
  void drop();

 private:
  StepSql& sql_;
  const Matcher& matcher_;
  std::vector<KnownRecord>& known_;
  std::vector<KnownState>& states_;
  size_t first_, next_;  // the first spare place, the next free one
  bool last_;
  std::unordered_map<std::string_view, int> index_;  // id -> known record, made at the first refill
  bool indexed_ = false;                             // index_ holds the records known before the slice
  /// The known record holding `id` (-1: none).
  int record_of(const std::string& id);
  /// The known record of each id (-1: none).
  std::vector<std::pair<int, std::string>> numbered(std::vector<std::string> ids);
};

/// @brief What the fuzzy tier said about a slice besides the decisions.
struct FuzzyVerdicts {
  std::map<size_t, std::vector<PairExplanation>> explained;  // [row] its scored pairs
  size_t fetched = 0;                                        // records refills fetched
  size_t over = 0;  // blocks (a row's, under a rule) left out as over max_candidates (FuzzyRun::over)
};

/// Resolves a slice's rows (`rows`: field keys, `tier_keys`) against `known` (with `states`, in
/// the same order) with the entity's fuzzy tier over `blocks`. The spare places for refills are
/// few at first (most slices need none); a slice that needs more is resolved again with as many
/// as spare_places() allows, from the start: the outcome is the same as if it had had them.
Resolution resolve_fuzzy(StepSql& sql, const Matcher& matcher, const config::Entity& entity, const Blocks& blocks,
                         std::vector<KnownRecord>& known, std::vector<KnownState>& states,
                         const std::vector<const FieldKeys*>& rows, const std::vector<TierKeys>& tier_keys,
                         FuzzyVerdicts& verdicts);

}  // namespace ingestd::engine
