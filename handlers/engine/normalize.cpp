// Normalizers and typed parsing (DESIGN §3). Everything here is pure and thread-safe: the ICU
// objects that are not safe to share are created once per thread.
#include "handlers/engine/normalize.hpp"

#include <phonenumbers/phonenumberutil.h>
#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/translit.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

namespace ingestd::engine {
namespace {

using config::FieldType;
using config::Normalizer;

bool is_space(UChar32 c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  // Zero-width space and BOM are not White_Space but show up as padding in exported files.
  return u_isUWhiteSpace(c) || c == 0x200B || c == 0xFEFF;
}

/// Trims ASCII and Unicode whitespace from both ends of UTF-8 text.
std::string_view trim(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  auto len = static_cast<int32_t>(s.size());
  int32_t b = 0;
  while (b < len) {
    int32_t at = b;
    UChar32 c;
    U8_NEXT(p, at, len, c);
    if (c < 0 || !is_space(c)) break;
    b = at;
  }
  int32_t e = len;
  while (e > b) {
    int32_t at = e;
    UChar32 c;
    U8_PREV(p, b, at, c);
    if (c < 0 || !is_space(c)) break;
    e = at;
  }
  return s.substr(static_cast<size_t>(b), static_cast<size_t>(e - b));
}

/// Trims and turns every run of whitespace inside into one ASCII space.
std::string collapse_spaces(std::string_view s) {
  s = trim(s);
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  auto len = static_cast<int32_t>(s.size());
  bool in_space = false;
  for (int32_t i = 0; i < len;) {
    int32_t start = i;
    UChar32 c;
    U8_NEXT(p, i, len, c);
    if (c >= 0 && is_space(c)) {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.append(s.data() + start, static_cast<size_t>(i - start));
  }
  return out;
}

std::string to_utf8(const icu::UnicodeString& u) {
  std::string out;
  u.toUTF8String(out);
  return out;
}

icu::UnicodeString from_utf8(std::string_view s) {
  return icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
}

Normalized missing() { return {}; }

Normalized same(std::string v) {
  Normalized n;
  n.key = v;
  n.value = std::move(v);
  return n;
}

Normalized normalize_digits(const Normalizer& n, std::string_view raw) {
  std::string d;
  d.reserve(raw.size());
  for (char c : raw)
    if (c >= '0' && c <= '9') d.push_back(c);
  if (d.empty() || static_cast<int64_t>(d.size()) < n.min_digits) return missing();
  return same(std::move(d));
}

Normalized normalize_email(std::string_view raw) {
  std::string e = to_utf8(from_utf8(trim(raw)).toLower(icu::Locale::getRoot()));
  Normalized out;
  size_t at = e.find('@');
  bool ok = at != std::string::npos && at > 0 && e.find('@', at + 1) == std::string::npos;
  if (ok) {
    std::string_view domain = std::string_view(e).substr(at + 1);
    size_t dot = domain.find('.');
    ok = dot != std::string_view::npos && domain.front() != '.' && domain.back() != '.';
  }
  if (ok) {
    const auto* p = reinterpret_cast<const uint8_t*>(e.data());
    auto len = static_cast<int32_t>(e.size());
    for (int32_t i = 0; i < len && ok;) {
      UChar32 c;
      U8_NEXT(p, i, len, c);
      if (c < 0 || is_space(c)) ok = false;
    }
  }
  if (!ok) {
    out.error = "invalid email";
    return out;
  }
  return same(std::move(e));
}

Normalized normalize_phone(const Normalizer& n, std::string_view raw) {
  using i18n::phonenumbers::PhoneNumber;
  using i18n::phonenumbers::PhoneNumberUtil;
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  std::string text(trim(raw));
  if (util.Parse(text, n.phone_region, &number) == PhoneNumberUtil::NO_PARSING_ERROR &&
      util.IsValidNumber(number)) {
    std::string e164;
    util.Format(number, PhoneNumberUtil::E164, &e164);
    return same(std::move(e164));
  }
  Normalized out;
  if (n.phone_invalid_reject) out.error = "invalid phone number for region " + n.phone_region;
  return out;
}

/// ICU's word break iterator and the accent-stripping transliterator are not safe to share
/// between threads, and are too costly to build per value: one set per thread.
struct NameTools {
  std::unique_ptr<icu::BreakIterator> words;
  std::unique_ptr<icu::Transliterator> strip_accents;

  NameTools() {
    UErrorCode err = U_ZERO_ERROR;
    words.reset(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), err));
    if (U_FAILURE(err)) words.reset();
    err = U_ZERO_ERROR;
    strip_accents.reset(icu::Transliterator::createInstance(
        "NFD; [:Nonspacing Mark:] Remove; NFC", UTRANS_FORWARD, err));
    if (U_FAILURE(err)) strip_accents.reset();
  }
};

/// Each thread borrows a set and returns it when it ends: a load reads on a thread of its own,
/// and building the transliterator anew for every load would cost each small event milliseconds.
class NameToolsPool {
 public:
  std::unique_ptr<NameTools> take() {
    std::lock_guard lk(m_);
    if (free_.empty()) return std::make_unique<NameTools>();
    auto t = std::move(free_.back());
    free_.pop_back();
    return t;
  }
  void give(std::unique_ptr<NameTools> t) {
    std::lock_guard lk(m_);
    free_.push_back(std::move(t));
  }

 private:
  std::mutex m_;
  std::vector<std::unique_ptr<NameTools>> free_;
};

NameToolsPool& name_tools_pool() {
  static auto* pool = new NameToolsPool;  // never destroyed: threads may end after static destruction
  return *pool;
}

NameTools& name_tools() {
  struct Lease {
    std::unique_ptr<NameTools> tools = name_tools_pool().take();
    ~Lease() { name_tools_pool().give(std::move(tools)); }
  };
  thread_local Lease lease;
  return *lease.tools;
}

Normalized normalize_name(std::string_view raw) {
  std::string collapsed = collapse_spaces(raw);
  if (collapsed.empty()) return missing();
  NameTools& tools = name_tools();
  icu::UnicodeString u = from_utf8(collapsed);

  icu::UnicodeString title(u);
  title.toTitle(tools.words.get(), icu::Locale::getRoot());

  // Fold first so that e.g. U+0130 (İ -> i + U+0307) loses its combining dot too.
  icu::UnicodeString key(u);
  key.foldCase();
  if (tools.strip_accents) tools.strip_accents->transliterate(key);

  Normalized out;
  out.value = to_utf8(title);
  out.key = to_utf8(key);
  return out;
}

}  // namespace

Normalized normalize(const Normalizer& n, std::string_view raw) {
  using Kind = Normalizer::Kind;
  if (trim(raw).empty()) return missing();
  switch (n.kind) {
    case Kind::None:
      return same(std::string(raw));
    case Kind::Trim:
      return same(std::string(trim(raw)));
    case Kind::Digits:
      return normalize_digits(n, raw);
    case Kind::Email:
      return normalize_email(raw);
    case Kind::Phone:
      return normalize_phone(n, raw);
    case Kind::Name:
      return normalize_name(raw);
    case Kind::Upper:
      return same(to_utf8(from_utf8(trim(raw)).toUpper(icu::Locale::getRoot())));
    case Kind::Lower:
      return same(to_utf8(from_utf8(trim(raw)).toLower(icu::Locale::getRoot())));
  }
  return missing();
}

// ---------------------------------------------------------------------------------------------
// Typed parsing

namespace {

/// The value as it appears in an error message: quoted, long values shortened.
std::string quoted(const std::string& v) {
  constexpr size_t kMax = 80;
  if (v.size() <= kMax) return "\"" + v + "\"";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
  return "\"" + v.substr(0, cut) + "...\"";
}

Parsed fail(std::string msg) {
  Parsed p;
  p.error = std::move(msg);
  return p;
}

Parsed ok(std::string v) {
  Parsed p;
  p.value = std::move(v);
  return p;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

Parsed parse_integer(const std::string& v, int64_t lo, int64_t hi, const char* what,
                     const char* type_name) {
  std::string_view s = v;
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (!all_digits(s))
    return fail(quoted(v) + " is not " + what + " (an optional sign and digits only)");
  // Parse the magnitude as unsigned so that INT64_MIN is representable.
  uint64_t mag = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), mag);
  (void)ptr;
  bool in_range = ec == std::errc();
  int64_t out = 0;
  if (in_range) {
    if (neg) {
      in_range = mag <= static_cast<uint64_t>(INT64_MAX) + 1;
      if (in_range) out = mag == static_cast<uint64_t>(INT64_MAX) + 1 ? INT64_MIN
                                                                      : -static_cast<int64_t>(mag);
    } else {
      in_range = mag <= static_cast<uint64_t>(INT64_MAX);
      if (in_range) out = static_cast<int64_t>(mag);
    }
    in_range = in_range && out >= lo && out <= hi;
  }
  if (!in_range)
    return fail(quoted(v) + " is out of range for " + type_name + " (" + std::to_string(lo) +
                " to " + std::to_string(hi) + ")");
  return ok(std::to_string(out));
}

Parsed parse_numeric(const std::string& v) {
  auto bad = [&] {
    return fail(quoted(v) +
                " is not a number (digits with an optional sign, one '.' or ',' as decimal "
                "separator and an optional exponent)");
  };
  std::string out;
  out.reserve(v.size());
  size_t i = 0, n = v.size();
  if (i < n && (v[i] == '+' || v[i] == '-')) out.push_back(v[i++]);
  size_t mantissa_digits = 0;
  bool separator = false;
  for (; i < n; ++i) {
    char c = v[i];
    if (c >= '0' && c <= '9') {
      ++mantissa_digits;
      out.push_back(c);
    } else if ((c == '.' || c == ',') && !separator) {
      separator = true;
      out.push_back('.');
    } else {
      break;
    }
  }
  if (mantissa_digits == 0) return bad();
  if (i < n && (v[i] == 'e' || v[i] == 'E')) {
    out.push_back('e');
    ++i;
    if (i < n && (v[i] == '+' || v[i] == '-')) out.push_back(v[i++]);
    size_t exp_digits = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; ++i, ++exp_digits) out.push_back(v[i]);
    if (exp_digits == 0) return bad();
  }
  if (i != n) return bad();
  return ok(std::move(out));
}

Parsed parse_bool(const std::string& v) {
  std::string l;
  for (char c : v) l.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
  static const char* const kTrue[] = {"true", "t", "yes", "y", "1", "si", "s\xC3\xAD", "s\xC3\x8D"};
  static const char* const kFalse[] = {"false", "f", "no", "n", "0"};
  for (const char* t : kTrue)
    if (l == t) return ok("t");
  for (const char* f : kFalse)
    if (l == f) return ok("f");
  return fail(quoted(v) + " is not a boolean (true/false, t/f, yes/no, y/n, si/no, 1/0)");
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool valid_date(int y, int m, int d) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  int days = kDays[m - 1] + (m == 2 && leap(y) ? 1 : 0);
  return d <= days;
}

std::string join_formats(const std::vector<std::string>& formats) {
  std::string s;
  for (const auto& f : formats) {
    if (!s.empty()) s += ", ";
    s += f;
  }
  return s;
}

constexpr long kNoOffset = LONG_MIN;

/// strptime with fields preset so that absent directives leave recognisable defaults.
/// Returns where parsing stopped, or nullptr.
const char* parse_tm(const std::string& v, const std::string& format, std::tm& tm) {
  std::memset(&tm, 0, sizeof tm);
  tm.tm_mday = 1;
  tm.tm_isdst = -1;
#ifdef __USE_MISC
  tm.tm_gmtoff = kNoOffset;
#endif
  return strptime(v.c_str(), format.c_str(), &tm);
}

Parsed parse_date(const std::vector<std::string>& formats, const std::string& v) {
  static const std::vector<std::string> kDefault = {"%Y-%m-%d"};
  const auto& fmts = formats.empty() ? kDefault : formats;
  for (const auto& f : fmts) {
    std::tm tm;
    const char* end = parse_tm(v, f, tm);
    if (!end || *end != '\0') continue;
    if (!valid_date(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)) continue;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday);
    return ok(buf);
  }
  return fail(quoted(v) + " is not a date in formats " + join_formats(fmts));
}

/// Parses what may follow the seconds of a timestamp: ".fraction", then "Z" or "±HH[:MM]".
bool parse_time_suffix(const char* s, std::string& fraction, std::string& offset) {
  if (*s == '.') {
    fraction.push_back('.');
    ++s;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') {
      fraction.push_back(*s++);
      ++digits;
    }
    if (digits == 0 || digits > 9) return false;
  }
  if (*s == '\0') return true;
  if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
    offset = "+00:00";
    return true;
  }
  if (*s != '+' && *s != '-') return false;
  char sign = *s++;
  auto two = [&](int& out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return false;
    out = (s[0] - '0') * 10 + (s[1] - '0');
    s += 2;
    return true;
  };
  int hh = 0, mm = 0;
  if (!two(hh)) return false;
  if (*s == ':') {
    ++s;
    if (!two(mm)) return false;
  } else if (*s != '\0' && !two(mm)) {
    return false;
  }
  if (*s != '\0' || hh > 15 || mm > 59) return false;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", sign, hh, mm);
  offset = buf;
  return true;
}

Parsed parse_timestamp(const std::vector<std::string>& formats, const std::string& v) {
  static const std::vector<std::string> kDefault = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"};
  const auto& fmts = formats.empty() ? kDefault : formats;
  for (const auto& f : fmts) {
    std::tm tm;
    const char* end = parse_tm(v, f, tm);
    if (!end) continue;
    std::string fraction, offset;
    if (!parse_time_suffix(end, fraction, offset)) continue;
    if (!valid_date(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)) continue;
    if (tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
        tm.tm_sec > 59)
      continue;
#ifdef __USE_MISC
    // A %z in the format was parsed by strptime itself.
    if (offset.empty() && tm.tm_gmtoff != kNoOffset) {
      long off = tm.tm_gmtoff;
      char sign = off < 0 ? '-' : '+';
      if (off < 0) off = -off;
      char buf[48];
      std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, (off / 3600) % 100, (off / 60) % 60);
      offset = buf;
    }
#endif
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return ok(std::string(buf) + fraction + offset);
  }
  return fail(quoted(v) + " is not a timestamp in formats " + join_formats(fmts) +
              " (optionally followed by Z or +HH:MM)");
}

Parsed parse_json(const std::string& v) {
  try {
    auto parsed = nlohmann::json::parse(v);
    (void)parsed;
  } catch (const nlohmann::json::exception& e) {
    return fail(quoted(v) + " is not valid JSON: " + e.what());
  }
  return ok(v);
}

}  // namespace

Parsed parse_typed(FieldType type, const std::vector<std::string>& formats,
                   const std::optional<std::string>& value) {
  if (!value) return {};
  const std::string& v = *value;
  switch (type) {
    case FieldType::Text:
      return ok(v);
    case FieldType::Int:
      return parse_integer(v, INT32_MIN, INT32_MAX, "an integer", "int");
    case FieldType::BigInt:
      return parse_integer(v, INT64_MIN, INT64_MAX, "an integer", "bigint");
    case FieldType::Numeric:
      return parse_numeric(v);
    case FieldType::Bool:
      return parse_bool(v);
    case FieldType::Date:
      return parse_date(formats, v);
    case FieldType::Timestamp:
      return parse_timestamp(formats, v);
    case FieldType::Json:
      return parse_json(v);
  }
  return ok(v);
}

}  // namespace ingestd::engine
