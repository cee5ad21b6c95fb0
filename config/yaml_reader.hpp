// Internal to config/: reads YAML strictly for the loaders (loader.cpp, load_dataset.cpp,
// load_job.cpp). A Reader collects every problem with file:line and key path and substitutes
// ${VAR} and file:PATH in scalars; a MapView is a mapping whose keys the schema fixes.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ingestd::config::detail {

std::string join(const std::vector<std::string>& items, std::string_view sep);
/// The key names of a map, joined by ", ", or "none" when it is empty.
template <class Map>
std::string names_or_none(const Map& m) {
  std::vector<std::string> names;
  for (const auto& kv : m) names.push_back(kv.first);
  return names.empty() ? std::string("none") : join(names, ", ");
}

/// 1-based line of a node, 0 when it has none.
int line_of(const YAML::Node& n);
/// "a.b" from "a" and "b"; just the key at the top.
std::string child(const std::string& path, std::string_view key);
/// "a[3]".
std::string at_index(const std::string& path, size_t i);
/// How a node that had the wrong shape looks, for "expected X, got Y" messages.
std::string describe(const YAML::Node& n);

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

/// Allowed words of a key and what each one means.
template <class E>
using Words = std::vector<std::pair<std::string_view, E>>;

class MapView;

/// Collects problems ("FILE:LINE: key.path: what") and reads scalars, lists and mappings.
/// Readers return nullopt (or an empty result) after reporting what was wrong.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  void problem(int line, const std::string& path, const std::string& what);
  /// A problem with the node `at`: a value it took from ${VAR} or file:PATH is not repeated
  /// (it may be a secret put in the wrong key), the reference as written is named instead.
  void problem(const YAML::Node& at, const std::string& path, const std::string& what);
  /// Throws ConfigError when anything was reported, problems in file order.
  void finish();

  /// Entries of a mapping in document order; reports non-mappings, non-scalar and duplicate keys.
  /// A null node is an empty mapping.
  std::optional<std::vector<Entry>> entries(const YAML::Node& node, const std::string& path);

  /// A scalar's text after ${VAR} and file:PATH substitution.
  std::optional<std::string> text(const YAML::Node& n, const std::string& path,
                                  std::string_view expected = "a string");
  /// A scalar of any YAML type as a string; booleans are spelled true/false.
  std::optional<std::string> any_scalar(const YAML::Node& n, const std::string& path);
  /// A string that must not be empty.
  std::optional<std::string> name_text(const YAML::Node& n, const std::string& path);
  template <class Int>
  std::optional<Int> integer(const YAML::Node& n, const std::string& path, Int min);
  std::optional<double> number(const YAML::Node& n, const std::string& path, double min);
  std::optional<bool> boolean(const YAML::Node& n, const std::string& path);
  /// One of `words`; a bare `null` counts as the word "null" where that is allowed.
  template <class E>
  std::optional<E> choice(const YAML::Node& n, const std::string& path, const Words<E>& words);

  /// A list of non-empty strings.
  std::vector<std::string> string_list(const YAML::Node& n, const std::string& path);
  /// A mapping of plain names to scalar values, in document order.
  std::vector<std::pair<std::string, std::string>> scalar_map(const YAML::Node& n,
                                                              const std::string& path);
  /// A list of mappings with the keys `allowed`: calls item(view, item_node) for each item that
  /// is a mapping; a non-list is reported as "expected a list of {allowed…}".
  template <class F>
  void each_mapping(const YAML::Node& n, const std::string& path,
                    std::initializer_list<std::string_view> allowed, F&& item);

 private:
  std::optional<std::string> substitute(const std::string& raw, const YAML::Node& n,
                                        const std::string& path);
  std::optional<std::string> expand_variables(const std::string& raw, const YAML::Node& n,
                                              const std::string& path);
  /// `what` without the value that `at` got by substitution.
  std::string hide_substituted(const YAML::Node& at, std::string what) const;

  std::string file_;
  std::vector<std::pair<int, std::string>> problems_;
  std::map<std::string, std::string> substituted_;  // scalar as written -> its value
};

/// A mapping whose keys are fixed by the schema: reading it reports every key that is not
/// in `allowed`, listing the allowed ones.
class MapView {
 public:
  MapView(Reader& reader, const YAML::Node& node, std::string path,
          std::initializer_list<std::string_view> allowed);

  bool ok() const { return ok_; }
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  std::string path(std::string_view key) const { return child(path_, key); }
  /// The value of `key`, or nullptr when absent or null (so `key:` means "use the default").
  const YAML::Node* get(std::string_view key) const {
    const YAML::Node* n = get_raw(key);
    return n && !n->IsNull() ? n : nullptr;
  }
  /// Like get(), but keeps explicit nulls (for keys whose allowed words include `null`).
  const YAML::Node* get_raw(std::string_view key) const {
    for (const auto& e : entries_)
      if (e.key == key) return &e.value;
    return nullptr;
  }

  /// Sets `out` to the non-empty string at `key` when the key is given (and valid).
  void read_name(std::string_view key, std::string& out) const {
    if (auto v = get(key))
      if (auto s = reader_.name_text(*v, path(key))) out = *s;
  }
  void read_bool(std::string_view key, bool& out) const {
    if (auto v = get(key))
      if (auto b = reader_.boolean(*v, path(key))) out = *b;
  }
  template <class Int>
  void read_int(std::string_view key, Int& out, Int min) const {
    if (auto v = get(key))
      if (auto i = reader_.integer<Int>(*v, path(key), min)) out = *i;
  }
  /// The non-empty string at `key`; when the key is missing, reports "required key is missing
  /// (why)" at `at` (without the parenthesis when `why` is empty).
  std::optional<std::string> require_name(std::string_view key, const YAML::Node& at,
                                          std::string_view why) const;

 private:
  Reader& reader_;
  YAML::Node node_;
  std::string path_;
  std::vector<Entry> entries_;
  bool ok_ = false;
};

// ---- templates ---------------------------------------------------------------------------

template <class Int>
std::optional<Int> Reader::integer(const YAML::Node& n, const std::string& path, Int min) {
  auto v = text(n, path, "an integer");
  if (!v) return std::nullopt;
  Int out{};
  const char* b = v->data();
  const char* e = b + v->size();
  auto [ptr, ec] = std::from_chars(b, e, out);
  if (v->empty() || ec != std::errc() || ptr != e) {
    problem(n, path, "expected an integer, got '" + *v + "'");
    return std::nullopt;
  }
  if (out < min) {
    problem(n, path, "expected an integer >= " + std::to_string(min) + ", got '" + *v + "'");
    return std::nullopt;
  }
  return out;
}

template <class E>
std::optional<E> Reader::choice(const YAML::Node& n, const std::string& path,
                                const Words<E>& words) {
  std::vector<std::string> names;
  for (const auto& w : words) names.emplace_back(w.first);
  // YAML reads a bare `null` as a null node, not the word; map it back for keys that allow it.
  if (n.IsNull()) {
    for (const auto& w : words)
      if (w.first == "null") return w.second;
  }
  auto v = text(n, path, "one of " + join(names, ", "));
  if (!v) return std::nullopt;
  for (const auto& w : words)
    if (*v == w.first) return w.second;
  problem(n, path, "expected one of " + join(names, ", ") + ", got '" + *v + "'");
  return std::nullopt;
}

template <class F>
void Reader::each_mapping(const YAML::Node& n, const std::string& path,
                          std::initializer_list<std::string_view> allowed, F&& item) {
  if (!n.IsSequence()) {
    const std::vector<std::string> keys(allowed.begin(), allowed.end());
    problem(n, path, "expected a list of {" + join(keys, ", ") + "}, got " + describe(n));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    const YAML::Node node = n[i];
    MapView view(*this, node, at_index(path, i), allowed);
    if (view.ok()) item(view, node);
  }
}

}  // namespace ingestd::config::detail
