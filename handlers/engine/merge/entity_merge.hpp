// The merge of one entity over one chunk (DESIGN §5 rules 5-7), as named steps: candidates
// (the matcher) → decide (the resolver, in input order) → stage → aggregate → lineage → insert
// new → merge matched → remember keys → deferred refs → review. Each step's SQL is in its
// function; each is timed under its own `op`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/memory.hpp"
#include "handlers/engine/identity/resolver.hpp"
#include "handlers/engine/merge/statement.hpp"
#include "handlers/engine/row.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

/// @brief One entity's rows of a chunk, in input order, and what each is.
struct StagedPart {
  size_t entity = 0;                  // index into Row::values
  std::vector<Row*> rows;             // rows the entity merges
  std::vector<TierKeys> tier_keys;    // [row][tier]
  std::vector<Row*> waiting;          // rows whose referenced record is in review: they wait with it
};

/// @brief Runs one entity's steps for one chunk in the caller's transaction. `table` must have
/// been through describe_id (the load's plan does it once per batch).
class EntityMerge {
 public:
  EntityMerge(pqxx::transaction_base& tx, Metrics* metrics, const TableInfo& table, const config::Entity& entity,
              const Matcher& matcher, const std::string& bookkeeping_schema, const std::string& batch_id,
              const std::map<std::string, std::string>& vars);

  /// All steps in order; returns this chunk's counts for the entity.
  EntityCounts run(const StagedPart& part);
  /// (row_number, record_id, in_review) of every staged row, after run().
  std::vector<std::tuple<int64_t, std::string, bool>> row_records();
  /// What the fuzzy tier's blocks cost, in fetched records, after run(): the records they
  /// named that no exact key found and that were fetched, plus every id they named at a
  /// sixteenth (an id in a block holds about that share of a fetched record's memory).
  size_t blocked_records() const { return blocked_records_; }
  /// Blocks (a row's, under a fuzzy rule) that gave no candidates as they held more than max_candidates.
  size_t over_blocks() const { return over_blocks_; }
  /// Empties the work tables for the next entity or chunk of this transaction.
  void clear(size_t staged_rows);

 private:
  /// What the decision step settled for one chunk: per row, its record id and action.
  struct Decisions {
    Resolution res;
    std::vector<std::string> ids;        // [record] id, drawn for new records
    std::vector<KnownState> known;       // [known record]
    RecordKeys keys;
    std::map<size_t, std::vector<PairExplanation>> explained;  // [row] the fuzzy tier's scored pairs
  };
  void create_work_tables();
  void tune();
  Decisions decide(const StagedPart& part);
  /// The records known before the chunk that its rows may be: those holding one of its exact
  /// keys, and those in the fuzzy tier's blocks (filled in `blocks`).
  std::vector<FoundRecord> find_known(const StagedPart& part, const std::vector<const FieldKeys*>& row_keys,
                                      Blocks& blocks);
  std::vector<std::string> draw_ids(size_t n);
  void stage(const StagedPart& part, const Decisions& d);
  /// Per record, the tier `$tier` names (DESIGN §3 variables).
  static std::vector<int> record_tiers(const Decisions& d);
  void aggregate();
  EntityCounts record_lineage();
  void insert_new();
  void merge_matched();
  void remember(const Decisions& d);
  void defer_lookups();
  void queue_reviews();
  /// The reason a waiting row's item gives: the entities it references.
  std::string wait_reason() const;
  /// The fuzzy tier's scores: explanations, the result's bands, the weight histogram.
  void record_scores(const StagedPart& part, const Decisions& d, EntityCounts& counts);
  /// Why a row is in review: the records that claim it, with the fuzzy tier's scores.
  std::string review_reason(const Decisions& d, size_t row) const;
  /// Why a row the fuzzy tier scored is where it is: "12 (7.3: given_name exact +5.1, …)".
  std::string explain_pair(const PairExplanation& e, const std::string& id) const;
  std::string value_expr(const std::string& column, const std::string& spec, const char* tier_expr) const;
  /// Fields a merge may change (not keep, not the id), with their policy.
  std::vector<size_t> mergeable_fields() const;

  StepSql sql_;
  const TableInfo& table_;
  const config::Entity& entity_;
  const Matcher& matcher_;
  std::string bk_;  // quoted bookkeeping schema
  std::vector<size_t> deferred_;
  std::string stg_, agg_;    // staging and merge tables, named after their columns
  std::string work_tables_;  // every work table, as a list for TRUNCATE
  std::vector<std::tuple<int64_t, std::string, bool>> rows_out_;
  size_t blocked_records_ = 0;
  size_t over_blocks_ = 0;
};

}  // namespace ingestd::engine
