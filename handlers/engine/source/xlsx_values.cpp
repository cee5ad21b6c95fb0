// How a cell's stored text becomes the text a person sees: numbers without float noise, date
// serials as ISO dates, and which number formats are dates.
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "handlers/engine/source/xlsx_reader.hpp"

namespace ingestd::engine {

namespace {

/// A plain decimal ("-12", "0.1", "3.25") with at most 15 significant digits: Excel's precision,
/// so the text as written is the value.
bool short_decimal(std::string_view v) {
  size_t i = v.size() && v[0] == '-' ? 1 : 0;
  if (i == v.size()) return false;
  int digits = 0, dots = 0;
  bool leading = true;
  for (; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '.') {
      if (++dots > 1) return false;
      continue;
    }
    if (c < '0' || c > '9') return false;
    if (c != '0') leading = false;
    if (!leading) ++digits;
  }
  return dots == 0 || digits <= 15;
}

/// A double as a plain decimal with 15 significant digits, trailing zeros dropped.
std::string plain_decimal(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.14e", d);  // d.dddddddddddddde±XX
  std::string s(buf);
  const size_t e = s.find('e');
  const int exp = std::stoi(s.substr(e + 1));
  const bool neg = s[0] == '-';
  std::string digits;
  for (size_t i = neg ? 1 : 0; i < e; ++i)
    if (s[i] != '.') digits += s[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exp < 0) {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  } else if (size_t(exp) + 1 >= digits.size()) {
    out = digits + std::string(size_t(exp) + 1 - digits.size(), '0');
  } else {
    out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
  }
  if (out == "0") return out;
  return neg ? "-" + out : out;
}

bool parse_double(std::string_view v, double& d) {
  const char* b = v.data();
  const char* e = b + v.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, d);
  return ec == std::errc() && p == e && std::isfinite(d);
}

}  // namespace

std::string column_letters(int column) {
  std::string s;
  for (int c = column + 1; c > 0; c = (c - 1) / 26) s.insert(s.begin(), char('A' + (c - 1) % 26));
  return s;
}

std::string xlsx_number(std::string_view v) {
  if (short_decimal(v)) return std::string(v);
  // Integers written out in full are kept as written, however long (an id typed as a number).
  if (v.find_first_of(".eE") == std::string_view::npos) return std::string(v);
  double d = 0;
  if (!parse_double(v, d)) return std::string(v);
  return plain_decimal(d);
}

std::string xlsx_date(std::string_view v, bool date1904) {
  double serial = 0;
  if (!parse_double(v, serial) || serial < 0 || serial > 2958465.99999) return "";  // 9999-12-31
  double whole = std::floor(serial);
  auto secs = int64_t(std::llround((serial - whole) * 86400.0));
  if (secs >= 86400) {
    whole += 1;
    secs -= 86400;
  }
  using namespace std::chrono;
  // 1900 system: serial 1 is 1900-01-01, and Excel counts a 29 February 1900 that never was
  // (serial 60), so serials from 61 on are days since 1899-12-30.
  sys_days epoch = date1904
                       ? sys_days(year{1904} / January / 1)
                       : (whole >= 61 ? sys_days(year{1899} / December / 30) : sys_days(year{1899} / December / 31));
  const year_month_day ymd(epoch + days(int64_t(whole)));
  char buf[40];
  if (secs == 0)
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()));
  else
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d", int(ymd.year()), unsigned(ymd.month()),
                  unsigned(ymd.day()), int(secs / 3600), int(secs / 60 % 60), int(secs % 60));
  return buf;
}

bool is_date_format(std::string_view code) {
  for (size_t i = 0; i < code.size(); ++i) {
    const char c = code[i];
    if (c == '"') {  // a quoted literal
      const size_t end = code.find('"', i + 1);
      if (end == std::string_view::npos) return false;
      i = end;
    } else if (c == '[') {  // a colour, a condition or a locale: [Red], [>100], [$-409]
      const size_t end = code.find(']', i + 1);
      if (end == std::string_view::npos) return false;
      i = end;
    } else if (c == '\\' || c == '_' || c == '*') {  // an escaped, spacing or fill character
      ++i;
    } else {
      switch (std::tolower(static_cast<unsigned char>(c))) {
        case 'd':
        case 'm':
        case 'y':
        case 'h':
        case 's':
          return true;
        default:
          break;
      }
    }
  }
  return false;
}

}  // namespace ingestd::engine
