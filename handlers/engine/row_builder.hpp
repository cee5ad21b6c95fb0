// From a source record to a row: header mapping, normalizing, typed parsing and identity keys
// (DESIGN §3). Pure: no database, unit-tested on its own.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/row.hpp"
#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

/// @brief How one entity's fields are fed.
struct EntityMapping {
  static constexpr int kAbsent = -1;    // the source has no column for the field
  static constexpr int kVariable = -2;  // the field takes an event variable ($program, …)
  const config::Entity* cfg = nullptr;
  size_t index = 0;
  std::vector<int> source_index;  // [field] column index, kAbsent or kVariable
  std::vector<int> ref_entity;    // [field] referenced (earlier) entity, -1 = none
  std::vector<bool> in_tier;      // [field] part of some identity tier: its key is kept
  bool has_deferred = false;      // some lookup waits for a later phase
};

/// @brief Builds rows of one dataset from records with one header.
class RowBuilder {
 public:
  /// Maps `header` to the dataset's fields. Throws BatchError when a required field has no
  /// column; `warnings()` names the optional ones that have none.
  RowBuilder(const config::Dataset& ds, const std::vector<std::string>& header,
             const std::map<std::string, std::string>& vars);

  const std::vector<EntityMapping>& entities() const { return entities_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  /// Columns copied verbatim into Row::source (a job's writeback matches its source rows by
  /// them); returns the value index. Throws BatchError when the header lacks the column.
  size_t pass_through(const std::string& column, const std::string& needed_for);

  /// Fills `row` from `rec` (moved from): every field normalized, typed and keyed, or the row
  /// rejected into `errors` with its column, value and reason.
  void build(Record& rec, int64_t number, Row& row, RowErrors& errors) const;

 private:
  int column_of(const config::Entity& ent, const config::Field& f);
  void build_entity(const Record& rec, const EntityMapping& m, Row& row, RowErrors& errors) const;

  const config::Dataset& ds_;
  const std::map<std::string, std::string>& vars_;
  std::vector<std::string> header_;
  std::map<std::string, int> exact_, folded_;
  std::set<std::string> null_values_;  // trimmed, lowercased
  std::vector<EntityMapping> entities_;
  std::vector<std::string> warnings_;
  std::vector<int> pass_through_;  // header index of each value in Row::source
};

}  // namespace ingestd::engine
