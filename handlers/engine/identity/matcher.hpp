// The seam for matching methods (DESIGN §5 rule 6): an entity's identity tiers, the one rule
// that turns a row's field keys into tier keys, finding the records a chunk's keys lead to,
// and remembering what a load learned. Exact tiers, then an optional fuzzy one
// (identity/fuzzy_matcher.hpp); the decision itself is the resolver's (identity/resolver.hpp),
// the same for every method.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/identity/resolver.hpp"
#include "handlers/engine/merge/statement.hpp"

namespace ingestd::engine {

class FuzzyMatcher;
struct TableInfo;

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

/// @brief A key a chunk looks for: its tier, the composite key, and the row's field keys, of
/// which the tier's fields are the parts the key joins. Views of the row's keys, which outlive
/// the find() they are given to.
struct ProbeKey {
  int tier = 0;  // 1-based
  std::string_view key;
  const FieldKeys* fields = nullptr;
};

/// @brief A record that holds one of the probed keys, with everything it holds.
struct FoundRecord {
  std::string id;
  FieldKeys own;                                 // [field] key of each identity field's stored value
  std::vector<std::vector<std::string>> memory;  // [tier] keys identity memory holds for it (empty: none)
  bool by_blocks = false;  // found only by the fuzzy tier's blocks, not by an exact key
};

/// @brief A way of finding which existing records a chunk's rows may be.
class Matcher {
 public:
  virtual ~Matcher() = default;
  const std::vector<IdentityTier>& tiers() const { return tiers_; }
  /// The key of every tier for one row: nullopt where a field of the tier is missing (a tier
  /// applies only when all its fields are present). The one key rule of the engine.
  virtual std::vector<std::optional<std::string>> keys(const FieldKeys& field_keys) const = 0;
  /// The records that hold any of `keys`, in the target's own columns (through its indexes) or
  /// in identity memory, each with every key it holds; ordered by id.
  virtual std::vector<FoundRecord> find(StepSql& sql, const std::vector<ProbeKey>& keys) const = 0;
  /// The records with these ids (ones a fuzzy tier's blocks found), as find() gives them.
  virtual std::vector<FoundRecord> fetch(StepSql& sql, const std::vector<std::string>& ids) const = 0;
  /// Writes keys to identity memory: (record id, tier, key).
  virtual void remember(StepSql& sql, const std::vector<std::tuple<std::string, int, std::string>>& keys) const = 0;
  /// The entity's fuzzy tier, run after the exact ones; nullptr when it has none.
  const FuzzyMatcher* fuzzy() const { return fuzzy_.get(); }

 protected:
  Matcher(std::vector<IdentityTier> tiers, MatchTarget target);
  std::vector<IdentityTier> tiers_;
  MatchTarget target_;
  std::shared_ptr<const FuzzyMatcher> fuzzy_;
};

/// The probe of a row's key at tier index `t` (0-based): the composite key and the field keys it joins.
ProbeKey probe_key(const Matcher& m, size_t t, const std::string& key, const FieldKeys& field_keys);

/// Per tier, the keys identity memory holds for a record (`memory`), then the key its own
/// values make.
std::vector<std::vector<std::string>> stored_keys(const Matcher& m, const FieldKeys& own,
                                                  const std::vector<std::vector<std::string>>& memory);

/// A found record as the resolver knows it: its stored_keys().
KnownRecord known_record(const Matcher& m, const FoundRecord& f);

/// @brief What one row's field keys find among an entity's records, decided as a load decides
/// (highest tier; a record holding a conflicting higher-tier value is ruled out).
struct OneRowMatch {
  bool keyed = false;                  // the row completes at least one tier
  std::string id;                      // the record it is; "" = none (or claimed by several)
  int tier = 0;                        // the tier (1-based) it matched at
  std::vector<std::string> claimants;  // the records that claim it, when two or more do
};

/// Probes one row's keys through the matcher (the target's indexes and identity memory) and
/// decides with the resolver: what the documents' owner lookup and review decisions ask.
OneRowMatch match_one_row(StepSql& sql, const Matcher& m, const FieldKeys& field_keys);

struct TierSql;
/// The matcher of an entity's exact tiers alone; `tiers` from tier_sql() (or none, where
/// nothing is looked up: unit tests).
std::unique_ptr<Matcher> make_matcher(const config::Entity& entity, MatchTarget target, std::vector<TierSql> tiers);

/// The matcher for an entity over its (described) table: exact tiers, then the fuzzy one.
std::unique_ptr<Matcher> make_matcher(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                                      MatchTarget target);

}  // namespace ingestd::engine
