// Loads ingestd.yaml strictly (DESIGN §3, CONVENTIONS "Config"): every problem is collected
// with file:line and key path, and all of them are thrown together in one ConfigError, so an
// operator fixes a config in one pass instead of one error per `ingestd check` run.
#include "config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace ingestd::config {

namespace {

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> p)
    : std::runtime_error(join(p, "\n")), problems(std::move(p)) {}

namespace {

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

// How a node that had the wrong shape looks, for "expected X, got Y" messages.
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

bool is_plain(const YAML::Node& n) { return n.Tag() == "?"; }

bool env_name_ok(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

class Loader;

/// A mapping whose keys are fixed by the schema: reading it reports every key that is not
/// in `allowed`, listing the allowed ones.
class MapView {
 public:
  MapView(Loader& loader, const YAML::Node& node, std::string path,
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

 private:
  YAML::Node node_;
  std::string path_;
  std::vector<Entry> entries_;
  bool ok_ = false;
};

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  void problem(int line, const std::string& path, const std::string& what) {
    std::string msg = file_;
    if (line > 0) msg += ":" + std::to_string(line);
    msg += ": ";
    if (!path.empty()) msg += path + ": ";
    msg += what;
    problems_.emplace_back(line, std::move(msg));
  }
  void problem(const YAML::Node& at, const std::string& path, const std::string& what) {
    problem(line_of(at), path, what);
  }

  /// Throws ConfigError when anything was reported, problems in file order.
  void finish() {
    if (problems_.empty()) return;
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    out.reserve(problems_.size());
    for (auto& p : problems_) out.push_back(std::move(p.second));
    throw ConfigError(std::move(out));
  }

  /// Entries of a mapping in document order; reports non-mappings, non-scalar and duplicate keys.
  /// A null node is an empty mapping.
  std::optional<std::vector<Entry>> entries(const YAML::Node& node, const std::string& path) {
    std::vector<Entry> out;
    if (node.IsNull()) return out;
    if (!node.IsMap()) {
      problem(node, path, "expected a mapping, got " + describe(node));
      return std::nullopt;
    }
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node& k = it->first;
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

  // ---- scalars -------------------------------------------------------------------------

  /// A scalar's text after ${VAR} and file:PATH substitution; nullopt (reported) otherwise.
  std::optional<std::string> text(const YAML::Node& n, const std::string& path,
                                  std::string_view expected = "a string") {
    if (!n.IsScalar()) {
      problem(n, path, "expected " + std::string(expected) + ", got " + describe(n));
      return std::nullopt;
    }
    return substitute(n.Scalar(), n, path);
  }

  /// A scalar of any YAML type as a string; booleans are spelled true/false.
  std::optional<std::string> any_scalar(const YAML::Node& n, const std::string& path) {
    auto v = text(n, path, "a single value");
    if (v && is_plain(n)) {
      if (*v == "True" || *v == "TRUE") *v = "true";
      if (*v == "False" || *v == "FALSE") *v = "false";
    }
    return v;
  }

  /// A string that must not be empty.
  std::optional<std::string> name_text(const YAML::Node& n, const std::string& path) {
    auto v = text(n, path);
    if (v && v->empty()) {
      problem(n, path, "must not be empty");
      return std::nullopt;
    }
    return v;
  }

  template <class Int>
  std::optional<Int> integer(const YAML::Node& n, const std::string& path, Int min) {
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

  std::optional<double> number(const YAML::Node& n, const std::string& path, double min) {
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

  std::optional<bool> boolean(const YAML::Node& n, const std::string& path) {
    auto v = text(n, path, "true or false");
    if (!v) return std::nullopt;
    if (*v == "true" || *v == "True" || *v == "TRUE") return true;
    if (*v == "false" || *v == "False" || *v == "FALSE") return false;
    problem(n, path, "expected true or false, got '" + *v + "'");
    return std::nullopt;
  }

  template <class E>
  std::optional<E> choice(const YAML::Node& n, const std::string& path,
                          const std::vector<std::pair<std::string_view, E>>& words) {
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

  /// A list of non-empty strings.
  std::vector<std::string> string_list(const YAML::Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (!n.IsSequence()) {
      problem(n, path, "expected a list of strings, got " + describe(n));
      return out;
    }
    for (size_t i = 0; i < n.size(); ++i)
      if (auto v = name_text(n[i], at_index(path, i))) out.push_back(std::move(*v));
    return out;
  }

  /// A mapping of plain names to scalar values, in document order.
  std::vector<std::pair<std::string, std::string>> scalar_map(const YAML::Node& n,
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

  // ---- the config ------------------------------------------------------------------------

  Config load(const YAML::Node& root);

 private:
  std::optional<std::string> substitute(const std::string& raw, const YAML::Node& n,
                                        const std::string& path);
  void load_kafka(const YAML::Node& n, const std::string& path, Kafka& k);
  void load_postgres(const YAML::Node& n, const std::string& path, Postgres& pg);
  void load_files(const YAML::Node& n, const std::string& path, Files& f);
  void load_processing(const YAML::Node& n, const std::string& path, Processing& p);
  Dataset load_dataset(const Entry& e, const std::string& path);
  void load_csv(const YAML::Node& n, const std::string& path, CsvOptions& csv);
  std::optional<char> single_char(const YAML::Node& n, const std::string& path);
  Entity load_entity(const Entry& e, const std::string& path,
                     const std::vector<std::string>& earlier,
                     const std::vector<std::string>& all_entities);
  Field load_field(const Entry& e, const std::string& path, const std::vector<std::string>& earlier,
                   const std::vector<std::string>& all_entities);
  Normalizer load_normalizer(const YAML::Node& n, const std::string& path);
  Job load_job(const Entry& e, const std::string& path, const Config& c);
  void check_resolve_field(const Job& j, const Dataset& d, const YAML::Node& at,
                           const std::string& path);

  std::string file_;
  std::vector<std::pair<int, std::string>> problems_;
};

MapView::MapView(Loader& loader, const YAML::Node& node, std::string path,
                 std::initializer_list<std::string_view> allowed)
    : node_(node), path_(std::move(path)) {
  auto es = loader.entries(node, path_);
  if (!es) return;
  ok_ = true;
  for (auto& e : *es) {
    if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      loader.problem(e.key_node, child(path_, e.key),
                     names.empty() ? std::string("unknown key; no options are allowed here")
                                   : "unknown key; allowed: " + join(names, ", "));
      continue;
    }
    entries_.push_back(std::move(e));
  }
}

std::optional<std::string> Loader::substitute(const std::string& raw, const YAML::Node& n,
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

  // file:PATH is read after ${VAR} substitution so "file:${CREDENTIALS_DIRECTORY}/db_url"
  // works with systemd's LoadCredential.
  constexpr std::string_view kFile = "file:";
  if (out.compare(0, kFile.size(), kFile) == 0) {
    const std::string fpath = out.substr(kFile.size());
    if (fpath.empty()) {
      problem(n, path, "'file:' needs a path, e.g. file:/run/credentials/ingestd/db_url");
      return std::nullopt;
    }
    std::ifstream in(fpath, std::ios::binary);
    if (!in) {
      problem(n, path, "cannot read file '" + fpath + "': " + std::strerror(errno));
      return std::nullopt;
    }
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
      problem(n, path, "cannot read file '" + fpath + "': " + std::strerror(errno));
      return std::nullopt;
    }
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r'))
      content.pop_back();
    return content;
  }
  return out;
}

Config Loader::load(const YAML::Node& root) {
  Config c;
  c.path = file_;
  if (root.IsNull()) {
    problem(1, "", "the file is empty; at least postgres.url is required");
    return c;
  }
  MapView top(*this, root, "",
              {"kafka", "postgres", "http", "files", "processing", "sources", "datasets", "jobs"});
  if (!top.ok()) return c;

  if (auto n = top.get("kafka")) load_kafka(*n, "kafka", c.kafka);
  if (auto n = top.get("postgres"))
    load_postgres(*n, "postgres", c.postgres);
  else
    problem(root, "postgres.url", "required key is missing (the target database URL)");
  if (auto n = top.get("http")) {
    MapView m(*this, *n, "http", {"listen"});
    if (auto v = m.get("listen"))
      if (auto s = name_text(*v, m.path("listen"))) c.http.listen = *s;
  }
  if (auto n = top.get("files")) load_files(*n, "files", c.files);
  if (auto n = top.get("processing")) load_processing(*n, "processing", c.processing);

  if (auto n = top.get("sources")) {
    if (auto es = entries(*n, "sources")) {
      for (const auto& e : *es) {
        const std::string p = child("sources", e.key);
        Source s;
        s.name = e.key;
        MapView m(*this, e.value, p, {"url"});
        if (!m.ok()) continue;
        if (auto v = m.get("url")) {
          if (auto u = name_text(*v, m.path("url"))) s.url = *u;
        } else {
          problem(e.key_node, m.path("url"), "required key is missing (the source database URL)");
        }
        c.sources.emplace(e.key, std::move(s));
      }
    }
  }

  if (auto n = top.get("datasets")) {
    if (auto es = entries(*n, "datasets"))
      for (const auto& e : *es)
        c.datasets.emplace(e.key, load_dataset(e, child("datasets", e.key)));
  }

  // Jobs last: their checks look at the sources and datasets above, wherever they are in the file.
  if (auto n = top.get("jobs")) {
    if (auto es = entries(*n, "jobs"))
      for (const auto& e : *es) c.jobs.emplace(e.key, load_job(e, child("jobs", e.key), c));
  }
  return c;
}

void Loader::load_kafka(const YAML::Node& n, const std::string& path, Kafka& k) {
  MapView m(*this, n, path,
            {"brokers", "group_id", "topics", "properties", "embedded_partitions",
             "embedded_address_file"});
  if (!m.ok()) return;
  if (auto v = m.get("brokers"))
    if (auto s = name_text(*v, m.path("brokers"))) k.brokers = *s;
  if (auto v = m.get("group_id"))
    if (auto s = name_text(*v, m.path("group_id"))) k.group_id = *s;
  if (auto v = m.get("topics")) {
    MapView t(*this, *v, m.path("topics"), {"files", "jobs", "results", "dead_letter"});
    auto topic = [&](std::string_view key, std::string& out) {
      if (auto tv = t.get(key))
        if (auto s = name_text(*tv, t.path(key))) out = *s;
    };
    if (t.ok()) {
      topic("files", k.topics.files);
      topic("jobs", k.topics.jobs);
      topic("results", k.topics.results);
      topic("dead_letter", k.topics.dead_letter);
    }
  }
  if (auto v = m.get("properties"))
    for (auto& [key, value] : scalar_map(*v, m.path("properties"))) k.properties[key] = value;
  if (auto v = m.get("embedded_partitions"))
    if (auto i = integer<int>(*v, m.path("embedded_partitions"), 1)) k.embedded_partitions = *i;
  if (auto v = m.get("embedded_address_file"))
    if (auto s = text(*v, m.path("embedded_address_file"))) k.embedded_address_file = *s;
}

void Loader::load_postgres(const YAML::Node& n, const std::string& path, Postgres& pg) {
  MapView m(*this, n, path, {"url", "pool_size", "bookkeeping_schema"});
  if (!m.ok()) return;
  if (auto v = m.get("url")) {
    if (auto s = name_text(*v, m.path("url"))) pg.url = *s;
  } else {
    problem(n, m.path("url"), "required key is missing (the target database URL)");
  }
  if (auto v = m.get("pool_size"))
    if (auto i = integer<int>(*v, m.path("pool_size"), 1)) pg.pool_size = *i;
  if (auto v = m.get("bookkeeping_schema"))
    if (auto s = name_text(*v, m.path("bookkeeping_schema"))) pg.bookkeeping_schema = *s;
}

void Loader::load_files(const YAML::Node& n, const std::string& path, Files& f) {
  MapView m(*this, n, path, {"allowed_roots", "rejects_dir"});
  if (!m.ok()) return;
  if (auto v = m.get("allowed_roots")) f.allowed_roots = string_list(*v, m.path("allowed_roots"));
  if (auto v = m.get("rejects_dir"))
    if (auto s = name_text(*v, m.path("rejects_dir"))) f.rejects_dir = *s;
}

void Loader::load_processing(const YAML::Node& n, const std::string& path, Processing& p) {
  MapView m(*this, n, path, {"chunk_rows", "max_attempts", "retry_base_seconds"});
  if (!m.ok()) return;
  if (auto v = m.get("chunk_rows"))
    if (auto i = integer<int64_t>(*v, m.path("chunk_rows"), 1)) p.chunk_rows = *i;
  if (auto v = m.get("max_attempts"))
    if (auto i = integer<int>(*v, m.path("max_attempts"), 1)) p.max_attempts = *i;
  if (auto v = m.get("retry_base_seconds"))
    if (auto d = number(*v, m.path("retry_base_seconds"), 0.0)) p.retry_base_seconds = *d;
}

// ---- datasets ----------------------------------------------------------------------------

Dataset Loader::load_dataset(const Entry& e, const std::string& path) {
  Dataset d;
  d.name = e.key;
  d.line = line_of(e.key_node);
  MapView m(*this, e.value, path, {"format", "csv", "atomic", "entities"});
  if (!m.ok()) return d;
  if (auto v = m.get("format"))
    if (auto f =
            choice<std::string_view>(*v, m.path("format"), {{"csv", "csv"}, {"jsonl", "jsonl"}}))
      d.format = std::string(*f);
  if (auto v = m.get("csv")) load_csv(*v, m.path("csv"), d.csv);
  if (auto v = m.get("atomic"))
    if (auto b = boolean(*v, m.path("atomic"))) d.atomic = *b;

  const YAML::Node* ents = m.get("entities");
  if (!ents) {
    problem(e.key_node, m.path("entities"), "required key is missing; declare at least one entity");
    return d;
  }
  auto es = entries(*ents, m.path("entities"));
  if (!es) return d;
  if (es->empty()) {
    problem(*ents, m.path("entities"), "expected at least one entity");
    return d;
  }
  std::vector<std::string> all;
  for (const auto& ent : *es) all.push_back(ent.key);
  std::vector<std::string> earlier;
  for (const auto& ent : *es) {
    d.entities.push_back(load_entity(ent, child(m.path("entities"), ent.key), earlier, all));
    earlier.push_back(ent.key);
  }
  return d;
}

std::optional<char> Loader::single_char(const YAML::Node& n, const std::string& path) {
  auto v = text(n, path, "a single character");
  if (!v) return std::nullopt;
  // A tab is hard to see and to type in YAML: accept "\t" in any quoting, and the word "tab".
  if (*v == "\\t" || *v == "tab") return '\t';
  if (v->size() != 1) {
    problem(n, path, "expected a single character (or \"\\t\" / tab), got '" + *v + "'");
    return std::nullopt;
  }
  return (*v)[0];
}

void Loader::load_csv(const YAML::Node& n, const std::string& path, CsvOptions& csv) {
  MapView m(*this, n, path, {"delimiter", "encoding", "header", "quote"});
  if (!m.ok()) return;
  if (auto v = m.get("delimiter"))
    if (auto c = single_char(*v, m.path("delimiter"))) csv.delimiter = *c;
  if (auto v = m.get("encoding")) {
    if (auto s = text(*v, m.path("encoding"))) {
      std::string lower = *s;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (lower == "utf-8" || lower == "utf8")
        csv.encoding = "utf-8";
      else if (lower == "latin1" || lower == "latin-1" || lower == "iso-8859-1")
        csv.encoding = "latin1";
      else
        problem(*v, m.path("encoding"), "expected one of utf-8, latin1, got '" + *s + "'");
    }
  }
  if (auto v = m.get("header"))
    if (auto b = boolean(*v, m.path("header"))) csv.header = *b;
  if (auto v = m.get("quote"))
    if (auto c = single_char(*v, m.path("quote"))) csv.quote = *c;
  if (csv.delimiter == csv.quote)
    problem(n, path, "delimiter and quote must be different characters");
}

Entity Loader::load_entity(const Entry& e, const std::string& path,
                           const std::vector<std::string>& earlier,
                           const std::vector<std::string>& all_entities) {
  Entity ent;
  ent.name = e.key;
  ent.line = line_of(e.key_node);
  MapView m(*this, e.value, path,
            {"table", "id", "identity", "fields", "merge", "on_insert", "on_update"});
  if (!m.ok()) return ent;

  if (auto v = m.get("table")) {
    if (auto s = name_text(*v, m.path("table"))) ent.table = *s;
  } else {
    problem(e.key_node, m.path("table"),
            "required key is missing (the target table, e.g. public.persons)");
  }
  if (auto v = m.get("id"))
    if (auto s = name_text(*v, m.path("id"))) ent.id_column = *s;
  if (auto v = m.get("merge"))
    if (auto p = choice<MergePolicy>(*v, m.path("merge"),
                                     {{"fill_nulls", MergePolicy::FillNulls},
                                      {"overwrite", MergePolicy::Overwrite},
                                      {"keep", MergePolicy::Keep}}))
      ent.merge = *p;
  if (auto v = m.get("on_insert")) ent.on_insert = scalar_map(*v, m.path("on_insert"));
  if (auto v = m.get("on_update")) ent.on_update = scalar_map(*v, m.path("on_update"));

  if (auto v = m.get("fields")) {
    if (auto es = entries(*v, m.path("fields")))
      for (const auto& fe : *es)
        ent.fields.push_back(
            load_field(fe, child(m.path("fields"), fe.key), earlier, all_entities));
  }

  // Check: two fields writing one column would make the row's value depend on field order.
  for (size_t i = 0; i < ent.fields.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (!ent.fields[i].column.empty() && ent.fields[i].column == ent.fields[j].column) {
        problem(ent.fields[i].line, child(child(m.path("fields"), ent.fields[i].name), "column"),
                "column '" + ent.fields[i].column + "' is already written by field '" +
                    ent.fields[j].name + "'");
        break;
      }
    }
  }

  if (auto v = m.get("identity")) {
    const std::string ipath = m.path("identity");
    if (!v->IsSequence()) {
      problem(*v, ipath,
              "expected a list of tiers (lists of field names), e.g. [[cedula], [email]], got " +
                  describe(*v));
    } else {
      std::vector<std::string> field_names;
      for (const auto& f : ent.fields) field_names.push_back(f.name);
      for (size_t i = 0; i < v->size(); ++i) {
        const YAML::Node tier_node = (*v)[i];
        const std::string tpath = at_index(ipath, i);
        if (!tier_node.IsSequence() || tier_node.size() == 0) {
          problem(tier_node, tpath,
                  "expected a non-empty list of field names, e.g. [email] or [first_name, "
                  "last_name], got " +
                      describe(tier_node));
          continue;
        }
        std::vector<std::string> tier = string_list(tier_node, tpath);
        // Check: a tier naming an unknown field could never apply, silently weakening dedup.
        for (const auto& name : tier) {
          if (std::find(field_names.begin(), field_names.end(), name) == field_names.end())
            problem(tier_node, tpath,
                    "identity tier names field '" + name + "', which entity '" + ent.name +
                        "' does not declare; its fields: " + join(field_names, ", "));
        }
        ent.identity.push_back(std::move(tier));
      }
    }
  }
  return ent;
}

Field Loader::load_field(const Entry& e, const std::string& path,
                         const std::vector<std::string>& earlier,
                         const std::vector<std::string>& all_entities) {
  Field f;
  f.name = e.key;
  f.column = e.key;
  f.line = line_of(e.key_node);
  MapView m(*this, e.value, path,
            {"column", "from", "ref", "type", "formats", "normalize", "required", "merge", "lookup",
             "on_missing"});
  if (!m.ok()) return f;

  if (auto v = m.get("column"))
    if (auto s = name_text(*v, m.path("column"))) f.column = *s;
  const YAML::Node* from = m.get("from");
  if (from) {
    if (from->IsSequence()) {
      f.from = string_list(*from, m.path("from"));
      if (from->size() == 0) problem(*from, m.path("from"), "expected at least one source name");
    } else if (auto s = name_text(*from, m.path("from"))) {
      f.from.push_back(*s);
    }
  }
  const YAML::Node* ref = m.get("ref");
  if (ref) {
    if (auto s = name_text(*ref, m.path("ref"))) {
      f.ref = *s;
      // Check: entities are written in order, so a ref can only use an id already resolved.
      if (std::find(earlier.begin(), earlier.end(), *s) == earlier.end()) {
        const bool declared =
            std::find(all_entities.begin(), all_entities.end(), *s) != all_entities.end();
        const std::string where = earlier.empty() ? "none" : join(earlier, ", ");
        problem(*ref, m.path("ref"),
                declared ? "entity '" + *s +
                               "' is not declared before this one; a ref must name an earlier "
                               "entity (declared earlier: " +
                               where + ")"
                         : "no entity '" + *s +
                               "' in this dataset; a ref must name an earlier "
                               "entity (declared earlier: " +
                               where + ")");
      }
    }
  }
  // Check: a field takes its value from the input or from an earlier entity, never both.
  if (!from && !ref)
    problem(e.key_node, path, "needs 'from' (source column names) or 'ref' (an earlier entity)");
  if (from && ref)
    problem(*ref, path, "has both 'from' and 'ref'; a field takes its value from one of them");

  const YAML::Node* type = m.get("type");
  if (type)
    if (auto t = choice<FieldType>(*type, m.path("type"),
                                   {{"text", FieldType::Text},
                                    {"int", FieldType::Int},
                                    {"bigint", FieldType::BigInt},
                                    {"numeric", FieldType::Numeric},
                                    {"bool", FieldType::Bool},
                                    {"date", FieldType::Date},
                                    {"timestamp", FieldType::Timestamp},
                                    {"json", FieldType::Json}}))
      f.type = *t;
  if (auto v = m.get("formats")) {
    f.formats = string_list(*v, m.path("formats"));
    // Check: formats only mean something to the date parsers; elsewhere they hide a typo in type.
    if (f.type != FieldType::Date && f.type != FieldType::Timestamp)
      problem(*v, m.path("formats"),
              "formats apply only to type date or timestamp; this field's type is " +
                  (type && type->IsScalar() ? "'" + type->Scalar() + "'" : std::string("text")));
  }
  if (auto v = m.get("normalize")) f.normalize = load_normalizer(*v, m.path("normalize"));
  if (auto v = m.get("required"))
    if (auto b = boolean(*v, m.path("required"))) f.required = *b;
  if (auto v = m.get("merge"))
    if (auto p = choice<MergePolicy>(*v, m.path("merge"),
                                     {{"fill_nulls", MergePolicy::FillNulls},
                                      {"overwrite", MergePolicy::Overwrite},
                                      {"keep", MergePolicy::Keep}}))
      f.merge = *p;
  if (auto v = m.get("lookup")) {
    MapView l(*this, *v, m.path("lookup"), {"table", "key", "returns"});
    if (l.ok()) {
      Lookup lk;
      lk.returns = "id";
      bool ok = true;
      if (auto t = l.get("table")) {
        if (auto s = name_text(*t, l.path("table")))
          lk.table = *s;
        else
          ok = false;
      } else {
        problem(*v, l.path("table"), "required key is missing (the table to look the value up in)");
        ok = false;
      }
      if (auto k = l.get("key")) {
        if (auto s = name_text(*k, l.path("key")))
          lk.key = *s;
        else
          ok = false;
      } else {
        problem(*v, l.path("key"),
                "required key is missing (the column matched against the value)");
        ok = false;
      }
      if (auto r = l.get("returns"))
        if (auto s = name_text(*r, l.path("returns"))) lk.returns = *s;
      if (ok) f.lookup = std::move(lk);
    }
  }
  if (auto v = m.get_raw("on_missing")) {
    if (auto o = choice<OnMissing>(*v, m.path("on_missing"),
                                   {{"null", OnMissing::Null},
                                    {"reject", OnMissing::Reject},
                                    {"defer", OnMissing::Defer}})) {
      f.on_missing = *o;
      // Check: only a lookup can be resolved later; deferring anything else would never finish.
      if (*o == OnMissing::Defer && !m.get("lookup"))
        problem(*v, m.path("on_missing"), "defer needs a lookup on this field");
    }
  }
  return f;
}

Normalizer Loader::load_normalizer(const YAML::Node& n, const std::string& path) {
  Normalizer out;
  static const std::vector<std::pair<std::string_view, Normalizer::Kind>> kinds = {
      {"trim", Normalizer::Kind::Trim},   {"digits", Normalizer::Kind::Digits},
      {"email", Normalizer::Kind::Email}, {"phone", Normalizer::Kind::Phone},
      {"name", Normalizer::Kind::Name},   {"upper", Normalizer::Kind::Upper},
      {"lower", Normalizer::Kind::Lower}, {"none", Normalizer::Kind::None}};
  if (n.IsScalar()) {
    if (auto k = choice<Normalizer::Kind>(n, path, kinds)) out.kind = *k;
    return out;
  }
  if (!n.IsMap() || n.size() != 1) {
    problem(n, path,
            "expected a normalizer name (trim, digits, email, phone, name, upper, lower, none) "
            "or one name with options, e.g. {digits: {min_digits: 7}}, got " +
                describe(n));
    return out;
  }
  auto es = entries(n, path);
  if (!es || es->empty()) return out;
  const Entry& e = es->front();
  std::optional<Normalizer::Kind> kind;
  for (const auto& k : kinds)
    if (e.key == k.first) kind = k.second;
  if (!kind) {
    problem(e.key_node, child(path, e.key),
            "unknown normalizer; allowed: trim, digits, email, phone, name, upper, lower, none");
    return out;
  }
  out.kind = *kind;
  const std::string opath = child(path, e.key);
  if (*kind == Normalizer::Kind::Digits) {
    MapView o(*this, e.value, opath, {"min_digits"});
    if (auto v = o.get("min_digits"))
      if (auto i = integer<int>(*v, o.path("min_digits"), 0)) out.min_digits = *i;
  } else if (*kind == Normalizer::Kind::Phone) {
    MapView o(*this, e.value, opath, {"region", "invalid"});
    if (auto v = o.get("region")) {
      if (auto s = text(*v, o.path("region"))) {
        const bool two_letters = s->size() == 2 &&
                                 std::isalpha(static_cast<unsigned char>((*s)[0])) &&
                                 std::isalpha(static_cast<unsigned char>((*s)[1]));
        if (!two_letters) {
          problem(*v, o.path("region"),
                  "expected a two-letter region code like CO or US, got '" + *s + "'");
        } else {
          for (char& c : *s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          out.phone_region = *s;
        }
      }
    }
    if (auto v = o.get_raw("invalid"))
      if (auto r = choice<bool>(*v, o.path("invalid"), {{"reject", true}, {"null", false}}))
        out.phone_invalid_reject = *r;
  } else {
    MapView o(*this, e.value, opath, {});
  }
  return out;
}

// ---- jobs --------------------------------------------------------------------------------

Job Loader::load_job(const Entry& e, const std::string& path, const Config& c) {
  Job j;
  j.name = e.key;
  j.line = line_of(e.key_node);
  MapView m(*this, e.value, path,
            {"kind", "source", "dataset", "field", "atomic", "writeback", "after", "checks"});
  if (!m.ok()) return j;

  if (auto v = m.get("kind")) {
    if (auto k = choice<std::string_view>(
            *v, m.path("kind"), {{"migrate", "migrate"}, {"resolve_refs", "resolve_refs"}}))
      j.kind = std::string(*k);
  } else {
    problem(e.key_node, m.path("kind"), "required key is missing (migrate or resolve_refs)");
  }

  const Dataset* dataset = nullptr;
  const YAML::Node* dataset_node = m.get("dataset");
  if (dataset_node) {
    if (auto s = name_text(*dataset_node, m.path("dataset"))) {
      j.dataset = *s;
      auto it = c.datasets.find(*s);
      if (it != c.datasets.end()) {
        dataset = &it->second;
      } else {
        // Check: the job maps its rows through this dataset.
        std::vector<std::string> names;
        for (const auto& [name, d] : c.datasets) names.push_back(name);
        problem(*dataset_node, m.path("dataset"),
                "unknown dataset '" + *s + "'; declared datasets: " +
                    (names.empty() ? std::string("none") : join(names, ", ")));
      }
    }
  } else {
    problem(e.key_node, m.path("dataset"),
            "required key is missing (the dataset whose mapping the job uses)");
  }

  bool sql_given = false;
  if (const YAML::Node* source = m.get("source")) {
    MapView s(*this, *source, m.path("source"), {"database", "sql", "watermark"});
    if (s.ok()) {
      if (auto v = s.get("database")) {
        if (auto db = name_text(*v, s.path("database"))) {
          j.source_database = *db;
          // Check: a source database must be declared under sources (with its URL).
          if (!c.sources.count(*db)) {
            std::vector<std::string> names;
            for (const auto& [name, src] : c.sources) names.push_back(name);
            problem(*v, s.path("database"),
                    "unknown source database '" + *db + "'; declared sources: " +
                        (names.empty() ? std::string("none") : join(names, ", ")));
          }
        }
      }
      if (auto v = s.get("sql")) {
        sql_given = true;
        if (auto q = name_text(*v, s.path("sql"))) j.source_sql = *q;
      }
      if (auto v = s.get("watermark"))
        if (auto w = name_text(*v, s.path("watermark"))) j.watermark = *w;
    }
    if (j.kind == "migrate" && s.ok() && !sql_given)
      problem(*source, s.path("sql"),
              "required key is missing for a migrate job (the SELECT that reads the rows)");
  } else if (j.kind == "migrate") {
    problem(e.key_node, m.path("source") + ".sql",
            "required key is missing for a migrate job (the SELECT that reads the rows)");
  }

  const YAML::Node* field = m.get("field");
  if (field) {
    if (auto s = name_text(*field, m.path("field"))) j.field = *s;
  }
  if (j.kind == "resolve_refs") {
    if (!field)
      problem(e.key_node, m.path("field"),
              "required key is missing for a resolve_refs job (the deferred field)");
    else if (dataset && !j.field.empty())
      check_resolve_field(j, *dataset, *field, m.path("field"));
  }

  if (auto v = m.get("atomic"))
    if (auto b = boolean(*v, m.path("atomic"))) j.atomic = *b;

  if (auto v = m.get("writeback")) {
    const std::string wpath = m.path("writeback");
    if (!v->IsSequence()) {
      problem(*v, wpath, "expected a list of {table, set, where}, got " + describe(*v));
    } else {
      for (size_t i = 0; i < v->size(); ++i) {
        const YAML::Node wn = (*v)[i];
        MapView w(*this, wn, at_index(wpath, i), {"table", "set", "where"});
        if (!w.ok()) continue;
        Writeback wb;
        if (auto t = w.get("table")) {
          if (auto s = name_text(*t, w.path("table"))) wb.table = *s;
        } else {
          problem(wn, w.path("table"), "required key is missing (the table to write back to)");
        }
        if (auto sn = w.get("set")) {
          wb.set = scalar_map(*sn, w.path("set"));
          // Check: set's values are entities of the job's dataset, whose ids are written back.
          if (dataset) {
            for (const auto& [col, entity] : wb.set) {
              const bool found = std::any_of(dataset->entities.begin(), dataset->entities.end(),
                                             [&](const Entity& en) { return en.name == entity; });
              if (!found) {
                std::vector<std::string> names;
                for (const auto& en : dataset->entities) names.push_back(en.name);
                problem((*sn)[col], child(w.path("set"), col),
                        "no entity '" + entity + "' in dataset '" + dataset->name +
                            "'; its entities: " + join(names, ", "));
              }
            }
          }
        }
        if (wb.set.empty())
          problem(wn, w.path("set"), "required: at least one column: entity to write back");
        if (auto wh = w.get("where")) wb.where = scalar_map(*wh, w.path("where"));
        // An empty where would update every row of the table.
        if (wb.where.empty())
          problem(wn, w.path("where"),
                  "required: at least one column: source column to match rows");
        j.writeback.push_back(std::move(wb));
      }
    }
  }

  if (auto v = m.get("after")) j.after = string_list(*v, m.path("after"));

  if (auto v = m.get("checks")) {
    const std::string cpath = m.path("checks");
    if (!v->IsSequence()) {
      problem(*v, cpath, "expected a list of {name, sql, expect}, got " + describe(*v));
    } else {
      for (size_t i = 0; i < v->size(); ++i) {
        const YAML::Node cn = (*v)[i];
        MapView ck(*this, cn, at_index(cpath, i), {"name", "sql", "expect"});
        if (!ck.ok()) continue;
        Check chk;
        if (auto n = ck.get("name")) {
          if (auto s = name_text(*n, ck.path("name"))) chk.name = *s;
        } else {
          problem(cn, ck.path("name"), "required key is missing");
        }
        if (auto n = ck.get("sql")) {
          if (auto s = name_text(*n, ck.path("sql"))) chk.sql = *s;
        } else {
          problem(cn, ck.path("sql"), "required key is missing (a query returning one value)");
        }
        if (auto n = ck.get("expect"))
          if (auto s = any_scalar(*n, ck.path("expect"))) chk.expect = *s;
        j.checks.push_back(std::move(chk));
      }
    }
  }
  return j;
}

void Loader::check_resolve_field(const Job& j, const Dataset& d, const YAML::Node& at,
                                 const std::string& path) {
  // `field` is a field name, or entity.field when several entities have one of that name.
  std::string entity_name, field_name = j.field;
  if (auto dot = j.field.find('.'); dot != std::string::npos) {
    entity_name = j.field.substr(0, dot);
    field_name = j.field.substr(dot + 1);
  }
  std::vector<std::pair<const Entity*, const Field*>> found;
  for (const auto& en : d.entities) {
    if (!entity_name.empty() && en.name != entity_name) continue;
    for (const auto& f : en.fields)
      if (f.name == field_name) found.emplace_back(&en, &f);
  }
  if (found.empty()) {
    problem(at, path, "no field '" + j.field + "' in dataset '" + d.name + "'");
    return;
  }
  if (found.size() > 1) {
    std::vector<std::string> where;
    for (const auto& [en, f] : found) where.push_back(en->name + "." + f->name);
    problem(at, path,
            "field '" + j.field + "' is ambiguous in dataset '" + d.name +
                "'; write one of: " + join(where, ", "));
    return;
  }
  const auto& [en, f] = found.front();
  // Check: resolve_refs only fills values that loading deferred, i.e. lookups with on_missing:
  // defer.
  if (!f->lookup || f->on_missing != OnMissing::Defer)
    problem(at, path,
            "resolve_refs needs a field with a lookup and on_missing: defer; field '" + f->name +
                "' of entity '" + en->name + "' has " +
                (f->lookup ? std::string("on_missing: ") +
                                 (f->on_missing == OnMissing::Null ? "null" : "reject")
                           : std::string("no lookup")));
}

}  // namespace

Config load_config_text(const std::string& text, const std::string& path) {
  Loader loader(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    loader.problem(e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg);
    loader.finish();
  }
  Config c = loader.load(root);
  loader.finish();
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  return load_config_text(buf.str(), path);
}

}  // namespace ingestd::config
