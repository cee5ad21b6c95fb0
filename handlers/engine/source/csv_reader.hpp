// Streaming RFC 4180 reader: one record at a time, memory bounded by csv.max_row_bytes.
#pragma once

#include <cstdint>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

/// Fields a record may have (Excel's own column limit): a record with more is a row error, a
/// header with more fails the batch; either way no vector of them is built.
inline constexpr size_t kMaxCsvFields = 16384;

/// @brief A file-level CSV error (unterminated quote, undecodable encoding): fails the batch.
struct CsvError : std::runtime_error {
  int64_t line;
  CsvError(const std::string& what, int64_t line_) : std::runtime_error(what), line(line_) {}
};

/// A CSV record is a Record (source/record.hpp): fields, original text, starting line.
using CsvRecord = Record;

/// @brief Reads records from a stream; the header is just the first record.
class CsvReader {
 public:
  CsvReader(std::istream& in, const config::CsvOptions& opts, size_t max_fields = kMaxCsvFields);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  /// Reads the next record; false at end of input. A record longer than opts.max_row_bytes
  /// (skipped to its end, minding quotes, without being held: `raw` is its first KiB) or with
  /// more than max_fields fields comes back with `error` set and no fields: a row error, the
  /// input goes on. Throws CsvError on what cannot be attributed to one row (an unterminated
  /// quoted field at EOF, an unknown encoding).
  bool next(CsvRecord& rec);
  /// Bytes consumed from the underlying stream so far (for progress).
  uint64_t bytes_read() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ingestd::engine
