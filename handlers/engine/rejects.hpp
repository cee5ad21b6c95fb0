// Where refused rows go (DESIGN §5 rule 8): row_errors in the bookkeeping schema, and the
// reject file — the original line plus `_ingestd_row` and `_ingestd_error` — next to it. For
// JSON Lines input the reject file is JSON Lines too: {"_ingestd_row", "_ingestd_error",
// "_ingestd_line"} per refused line, the line as a string (it may not be valid JSON).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include <pqxx/pqxx>

#include "handlers/engine/row.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd::engine {

/// @brief The batch's reject file.
class RejectWriter {
 public:
  /// `group`: the group the file is given to (files.rejects_group), "" = the process's own.
  RejectWriter(std::string path, char delimiter, RejectLayout layout = RejectLayout::Delimited, std::string group = "")
      : path_(std::move(path)), delim_(delimiter), layout_(layout), group_(std::move(group)) {}
  /// Opens the file, created 0640 (it holds personal data: never world-readable) and given to
  /// the group; `truncate` starts it anew (with the header line when delimited).
  void open(const std::string& header_raw, bool truncate);
  void write(int64_t row, const std::string& raw, const std::string& reason);
  /// Appends a chunk's rejects (after the chunk committed).
  void write(const RowErrors& errors);
  void flush() { out_.flush(); }
  /// Rewrites the file from row_errors: on resume, lines a crashed owner wrote after its last
  /// commit would otherwise appear twice.
  void rebuild(pqxx::transaction_base& tx, const std::string& row_errors_table, const std::string& batch_id,
               const std::string& header_raw);

 private:
  std::string path_;
  char delim_;
  RejectLayout layout_;
  std::string group_;
  std::ofstream out_;
};

/// Writes a chunk's rejects into `row_errors_table` (COPY), inside the chunk's transaction.
void store_row_errors(pqxx::transaction_base& tx, const std::string& row_errors_table, const std::string& batch_id,
                      const RowErrors& errors);

}  // namespace ingestd::engine
