// Loads datasets.NAME (DESIGN §3; `kind: documents` in load_documents.cpp): format, csv / jsonl options, entities in
// order, their fields, normalizers and lookups, and the checks that need only the dataset itself (a ref to a later
// entity, an identity tier naming an unknown field, two fields writing one column, …).
#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/load_sections.hpp"

namespace ingestd::config::detail {

namespace {

const Words<MergePolicy> kMergeWords = {{"fill_nulls", MergePolicy::FillNulls},
                                        {"overwrite", MergePolicy::Overwrite},
                                        {"keep", MergePolicy::Keep}};

// ---- normalizers -------------------------------------------------------------------------

const Words<Normalizer::Kind> kNormalizerWords = {
    {"trim", Normalizer::Kind::Trim},   {"digits", Normalizer::Kind::Digits},
    {"email", Normalizer::Kind::Email}, {"phone", Normalizer::Kind::Phone},
    {"name", Normalizer::Kind::Name},   {"upper", Normalizer::Kind::Upper},
    {"lower", Normalizer::Kind::Lower}, {"none", Normalizer::Kind::None}};

/// `invalid: reject | null`, which every normalizer takes.
void read_invalid(Reader& r, const MapView& o, Normalizer& out) {
  if (auto v = o.get_raw("invalid"))
    if (auto rej = r.choice<bool>(*v, o.path("invalid"), {{"reject", true}, {"null", false}}))
      out.invalid_reject = *rej;
}

void load_phone_options(Reader& r, const YAML::Node& n, const std::string& path,
                        Normalizer& out) {
  MapView o(r, n, path, {"region", "invalid"});
  if (auto v = o.get("region")) {
    if (auto s = r.text(*v, o.path("region"))) {
      const bool two_letters = s->size() == 2 &&
                               std::isalpha(static_cast<unsigned char>((*s)[0])) &&
                               std::isalpha(static_cast<unsigned char>((*s)[1]));
      if (!two_letters) {
        r.problem(*v, o.path("region"),
                  "expected a two-letter region code like CO or US, got '" + *s + "'");
      } else {
        for (char& c : *s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        out.phone_region = *s;
      }
    }
  }
  read_invalid(r, o, out);
}

/// A normalizer name, or a mapping of one name to its options ({digits: {min_digits: 7}}).
Normalizer load_normalizer(Reader& r, const YAML::Node& n, const std::string& path) {
  Normalizer out;
  if (n.IsScalar()) {
    if (auto k = r.choice(n, path, kNormalizerWords)) out.kind = *k;
    return out;
  }
  if (!n.IsMap() || n.size() != 1) {
    r.problem(n, path,
              "expected a normalizer name (trim, digits, email, phone, name, upper, lower, none) "
              "or one name with options, e.g. {digits: {min_digits: 7}}, got " +
                  describe(n));
    return out;
  }
  auto es = r.entries(n, path);
  if (!es || es->empty()) return out;
  const Entry& e = es->front();
  std::optional<Normalizer::Kind> kind;
  for (const auto& k : kNormalizerWords)
    if (e.key == k.first) kind = k.second;
  if (!kind) {
    r.problem(e.key_node, child(path, e.key),
              "unknown normalizer; allowed: trim, digits, email, phone, name, upper, lower, none");
    return out;
  }
  out.kind = *kind;
  const std::string opath = child(path, e.key);
  if (*kind == Normalizer::Kind::Digits) {
    MapView o(r, e.value, opath, {"min_digits", "invalid"});
    o.read_int("min_digits", out.min_digits, 0);
    read_invalid(r, o, out);
  } else if (*kind == Normalizer::Kind::Phone) {
    load_phone_options(r, e.value, opath, out);
  } else {
    MapView o(r, e.value, opath, {"invalid"});
    read_invalid(r, o, out);
  }
  return out;
}

// ---- fields ------------------------------------------------------------------------------

/// The entities of the dataset, for the checks of a field's `ref`.
struct EntityNames {
  const std::vector<std::string>& earlier;  // declared before the entity being read
  const std::vector<std::string>& all;
};

void load_ref(Reader& r, const MapView& m, const YAML::Node& ref, const EntityNames& names,
              Field& f) {
  auto s = r.name_text(ref, m.path("ref"));
  if (!s) return;
  f.ref = *s;
  // Check: entities are written in order, so a ref can only use an id already resolved.
  if (std::find(names.earlier.begin(), names.earlier.end(), *s) != names.earlier.end()) return;
  const bool declared = std::find(names.all.begin(), names.all.end(), *s) != names.all.end();
  const std::string tail = "; a ref must name an earlier entity (declared earlier: " +
                           (names.earlier.empty() ? "none" : join(names.earlier, ", ")) + ")";
  r.problem(ref, m.path("ref"),
            declared ? "entity '" + *s + "' is not declared before this one" + tail
                     : "no entity '" + *s + "' in this dataset" + tail);
}

/// `from` and `ref`: where the field's value comes from.
void load_value_source(Reader& r, const MapView& m, const Entry& e, const EntityNames& names,
                       Field& f) {
  const YAML::Node* from = m.get("from");
  if (from) {
    if (from->IsSequence()) {
      f.from = r.string_list(*from, m.path("from"));
      if (from->size() == 0) r.problem(*from, m.path("from"), "expected at least one source name");
    } else if (auto s = r.name_text(*from, m.path("from"))) {
      f.from.push_back(*s);
    }
  }
  const YAML::Node* ref = m.get("ref");
  if (ref) load_ref(r, m, *ref, names, f);
  // Check: a field takes its value from the input or from an earlier entity, never both.
  if (!from && !ref)
    r.problem(e.key_node, m.path(),
              "needs 'from' (source column names) or 'ref' (an earlier entity)");
  if (from && ref)
    r.problem(*ref, m.path(),
              "has both 'from' and 'ref'; a field takes its value from one of them");
}

/// `type` and `formats`.
void load_type(Reader& r, const MapView& m, Field& f) {
  const YAML::Node* type = m.get("type");
  if (type)
    if (auto t = r.choice<FieldType>(*type, m.path("type"),
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
    f.formats = r.string_list(*v, m.path("formats"));
    // Check: formats only mean something to the date parsers; elsewhere they hide a typo in type.
    if (f.type != FieldType::Date && f.type != FieldType::Timestamp)
      r.problem(*v, m.path("formats"),
                "formats apply only to type date or timestamp; this field's type is " +
                    (type && type->IsScalar() ? "'" + type->Scalar() + "'" : std::string("text")));
  }
}

std::optional<Lookup> load_lookup(Reader& r, const YAML::Node& n, const std::string& path) {
  MapView l(r, n, path, {"table", "key", "returns"});
  if (!l.ok()) return std::nullopt;
  Lookup lk;
  lk.returns = "id";
  auto table = l.require_name("table", n, "the table to look the value up in");
  auto key = l.require_name("key", n, "the column matched against the value");
  l.read_name("returns", lk.returns);
  if (!table || !key) return std::nullopt;
  lk.table = *table;
  lk.key = *key;
  return lk;
}

void load_on_missing(Reader& r, const MapView& m, Field& f) {
  const YAML::Node* v = m.get_raw("on_missing");
  if (!v) return;
  if (auto o = r.choice<OnMissing>(*v, m.path("on_missing"),
                                   {{"null", OnMissing::Null},
                                    {"reject", OnMissing::Reject},
                                    {"defer", OnMissing::Defer}})) {
    f.on_missing = *o;
    // Check: only a lookup can be resolved later; deferring anything else would never finish.
    if (*o == OnMissing::Defer && !m.get("lookup"))
      r.problem(*v, m.path("on_missing"), "defer needs a lookup on this field");
  }
}

Field load_field(Reader& r, const Entry& e, const std::string& path, const EntityNames& names) {
  Field f;
  f.name = e.key;
  f.column = e.key;
  f.line = line_of(e.key_node);
  MapView m(r, e.value, path,
            {"column", "from", "ref", "type", "formats", "normalize", "required", "merge", "lookup",
             "on_missing"});
  if (!m.ok()) return f;

  m.read_name("column", f.column);
  load_value_source(r, m, e, names, f);
  load_type(r, m, f);
  if (auto v = m.get("normalize")) f.normalize = load_normalizer(r, *v, m.path("normalize"));
  m.read_bool("required", f.required);
  if (auto v = m.get("merge"))
    if (auto p = r.choice(*v, m.path("merge"), kMergeWords)) f.merge = *p;
  if (auto v = m.get("lookup")) f.lookup = load_lookup(r, *v, m.path("lookup"));
  load_on_missing(r, m, f);
  return f;
}

// ---- entities ----------------------------------------------------------------------------

/// Check: two fields writing one column would make the row's value depend on field order.
void check_unique_columns(Reader& r, const Entity& ent, const std::string& fields_path) {
  for (size_t i = 0; i < ent.fields.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (!ent.fields[i].column.empty() && ent.fields[i].column == ent.fields[j].column) {
        r.problem(ent.fields[i].line, child(child(fields_path, ent.fields[i].name), "column"),
                  "column '" + ent.fields[i].column + "' is already written by field '" +
                      ent.fields[j].name + "'");
        break;
      }
    }
  }
}

/// `identity`: tiers of field names, highest priority first.
void load_identity(Reader& r, const YAML::Node& n, const std::string& path, Entity& ent) {
  if (!n.IsSequence()) {
    r.problem(n, path,
              "expected a list of tiers (lists of field names, then optionally {fuzzy: …}), e.g. [[cedula], "
              "[email]], got " +
                  describe(n));
    return;
  }
  std::vector<std::string> field_names;
  for (const auto& f : ent.fields) field_names.push_back(f.name);
  for (size_t i = 0; i < n.size(); ++i) {
    const YAML::Node tier_node = n[i];
    const std::string tpath = at_index(path, i);
    if (tier_node.IsMap() && tier_node.size() == 1 && tier_node.begin()->first.as<std::string>("") == "fuzzy") {
      if (ent.fuzzy) r.problem(tier_node, tpath, "an entity has one fuzzy tier");
      else if (i + 1 != n.size()) r.problem(tier_node, tpath, "the fuzzy tier runs after the exact ones: list it last");
      ent.fuzzy = load_fuzzy(r, tier_node.begin()->second, child(tpath, "fuzzy"), ent);
      continue;
    }
    if (!tier_node.IsSequence() || tier_node.size() == 0) {
      r.problem(tier_node, tpath,
                "expected a non-empty list of field names, e.g. [email] or [first_name, "
                "last_name], or {fuzzy: …}, got " +
                    describe(tier_node));
      continue;
    }
    std::vector<std::string> tier = r.string_list(tier_node, tpath);
    // Check: a tier naming an unknown field could never apply, silently weakening dedup.
    for (const auto& name : tier) {
      if (std::find(field_names.begin(), field_names.end(), name) == field_names.end())
        r.problem(tier_node, tpath,
                  "identity tier names field '" + name + "', which entity '" + ent.name +
                      "' does not declare; its fields: " + join(field_names, ", "));
    }
    ent.identity.push_back(std::move(tier));
  }
}

/// on_insert / on_update: column -> literal or one of DESIGN §3's variables. A value that starts
/// with `$` must be exactly a variable: it becomes a bound parameter, and anything after the
/// name would otherwise reach the SQL text.
std::vector<std::pair<std::string, std::string>> stamp_values(Reader& r, const YAML::Node& n, const std::string& path) {
  auto out = r.scalar_map(n, path);
  for (const auto& [column, value] : out) {
    if (value.empty() || value[0] != '$') continue;
    if (std::find(kStampVariables.begin(), kStampVariables.end(), value) == kStampVariables.end())
      r.problem(n[column], child(path, column),
                "unknown variable '" + value.substr(0, 80) + "'; the variables are " + join(kStampVariables, ", "));
  }
  return out;
}

Entity load_entity(Reader& r, const Entry& e, const std::string& path, const EntityNames& names) {
  Entity ent;
  ent.name = e.key;
  ent.line = line_of(e.key_node);
  MapView m(r, e.value, path,
            {"table", "id", "identity", "fields", "merge", "on_insert", "on_update"});
  if (!m.ok()) return ent;

  if (auto s = m.require_name("table", e.key_node, "the target table, e.g. public.persons"))
    ent.table = *s;
  m.read_name("id", ent.id_column);
  if (auto v = m.get("merge"))
    if (auto p = r.choice(*v, m.path("merge"), kMergeWords)) ent.merge = *p;
  if (auto v = m.get("on_insert")) ent.on_insert = stamp_values(r, *v, m.path("on_insert"));
  if (auto v = m.get("on_update")) ent.on_update = stamp_values(r, *v, m.path("on_update"));

  if (auto v = m.get("fields")) {
    if (auto es = r.entries(*v, m.path("fields")))
      for (const auto& fe : *es)
        ent.fields.push_back(load_field(r, fe, child(m.path("fields"), fe.key), names));
  }
  check_unique_columns(r, ent, m.path("fields"));
  if (auto v = m.get("identity")) load_identity(r, *v, m.path("identity"), ent);
  return ent;
}

// ---- csv options -------------------------------------------------------------------------

std::optional<char> single_char(Reader& r, const YAML::Node& n, const std::string& path) {
  auto v = r.text(n, path, "a single character");
  if (!v) return std::nullopt;
  // A tab is hard to see and to type in YAML: accept "\t" in any quoting, and the word "tab".
  if (*v == "\\t" || *v == "tab") return '\t';
  if (v->size() != 1) {
    r.problem(n, path, "expected a single character (or \"\\t\" / tab), got '" + *v + "'");
    return std::nullopt;
  }
  return (*v)[0];
}

void load_encoding(Reader& r, const YAML::Node& n, const std::string& path, CsvOptions& csv) {
  auto s = r.text(n, path);
  if (!s) return;
  std::string lower = *s;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (lower == "utf-8" || lower == "utf8")
    csv.encoding = "utf-8";
  else if (lower == "latin1" || lower == "latin-1" || lower == "iso-8859-1")
    csv.encoding = "latin1";
  else
    r.problem(n, path, "expected one of utf-8, latin1, got '" + *s + "'");
}

void load_csv(Reader& r, const YAML::Node& n, const std::string& path, CsvOptions& csv) {
  MapView m(r, n, path, {"delimiter", "encoding", "header", "quote", "max_row_bytes"});
  if (!m.ok()) return;
  if (auto v = m.get("delimiter"))
    if (auto c = single_char(r, *v, m.path("delimiter"))) csv.delimiter = *c;
  if (auto v = m.get("encoding")) load_encoding(r, *v, m.path("encoding"), csv);
  m.read_bool("header", csv.header);
  if (auto v = m.get("quote"))
    if (auto c = single_char(r, *v, m.path("quote"))) csv.quote = *c;
  m.read_int<int64_t>("max_row_bytes", csv.max_row_bytes, 2);
  if (csv.delimiter == csv.quote)
    r.problem(n, path, "delimiter and quote must be different characters");
}

// ---- xlsx options ------------------------------------------------------------------------

void load_xlsx(Reader& r, const YAML::Node& n, const std::string& path, XlsxOptions& x) {
  MapView m(r, n, path, {"sheet", "header_row"});
  if (!m.ok()) return;
  // A plain integer is a 1-based position; anything else (a quoted "2024" too) is a name.
  if (auto v = m.get("sheet")) {
    const bool quoted = v->Tag() == "!";
    auto s = r.text(*v, m.path("sheet"), "a sheet name or a 1-based sheet index");
    int idx = 0;
    const bool digits = s && !s->empty() && std::all_of(s->begin(), s->end(), [](unsigned char c) { return std::isdigit(c); });
    if (s && !quoted && digits) {
      auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), idx);
      if (ec != std::errc() || idx < 1)
        r.problem(*v, m.path("sheet"), "expected a sheet name or a 1-based sheet index, got '" + *s + "'");
      else
        x.sheet_index = idx;
    } else if (s && s->empty()) {
      r.problem(*v, m.path("sheet"), "expected a sheet name or a 1-based sheet index, got an empty string");
    } else if (s) {
      x.sheet_name = *s;
    }
  }
  m.read_int<int64_t>("header_row", x.header_row, 1);
}

void load_jsonl(Reader& r, const YAML::Node& n, const std::string& path, JsonlOptions& jsonl) {
  MapView m(r, n, path, {"max_line_bytes"});
  if (!m.ok()) return;
  m.read_int<int64_t>("max_line_bytes", jsonl.max_line_bytes, 2);
}

/// Check: a format's options block given to a dataset of another format is a mistake (a
/// `csv: {delimiter: ";"}` that would silently do nothing), not a harmless extra.
void check_format_options(Reader& r, const MapView& m, const Dataset& d) {
  for (auto [key, format] : {std::pair{"csv", Format::Csv}, std::pair{"jsonl", Format::Jsonl}, std::pair{"xlsx", Format::Xlsx}})
    if (auto v = m.get(key); v && d.format != format)
      r.problem(*v, m.path(key),
                std::string(key) + " options apply to format " + key + "; this dataset's format is " +
                    std::string(to_string(d.format)));
}

}  // namespace

Dataset load_dataset(Reader& r, const Entry& e, const std::string& path) {
  Dataset d;
  d.name = e.key;
  d.line = line_of(e.key_node);
  MapView m(
      r, e.value, path,
      {"kind", "format", "csv", "jsonl", "xlsx", "atomic", "null_values", "entities", "target", "owner", "store_dir"});
  if (!m.ok()) return d;
  if (is_documents(r, m)) {
    d.documents = load_documents(r, m, e.key_node);
    return d;
  }
  refuse_document_keys(r, m);
  if (auto v = m.get("format"))
    if (auto f = r.choice<Format>(*v, m.path("format"),
                                  {{"csv", Format::Csv}, {"jsonl", Format::Jsonl}, {"xlsx", Format::Xlsx}}))
      d.format = *f;
  if (auto v = m.get("csv")) load_csv(r, *v, m.path("csv"), d.csv);
  if (auto v = m.get("jsonl")) load_jsonl(r, *v, m.path("jsonl"), d.jsonl);
  if (auto v = m.get("xlsx")) load_xlsx(r, *v, m.path("xlsx"), d.xlsx);
  check_format_options(r, m, d);
  m.read_bool("atomic", d.atomic);
  if (auto v = m.get("null_values")) d.null_values = r.string_list(*v, m.path("null_values"));

  const YAML::Node* ents = m.get("entities");
  if (!ents) {
    r.problem(e.key_node, m.path("entities"),
              "required key is missing; declare at least one entity");
    return d;
  }
  auto es = r.entries(*ents, m.path("entities"));
  if (!es) return d;
  if (es->empty()) {
    r.problem(*ents, m.path("entities"), "expected at least one entity");
    return d;
  }
  std::vector<std::string> all;
  for (const auto& ent : *es) all.push_back(ent.key);
  std::vector<std::string> earlier;
  for (const auto& ent : *es) {
    d.entities.push_back(
        load_entity(r, ent, child(m.path("entities"), ent.key), EntityNames{earlier, all}));
    earlier.push_back(ent.key);
  }
  return d;
}

}  // namespace ingestd::config::detail
