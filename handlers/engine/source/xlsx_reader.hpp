// Streaming reader of one worksheet of an .xlsx workbook: libzip for the package, libxml2's
// xmlTextReader for the parts, so a sheet is never held whole in memory (only the shared string
// table is, within a byte budget).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace ingestd::engine {

/// @brief The workbook cannot be read at all (not a workbook, encrypted, no such sheet, a
/// malformed part): fails the batch.
struct XlsxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// @brief What a workbook may cost before it is refused.
struct XlsxLimits {
  // The shared string table is the one part that must sit in memory (cells point into it at
  // random); 128 MiB of text is far beyond what a sheet of people holds and keeps a load
  // within the daemon's memory target.
  size_t shared_strings_bytes = size_t(128) << 20;
  int max_columns = 16384;                  // Excel's own limit (column XFD)
  size_t max_cell_bytes = size_t(1) << 20;  // Excel stops at 32767 characters
};

/// @brief One sheet row that holds at least one value.
struct SheetRow {
  int64_t number = 0;              // the sheet's row number (1-based, as Excel shows it)
  std::vector<std::string> cells;  // by column (A = 0), up to the last cell with a value
  std::string error;               // a cell that holds an Excel error (#DIV/0!, #N/A, ...)
};

/// @brief Rows of one worksheet, in sheet order; empty rows are skipped.
class XlsxReader {
 public:
  /// Opens the workbook at `path` and the sheet `opts` names. Throws XlsxError.
  XlsxReader(const std::string& path, const config::XlsxOptions& opts, XlsxLimits limits = {});
  /// The same over a workbook held in memory (tests, fuzzing). `bytes` must outlive the reader.
  XlsxReader(std::string_view bytes, const config::XlsxOptions& opts, XlsxLimits limits = {});
  ~XlsxReader();
  XlsxReader(const XlsxReader&) = delete;
  XlsxReader& operator=(const XlsxReader&) = delete;

  /// The next row with a value; false at the end of the sheet. Throws XlsxError.
  bool next(SheetRow& row);
  /// The name of the sheet being read.
  const std::string& sheet_name() const;
  /// The workbook's input consumed so far (compressed bytes, estimated), for progress.
  uint64_t bytes_read() const;
  /// Bytes the shared string table holds (text and index), for the whole read.
  size_t shared_strings_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Column letters of a 0-based column index ("A", "Z", "AA").
std::string column_letters(int column);

/// A numeric cell's text without float noise ("5.2987654E7" -> "52987654", "0.1" stays).
std::string xlsx_number(std::string_view v);

/// A date serial as "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS"; empty when it is no date (negative,
/// not a number).
std::string xlsx_date(std::string_view v, bool date1904);

/// True when an Excel number format code shows a date or time (d, m, y, h, s outside quotes,
/// brackets and escapes).
bool is_date_format(std::string_view code);

}  // namespace ingestd::engine
