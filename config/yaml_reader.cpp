// Strict YAML reading for the config loaders (config/yaml_reader.hpp): problem collection,
// scalar readers, ${VAR} and file:PATH substitution, mappings with fixed keys.
#include "config/yaml_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "config/loader.hpp"
#include "config/redact.hpp"

namespace ingestd::config::detail {

namespace {

bool is_plain(const YAML::Node& n) { return n.Tag() == "?"; }

bool env_name_ok(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

}  // namespace

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

int line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

std::string child(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out = path;
  out += '.';
  out += key;
  return out;
}

std::string at_index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + n.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an empty value";
  }
}

// ---- problems ----------------------------------------------------------------------------

void Reader::problem(int line, const std::string& path, const std::string& what) {
  std::string msg = file_;
  if (line > 0) msg += ":" + std::to_string(line);
  msg += ": ";
  if (!path.empty()) msg += path + ": ";
  msg += what;
  problems_.emplace_back(line, std::move(msg));
}

void Reader::finish() {
  if (problems_.empty()) return;
  std::stable_sort(problems_.begin(), problems_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  out.reserve(problems_.size());
  for (auto& p : problems_) out.push_back(std::move(p.second));
  throw ConfigError(std::move(out));
}

// ---- mappings ----------------------------------------------------------------------------

std::optional<std::vector<Entry>> Reader::entries(const YAML::Node& node,
                                                  const std::string& path) {
  std::vector<Entry> out;
  if (node.IsNull()) return out;
  if (!node.IsMap()) {
    problem(node, path, "expected a mapping, got " + describe(node));
    return std::nullopt;
  }
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // A copy: it-> returns a temporary proxy, so a reference to its key would dangle.
    const YAML::Node k = it->first;
    if (!k.IsScalar()) {
      problem(k, path, "keys must be plain names, got " + describe(k));
      continue;
    }
    if (!seen.insert(k.Scalar()).second) {
      problem(k, child(path, k.Scalar()), "duplicate key; each key may appear once");
      continue;
    }
    out.push_back(Entry{k.Scalar(), k, it->second});
  }
  return out;
}

MapView::MapView(Reader& reader, const YAML::Node& node, std::string path,
                 std::initializer_list<std::string_view> allowed)
    : reader_(reader), node_(node), path_(std::move(path)) {
  auto es = reader.entries(node, path_);
  if (!es) return;
  ok_ = true;
  for (auto& e : *es) {
    if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      reader.problem(e.key_node, child(path_, e.key),
                     names.empty() ? std::string("unknown key; no options are allowed here")
                                   : "unknown key; allowed: " + join(names, ", "));
      continue;
    }
    entries_.push_back(std::move(e));
  }
}

std::optional<std::string> MapView::require_name(std::string_view key, const YAML::Node& at,
                                                 std::string_view why) const {
  if (auto v = get(key)) return reader_.name_text(*v, path(key));
  std::string what = "required key is missing";
  if (!why.empty()) what += " (" + std::string(why) + ")";
  reader_.problem(at, path(key), what);
  return std::nullopt;
}

// ---- scalars -----------------------------------------------------------------------------

std::optional<std::string> Reader::text(const YAML::Node& n, const std::string& path,
                                        std::string_view expected) {
  if (!n.IsScalar()) {
    problem(n, path, "expected " + std::string(expected) + ", got " + describe(n));
    return std::nullopt;
  }
  return substitute(n.Scalar(), n, path);
}

std::optional<std::string> Reader::any_scalar(const YAML::Node& n, const std::string& path) {
  auto v = text(n, path, "a single value");
  if (v && is_plain(n)) {
    if (*v == "True" || *v == "TRUE") *v = "true";
    if (*v == "False" || *v == "FALSE") *v = "false";
  }
  return v;
}

std::optional<std::string> Reader::name_text(const YAML::Node& n, const std::string& path) {
  auto v = text(n, path);
  if (v && v->empty()) {
    problem(n, path, "must not be empty");
    return std::nullopt;
  }
  return v;
}

std::optional<double> Reader::number(const YAML::Node& n, const std::string& path, double min) {
  auto v = text(n, path, "a number");
  if (!v) return std::nullopt;
  double out = 0;
  const char* b = v->data();
  const char* e = b + v->size();
  auto [ptr, ec] = std::from_chars(b, e, out);
  if (v->empty() || ec != std::errc() || ptr != e || !std::isfinite(out)) {
    problem(n, path, "expected a number, got '" + *v + "'");
    return std::nullopt;
  }
  if (out < min) {
    std::ostringstream m;
    m << "expected a number >= " << min << ", got '" << *v << "'";
    problem(n, path, m.str());
    return std::nullopt;
  }
  return out;
}

std::optional<bool> Reader::boolean(const YAML::Node& n, const std::string& path) {
  auto v = text(n, path, "true or false");
  if (!v) return std::nullopt;
  if (*v == "true" || *v == "True" || *v == "TRUE") return true;
  if (*v == "false" || *v == "False" || *v == "FALSE") return false;
  problem(n, path, "expected true or false, got '" + *v + "'");
  return std::nullopt;
}

std::vector<std::string> Reader::string_list(const YAML::Node& n, const std::string& path) {
  std::vector<std::string> out;
  if (!n.IsSequence()) {
    problem(n, path, "expected a list of strings, got " + describe(n));
    return out;
  }
  for (size_t i = 0; i < n.size(); ++i)
    if (auto v = name_text(n[i], at_index(path, i))) out.push_back(std::move(*v));
  return out;
}

std::vector<std::pair<std::string, std::string>> Reader::scalar_map(const YAML::Node& n,
                                                                    const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  auto es = entries(n, path);
  if (!es) return out;
  for (const auto& e : *es) {
    const std::string p = child(path, e.key);
    if (e.value.IsNull()) {
      problem(e.key_node, p, "expected a value, got nothing");
      continue;
    }
    if (auto v = any_scalar(e.value, p)) out.emplace_back(e.key, std::move(*v));
  }
  return out;
}

// ---- substitution ------------------------------------------------------------------------

namespace {

/// The file a `file:PATH` value names, without trailing newlines; nullopt (reported) when
/// it cannot be read.
std::optional<std::string> read_value_file(Reader& r, const std::string& fpath,
                                           const YAML::Node& n, const std::string& path) {
  if (fpath.empty()) {
    r.problem(n, path, "'file:' needs a path, e.g. file:/run/credentials/ingestd/db_url");
    return std::nullopt;
  }
  std::ifstream in(fpath, std::ios::binary);
  if (!in) {
    r.problem(n, path, "cannot read file '" + fpath + "': " + std::strerror(errno));
    return std::nullopt;
  }
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    r.problem(n, path, "cannot read file '" + fpath + "': " + std::strerror(errno));
    return std::nullopt;
  }
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r'))
    content.pop_back();
  return content;
}

}  // namespace

std::optional<std::string> Reader::expand_variables(const std::string& raw, const YAML::Node& n,
                                                    const std::string& path) {
  std::string out;
  bool ok = true;
  size_t i = 0;
  // Only the ${NAME} form is an environment variable: `$batch_id` in on_insert stays a
  // runtime variable for the engine.
  while (true) {
    const size_t start = raw.find("${", i);
    if (start == std::string::npos) {
      out.append(raw, i, std::string::npos);
      break;
    }
    out.append(raw, i, start - i);
    const size_t end = raw.find('}', start + 2);
    if (end == std::string::npos) {
      problem(n, path, "unterminated '${' in '" + raw + "'; write ${NAME}");
      return std::nullopt;
    }
    const std::string name = raw.substr(start + 2, end - start - 2);
    if (!env_name_ok(name)) {
      problem(n, path, "'${" + name + "}' is not a valid environment variable reference");
      ok = false;
    } else if (const char* v = std::getenv(name.c_str())) {
      out += v;
    } else {
      problem(n, path, "environment variable " + name + " is not set");
      ok = false;
    }
    i = end + 1;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> Reader::substitute(const std::string& raw, const YAML::Node& n,
                                              const std::string& path) {
  std::optional<std::string> out = expand_variables(raw, n, path);
  if (!out) return out;
  // file:PATH is read after ${VAR} substitution so "file:${CREDENTIALS_DIRECTORY}/db_url"
  // works with systemd's LoadCredential.
  constexpr std::string_view kFile = "file:";
  if (out->compare(0, kFile.size(), kFile) == 0) {
    out = read_value_file(*this, out->substr(kFile.size()), n, path);
    // a credential file: masked wherever it is printed later (config/redact.hpp)
    if (out) remember_secret(*out);
  }
  if (out && *out != raw) substituted_[raw] = *out;
  return out;
}

void Reader::problem(const YAML::Node& at, const std::string& path, const std::string& what) {
  problem(line_of(at), path, hide_substituted(at, what));
}

std::string Reader::hide_substituted(const YAML::Node& at, std::string what) const {
  if (!at.IsScalar()) return what;
  const auto it = substituted_.find(at.Scalar());
  if (it == substituted_.end() || it->second.empty()) return what;
  const auto replace_all = [&what](const std::string& from, std::string_view to) {
    for (size_t i = what.find(from); i != std::string::npos; i = what.find(from, i + to.size()))
      what.replace(i, from.size(), to);
  };
  replace_all("'" + it->second + "'", "the value of " + it->first + " (not shown)");
  if (it->second.size() >= 4) replace_all(it->second, kRedacted);
  return what;
}

}  // namespace ingestd::config::detail
