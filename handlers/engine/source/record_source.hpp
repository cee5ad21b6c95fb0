// The seam for input formats: a stream of records with a header. One implementation per
// format (csv_source, xlsx_source, query_source); the factory picks it by the dataset's format.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

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
  /// The next record; false at the end.
  virtual bool next(Record& rec) = 0;
  /// Input consumed so far, for progress.
  virtual uint64_t bytes_read() const = 0;
};

/// @brief How a file is to be read: the dataset's options, with the event's overrides.
struct FileSourceOptions {
  config::Format format = config::Format::Csv;
  config::CsvOptions csv;
  config::XlsxOptions xlsx;
};

/// True when `format` has a source (ingestd check refuses the formats that do not).
bool has_file_source(config::Format format);

/// Opens a file of the given format and reads its header. Throws BatchError.
std::unique_ptr<RecordSource> open_file_source(const std::string& path, const FileSourceOptions& opts);

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

/// Runs the query (a cursor in a REPEATABLE READ snapshot of its own). Throws BatchError.
std::unique_ptr<QueryRecordSource> open_query_source(const QuerySource& q);

}  // namespace ingestd::engine
