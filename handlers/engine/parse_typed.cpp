// Typed parsing (DESIGN §3): a normalized value into PostgreSQL's input form, or a row error
// naming the value.
#include "handlers/engine/normalize.hpp"

#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

namespace ingestd::engine {

using config::FieldType;

std::string quoted_value(const std::string& v) {
  constexpr size_t kMax = 80;
  if (v.size() <= kMax) return "\"" + v + "\"";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
  return "\"" + v.substr(0, cut) + "...\" (" + std::to_string(v.size()) + " bytes)";
}

namespace {

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
    return fail(quoted_value(v) + " is not " + what + " (an optional sign and digits only)");
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
    return fail(quoted_value(v) + " is out of range for " + type_name + " (" + std::to_string(lo) +
                " to " + std::to_string(hi) + ")");
  return ok(std::to_string(out));
}

Parsed parse_numeric(const std::string& v) {
  auto bad = [&] {
    return fail(quoted_value(v) +
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
  return fail(quoted_value(v) + " is not a boolean (true/false, t/f, yes/no, y/n, si/no, 1/0)");
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
  return fail(quoted_value(v) + " is not a date in formats " + join_formats(fmts));
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
  return fail(quoted_value(v) + " is not a timestamp in formats " + join_formats(fmts) +
              " (optionally followed by Z or +HH:MM)");
}

Parsed parse_json(const std::string& v) {
  try {
    auto parsed = nlohmann::json::parse(v);
    (void)parsed;
  } catch (const nlohmann::json::exception& e) {
    return fail(quoted_value(v) + " is not valid JSON: " + e.what());
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
