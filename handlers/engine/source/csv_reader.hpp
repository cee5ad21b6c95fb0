// Streaming RFC 4180 reader: one record at a time, memory bounded by the longest record.
#pragma once

#include <cstdint>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

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
  CsvReader(std::istream& in, const config::CsvOptions& opts, size_t max_record_bytes = 64u << 20);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  /// Reads the next record; false at end of input. Throws CsvError on malformed input
  /// that cannot be attributed to one row (unterminated quoted field at EOF, a record longer
  /// than max_record_bytes, an unknown encoding).
  bool next(CsvRecord& rec);
  /// Bytes consumed from the underlying stream so far (for progress).
  uint64_t bytes_read() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ingestd::engine
