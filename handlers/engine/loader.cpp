#include "handlers/engine/loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "handlers/engine/bookkeeping.hpp"
#include "handlers/engine/chunk_reader.hpp"
#include "handlers/engine/identity/index_check.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/lookups.hpp"
#include "handlers/engine/merge/entity_merge.hpp"
#include "handlers/engine/merge/sql_builder.hpp"
#include "handlers/engine/rejects.hpp"
#include "handlers/engine/row_builder.hpp"
#include "handlers/engine/writeback.hpp"

namespace ingestd::engine {
namespace {

EntityCounts counts_from_json(const nlohmann::json& j) {
  EntityCounts c;
  c.inserted = j.value("inserted", int64_t{0});
  c.updated = j.value("updated", int64_t{0});
  c.unchanged = j.value("unchanged", int64_t{0});
  c.rejected = j.value("rejected", int64_t{0});
  c.review = j.value("review", int64_t{0});
  c.skipped = j.value("skipped", int64_t{0});
  if (j.contains("matched_by_tier"))
    for (auto& [k, v] : j["matched_by_tier"].items()) c.tier_matches[std::stoi(k)] = v.get<int64_t>();
  if (j.contains("fuzzy"))
    for (auto& [k, v] : j["fuzzy"].items()) c.fuzzy_bands[k] = v.get<int64_t>();
  return c;
}

/// One load of one source: owns the plan, the reader and the running totals.
class LoadRun {
 public:
  LoadRun(pqxx::connection& conn, const LoadRequest& req, Services& svc, RecordSource& source)
      : conn_(conn), req_(req), svc_(svc), ds_(*req.dataset), source_(source), books_(req.bookkeeping_schema),
        rejects_(req.reject_path, source.reject_delimiter(), source.reject_layout(), svc.cfg.files.rejects_group) {
    log_ = spdlog::get("engine");
    if (!log_) log_ = spdlog::default_logger();
  }
  LoadResult run(const FinalStep& final_step, const BeforeFinal& before_final);

 private:
  void plan();
  void resume();
  void read_chunk(Chunk& c, int64_t& number, const std::atomic<bool>& cancel);
  void commit_chunk(pqxx::transaction_base& tx, Chunk& chunk, bool final, const BeforeFinal& before_final);
  void checkpoint(pqxx::transaction_base& tx);
  /// The match weights of the chunks just committed, on /metrics.
  void observe_weights();
  void process_rows(pqxx::transaction_base& tx, std::vector<Row*> rows, std::map<std::string, EntityCounts>& out,
                    RowErrors& errors);
  void run_entities(pqxx::transaction_base& tx, const std::vector<Row*>& rows, std::map<std::string, EntityCounts>& out);
  /// One entity's part of a chunk, in slices where its fuzzy tier would fetch too many records.
  void merge_entity(pqxx::transaction_base& tx, const EntityMapping& m, const StagedPart& part, EntityCounts& c);
  void merge_part(pqxx::transaction_base& tx, const EntityMapping& m, const StagedPart& part, EntityCounts& c);
  /// Rows of the next slice of entity `e`'s part (SIZE_MAX: no limit).
  size_t slice_rows(size_t e) const;
  /// Bounded bisection (issue 16): before a refused chunk is split down to single rows, a
  /// sample of its rows is tried one at a time (each rolled back). When most are refused for
  /// one reason, splitting would mean a subtransaction per row for nothing: the batch fails
  /// naming the reason. Returns that reason, or "" to bisect.
  std::string refused_by_most(pqxx::transaction_base& tx, const std::vector<Row*>& rows);
  StagedPart select_rows(const EntityMapping& m, const std::vector<Row*>& rows, EntityCounts& counts) const;

  pqxx::connection& conn_;
  const LoadRequest& req_;
  Services& svc_;
  const config::Dataset& ds_;
  RecordSource& source_;
  Bookkeeping books_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<RowBuilder> builder_;
  std::vector<EntityTables> tables_;
  std::vector<std::unique_ptr<Matcher>> matchers_;
  std::vector<bool> referenced_;  // [entity] its record ids are needed after its merge
  std::unique_ptr<Writeback> writeback_;
  RejectWriter rejects_;
  bool chunk_sampled_ = false;  // refused_by_most tried the current chunk
  size_t slices_ = 0;                    // slices merged by a fuzzy tier in the current chunk
  size_t over_blocks_ = 0;               // blocks over max_candidates the chunk's rows left out (EntityMerge)
  std::vector<double> blocked_per_row_;  // [entity] records the fuzzy tier fetched per row, last slice; < 0: none yet
  LoadResult result_;
  std::vector<std::pair<std::string, std::vector<double>>> weights_;  // entity -> match weights not yet committed
  int64_t last_row_ = 0;
  uint64_t bytes_ = 0;
};

void LoadRun::plan() {
  builder_ = std::make_unique<RowBuilder>(ds_, source_.header(), req_.vars);
  for (const auto& w : builder_->warnings()) log_->warn("{}", w);
  pqxx::read_transaction tx(conn_);
  std::vector<std::string> problems;
  tables_ = describe_dataset(tx, ds_, problems);
  if (!problems.empty()) throw BatchError(sql::join(problems, "; "));
  referenced_.assign(ds_.entities.size(), false);
  blocked_per_row_.assign(ds_.entities.size(), -1);
  const std::string bk = tx.quote_name(req_.bookkeeping_schema);
  for (size_t e = 0; e < ds_.entities.size(); ++e) {
    const TableInfo& t = tables_[e].table;
    // A tier or blocking rule no index serves would scan the whole target for every key: refuse.
    for (const auto& r : entity_indexes(tx, ds_, ds_.entities[e], t, bk))
      if (r.index.empty()) problems.push_back(missing_index_problem(r));
    if (!problems.empty()) continue;
    if (const auto& fz = ds_.entities[e].fuzzy; fz && !fz->weights.empty() && !std::filesystem::exists(fz->weights))
      log_->warn("dataset {}: entity {}: fuzzy weights file {} does not exist; scoring with the default m/u (write it "
                 "with `ingestd train {} FILE`)", ds_.name, ds_.entities[e].name, fz->weights, ds_.name);
    const MatchTarget target{bk, t.quoted, tx.quote_name(ds_.entities[e].id_column), t.id_type};
    matchers_.push_back(make_matcher(tx, ds_.entities[e], t, target));
    for (const auto& f : ds_.entities[e].fields)
      if (f.ref)
        for (size_t k = 0; k < e; ++k)
          if (ds_.entities[k].name == *f.ref) referenced_[k] = true;
  }
  if (!problems.empty()) throw BatchError(sql::join(problems, "; "));
  if (req_.writeback && !req_.writeback->empty())
    writeback_ = std::make_unique<Writeback>(tx, req_.writeback, ds_, *builder_, referenced_);
  result_.entity_order.clear();
  for (auto& e : ds_.entities) {
    result_.entity_order.push_back(e.name);
    result_.counts.emplace(e.name, EntityCounts{});
  }
}

void LoadRun::resume() {
  pqxx::work tx(conn_);
  const auto stats = books_.stats(tx, req_.batch_id);
  if (stats.contains("counts"))
    for (auto& [k, v] : stats["counts"].items()) result_.counts[k] = counts_from_json(v);
  result_.rows_rejected = stats.value("rows_rejected", int64_t{0});
  // rows read differ from the last row's number where a source numbers its own rows (xlsx)
  result_.rows_read = stats.value("rows_read", req_.resume_after_row);
  if (stats.contains("first_errors")) result_.first_errors = stats["first_errors"].get<std::vector<std::string>>();
  if (!req_.dry_run) rejects_.rebuild(tx, books_.table(tx, "row_errors"), req_.batch_id, source_.header_raw());
  tx.commit();
  last_row_ = req_.resume_after_row;
  log_->info("batch {}: resuming after row {}", req_.batch_id, req_.resume_after_row);
}

void LoadRun::read_chunk(Chunk& c, int64_t& number, const std::atomic<bool>& cancel) {
  Record rec;
  c.rows.reserve(size_t(std::min<int64_t>(req_.chunk_rows, 1 << 20)));
  size_t held = 0;  // bytes the chunk's rows and errors hold: wide rows end a chunk early
  // Two chunks are in memory at once; what the source keeps for the whole file (a workbook's
  // shared strings) is paid from their budget, down to a quarter of it.
  const auto budget = size_t(req_.chunk_bytes);
  const size_t chunk_budget = std::max(budget / 4, budget - std::min(budget, source_.held_bytes() / 2));
  while (!cancel && source_.next(rec)) {
    // A sheet row keeps its own number (rows may be skipped); other records are counted.
    number = rec.number > 0 ? rec.number : number + 1;
    if (number <= req_.resume_after_row) continue;
    const size_t errors_before = c.errors.list.size();
    builder_->build(rec, number, c.rows.emplace_back(), c.errors);
    held += held_bytes(c.rows.back(), c.errors, errors_before);
    if (int64_t(c.rows.size()) >= req_.chunk_rows || held >= chunk_budget) {
      c.bytes = source_.bytes_read();
      return;
    }
  }
  c.bytes = source_.bytes_read();
  c.last = true;
}

void LoadRun::commit_chunk(pqxx::transaction_base& tx, Chunk& chunk, bool final, const BeforeFinal& before_final) {
  std::map<std::string, EntityCounts> delta;
  resolve_lookups(tx, builder_->entities(), tables_, chunk);
  std::vector<Row*> good;
  for (Row& r : chunk.rows)
    if (!r.rejected) good.push_back(&r);
  chunk_sampled_ = false;
  process_rows(tx, good, delta, chunk.errors);
  for (auto& [k, v] : delta) {
    if (!v.match_weights.empty()) weights_.emplace_back(k, std::move(v.match_weights));
    v.match_weights.clear();
    result_.counts[k] += v;
  }
  if (writeback_) {
    std::vector<Row*> ok;
    for (Row& r : chunk.rows)
      if (!r.rejected) ok.push_back(&r);
    writeback_->apply(tx, tx.quote_name(req_.bookkeeping_schema), req_.batch_id, ok);
  }
  // Rejected rows count against every entity of the dataset: none of them got the row.
  const RowErrors& errs = chunk.errors;
  result_.rows_rejected += errs.rows;
  for (const auto& m : errs.first)
    if (result_.first_errors.size() < 10) result_.first_errors.push_back(m);
  for (auto& name : result_.entity_order) result_.counts[name].rejected += errs.rows;
  store_row_errors(tx, books_.table(tx, "row_errors"), req_.batch_id, errs);
  if (!chunk.rows.empty()) last_row_ = chunk.rows.back().number;
  result_.rows_read += int64_t(chunk.rows.size());
  checkpoint(tx);
  if (!final) return;
  if (writeback_) result_.extra["writeback"] = writeback_->stats();
  if (before_final) before_final(tx, result_);
}

void LoadRun::checkpoint(pqxx::transaction_base& tx) {
  nlohmann::json counts = nlohmann::json::object();
  for (auto& [k, v] : result_.counts) counts[k] = v.to_json();
  EntityCounts total;
  if (!result_.entity_order.empty()) total = result_.counts[result_.entity_order.front()];
  BatchCheckpoint cp;
  cp.last_row = last_row_;
  cp.bytes = int64_t(bytes_);
  cp.inserted = total.inserted;
  cp.updated = total.updated;
  cp.unchanged = total.unchanged;
  cp.rejected = result_.rows_rejected;
  cp.review = total.review;
  cp.stats = {{"counts", counts},
              {"rows_rejected", result_.rows_rejected},
              {"rows_read", result_.rows_read},
              {"first_errors", result_.first_errors}};
  books_.checkpoint(tx, req_.batch_id, cp);
}

void LoadRun::observe_weights() {
  for (const auto& [entity, weights] : weights_)
    for (double w : weights) svc_.metrics.observe_match_weight(ds_.name, entity, w);
  weights_.clear();
}

LoadResult LoadRun::run(const FinalStep& final_step, const BeforeFinal& before_final) {
  plan();
  const bool single_tx = req_.dry_run || req_.atomic;
  if (req_.resume_after_row > 0) resume();
  if (req_.resume_after_row == 0 || req_.dry_run) rejects_.open(source_.header_raw(), true);
  std::unique_ptr<pqxx::work> outer;
  if (single_tx) outer = std::make_unique<pqxx::work>(conn_);
  int64_t number = 0;
  uint64_t bytes_counted = 0;  // of the source, on ingestd_input_bytes_total
  ChunkReader reader([&](Chunk& c, const std::atomic<bool>& cancel) { read_chunk(c, number, cancel); });
  for (;;) {
    Chunk chunk = reader.take();
    bytes_ = chunk.bytes;
    const auto t0 = std::chrono::steady_clock::now();
    if (single_tx) {
      commit_chunk(*outer, chunk, chunk.last, before_final);
      if (chunk.last && !req_.dry_run && final_step) final_step(*outer, result_);
    } else {
      pqxx::work tx(conn_);
      commit_chunk(tx, chunk, chunk.last, before_final);
      if (chunk.last && final_step) final_step(tx, result_);
      tx.commit();
      observe_weights();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    svc_.metrics.observe_db("chunk", secs);
    if (!chunk.rows.empty())
      log_->info("batch {}: chunk of rows {}-{} in {:.0f} ms ({} rejected){}", req_.batch_id, chunk.rows.front().number,
                 chunk.rows.back().number, secs * 1000, chunk.errors.rows,
                 (slices_ > 1 ? ", fuzzy tier in " + std::to_string(slices_) + " slices" : std::string()) +
                     (over_blocks_ ? ", " + std::to_string(over_blocks_) + " blocks over max_candidates left out"
                                   : std::string()));
    slices_ = over_blocks_ = 0;
    rejects_.write(chunk.errors);
    svc_.metrics.progress(ds_.name, result_.rows_read, chunk.bytes - std::min(chunk.bytes, bytes_counted));
    bytes_counted = chunk.bytes;
    if (svc_.keepalive) svc_.keepalive();
    if (chunk.last) break;
    if (svc_.stopping.load() && !single_tx) {
      result_.interrupted = true;
      return result_;
    }
  }
  if (!single_tx) return result_;
  if (!req_.dry_run) {
    outer->commit();
    observe_weights();
    return result_;
  }
  outer->abort();
  outer.reset();
  pqxx::work tx(conn_);
  if (final_step) final_step(tx, result_);
  tx.commit();
  return result_;
}

StagedPart LoadRun::select_rows(const EntityMapping& m, const std::vector<Row*>& rows, EntityCounts& counts) const {
  // References are filled from the entities already merged; a row whose referenced record is
  // in review waits with it. A row that carries nothing of a dependent entity's own (a person
  // who is no student) is skipped for it; any other row makes or finds a record, keys or not.
  StagedPart part;
  part.entity = m.index;
  const size_t e = m.index;
  bool dependent = false;
  for (int re : m.ref_entity) dependent |= re >= 0;
  for (Row* r : rows) {
    bool any = false, ref_review = false;
    for (size_t k = 0; k < m.cfg->fields.size(); ++k) {
      if (m.ref_entity[k] >= 0) {
        const auto re = size_t(m.ref_entity[k]);
        if (r->in_review[re]) ref_review = true;
        r->values[e][k] = r->record_ids[re];
        r->keys[e][k] = r->record_ids[re];
      } else if (r->values[e][k]) {
        any = true;
      }
    }
    if (dependent && !any) {
      ++counts.skipped;
      continue;
    }
    if (ref_review) {
      r->in_review[e] = true;
      part.waiting.push_back(r);
      continue;
    }
    part.rows.push_back(r);
  }
  const Matcher& matcher = *matchers_[e];
  part.tier_keys.resize(part.rows.size());
  for (size_t i = 0; i < part.rows.size(); ++i) part.tier_keys[i] = matcher.keys(part.rows[i]->keys[e]);
  return part;
}

/// Undoes what a rolled-back subtransaction decided for a row (its records, its review flags).
void forget_decisions(Row& r) {
  for (auto& s : r.record_ids) s.reset();
  std::fill(r.in_review.begin(), r.in_review.end(), false);
}

void LoadRun::run_entities(pqxx::transaction_base& tx, const std::vector<Row*>& rows,
                           std::map<std::string, EntityCounts>& out) {
  for (const EntityMapping& m : builder_->entities()) {
    EntityCounts& c = out[m.cfg->name];
    const StagedPart part = select_rows(m, rows, c);
    if (part.rows.empty() && part.waiting.empty()) continue;
    merge_entity(tx, m, part, c);
  }
}

size_t LoadRun::slice_rows(size_t e) const {
  // A fuzzy tier fetches the records its blocks name (those a row may be scored against), and
  // into a table of millions a chunk's blocks name hundreds of thousands (their values held
  // until the chunk commits). So the part is merged in slices whose blocks cost about
  // kSliceRecords fetched records (EntityMerge::blocked_records), sized by the cost per row of
  // the slice before (the first of a load is kFirstSlice rows: small, as its cost is not known
  // yet; 2,000 rows fetched 106,000 records, twice the budget, with a fifth of the people
  // lacking the never_across ID in a table of 1M). A slice is merged as a chunk of its own
  // would be, in the same transaction: the records are the same.
  constexpr double kSliceRecords = 50000;
  constexpr size_t kFirstSlice = 500, kMinSlice = 200;
  if (!matchers_[e]->fuzzy()) return SIZE_MAX;
  if (blocked_per_row_[e] < 0) return kFirstSlice;
  return std::max(kMinSlice, size_t(kSliceRecords / std::max(blocked_per_row_[e], 1.0)));
}

void LoadRun::merge_entity(pqxx::transaction_base& tx, const EntityMapping& m, const StagedPart& part,
                           EntityCounts& c) {
  size_t from = 0;
  do {
    const size_t n = std::min(part.rows.size() - from, slice_rows(m.index));
    if (from == 0 && n == part.rows.size()) return merge_part(tx, m, part, c);
    StagedPart slice;
    slice.entity = part.entity;
    slice.rows.assign(part.rows.begin() + long(from), part.rows.begin() + long(from + n));
    slice.tier_keys.assign(part.tier_keys.begin() + long(from), part.tier_keys.begin() + long(from + n));
    if (from + n == part.rows.size()) slice.waiting = part.waiting;
    merge_part(tx, m, slice, c);
    from += n;
  } while (from < part.rows.size());
}

void LoadRun::merge_part(pqxx::transaction_base& tx, const EntityMapping& m, const StagedPart& part, EntityCounts& c) {
  EntityMerge merge(tx, &svc_.metrics, tables_[m.index].table, *m.cfg, *matchers_[m.index], req_.bookkeeping_schema,
                    req_.batch_id, req_.vars);
  c += merge.run(part);
  over_blocks_ += merge.over_blocks();
  if (matchers_[m.index]->fuzzy() && !part.rows.empty()) {
    blocked_per_row_[m.index] = double(merge.blocked_records()) / double(part.rows.size());
    ++slices_;
  }
  if (referenced_[m.index]) {
    std::unordered_map<int64_t, Row*> by_number;
    for (Row* r : part.rows) by_number[r->number] = r;
    for (const auto& [num, rid, review] : merge.row_records()) {
      Row* r = by_number[num];
      if (review) r->in_review[m.index] = true;
      else r->record_ids[m.index] = rid;
    }
  }
  merge.clear(part.rows.size() + part.waiting.size());
}

void LoadRun::process_rows(pqxx::transaction_base& tx, std::vector<Row*> rows, std::map<std::string, EntityCounts>& out,
                           RowErrors& errors) {
  if (rows.empty()) return;
  // A value the database refuses (a constraint, a too-long string) must sink only its own
  // row: split until the culprit is alone, then reject it with the database's message.
  std::map<std::string, EntityCounts> local;
  std::optional<DbError> refused;
  try {
    pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), rows.size() == 1 ? "ingestd_row" : "ingestd_chunk");
    run_entities(sub, rows, local);
    sub.commit();
  } catch (const pqxx::sql_error& e) {
    refused = classify_db_error(e);
    if (refused->kind != DbFailure::Row) throw;
  }
  if (!refused) {
    for (auto& [k, v] : local) out[k] += v;
    return;
  }
  for (Row* r : rows) forget_decisions(*r);
  if (rows.size() == 1) {
    reject(errors, *rows[0], "", "database", refused->message,
           refused->sqlstate.empty() ? "" : "SQLSTATE " + refused->sqlstate);
    return;
  }
  if (const std::string most = refused_by_most(tx, rows); !most.empty())
    throw BatchError("rows " + std::to_string(rows.front()->number) + "-" + std::to_string(rows.back()->number) +
                     ": " + most + "; the batch is failed rather than each row tried alone (fix the data or the "
                     "constraint, then send the file again)");
  size_t half = rows.size() / 2;
  process_rows(tx, std::vector<Row*>(rows.begin(), rows.begin() + long(half)), out, errors);
  process_rows(tx, std::vector<Row*>(rows.begin() + long(half), rows.end()), out, errors);
}

std::string LoadRun::refused_by_most(pqxx::transaction_base& tx, const std::vector<Row*>& rows) {
  constexpr size_t kSample = 32, kMost = 24;  // 3 in 4: a chunk half refused passes 0.4% of the time
  if (rows.size() < 8 * kSample || chunk_sampled_) return "";
  chunk_sampled_ = true;  // once per chunk, at its first split
  std::map<std::string, size_t> reasons;
  for (size_t k = 0; k < kSample; ++k) {
    Row* r = rows[(2 * k + 1) * rows.size() / (2 * kSample)];
    std::map<std::string, EntityCounts> scratch;
    try {
      pqxx::subtransaction probe(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_probe");
      run_entities(probe, {r}, scratch);
      probe.abort();
    } catch (const pqxx::sql_error& e) {
      const DbError d = classify_db_error(e);
      if (d.kind != DbFailure::Row) throw;
      ++reasons[without_value(d)];
    }
    forget_decisions(*r);
  }
  for (const auto& [reason, n] : reasons)
    if (n >= kMost)
      return std::to_string(n) + " of " + std::to_string(kSample) + " rows sampled are refused by PostgreSQL: " + reason;
  return "";
}

}  // namespace

LoadResult load_file(pqxx::connection& conn, const LoadRequest& req, Services& svc, const FinalStep& final_step,
                     const BeforeFinal& before_final) {
  FileSourceOptions opts = file_source_options(*req.dataset);
  opts.format = req.format;
  opts.csv = req.csv;
  opts.xlsx = req.xlsx;
  auto source = open_file_source(req.open_path.empty() ? req.path : req.open_path, opts);
  return LoadRun(conn, req, svc, *source).run(final_step, before_final);
}

LoadResult load_query(pqxx::connection& conn, const LoadRequest& req, const QuerySource& q, Services& svc,
                      const FinalStep& final_step, const BeforeFinal& before_final) {
  auto source = open_query_source(q);
  auto with_watermark = [&](pqxx::transaction_base& tx, LoadResult& r) {
    r.max_watermark = source->max_watermark();
    if (before_final) before_final(tx, r);
  };
  return LoadRun(conn, req, svc, *source).run(final_step, with_watermark);
}

}  // namespace ingestd::engine
