// JSON Lines files (plain or compressed) as a record source: the header is the dataset's `from:`
// paths, since the file has none; a line that is no JSON object is a row error (Record::error).
#include <memory>

#include "handlers/engine/errors.hpp"
#include "handlers/engine/source/input_stream.hpp"
#include "handlers/engine/source/jsonl_reader.hpp"
#include "handlers/engine/source/record_source.hpp"

namespace ingestd::engine {

namespace {

class JsonlFileSource : public RecordSource {
 public:
  JsonlFileSource(const std::string& path, const FileSourceOptions& opts)
      : file_(path),
        reader_(file_.stream(), opts.jsonl_columns, size_t(opts.jsonl.max_line_bytes)),
        header_(reader_.header()) {
    if (header_.empty()) throw BatchError("the dataset names no `from:` paths to read from " + path);
  }
  const std::vector<std::string>& header() const override { return header_; }
  std::string header_raw() const override { return ""; }
  RejectLayout reject_layout() const override { return RejectLayout::JsonLines; }
  bool next(Record& rec) override {
    const bool more = reader_.next(rec);
    // As for CSV: the file must stay the one whose hash was verified.
    if (!more || ++records_ % 4096 == 0) file_.check_unchanged();
    return more;
  }
  uint64_t bytes_read() const override { return file_.bytes_read(); }

 private:
  InputFile file_;
  JsonlReader reader_;
  std::vector<std::string> header_;
  int64_t records_ = 0;
};

}  // namespace

std::unique_ptr<RecordSource> open_jsonl_source(const std::string& path, const FileSourceOptions& opts) {
  return std::make_unique<JsonlFileSource>(path, opts);
}

}  // namespace ingestd::engine
