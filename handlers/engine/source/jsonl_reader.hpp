// Streaming JSON Lines reader: one object per line, its values picked by key or dotted path into
// the positional fields every record source hands out. Memory is bounded by the line cap.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "handlers/engine/source/record.hpp"

namespace ingestd::engine {

/// @brief One record column of a JSON Lines input: the paths that may fill it, first present wins
/// (a field's `from: [Email, Correo]`). A path is a key, or keys joined by dots (`contact.email`);
/// a key that itself contains the dots matches too.
struct JsonlColumn {
  std::vector<std::string> paths;
};

/// @brief Reads records from a stream of JSON Lines. Values map to text as a field expects it:
/// strings as they are, numbers as their literal text (no float noise), true/false, null and a
/// missing key as empty (NULL), objects and arrays as their JSON text (for a json column).
class JsonlReader {
 public:
  JsonlReader(std::istream& in, std::vector<JsonlColumn> columns, size_t max_line_bytes = 16u << 20);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  /// The header: each column's first path.
  std::vector<std::string> header() const;
  /// The next non-blank line; false at end of input. A line that is not valid JSON, not an
  /// object or longer than max_line_bytes comes back with `error` set (a row error: the rest
  /// of the input goes on); its `raw` is then the line (cut to its first KiB when too long).
  bool next(Record& rec);
  /// Bytes consumed from the stream so far.
  uint64_t bytes_read() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace ingestd::engine
