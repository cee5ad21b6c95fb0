// Excel workbooks (.xlsx) as a record source: one sheet, its header at `header_row`, each later
// row with a value a record numbered by its sheet row, so rejects name the row Excel shows.
#include <sys/stat.h>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/engine/source/record_source.hpp"
#include "handlers/engine/source/xlsx_reader.hpp"

namespace ingestd::engine {

namespace {

/// A value as a CSV field: the reject file of a workbook is CSV.
void append_csv(std::string& out, const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

std::string csv_line(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    append_csv(out, values[i]);
  }
  return out;
}

class XlsxFileSource : public RecordSource {
 public:
  XlsxFileSource(const std::string& path, const config::XlsxOptions& opts) : path_(path) {
    if (stat(path.c_str(), &st_) != 0) throw BatchError("cannot open " + path);
    try {
      reader_ = std::make_unique<XlsxReader>(path, opts);
    } catch (const XlsxError& e) {
      throw BatchError(path + ": " + e.what());
    }
    read_header(opts.header_row);
  }
  const std::vector<std::string>& header() const override { return header_; }
  std::string header_raw() const override { return csv_line(header_); }
  bool next(Record& rec) override;
  uint64_t bytes_read() const override { return reader_->bytes_read(); }
  size_t held_bytes() const override { return reader_->shared_strings_bytes(); }

 private:
  void read_header(int64_t header_row);
  bool next_row() {
    try {
      return reader_->next(row_);
    } catch (const XlsxError& e) {
      throw BatchError(path_ + ": " + e.what());
    }
  }
  void check_unchanged() const { check_file_unchanged(path_, st_); }

  std::string path_;
  struct stat st_ {};
  std::unique_ptr<XlsxReader> reader_;
  SheetRow row_;
  std::vector<std::string> header_;
  int64_t records_ = 0;
};

void XlsxFileSource::read_header(int64_t header_row) {
  const std::string sheet = "sheet '" + reader_->sheet_name() + "'";
  do {
    if (!next_row())
      throw BatchError(path_ + ": " + sheet + " has no header: row " + std::to_string(header_row) +
                       " (header_row) is missing or empty");
  } while (row_.number < header_row);
  if (row_.number != header_row)
    throw BatchError(path_ + ": " + sheet + " has no header: row " + std::to_string(header_row) +
                     " (header_row) is empty; the first row with values is row " + std::to_string(row_.number));
  header_ = std::move(row_.cells);
}

bool XlsxFileSource::next(Record& rec) {
  const bool more = next_row();
  // The hash was checked before reading; a file rewritten meanwhile is not the announced one.
  if (!more || ++records_ % 4096 == 0) check_unchanged();
  if (!more) return false;
  rec.number = row_.number;
  rec.line = row_.number;
  rec.invalid_utf8 = false;
  rec.error = std::move(row_.error);
  // Values right of the header have no column to go to: refused, not dropped.
  if (rec.error.empty() && row_.cells.size() > header_.size())
    for (size_t c = header_.size(); c < row_.cells.size(); ++c)
      if (!row_.cells[c].empty()) {
        rec.error = "cell " + column_letters(int(c)) + std::to_string(row_.number) + " ('" + row_.cells[c] +
                    "') is right of the header's last column " + column_letters(int(header_.size()) - 1);
        break;
      }
  rec.error_code = rec.error.empty() ? "" : "invalid_cell";
  if (row_.cells.size() < header_.size()) row_.cells.resize(header_.size());
  rec.raw = csv_line(row_.cells);
  row_.cells.resize(header_.size());
  rec.fields = std::move(row_.cells);
  return true;
}

}  // namespace

std::unique_ptr<RecordSource> open_xlsx_source(const std::string& path, const config::XlsxOptions& opts) {
  return std::make_unique<XlsxFileSource>(path, opts);
}

}  // namespace ingestd::engine
