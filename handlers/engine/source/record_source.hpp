// The seam for input formats: a stream of records with a header. One implementation per
// format (csv_source, xlsx_source, query_source); the factory picks it by the dataset's format.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/source/jsonl_reader.hpp"
#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

/// How a source's refused records are written to the reject file (rejects.hpp): its own lines
/// with `_ingestd_row` and `_ingestd_error` appended (CSV), or one JSON object per line.
enum class RejectLayout { Delimited, JsonLines };

/// @brief A stream of records in header order. Throws BatchError for what sinks the whole
/// input (an unreadable file, an unterminated quote, a failed query).
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  /// The column names every record's fields follow.
  virtual const std::vector<std::string>& header() const = 0;
  /// The header as the first line of the reject file.
  virtual std::string header_raw() const = 0;
  /// The separator of the reject file's added columns (`_ingestd_row`, `_ingestd_error`).
  virtual char reject_delimiter() const { return ','; }
  virtual RejectLayout reject_layout() const { return RejectLayout::Delimited; }
  /// The next record; false at the end.
  virtual bool next(Record& rec) = 0;
  /// Input consumed so far, for progress.
  virtual uint64_t bytes_read() const = 0;
  /// Memory the source keeps for the whole file (a workbook's shared strings): the chunks'
  /// budget (processing.chunk_bytes) pays for it.
  virtual size_t held_bytes() const { return 0; }
};

/// @brief How a file is to be read: the dataset's options, with the event's overrides.
struct FileSourceOptions {
  config::Format format = config::Format::Csv;
  config::CsvOptions csv;
  config::JsonlOptions jsonl;
  /// jsonl: the record's columns, one per distinct `from:` of the dataset's fields (the header
  /// a JSON Lines file does not have).
  std::vector<JsonlColumn> jsonl_columns;
  config::XlsxOptions xlsx;
};

/// A dataset's options for its files (the event's overrides are applied by the caller).
FileSourceOptions file_source_options(const config::Dataset& ds);

/// The reject file's name after the batch id: `.rejects.csv`, `.rejects.jsonl`.
std::string reject_file_suffix(config::Format format);

/// True when `format` has a source (ingestd check refuses the formats that do not).
bool has_file_source(config::Format format);

/// Opens a file of the given format (gzip or zstd compressed or not) and reads its header.
/// Throws BatchError.
std::unique_ptr<RecordSource> open_file_source(const std::string& path, const FileSourceOptions& opts);

/// JSON Lines (jsonl_source.cpp); open_file_source picks it for format jsonl.
std::unique_ptr<RecordSource> open_jsonl_source(const std::string& path, const FileSourceOptions& opts);
/// Opens one sheet of an .xlsx workbook (xlsx_source.cpp). Throws BatchError.
std::unique_ptr<RecordSource> open_xlsx_source(const std::string& path, const config::XlsxOptions& opts);

/// @brief Rows of a SQL query, read through a cursor on its own connection and snapshot.
struct QuerySource {
  std::string url;        // database to read (the target's or a configured source)
  std::string sql;        // `:watermark` is bound as a parameter
  std::optional<std::string> watermark;  // value bound to :watermark
  std::string watermark_column;          // column whose maximum becomes the next watermark
  int64_t fetch_rows = 10000;
};

/// @brief A query's records, and the largest watermark value it has handed out.
class QueryRecordSource : public RecordSource {
 public:
  virtual const std::optional<std::string>& max_watermark() const = 0;
};

/// A job's source query as it is sent: `:watermark` becomes the parameter $1 (`has_param`).
std::string watermark_as_parameter(const std::string& sql, bool& has_param);

/// Runs the query (a cursor in a REPEATABLE READ snapshot of its own). Throws BatchError.
std::unique_ptr<QueryRecordSource> open_query_source(const QuerySource& q);

}  // namespace ingestd::engine
