// The seam for matching methods (DESIGN §5 rule 6): an entity's identity tiers, the one rule
// that turns a row's field keys into tier keys, and the SQL steps that find the records a
// chunk's groups may be and remember what a load learned. `exact` is the method today.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/merge/statement.hpp"

namespace ingestd::engine {

/// @brief One identity tier: the fields whose keys together identify a record.
struct IdentityTier {
  int number = 0;           // 1-based; lower is higher priority
  std::vector<int> fields;  // indexes into the entity's fields
};

/// The entity's tiers, highest priority first.
std::vector<IdentityTier> identity_tiers(const config::Entity& entity);

/// A row's key per field (nullopt: no value, or not an identity field).
using FieldKeys = std::vector<std::optional<std::string>>;

/// @brief Where matching reads and writes: the bookkeeping schema and the target table.
struct MatchTarget {
  std::string bookkeeping;  // quoted schema
  std::string table;        // quoted schema.table
  std::string id;           // quoted id column
  std::string id_type;      // its SQL type
};

/// @brief A way of finding which existing record a group of a chunk's rows is.
///
/// The steps run inside the entity's merge, between staging and the decision. They read the
/// work tables `ingestd_gk (grp, tier, key)` (each key a group holds, once) and fill
/// `ingestd_cand (grp, record_id, tier)`: the records a group may be, with the best tier they
/// share and none that a conflicting higher-tier value rules out.
class Matcher {
 public:
  virtual ~Matcher() = default;
  const std::vector<IdentityTier>& tiers() const { return tiers_; }
  /// The key of every tier for one row: nullopt where a field of the tier is missing (a tier
  /// applies only when all its fields are present). The one key rule of the engine.
  virtual std::vector<std::optional<std::string>> keys(const FieldKeys& field_keys) const = 0;
  /// Candidates step.
  virtual void find_candidates(StepSql& sql, bool analyze) const = 0;
  /// Remember step: the keys of the groups resolved to records (ingestd_res: grp, record_id,
  /// action insert|match) that the records do not hold yet.
  virtual void remember_keys(StepSql& sql, bool analyze) const = 0;
  /// Remembers one record's keys (a review decision), skipping those it already holds.
  virtual void remember_record(StepSql& sql, const std::string& record_id,
                               const std::vector<std::optional<std::string>>& tier_keys) const = 0;

 protected:
  Matcher(std::vector<IdentityTier> tiers, MatchTarget target) : tiers_(std::move(tiers)), target_(std::move(target)) {}
  std::vector<IdentityTier> tiers_;
  MatchTarget target_;
};

/// The matcher for an entity's tiers (exact keys: every tier today).
std::unique_ptr<Matcher> make_matcher(const config::Entity& entity, MatchTarget target);

}  // namespace ingestd::engine
