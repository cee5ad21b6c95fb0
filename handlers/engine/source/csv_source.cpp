// CSV files (RFC 4180, any ICU encoding, plain or compressed) as a record source, and the factory
// that picks a file's source by the dataset's format.
#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/csv_reader.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd::engine {

namespace {

class CsvFileSource : public RecordSource {
 public:
  CsvFileSource(const std::string& path, const config::CsvOptions& opts) : file_(path), delimiter_(opts.delimiter) {
    reader_ = std::make_unique<CsvReader>(file_.stream(), opts);
    Record head;
    if (!next(head)) throw BatchError("file is empty: no header row");
    // A header the reader would not hold (over csv.max_row_bytes, over kMaxCsvFields columns)
    // leaves no columns to map rows to.
    if (!head.error.empty()) throw BatchError("header " + head.error);
    header_ = std::move(head.fields);
    header_raw_ = std::move(head.raw);
  }
  const std::vector<std::string>& header() const override { return header_; }
  std::string header_raw() const override { return header_raw_; }
  char reject_delimiter() const override { return delimiter_; }
  bool next(Record& rec) override {
    bool more = false;
    try {
      more = reader_->next(rec);
    } catch (const CsvError& e) {
      throw BatchError(std::string("line ") + std::to_string(e.line) + ": " + e.what());
    }
    // The hash was checked before reading; a file rewritten meanwhile is not the file that
    // was announced. Checked every few thousand records and at the end.
    if (!more || ++records_ % 4096 == 0) file_.check_unchanged();
    return more;
  }
  // of the file as stored (compressed or not), to compare with its size
  uint64_t bytes_read() const override { return file_.bytes_read(); }

 private:
  InputFile file_;
  char delimiter_;
  int64_t records_ = 0;
  std::unique_ptr<CsvReader> reader_;
  std::vector<std::string> header_;
  std::string header_raw_;
};

}  // namespace

FileSourceOptions file_source_options(const config::Dataset& ds) {
  FileSourceOptions o;
  o.format = ds.format;
  o.csv = ds.csv;
  o.jsonl = ds.jsonl;
  o.xlsx = ds.xlsx;
  // One column per distinct `from:` list; the row builder finds each field's column by the
  // list's first name, and the JSONL reader fills it from whichever path a line has.
  for (const auto& ent : ds.entities)
    for (const auto& f : ent.fields) {
      if (f.from.empty() || f.from.front().starts_with('$')) continue;
      bool known = false;
      for (const auto& c : o.jsonl_columns) known |= c.paths.front() == f.from.front();
      if (!known) o.jsonl_columns.push_back(JsonlColumn{f.from});
    }
  return o;
}

std::string reject_file_suffix(config::Format format) {
  return format == config::Format::Jsonl ? ".rejects.jsonl" : ".rejects.csv";
}

bool has_file_source(config::Format format) {
  return format == config::Format::Csv || format == config::Format::Jsonl || format == config::Format::Xlsx;
}

std::unique_ptr<RecordSource> open_file_source(const std::string& path, const FileSourceOptions& opts) {
  switch (opts.format) {
    case config::Format::Csv:
      return std::make_unique<CsvFileSource>(path, opts.csv);
    case config::Format::Jsonl:
      return open_jsonl_source(path, opts);
    case config::Format::Xlsx:
      return open_xlsx_source(path, opts.xlsx);
  }
  throw BatchError("format " + std::string(config::to_string(opts.format)) + " has no reader in this version of ingestd");
}

}  // namespace ingestd::engine
