// A chunk of rows on its way from a source to the database, and the rejects it collected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ingestd::engine {

/// @brief One row of the chunk: its values per entity and field, already normalized and typed.
struct Row {
  int64_t number = 0;
  std::string raw;
  std::vector<std::vector<std::optional<std::string>>> values;    // [entity][field]
  std::vector<std::vector<std::optional<std::string>>> keys;      // [entity][field]
  std::vector<std::optional<std::string>> record_ids;             // [entity], after resolution
  std::vector<bool> in_review;                                    // [entity]
  std::vector<std::vector<std::optional<std::string>>> deferred;  // [entity][field] lookup key left for later
  std::vector<std::string> source;  // source columns a writeback needs, by writeback value index
  bool rejected = false;
};

/// A row error's message is cut to this many bytes (values in it are shortened already).
inline constexpr size_t kMaxRowErrorMessage = 1000;
/// Of a refused row, ingestd.row_errors keeps this many bytes (the reject file keeps it whole).
inline constexpr size_t kMaxStoredRowBytes = 64 << 10;

/// @brief One reason a row was refused.
struct RowError {
  int64_t row;
  std::string field, code, message, raw;
  bool warning = false;  // the row loaded; a value was set to NULL (`invalid: null`)
};

/// @brief The rejects of one chunk, gathered where the chunk is read or merged.
struct RowErrors {
  std::vector<RowError> list;
  int64_t rows = 0;                // rows rejected (a row may have several errors)
  std::vector<std::string> first;  // the first few, for the result message: codes, no values
};

/// @brief Rows read together and committed together (rule 3).
struct Chunk {
  std::vector<Row> rows;
  RowErrors errors;
  uint64_t bytes = 0;  // of the source, once the chunk was read
  bool last = false;
};

/// Bytes a built row holds (its text, values and keys, and the errors added to `errors` from
/// index `errors_from` on): what processing.chunk_bytes counts.
size_t held_bytes(const Row& row, const RowErrors& errors, size_t errors_from);

/// Invalid UTF-8 replaced by U+FFFD: row_errors is text, and one bad byte must not sink the file.
std::string scrub_utf8(const std::string& s);

/// Notes that `row` loaded without a value of `field` (`invalid: null`): row_errors keeps it,
/// the reject file does not (the row is not rejected).
void warn(RowErrors& errors, const Row& row, const std::string& field, const std::string& code,
          const std::string& message);

/// Refuses `row` for `field` (may be empty) with a code and a message a person can act on. The
/// message (it may quote the value) goes to row_errors and the reject file only; results and
/// /status get "row N, field: code" and `shown`, a detail without values (issue 16 item 6).
void reject(RowErrors& errors, Row& row, const std::string& field, const std::string& code, const std::string& message,
            const std::string& shown = "");

}  // namespace ingestd::engine
