// CSV files (RFC 4180, any ICU encoding) as a record source.
#include <sys/stat.h>

#include <fstream>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/csv_reader.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd::engine {

namespace {

class CsvFileSource : public RecordSource {
 public:
  CsvFileSource(const std::string& path, const config::CsvOptions& opts)
      : path_(path), in_(path, std::ios::binary), delimiter_(opts.delimiter) {
    if (!in_) throw BatchError("cannot open " + path);
    if (stat(path.c_str(), &st_) != 0) throw BatchError("cannot stat " + path);
    reader_ = std::make_unique<CsvReader>(in_, opts);
    Record head;
    if (!next(head)) throw BatchError("file is empty: no header row");
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
    if (!more || ++records_ % 4096 == 0) check_unchanged();
    return more;
  }
  uint64_t bytes_read() const override { return reader_->bytes_read(); }

 private:
  void check_unchanged() const {
    struct stat now{};
    if (stat(path_.c_str(), &now) != 0 || now.st_size != st_.st_size || now.st_mtim.tv_sec != st_.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != st_.st_mtim.tv_nsec || now.st_ino != st_.st_ino)
      throw BatchError("file " + path_ + " changed while it was being read (size, time or inode); rows committed "
                       "so far stay in this batch, which can be rolled back");
  }

  std::string path_;
  std::ifstream in_;
  char delimiter_;
  struct stat st_{};
  int64_t records_ = 0;
  std::unique_ptr<CsvReader> reader_;
  std::vector<std::string> header_;
  std::string header_raw_;
};

}  // namespace

bool has_file_source(config::Format format) {
  return format == config::Format::Csv || format == config::Format::Xlsx;
}

std::unique_ptr<RecordSource> open_file_source(const std::string& path, const FileSourceOptions& opts) {
  switch (opts.format) {
    case config::Format::Csv:
      return std::make_unique<CsvFileSource>(path, opts.csv);
    case config::Format::Xlsx:
      return open_xlsx_source(path, opts.xlsx);
    case config::Format::Jsonl:
      break;
  }
  throw BatchError("format " + std::string(config::to_string(opts.format)) + " has no reader in this version of ingestd");
}

}  // namespace ingestd::engine
