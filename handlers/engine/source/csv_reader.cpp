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

  Impl(std::istream& in_, const config::CsvOptions& opts, size_t max_record_bytes)
      : in(in_), delim(opts.delimiter), quote(opts.quote), max_record(max_record_bytes),
        block(new char[kBlockBytes]) {
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

  [[noreturn]] void too_long(int64_t rec_line) const {
    throw CsvError("line " + std::to_string(rec_line) + ": record longer than " +
                       std::to_string(max_record) +
                       " bytes (an unterminated quote, or raise the record size limit)",
                   rec_line);
  }

  bool next(CsvRecord& rec);
};

bool CsvReader::Impl::next(CsvRecord& rec) {
  if (!started) {
    while (!eof && data.size() < 3) fill(0);
    if (data.size() >= 3 && std::memcmp(data.data(), "\xEF\xBB\xBF", 3) == 0) pos = 3;
    started = true;
  }

  // Skip the LF of a CRLF split across calls and completely empty lines.
  for (;;) {
    if (pos >= data.size()) {
      if (eof) return false;
      fill(pos);
      continue;
    }
    char c = data[pos];
    if (skip_lf) {
      skip_lf = false;
      if (c == '\n') {
        ++pos;
        continue;
      }
    }
    if (c == '\n') {
      ++pos;
      ++line;
    } else if (c == '\r') {
      ++pos;
      ++line;
      skip_lf = true;
    } else {
      break;
    }
  }

  enum class State { FieldStart, Unquoted, Quoted, AfterQuote };
  State state = State::FieldStart;
  const int64_t rec_line = line;
  size_t rs = pos;  // record start in `data`
  size_t i = pos;   // scan position in `data`
  size_t nf = 0;    // fields in use in rec.fields
  int64_t quoted_lines = 0;

  auto new_field = [&]() -> std::string& {
    if (rec.fields.size() <= nf) rec.fields.emplace_back();
    std::string& f = rec.fields[nf++];
    f.clear();
    return f;
  };
  std::string* cur = &new_field();
  const char d = delim, q = quote;
  size_t term = 0;  // index of the terminator (or data.size() at EOF)
  bool done = false;

  while (!done) {
    const char* base = data.data();
    const char* p = base + i;
    const char* end = base + data.size();
    while (p < end && !done) {
      switch (state) {
        case State::FieldStart:
          if (*p == q && q != '\0') {  // a NUL quote character disables quoting
            ++p;
            state = State::Quoted;
          } else {
            state = State::Unquoted;
          }
          break;
        case State::Unquoted: {
          const char* s = p;
          while (p < end && *p != d && *p != '\n' && *p != '\r') ++p;
          cur->append(s, p);
          if (p == end) break;
          if (*p == d) {
            ++p;
            cur = &new_field();
            state = State::FieldStart;
          } else {
            term = static_cast<size_t>(p - base);
            done = true;
          }
          break;
        }
        case State::Quoted: {
          const char* qp = static_cast<const char*>(std::memchr(p, q, end - p));
          const char* stop = qp ? qp : end;
          cur->append(p, stop);
          quoted_lines += std::count(p, stop, '\n');
          if (qp) {
            p = qp + 1;
            state = State::AfterQuote;
          } else {
            p = end;
          }
          break;
        }
        case State::AfterQuote:
          if (*p == q) {  // doubled quote inside a quoted field
            cur->push_back(q);
            ++p;
            state = State::Quoted;
          } else if (*p == d) {
            ++p;
            cur = &new_field();
            state = State::FieldStart;
          } else if (*p == '\n' || *p == '\r') {
            term = static_cast<size_t>(p - base);
            done = true;
          } else {
            state = State::Unquoted;  // lenient: text after the closing quote is kept
          }
          break;
      }
    }
    if (done) break;
    i = static_cast<size_t>(p - base);
    if (i - rs > max_record) too_long(rec_line);
    if (eof) {
      if (state == State::Quoted)
        throw CsvError("line " + std::to_string(rec_line) +
                           ": unterminated quoted field at end of file",
                       rec_line);
      term = data.size();
      break;
    }
    size_t shift = fill(rs);
    rs -= shift;
    i -= shift;
  }

  if (term - rs > max_record) too_long(rec_line);
  rec.fields.resize(nf);
  rec.raw.assign(data.data() + rs, term - rs);
  rec.line = rec_line;
  if (transcode) {
    rec.invalid_utf8 = subst.fired && rec.raw.find("\xEF\xBF\xBD") != std::string::npos;
  } else {
    rec.invalid_utf8 = !valid_utf8(rec.raw.data(), rec.raw.size());
  }
  line = rec_line + quoted_lines;
  if (term < data.size()) {
    ++line;
    if (data[term] == '\r') skip_lf = true;
    pos = term + 1;
  } else {
    pos = term;
  }
  return true;
}

CsvReader::CsvReader(std::istream& in, const config::CsvOptions& opts, size_t max_record_bytes)
    : impl_(new Impl(in, opts, max_record_bytes)) {}

CsvReader::~CsvReader() { delete impl_; }

bool CsvReader::next(CsvRecord& rec) { return impl_->next(rec); }

uint64_t CsvReader::bytes_read() const { return impl_->bytes; }

}  // namespace ingestd::engine
