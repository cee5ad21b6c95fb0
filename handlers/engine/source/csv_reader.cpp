// Streaming RFC 4180 reader. The input is read in fixed blocks, transcoded to UTF-8 when the
// dataset declares another encoding, and scanned with pointers; only the current record and
// one block are ever held in memory.
#include "handlers/engine/source/csv_reader.hpp"

#include <unicode/ucnv.h>
#include <unicode/ucnv_cb.h>
#include <unicode/ucnv_err.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

namespace ingestd::engine {
namespace {

constexpr size_t kBlockBytes = 64u << 10;
constexpr size_t kPivotUnits = 1024;
constexpr size_t kRawKept = 1024;  // of a record over the byte limit: enough to recognise it

enum class State { FieldStart, Unquoted, Quoted, AfterQuote };

/// @brief The record being scanned: where it starts, how far it got, whether it is held.
struct Scan {
  State state = State::FieldStart;
  int64_t line = 0;          // physical line where the record starts
  size_t start = 0;          // its first byte still in `data`
  size_t dropped = 0;        // its bytes already dropped (a record over the limit is not held)
  size_t fields = 0;         // fields begun, kept or not
  int64_t quoted_lines = 0;  // newlines inside its quoted fields
  bool too_long = false;
  std::string kept;          // of a record over the limit: its first kRawKept bytes
};

/// True when the encoding name means the input is already UTF-8 (no transcoding needed).
bool is_utf8_name(const std::string& name) {
  std::string n;
  for (char c : name) {
    if (c == '-' || c == '_' || c == ' ') continue;
    n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return n.empty() || n == "utf8";
}

/// Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(const char* data, size_t len) {
  const auto* s = reinterpret_cast<const unsigned char*>(data);
  const unsigned char* end = s + len;
  while (s < end) {
    // ASCII fast path: eight bytes at a time.
    while (end - s >= 8) {
      uint64_t w;
      std::memcpy(&w, s, 8);
      if (w & 0x8080808080808080ull) break;
      s += 8;
    }
    if (s >= end) break;
    unsigned char c = *s;
    if (c < 0x80) {
      ++s;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - s) <= need) return false;
    if (s[1] < lo || s[1] > hi) return false;
    for (size_t k = 2; k <= need; ++k)
      if ((s[k] & 0xC0) != 0x80) return false;
    s += need + 1;
  }
  return true;
}

struct ConverterCloser {
  void operator()(UConverter* c) const { ucnv_close(c); }
};
using ConverterPtr = std::unique_ptr<UConverter, ConverterCloser>;

/// Substitutes U+FFFD for undecodable input and remembers that it happened, so records that
/// contain the substitute can be flagged instead of silently storing garbage.
struct SubstituteContext {
  bool fired = false;
};

void substitute_and_flag(const void* context, UConverterToUnicodeArgs* args, const char*,
                         int32_t, UConverterCallbackReason reason, UErrorCode* err) {
  if (reason != UCNV_UNASSIGNED && reason != UCNV_ILLEGAL && reason != UCNV_IRREGULAR) return;
  auto* ctx = const_cast<SubstituteContext*>(static_cast<const SubstituteContext*>(context));
  ctx->fired = true;
  static const UChar kReplacement[] = {0xFFFD};
  *err = U_ZERO_ERROR;
  ucnv_cbToUWriteUChars(args, kReplacement, 1, 0, err);
}

}  // namespace

struct CsvReader::Impl {
  std::istream& in;
  char delim;
  char quote;
  size_t max_record;
  size_t max_fields;
  std::string sink;  // fields not kept (past max_fields, or of a record over max_record)

  bool transcode = false;
  ConverterPtr source_cnv;  // the declared encoding
  ConverterPtr utf8_cnv;
  std::unique_ptr<UChar[]> pivot;
  UChar* pivot_source = nullptr;
  UChar* pivot_target = nullptr;
  SubstituteContext subst;

  std::unique_ptr<char[]> block;  // raw bytes as read
  std::string data;               // UTF-8 text not yet consumed (plus the current record)
  size_t pos = 0;                 // next unconsumed byte in `data`
  bool eof = false;               // the stream is exhausted and everything is in `data`
  bool started = false;           // BOM check done
  bool skip_lf = false;           // the previous record ended with CR; a following LF is its pair
  int64_t line = 1;               // physical line at `pos`
  uint64_t bytes = 0;

  Impl(std::istream& in_, const config::CsvOptions& opts, size_t max_fields_)
      : in(in_), delim(opts.delimiter), quote(opts.quote), max_record(size_t(opts.max_row_bytes)),
        max_fields(max_fields_), block(new char[kBlockBytes]) {
    if (is_utf8_name(opts.encoding)) return;
    UErrorCode err = U_ZERO_ERROR;
    source_cnv.reset(ucnv_open(opts.encoding.c_str(), &err));
    if (U_FAILURE(err) || !source_cnv)
      throw CsvError("unknown CSV encoding \"" + opts.encoding +
                         "\" (use utf-8, latin1, windows-1252 or another ICU converter name)",
                     0);
    err = U_ZERO_ERROR;
    utf8_cnv.reset(ucnv_open("UTF-8", &err));
    if (U_FAILURE(err) || !utf8_cnv) throw CsvError("cannot open the UTF-8 converter", 0);
    err = U_ZERO_ERROR;
    ucnv_setToUCallBack(source_cnv.get(), substitute_and_flag, &subst, nullptr, nullptr, &err);
    pivot.reset(new UChar[kPivotUnits]);
    pivot_source = pivot_target = pivot.get();
    transcode = true;
  }

  /// Appends `n` raw bytes (or the final flush when `flush`) to `data`, as UTF-8.
  void append_decoded(const char* src, size_t n, bool flush) {
    if (!transcode) {
      data.append(src, n);
      return;
    }
    const char* source = src;
    const char* source_limit = src + n;
    for (;;) {
      size_t old = data.size();
      size_t room = (source_limit - source) * 3 + 64;
      data.resize(old + room);
      char* target = data.data() + old;
      char* target_limit = target + room;
      UErrorCode err = U_ZERO_ERROR;
      ucnv_convertEx(utf8_cnv.get(), source_cnv.get(), &target, target_limit, &source,
                     source_limit, pivot.get(), &pivot_source, &pivot_target,
                     pivot.get() + kPivotUnits, false, flush, &err);
      data.resize(static_cast<size_t>(target - data.data()));
      if (err == U_BUFFER_OVERFLOW_ERROR) continue;
      if (U_FAILURE(err))
        throw CsvError(std::string("cannot decode the CSV input: ") + u_errorName(err), line);
      return;
    }
  }

  /// Drops the bytes before `keep_from`, then reads until new text arrives or the stream
  /// ends. Returns the number of bytes `data` was shifted by.
  size_t fill(size_t keep_from) {
    if (keep_from > 0) {
      data.erase(0, keep_from);
      pos -= std::min(pos, keep_from);
    }
    size_t before = data.size();
    while (!eof && data.size() == before) {
      in.read(block.get(), static_cast<std::streamsize>(kBlockBytes));
      auto n = static_cast<size_t>(in.gcount());
      if (in.bad()) throw CsvError("read error on the CSV input", line);
      bytes += n;
      if (n == 0 || in.eof()) eof = true;
      append_decoded(block.get(), n, eof);
    }
    return keep_from;
  }

  bool skip_blank_lines();
  std::string* next_field(CsvRecord& rec, Scan& s);
  const char* scan(CsvRecord& rec, Scan& s, std::string*& cur, const char* p, const char* end, bool& done);
  void drop_scanned(Scan& s, std::string*& cur, size_t& i);
  void finish(CsvRecord& rec, const Scan& s, size_t term);
  void refuse(CsvRecord& rec, const Scan& s, std::string code, const std::string& why);
  bool next(CsvRecord& rec);
};

/// Skips the BOM, the LF of a CRLF split across calls and completely empty lines; false at the
/// end of the input.
bool CsvReader::Impl::skip_blank_lines() {
  if (!started) {
    while (!eof && data.size() < 3) fill(0);
    if (data.size() >= 3 && std::memcmp(data.data(), "\xEF\xBB\xBF", 3) == 0) pos = 3;
    started = true;
  }
  for (;;) {
    if (pos >= data.size()) {
      if (eof) return false;
      fill(pos);
      continue;
    }
    const char c = data[pos];
    if (skip_lf) {
      skip_lf = false;
      if (c == '\n') {
        ++pos;
        continue;
      }
    }
    if (c != '\n' && c != '\r') return true;
    ++pos;
    ++line;
    skip_lf = c == '\r';
  }
}

/// The string the next field is read into: the record's own, or `sink` once the record is over
/// the byte limit or has max_fields fields (the rest is counted, not kept).
std::string* CsvReader::Impl::next_field(CsvRecord& rec, Scan& s) {
  if (s.too_long || s.fields >= max_fields) {
    ++s.fields;
    sink.clear();
    return &sink;
  }
  if (rec.fields.size() <= s.fields) rec.fields.emplace_back();
  std::string& f = rec.fields[s.fields++];
  f.clear();
  return &f;
}

/// Runs the RFC 4180 state machine over [p, end); `done` when the record's terminator is
/// reached (then the return value points at it).
const char* CsvReader::Impl::scan(CsvRecord& rec, Scan& s, std::string*& cur, const char* p, const char* end, bool& done) {
  const char d = delim, q = quote;
  while (p < end) {
    switch (s.state) {
      case State::FieldStart:
        if (*p == q && q != '\0') {  // a NUL quote character disables quoting
          ++p;
          s.state = State::Quoted;
        } else {
          s.state = State::Unquoted;
        }
        break;
      case State::Unquoted: {
        const char* b = p;
        while (p < end && *p != d && *p != '\n' && *p != '\r') ++p;
        cur->append(b, p);
        if (p == end) break;
        if (*p != d) {
          done = true;
          return p;
        }
        ++p;
        cur = next_field(rec, s);
        s.state = State::FieldStart;
        break;
      }
      case State::Quoted: {
        const char* qp = static_cast<const char*>(std::memchr(p, q, size_t(end - p)));
        const char* stop = qp ? qp : end;
        cur->append(p, stop);
        s.quoted_lines += std::count(p, stop, '\n');
        p = qp ? qp + 1 : end;
        if (qp) s.state = State::AfterQuote;
        break;
      }
      case State::AfterQuote:
        if (*p == q) {  // doubled quote inside a quoted field
          cur->push_back(q);
          ++p;
          s.state = State::Quoted;
        } else if (*p == d) {
          ++p;
          cur = next_field(rec, s);
          s.state = State::FieldStart;
        } else if (*p == '\n' || *p == '\r') {
          done = true;
          return p;
        } else {
          s.state = State::Unquoted;  // lenient: text after the closing quote is kept
        }
        break;
    }
  }
  return p;
}

/// Before reading more: a record over the byte limit stops being held (its first bytes kept
/// to recognise it), and what is scanned of it is dropped, so it costs no more than a block.
void CsvReader::Impl::drop_scanned(Scan& s, std::string*& cur, size_t& i) {
  if (!s.too_long && i - s.start > max_record) {
    s.kept.assign(data, s.start, kRawKept);
    s.too_long = true;
    cur = &sink;
  }
  if (s.too_long) {
    s.dropped += i - s.start;
    s.start = i;
    sink.clear();
  }
  fill(s.start);
  i -= s.start;
  s.start = 0;
}

/// A record the reader delimited but will not hand out whole: a row error, the input goes on.
void CsvReader::Impl::refuse(CsvRecord& rec, const Scan& s, std::string code, const std::string& why) {
  rec.fields.clear();
  rec.error_code = std::move(code);
  rec.error = "line " + std::to_string(s.line) + ": " + why;
}

void CsvReader::Impl::finish(CsvRecord& rec, const Scan& s, size_t term) {
  const size_t length = s.dropped + (term - s.start);
  rec.line = s.line;
  rec.invalid_utf8 = false;
  rec.error_code.clear();
  rec.error.clear();
  if (s.too_long || length > max_record) {
    rec.raw = (s.too_long ? s.kept : data.substr(s.start, kRawKept)) + "...";
    refuse(rec, s, "row_too_long", std::to_string(length) + " bytes, longer than the limit of " +
                                       std::to_string(max_record) + " (csv.max_row_bytes)");
  } else {
    rec.raw.assign(data.data() + s.start, term - s.start);
    rec.fields.resize(std::min(s.fields, max_fields));
    if (s.fields > max_fields)
      refuse(rec, s, "too_many_fields", std::to_string(s.fields) + " fields, more than the limit of " +
                                            std::to_string(max_fields));
    else if (transcode)
      rec.invalid_utf8 = subst.fired && rec.raw.find("\xEF\xBF\xBD") != std::string::npos;
    else
      rec.invalid_utf8 = !valid_utf8(rec.raw.data(), rec.raw.size());
  }
  line = s.line + s.quoted_lines;
  pos = term;
  if (term < data.size()) {
    ++line;
    skip_lf = data[term] == '\r';
    ++pos;
  }
}

bool CsvReader::Impl::next(CsvRecord& rec) {
  if (!skip_blank_lines()) return false;
  Scan s;
  s.line = line;
  s.start = pos;
  std::string* cur = next_field(rec, s);
  size_t i = pos;
  for (;;) {
    bool done = false;
    const char* base = data.data();
    i = size_t(scan(rec, s, cur, base + i, base + data.size(), done) - base);
    if (done) break;
    if (eof) {
      if (s.state == State::Quoted)
        throw CsvError("line " + std::to_string(s.line) + ": unterminated quoted field at end of file", s.line);
      break;
    }
    drop_scanned(s, cur, i);
  }
  finish(rec, s, i);
  return true;
}

CsvReader::CsvReader(std::istream& in, const config::CsvOptions& opts, size_t max_fields)
    : impl_(new Impl(in, opts, max_fields)) {}

CsvReader::~CsvReader() { delete impl_; }

bool CsvReader::next(CsvRecord& rec) { return impl_->next(rec); }

uint64_t CsvReader::bytes_read() const { return impl_->bytes; }

}  // namespace ingestd::engine
