// The ingestion pipeline shared by every handler: a record source (source/) -> rows (row_builder)
// -> lookups -> per entity: group, match and merge (identity/, merge/) -> rejects, writeback,
// checkpoint, committed chunk by chunk.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/model.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/record_source.hpp"
#include "handlers/engine/table_plan.hpp"
#include "handlers/handler.hpp"

namespace ingestd::engine {

/// @brief Everything a load needs to know besides the data itself.
struct LoadRequest {
  const config::Dataset* dataset = nullptr;
  std::string batch_id;
  std::string path;                 // file to read
  std::string open_path;            // what to open instead, when set: an open descriptor's /proc/self/fd path
  config::Format format = config::Format::Csv;
  config::CsvOptions csv;           // dataset defaults overridden by event options
  config::XlsxOptions xlsx;
  bool dry_run = false;
  int64_t resume_after_row = 0;     // rows <= this were committed by an earlier owner
  int64_t chunk_rows = 50000;
  int64_t chunk_bytes = 64 << 20;   // a chunk also ends once its rows hold this many bytes
  std::string bookkeeping_schema = "ingestd";
  std::string reject_path;          // reject file to (re)write
  std::map<std::string, std::string> vars;  // $batch_id, $source_system, ...
  bool atomic = false;              // one transaction for everything (dataset or job setting)
  const std::vector<config::Writeback>* writeback = nullptr;  // jobs: set source columns to resolved ids
};

struct LoadResult;
/// Runs inside the last transaction, before FinalStep, for real and dry runs alike (a job's
/// `after` statements and `checks`). Throwing from it fails the batch.
using BeforeFinal = std::function<void(pqxx::transaction_base&, LoadResult&)>;

/// @brief What the load did, cumulated over every chunk committed by this run and earlier ones.
struct LoadResult {
  std::map<std::string, EntityCounts> counts;
  std::vector<std::string> entity_order;
  int64_t rows_read = 0;
  int64_t rows_rejected = 0;
  std::vector<std::string> first_errors;
  bool interrupted = false;
  std::optional<std::string> max_watermark;  // query sources: the largest watermark value read
  nlohmann::json extra = nlohmann::json::object();  // writeback statistics, checks, ...
};

/// Called inside the final transaction (with the final counts) so that the batch's last
/// work, its status, the inbox row and the consumed offset commit together.
using FinalStep = std::function<void(pqxx::transaction_base&, const LoadResult&)>;

/// Loads a file (of the request's format) through the dataset's entities. Throws BatchError for
/// non-retryable batch failures and pqxx exceptions for database failures (the caller sorts them).
LoadResult load_file(pqxx::connection& conn, const LoadRequest& req, Services& svc, const FinalStep& final_step,
                    const BeforeFinal& before_final = nullptr);

/// Loads the rows of a SQL query through the dataset's entities (migration jobs).
LoadResult load_query(pqxx::connection& conn, const LoadRequest& req, const QuerySource& source, Services& svc,
                      const FinalStep& final_step, const BeforeFinal& before_final = nullptr);

}  // namespace ingestd::engine
