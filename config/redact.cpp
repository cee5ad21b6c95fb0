// Masking secrets in text on its way out (config/redact.hpp).
#include "config/redact.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace ingestd::config {

namespace {

std::mutex g_mu;
std::set<std::string, std::less<>> g_secrets;    // guarded by g_mu: masked wherever they occur
std::set<std::string, std::less<>> g_passwords;  // guarded by g_mu: connection strings' passwords,
                                                 // whose quoted pieces are masked too

/// Shorter remembered secrets are masked only where a pattern finds them: replacing every
/// occurrence of "pw" would garble every message.
constexpr size_t kMinRemembered = 4;
/// A quoted fragment this long that is part of a secret is masked (libpq quotes pieces of a
/// malformed URL: `invalid integer value "SEC" for connection option "port"`).
constexpr size_t kMinFragment = 3;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

bool key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// True when the key written just before position `eq` (an '=') names a secret.
bool secret_key_before(std::string_view text, size_t eq) {
  size_t e = eq;
  while (e > 0 && text[e - 1] == ' ') --e;
  size_t b = e;
  while (b > 0 && key_char(text[b - 1])) --b;
  const std::string key = lower(text.substr(b, e - b));
  return ends_with(key, "password") || ends_with(key, "passwd") || ends_with(key, "secret");
}

/// True when `text` at `i` is whitespace followed by `word=` (the next keyword of a conninfo).
bool next_keyword_at(std::string_view text, size_t i) {
  if (!std::isspace(static_cast<unsigned char>(text[i]))) return false;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t word = i;
  while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) ++i;
  while (i < text.size() && text[i] == ' ') ++i;
  return i > word && i < text.size() && text[i] == '=';
}

/// The end of the value starting at `b` (after `key=`): a quoted value to its closing quote;
/// otherwise up to `&`, a delimiter of the surrounding text, or — in a conninfo, where a
/// malformed value may hold spaces — the next `word=`.
size_t value_end(std::string_view text, size_t b, bool conninfo) {
  if (b < text.size() && text[b] == '\'') {
    size_t i = b + 1;
    while (i < text.size() && text[i] != '\'') i += text[i] == '\\' ? 2 : 1;
    return std::min(i + 1, text.size());
  }
  size_t i = b;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '&') break;
    if (conninfo ? next_keyword_at(text, i) : (std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == ',' || c == ';'))
      break;
  }
  return i;
}

/// [begin, end) of every secret value found by its key (`password=…`, `sasl.password=…`).
std::vector<std::pair<size_t, size_t>> keyword_values(std::string_view text, bool conninfo) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t eq = text.find('='); eq != std::string_view::npos; eq = text.find('=', eq + 1)) {
    if (!secret_key_before(text, eq)) continue;
    size_t b = eq + 1;
    while (b < text.size() && text[b] == ' ') ++b;
    const size_t e = value_end(text, b, conninfo);
    if (e > b) out.emplace_back(b, e);
    eq = std::max(eq, e == 0 ? 0 : e - 1);
  }
  return out;
}

/// [begin, end) of the password of every `scheme://user:PASSWORD@` in `text`. In a conninfo the
/// last '@' ends it (a malformed password may hold '/', '@' or spaces); in other text the
/// first delimiter after the URI does.
std::vector<std::pair<size_t, size_t>> uri_passwords(std::string_view text, bool conninfo) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t p = text.find("://"); p != std::string_view::npos; p = text.find("://", p + 3)) {
    const size_t start = p + 3;
    size_t end = text.size();
    if (!conninfo) end = std::min(end, text.find_first_of(" \t\n\"'", start));
    const size_t at = text.substr(0, end).rfind('@');
    if (at == std::string_view::npos || at < start) continue;
    const size_t colon = text.find(':', start);
    if (colon < at) out.emplace_back(colon + 1, at);
  }
  return out;
}

/// `text` with the given ranges (sorted by begin, possibly overlapping) replaced by kRedacted.
std::string mask_ranges(std::string_view text, std::vector<std::pair<size_t, size_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::string out;
  size_t at = 0;
  for (const auto& [b, e] : ranges) {
    if (e <= at) continue;
    out.append(text.substr(at, std::max(b, at) - at));
    out += kRedacted;
    at = e;
  }
  out.append(text.substr(at));
  return out;
}

/// Every remembered secret of kMinRemembered bytes or more replaced, wherever it occurs.
void mask_remembered(std::string& s) {
  std::lock_guard lk(g_mu);
  for (const auto& secret : g_secrets) {
    if (secret.size() < kMinRemembered) continue;
    for (size_t i = s.find(secret); i != std::string::npos; i = s.find(secret, i + kRedacted.size()))
      s.replace(i, secret.size(), kRedacted);
  }
}

/// Every double-quoted fragment that is part of a remembered password replaced. (Not of whole
/// `file:` values: a URL's host or database name quoted in an error is no secret.)
void mask_quoted_fragments(std::string& s) {
  std::lock_guard lk(g_mu);
  if (g_passwords.empty()) return;
  for (size_t q = s.find('"'); q != std::string::npos;) {
    const size_t close = s.find('"', q + 1);
    if (close == std::string::npos) break;
    const std::string frag = s.substr(q + 1, close - q - 1);
    const bool secret_part = frag.size() >= kMinFragment &&
                             std::any_of(g_passwords.begin(), g_passwords.end(),
                                         [&](const std::string& x) { return x.find(frag) != std::string::npos; });
    if (secret_part) s.replace(q + 1, frag.size(), kRedacted);
    q = s.find('"', q + 1 + (secret_part ? kRedacted.size() : frag.size()) + 1);
  }
}

}  // namespace

void remember_secret(std::string_view value) {
  if (value.empty()) return;
  std::lock_guard lk(g_mu);
  g_secrets.emplace(value);
}

namespace {

void remember_password(std::string_view value) {
  if (value.empty()) return;
  remember_secret(value);
  std::lock_guard lk(g_mu);
  g_passwords.emplace(value);
}

}  // namespace

void remember_conninfo_secret(std::string_view conninfo) {
  for (const auto& [b, e] : uri_passwords(conninfo, true)) remember_password(conninfo.substr(b, e - b));
  for (const auto& [b, e] : keyword_values(conninfo, true)) {
    std::string_view v = conninfo.substr(b, e - b);
    if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
    remember_password(v);
  }
  // The password as libpq reads it (percent-decoded, unquoted), when it can read the string.
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(std::string(conninfo).c_str(), &err);
  if (err) PQfreemem(err);
  if (!opts) return;
  for (PQconninfoOption* o = opts; o->keyword; ++o)
    if (std::string_view(o->keyword) == "password" && o->val) remember_password(o->val);
  PQconninfoFree(opts);
}

bool secret_kafka_property(std::string_view name) {
  const std::string n = lower(name);
  return ends_with(n, "password") || ends_with(n, "secret") || n == "ssl.key.pem" || n == "ssl_key" ||
         n == "sasl.oauthbearer.config";
}

std::string redact(std::string_view text) {
  std::string s(text);
  mask_remembered(s);
  mask_quoted_fragments(s);
  auto ranges = uri_passwords(s, false);
  for (auto& r : keyword_values(s, false)) ranges.push_back(r);
  if (ranges.empty()) return s;
  return mask_ranges(s, std::move(ranges));
}

}  // namespace ingestd::config
