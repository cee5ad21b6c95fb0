// A record as a source hands it out, before any mapping: the unit every input format produces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ingestd::engine {

/// @brief One record as read: its fields (UTF-8) in header order, its original text and where
/// it started. A source that has no text of its own (a query) renders the fields as CSV.
struct Record {
  std::vector<std::string> fields;
  std::string raw;           // original record text (UTF-8) without the line terminator
  int64_t line = 0;          // 1-based physical line where the record starts (0: not a file)
  bool invalid_utf8 = false; // the input's bytes were not valid UTF-8
  int64_t number = 0;  // the source's own row number (an xlsx sheet row); 0: counted 1, 2, ...
  // A record the source could delimit but not read (a JSON line that is not an object, an
  // Excel error cell): the row is rejected with this code and reason, and the input goes on.
  std::string error_code, error;
};

}  // namespace ingestd::engine
