// Normalizers and typed parsing (DESIGN §3). Everything here is pure and thread-safe: the ICU
// objects that are not safe to share are created once per thread.
#include "handlers/engine/normalize.hpp"

#include <phonenumbers/phonenumberutil.h>
#include <unicode/brkiter.h>
#include <unicode/locid.h>
#include <unicode/translit.h>
#include <unicode/uchar.h>
#include <unicode/uniset.h>
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
#include <unordered_map>
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
  out.error = "invalid phone number for region " + n.phone_region;
  return out;
}

/// ICU's word break iterator and the accent-stripping transliterator are not safe to share
/// between threads, and are too costly to build per value: one set per thread.
struct NameTools {
  std::unique_ptr<icu::BreakIterator> words;
  std::unique_ptr<icu::Transliterator> strip_accents;
  /// Names repeat (a few first names and surnames are most of a file), and ICU's title-casing
  /// and transliteration cost microseconds a value: the names this thread normalized, by their
  /// collapsed spelling. Emptied when full, so it stays small (a few MiB) whatever the file.
  std::unordered_map<std::string, Normalized> seen;
  static constexpr size_t kSeenMax = 8192;

  NameTools() {
    UErrorCode err = U_ZERO_ERROR;
    words.reset(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), err));
    if (U_FAILURE(err)) words.reset();
    err = U_ZERO_ERROR;
    strip_accents.reset(icu::Transliterator::createInstance(
        "NFKD; [:Nonspacing Mark:] Remove", UTRANS_FORWARD, err));
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
  if (auto it = tools.seen.find(collapsed); it != tools.seen.end()) return it->second;
  if (tools.seen.size() >= NameTools::kSeenMax) tools.seen.clear();
  icu::UnicodeString u = from_utf8(collapsed);

  icu::UnicodeString title(u);
  title.toTitle(tools.words.get(), icu::Locale::getRoot());

  // Lowercase first so that e.g. U+0130 (İ -> i + U+0307) loses its combining dot too. The
  // root locale's lowercasing, not full case folding: PostgreSQL's lower() with an ICU
  // collation is the same function, so the SQL name_key computes this key from stored values.
  icu::UnicodeString key(u);
  key.toLower(icu::Locale::getRoot());
  if (tools.strip_accents) tools.strip_accents->transliterate(key);

  Normalized out;
  out.value = to_utf8(title);
  // Case folding would also turn ß into ss; lowercasing does not, so that one is done by hand
  // (the SQL name_key does the same).
  key.findAndReplace(icu::UnicodeString(u'\u00DF'), icu::UnicodeString(u"ss"));
  if (!key.isEmpty()) out.key = to_utf8(key);
  tools.seen.emplace(std::move(collapsed), out);
  return out;
}

/// A set of code points as the contents of a PostgreSQL regex bracket in an E'' literal.
std::string pg_bracket(const char* pattern) {
  UErrorCode err = U_ZERO_ERROR;
  icu::UnicodeSet set(icu::UnicodeString(pattern, -1, US_INV), err);
  std::string out;
  auto esc = [](UChar32 c) {
    char buf[16];
    if (c <= 0xFFFF) snprintf(buf, sizeof buf, "\\\\u%04X", unsigned(c));
    else snprintf(buf, sizeof buf, "\\\\U%08X", unsigned(c));
    return std::string(buf);
  };
  for (int32_t i = 0; U_SUCCESS(err) && i < set.getRangeCount(); ++i) {
    const UChar32 a = set.getRangeStart(i), b = set.getRangeEnd(i);
    out += esc(a);
    if (b > a) out += "-" + esc(b);
  }
  return out;
}

}  // namespace

std::optional<std::string> name_key(std::string_view stored) {
  bool plain = !stored.empty() && stored.front() != ' ' && stored.back() != ' ';
  for (size_t i = 0; plain && i < stored.size(); ++i) {
    const char c = stored[i];
    plain = (c >= '!' && c <= '~') || (c == ' ' && stored[i + 1] != ' ');  // back() is no space
  }
  if (!plain) return normalize_name(stored).key;
  std::string key(stored);
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return key;
}

std::string name_key_space_class() { return pg_bracket("[[:White_Space:]\\u200B\\uFEFF]"); }
std::string name_key_marks_class() { return pg_bracket("[:Nonspacing Mark:]"); }

namespace {

Normalized apply(const Normalizer& n, std::string_view raw);

}  // namespace

Normalized normalize(const Normalizer& n, std::string_view raw) {
  Normalized out = apply(n, raw);
  if (!out.error.empty() && !n.invalid_reject) {
    out.nulled = std::move(out.error);
    out.error.clear();
  }
  return out;
}

namespace {

Normalized apply(const Normalizer& n, std::string_view raw) {
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

}  // namespace

std::optional<std::string> field_key(const config::Field& f, const Normalized& n, const std::string& typed_value) {
  return f.type == config::FieldType::Text && n.key ? n.key : std::optional<std::string>(typed_value);
}

}  // namespace ingestd::engine
