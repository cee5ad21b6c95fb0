// Loads a fuzzy identity tier ({fuzzy: …} in an entity's identity list, DESIGN §5 rule 6):
// blocking rules, per-field comparisons with their levels, never_across, the two thresholds,
// and the m/u file `ingestd train` writes. Every field it names must be one of the entity's.
#include <algorithm>
#include <filesystem>
#include <regex>

#include "config/load_sections.hpp"

namespace ingestd::config::detail {

namespace {

using Method = FuzzyComparison::Method;

const std::vector<std::pair<std::string_view, Method>> kMethods = {{"exact", Method::Exact},
                                                                   {"jaro_winkler", Method::JaroWinkler},
                                                                   {"levenshtein", Method::Levenshtein},
                                                                   {"date", Method::Date}};

bool has_field(const Entity& ent, const std::string& name) {
  return std::any_of(ent.fields.begin(), ent.fields.end(), [&](const Field& f) { return f.name == name; });
}

std::vector<std::string> field_names(const Entity& ent) {
  std::vector<std::string> out;
  for (const auto& f : ent.fields) out.push_back(f.name);
  return out;
}

void unknown_field(Reader& r, const YAML::Node& at, const std::string& path, const Entity& ent, const std::string& name) {
  r.problem(at, path,
            "names field '" + name + "', which entity '" + ent.name + "' does not declare; its fields: " +
                join(field_names(ent), ", "));
}

/// `[postcode]`, `["dmetaphone(surname)", birth_date]`: a field's key, or a phonetic code of it;
/// `["trigram(surname)"]`, `["trigram(surname, 0.5)"]`: the keys similar to it (alone in its rule).
std::vector<BlockingTerm> load_rule(Reader& r, const YAML::Node& n, const std::string& path, const Entity& ent) {
  static const std::regex call(
      R"(^\s*(soundex|dmetaphone|trigram)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:,\s*([0-9]*\.?[0-9]+)\s*)?\)\s*$)");
  std::vector<BlockingTerm> rule;
  if (!n.IsSequence() || n.size() == 0) {
    r.problem(n, path, "expected a non-empty list of terms, e.g. [postcode], [\"dmetaphone(surname)\", birth_date] or "
                       "[\"trigram(surname, 0.5)\"], got " + describe(n));
    return rule;
  }
  for (const auto& text : r.string_list(n, path)) {
    BlockingTerm t;
    std::smatch m;
    if (std::regex_match(text, m, call)) {
      t.function = m[1];
      t.field = m[2];
      if (m[3].matched) {
        t.similarity = std::stod(m[3]);
        if (!t.trigram())
          r.problem(n, path, "'" + text + "': only trigram() takes a similarity; " + t.function + "() takes a field");
        else if (t.similarity <= 0 || t.similarity > 1)
          r.problem(n, path, "'" + text + "': a trigram similarity is > 0 and <= 1 (pg_trgm's similarity())");
      } else if (t.trigram()) {
        t.similarity = 0.3;  // pg_trgm's own default (pg_trgm.similarity_threshold)
      }
    } else {
      t.field = text;
    }
    if (!has_field(ent, t.field)) unknown_field(r, n, path, ent, t.field);
    rule.push_back(std::move(t));
  }
  if (rule.size() > 1 && std::any_of(rule.begin(), rule.end(), [](const BlockingTerm& t) { return t.trigram(); }))
    r.problem(n, path, "a trigram() term finds similar keys, not equal ones: it stands alone in its rule, e.g. "
                       "[\"trigram(surname)\"]");
  return rule;
}

/// One probability: > 0 and <= 1.
std::optional<double> probability(Reader& r, const YAML::Node& n, const std::string& path) {
  auto v = r.number(n, path, 0.0);
  if (v && (*v <= 0 || *v > 1)) {
    r.problem(n, path, "a probability must be > 0 and <= 1");
    return std::nullopt;
  }
  return v;
}

std::vector<double> probabilities(Reader& r, const YAML::Node& n, const std::string& path, size_t levels) {
  std::vector<double> out;
  if (!n.IsSequence() || n.size() != levels) {
    r.problem(n, path, "expected a list of " + std::to_string(levels) + " probabilities (one per level, the last for "
                           "\"disagrees\"), got " + describe(n));
    return out;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    auto v = probability(r, n[i], at_index(path, i));
    if (!v) return {};
    out.push_back(*v);
  }
  return out;
}

/// `exact`, or a mapping with one method ({jaro_winkler: [0.92, 0.8]}, {levenshtein: [1, 2]},
/// {date: [31]}) and its options.
FuzzyComparison load_comparison(Reader& r, const Entry& e, const std::string& path) {
  FuzzyComparison c;
  c.field = e.key;
  c.line = line_of(e.key_node);
  if (e.value.IsScalar()) {
    if (auto m = r.choice(e.value, path, kMethods)) {
      c.method = *m;
      if (c.method != Method::Exact)
        r.problem(e.value, path, "'" + r.text(e.value, path).value_or("") + "' needs its levels, e.g. {jaro_winkler: "
                                 "[0.92, 0.8]}, {levenshtein: [1, 2]} or {date: [31]}");
    }
    return c;
  }
  MapView m(r, e.value, path, {"exact", "jaro_winkler", "levenshtein", "date", "initial", "transposed", "m", "u"});
  if (!m.ok()) return c;
  int methods = 0;
  for (const auto& [word, method] : kMethods) {
    const YAML::Node* v = m.get_raw(word);
    if (!v) continue;
    ++methods;
    c.method = method;
    if (method == Method::Exact) continue;
    if (!v->IsSequence() || v->size() == 0) {
      r.problem(*v, m.path(word), "expected a list of levels, got " + describe(*v));
      continue;
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const double min = method == Method::JaroWinkler ? 0.0 : 1.0;
      if (auto t = r.number((*v)[i], at_index(m.path(word), i), min)) {
        if (method == Method::JaroWinkler && *t > 1) r.problem((*v)[i], at_index(m.path(word), i), "a similarity is <= 1");
        c.thresholds.push_back(*t);
      }
    }
    const bool descending = method == Method::JaroWinkler;
    if (!std::is_sorted(c.thresholds.begin(), c.thresholds.end(),
                        [&](double a, double b) { return descending ? a > b : a < b; }))
      r.problem(*v, m.path(word), descending ? "levels go from the closest down: descending similarities"
                                             : "levels go from the closest up: ascending distances");
  }
  if (methods != 1)
    r.problem(e.value, path, "expected exactly one method of exact, jaro_winkler, levenshtein, date");
  m.read_bool("initial", c.initial);
  m.read_bool("transposed", c.transposed);
  if (c.transposed && c.method != Method::Date) r.problem(e.value, m.path("transposed"), "only a date comparison has it");
  if (c.initial && (c.method == Method::Date || c.method == Method::Exact))
    r.problem(e.value, m.path("initial"), "only a jaro_winkler or levenshtein comparison has it");
  if (auto v = m.get("m")) c.m = probabilities(r, *v, m.path("m"), c.levels());
  if (auto v = m.get("u")) c.u = probabilities(r, *v, m.path("u"), c.levels());
  if (c.m.empty() != c.u.empty()) r.problem(e.value, path, "give both m and u, or neither (defaults)");
  return c;
}

/// The weights file's `together: [{fields: [A, B], u: P}]`: A before B among the comparisons.
void load_together(Reader& wr, const YAML::Node& n, FuzzyTier& out) {
  if (!n.IsSequence()) {
    wr.problem(n, "together", "expected a list of {fields: [A, B], u: P}, got " + describe(n));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string at = at_index("together", i);
    MapView t(wr, n[i], at, {"fields", "u"});
    if (!t.ok()) continue;
    FuzzyTogether pair;
    const auto fields = t.get("fields") ? wr.string_list(*t.get("fields"), t.path("fields")) : std::vector<std::string>{};
    if (fields.size() != 2 || out.comparison_of(fields[0]) >= out.comparison_of(fields[1]) ||
        out.comparison_of(fields[1]) == out.compare.size()) {
      wr.problem(n[i], t.path("fields"), "expected two compared fields, in the tier's order");
      continue;
    }
    pair.first = fields[0];
    pair.second = fields[1];
    if (auto u = t.get("u")) {
      if (auto x = probability(wr, *u, t.path("u"))) pair.u = *x;
    } else {
      wr.problem(n[i], t.path("u"), "required: the share of random pairs agreeing exactly on both");
    }
    if (pair.u > 0) out.together.push_back(std::move(pair));
  }
}

/// The weights file's term frequencies: `frequent: {FIELD: {rest: P, values: {VALUE: SHARE}}}`.
void load_frequent(Reader& wr, const YAML::Node& n, FuzzyTier& out) {
  const auto fields = wr.entries(n, "frequent");
  if (!fields) return;
  for (const auto& e : *fields) {
    const std::string at = child("frequent", e.key);
    const size_t k = out.comparison_of(e.key);
    if (k == out.compare.size()) {
      wr.problem(e.key_node, at, "the tier does not compare this field");
      continue;
    }
    MapView f(wr, e.value, at, {"rest", "values"});
    if (!f.ok()) continue;
    auto& c = out.compare[k];
    if (auto v = f.get("rest")) {
      if (auto p = probability(wr, *v, f.path("rest"))) c.frequent_rest = *p;
    } else {
      wr.problem(e.value, f.path("rest"), "required: the chance a stranger holds the same value, for values not listed");
    }
    if (auto v = f.get("values"))
      if (auto values = wr.entries(*v, f.path("values")))
        for (const auto& x : *values)
          if (auto p = probability(wr, x.value, child(f.path("values"), x.key))) c.frequent[x.key] = *p;
  }
}

/// The m/u file `ingestd train` writes: {fields: {NAME: {m: […], u: […]}}, together: […],
/// frequent: {…}}.
void load_weights(Reader& r, const YAML::Node& at, const std::string& path, FuzzyTier& out) {
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(out.weights);
  } catch (const std::exception& e) {
    r.problem(at, path, "cannot read the weights file " + out.weights + ": " + e.what() +
                            " (write it with `ingestd train DATASET FILE`)");
    return;
  }
  Reader wr(out.weights);
  MapView top(wr, doc, "", {"dataset", "entity", "fields", "pairs", "iterations", "together", "rows", "frequent"});
  top.read_int("rows", out.trained_rows, int64_t(0));
  if (auto f = top.get("fields"))
    if (auto es = wr.entries(*f, "fields"))
      for (const auto& e : *es) {
        const size_t k = out.comparison_of(e.key);
        if (k == out.compare.size()) {
          wr.problem(e.key_node, child("fields", e.key), "the tier does not compare this field");
          continue;
        }
        auto* c = &out.compare[k];
        MapView mu(wr, e.value, child("fields", e.key), {"m", "u"});
        if (auto v = mu.get("m")) c->m = probabilities(wr, *v, mu.path("m"), c->levels());
        if (auto v = mu.get("u")) c->u = probabilities(wr, *v, mu.path("u"), c->levels());
      }
  if (auto t = top.get("together")) load_together(wr, *t, out);
  if (auto f = top.get("frequent")) load_frequent(wr, *f, out);
  try {
    wr.finish();
  } catch (const std::exception& e) {
    r.problem(at, path, std::string("the weights file does not fit this tier (train again?): ") + e.what());
  }
}

}  // namespace

FuzzyTier load_fuzzy(Reader& r, const YAML::Node& n, const std::string& path, const Entity& ent) {
  FuzzyTier t;
  t.line = line_of(n);
  MapView m(r, n, path, {"blocking", "compare", "never_across", "merge_at", "review_at", "max_candidates", "weights"});
  if (!m.ok()) return t;
  if (auto v = m.get("blocking")) {
    if (!v->IsSequence() || v->size() == 0)
      r.problem(*v, m.path("blocking"), "expected a list of blocking rules, e.g. [[postcode], [birth_date]], got " +
                                            describe(*v));
    else
      for (size_t i = 0; i < v->size(); ++i) t.blocking.push_back(load_rule(r, (*v)[i], at_index(m.path("blocking"), i), ent));
  } else {
    r.problem(n, m.path("blocking"), "required key is missing (the index-backed searches that find candidates)");
  }
  if (auto v = m.get("compare")) {
    if (auto es = r.entries(*v, m.path("compare")))
      for (const auto& e : *es) {
        if (!has_field(ent, e.key)) unknown_field(r, e.key_node, child(m.path("compare"), e.key), ent, e.key);
        t.compare.push_back(load_comparison(r, e, child(m.path("compare"), e.key)));
      }
  }
  if (t.compare.empty()) r.problem(n, m.path("compare"), "required: the fields a candidate is compared on");
  if (auto v = m.get("never_across")) {
    t.never_across = r.string_list(*v, m.path("never_across"));
    for (const auto& f : t.never_across)
      if (!has_field(ent, f)) unknown_field(r, *v, m.path("never_across"), ent, f);
  }
  for (const char* key : {"merge_at", "review_at"}) {
    double& out = std::string_view(key) == "merge_at" ? t.merge_at : t.review_at;
    if (auto v = m.get(key)) {
      if (auto x = r.number(*v, m.path(key), -1000.0)) out = *x;
    } else {
      r.problem(n, m.path(key), "required key is missing (a match weight: the sum of log2(m/u) over the fields)");
    }
  }
  if (t.review_at > t.merge_at) r.problem(n, m.path("review_at"), "must not be above merge_at");
  m.read_int("max_candidates", t.max_candidates, 1);
  if (auto v = m.get("weights")) {
    if (auto s = r.text(*v, m.path("weights"))) {
      std::filesystem::path p(*s);
      if (p.is_relative()) p = std::filesystem::path(r.file()).parent_path() / p;
      t.weights = p.lexically_normal().string();
      if (std::filesystem::exists(t.weights)) load_weights(r, *v, m.path("weights"), t);
    }
  }
  return t;
}

}  // namespace ingestd::config::detail
