// JSON Lines: the input is read in fixed blocks and split at newlines; each line is parsed on
// its own, so a bad line costs only its row. Only the current line and one block are held.
#include "handlers/engine/source/jsonl_reader.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "handlers/engine/source/jsonl_capture.hpp"

namespace ingestd::engine {

namespace {

constexpr size_t kBlockBytes = 64u << 10;
constexpr size_t kRawKept = 1024;  // of a line over the cap: enough to recognise it

bool blank(const char* b, const char* e) {
  for (; b < e; ++b)
    if (*b != ' ' && *b != '\t' && *b != '\r') return false;
  return true;
}

}  // namespace

struct JsonlReader::Impl {
  std::istream& in;
  std::vector<JsonlColumn> columns;
  size_t max_line;
  detail::PathCapture::Paths paths;
  detail::PathCapture capture;
  std::unique_ptr<char[]> block{new char[kBlockBytes]};
  std::string data;  // bytes read and not yet consumed, from `pos`
  size_t pos = 0;
  bool eof = false;
  int64_t line = 0;  // physical lines consumed
  uint64_t bytes = 0;

  Impl(std::istream& in_, std::vector<JsonlColumn> cols, size_t max_line_bytes)
      : in(in_),
        columns(std::move(cols)),
        max_line(max_line_bytes),
        paths(index(columns)),
        capture(paths, columns.size()) {}

  static detail::PathCapture::Paths index(const std::vector<JsonlColumn>& cols) {
    detail::PathCapture::Paths p;
    for (size_t c = 0; c < cols.size(); ++c)
      for (size_t r = 0; r < cols[c].paths.size(); ++r) p[cols[c].paths[r]].push_back({c, int(r)});
    return p;
  }

  /// Drops the consumed bytes and reads one more block; false at end of input.
  bool fill() {
    if (eof) return false;
    data.erase(0, pos);
    pos = 0;
    in.read(block.get(), std::streamsize(kBlockBytes));
    const auto n = size_t(in.gcount());
    bytes += n;
    if (n < kBlockBytes) eof = true;
    data.append(block.get(), n);
    return n > 0;
  }

  /// Skips the rest of a line too long to keep; returns its full length.
  size_t skip_line(size_t seen) {
    for (;;) {
      const char* b = data.data() + pos;
      if (const void* nl = std::memchr(b, '\n', data.size() - pos)) {
        const size_t n = size_t(static_cast<const char*>(nl) - b);
        pos += n + 1;
        return seen + n;
      }
      seen += data.size() - pos;
      pos = data.size();
      if (!fill()) return seen;
    }
  }

  /// The next physical line as [b, e) into `data`, valid until the next call; `too_long` set
  /// (and the line skipped, its first bytes in `kept`) when it exceeds the cap.
  bool next_line(const char*& b, const char*& e, bool& too_long, std::string& kept, size_t& length);
  bool next(Record& rec);
  void reject_long(Record& rec, const std::string& kept, size_t length);
};

bool JsonlReader::Impl::next_line(const char*& b, const char*& e, bool& too_long, std::string& kept, size_t& length) {
  too_long = false;
  size_t checked = 0;  // bytes of this line already known to hold no newline
  for (;;) {
    const char* start = data.data() + pos;
    const size_t avail = data.size() - pos;
    const size_t window = std::min(avail, max_line + 1);
    const void* nl = std::memchr(start + checked, '\n', window - checked);
    checked = window;
    if (nl || (eof && avail <= max_line)) {
      if (!nl && avail == 0) return false;
      b = start;
      e = nl ? static_cast<const char*>(nl) : start + avail;
      pos += size_t(e - start) + (nl ? 1 : 0);
      ++line;
      return true;
    }
    if (avail > max_line) {
      kept.assign(start, std::min(kRawKept, avail));
      length = skip_line(0);
      ++line;
      too_long = true;
      return true;
    }
    fill();
  }
}

void JsonlReader::Impl::reject_long(Record& rec, const std::string& kept, size_t length) {
  for (auto& f : rec.fields) f.clear();
  rec.fields.resize(columns.size());
  rec.raw = kept + "...";
  rec.error_code = "line_too_long";
  rec.error = "line " + std::to_string(line) + ": " + std::to_string(length) + " bytes, longer than the limit of " +
              std::to_string(max_line) + " (jsonl.max_line_bytes)";
}

bool JsonlReader::Impl::next(Record& rec) {
  const char *b = nullptr, *e = nullptr;
  bool too_long = false;
  std::string kept;
  size_t length = 0;
  for (;;) {
    if (!next_line(b, e, too_long, kept, length)) return false;
    if (line == 1 && !too_long && e - b >= 3 && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) b += 3;  // BOM
    if (too_long || !blank(b, e)) break;
  }
  rec.line = line;
  rec.invalid_utf8 = false;
  rec.error_code.clear();
  rec.error.clear();
  if (too_long) {
    reject_long(rec, kept, length);
    return true;
  }
  if (e > b && e[-1] == '\r') --e;
  rec.raw.assign(b, e);
  if (!capture.parse(b, e, rec.fields)) {
    rec.error_code = capture.error_code();
    rec.error = "line " + std::to_string(line) + ": " + capture.error();
  }
  return true;
}

JsonlReader::JsonlReader(std::istream& in, std::vector<JsonlColumn> columns, size_t max_line_bytes)
    : impl_(new Impl(in, std::move(columns), max_line_bytes)) {}

JsonlReader::~JsonlReader() { delete impl_; }

std::vector<std::string> JsonlReader::header() const {
  std::vector<std::string> h;
  for (const auto& c : impl_->columns) h.push_back(c.paths.empty() ? std::string() : c.paths.front());
  return h;
}

bool JsonlReader::next(Record& rec) { return impl_->next(rec); }

uint64_t JsonlReader::bytes_read() const { return impl_->bytes; }

}  // namespace ingestd::engine
