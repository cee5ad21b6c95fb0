// Loads jobs.NAME (DESIGN §3): kind, source, dataset, writeback, after, checks, and the
// cross-field checks against the config's sources and datasets (a source database that is not
// declared, a writeback naming an entity the dataset lacks, a resolve_refs field that is not a
// deferred lookup).
#include <algorithm>

#include "config/load_sections.hpp"

namespace ingestd::config::detail {

namespace {

/// Check: resolve_refs names a field of the dataset that loading deferred.
void check_resolve_field(Reader& r, const Job& j, const Dataset& d, const YAML::Node& at,
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
    r.problem(at, path, "no field '" + j.field + "' in dataset '" + d.name + "'");
    return;
  }
  if (found.size() > 1) {
    std::vector<std::string> where;
    for (const auto& [en, f] : found) where.push_back(en->name + "." + f->name);
    r.problem(at, path,
              "field '" + j.field + "' is ambiguous in dataset '" + d.name +
                  "'; write one of: " + join(where, ", "));
    return;
  }
  const auto& [en, f] = found.front();
  // Check: resolve_refs only fills values that loading deferred, i.e. lookups with on_missing:
  // defer.
  if (!f->lookup || f->on_missing != OnMissing::Defer)
    r.problem(at, path,
              "resolve_refs needs a field with a lookup and on_missing: defer; field '" + f->name +
                  "' of entity '" + en->name + "' has " +
                  (f->lookup ? std::string("on_missing: ") +
                                   (f->on_missing == OnMissing::Null ? "null" : "reject")
                             : std::string("no lookup")));
}

/// One job's keys, read in the order their problems have always been reported in.
class JobLoader {
 public:
  JobLoader(Reader& r, const Entry& e, const MapView& m, const Config& c, Job& j)
      : r_(r), e_(e), m_(m), c_(c), j_(j) {}

  void load() {
    load_kind();
    load_dataset_name();
    load_source();
    load_field();
    m_.read_bool("atomic", j_.atomic);
    if (auto v = m_.get("writeback"))
      r_.each_mapping(*v, m_.path("writeback"), {"table", "set", "where"},
                      [&](const MapView& w, const YAML::Node& n) { load_writeback(w, n); });
    if (auto v = m_.get("after")) j_.after = r_.string_list(*v, m_.path("after"));
    if (auto v = m_.get("checks"))
      r_.each_mapping(*v, m_.path("checks"), {"name", "sql", "expect"},
                      [&](const MapView& ck, const YAML::Node& n) { load_check(ck, n); });
  }

 private:
  void load_kind() {
    if (auto v = m_.get("kind")) {
      kind_ = r_.choice<JobKind>(*v, m_.path("kind"),
                                 {{"migrate", JobKind::Migrate},
                                  {"resolve_refs", JobKind::ResolveRefs}});
      if (kind_) j_.kind = *kind_;
    } else {
      r_.problem(e_.key_node, m_.path("kind"), "required key is missing (migrate or resolve_refs)");
    }
  }

  void load_dataset_name() {
    const YAML::Node* v = m_.get("dataset");
    if (!v) {
      r_.problem(e_.key_node, m_.path("dataset"),
                 "required key is missing (the dataset whose mapping the job uses)");
      return;
    }
    auto s = r_.name_text(*v, m_.path("dataset"));
    if (!s) return;
    j_.dataset = *s;
    auto it = c_.datasets.find(*s);
    if (it != c_.datasets.end() && it->second.documents) {
      r_.problem(*v, m_.path("dataset"),
                 "dataset '" + *s + "' is of kind documents; a job maps rows through a dataset of records");
      return;
    }
    if (it != c_.datasets.end()) {
      dataset_ = &it->second;
      return;
    }
    // Check: the job maps its rows through this dataset.
    r_.problem(*v, m_.path("dataset"),
               "unknown dataset '" + *s + "'; declared datasets: " + names_or_none(c_.datasets));
  }

  void load_source() {
    const std::string no_sql =
        "required key is missing for a migrate job (the SELECT that reads the rows)";
    const YAML::Node* source = m_.get("source");
    if (!source) {
      if (kind_ == JobKind::Migrate) r_.problem(e_.key_node, m_.path("source") + ".sql", no_sql);
      return;
    }
    MapView s(r_, *source, m_.path("source"), {"database", "sql", "watermark"});
    if (!s.ok()) return;
    if (auto v = s.get("database")) {
      if (auto db = r_.name_text(*v, s.path("database"))) {
        j_.source_database = *db;
        // Check: a source database must be declared under sources (with its URL).
        if (!c_.sources.count(*db))
          r_.problem(*v, s.path("database"),
                     "unknown source database '" + *db +
                         "'; declared sources: " + names_or_none(c_.sources));
      }
    }
    const bool sql_given = s.get("sql") != nullptr;
    s.read_name("sql", j_.source_sql);
    s.read_name("watermark", j_.watermark);
    if (kind_ == JobKind::Migrate && !sql_given) r_.problem(*source, s.path("sql"), no_sql);
  }

  void load_field() {
    const YAML::Node* field = m_.get("field");
    m_.read_name("field", j_.field);
    if (kind_ != JobKind::ResolveRefs) return;
    if (!field)
      r_.problem(e_.key_node, m_.path("field"),
                 "required key is missing for a resolve_refs job (the deferred field)");
    else if (dataset_ && !j_.field.empty())
      check_resolve_field(r_, j_, *dataset_, *field, m_.path("field"));
  }

  void load_writeback(const MapView& w, const YAML::Node& n) {
    Writeback wb;
    if (auto s = w.require_name("table", n, "the table to write back to")) wb.table = *s;
    if (auto sn = w.get("set")) {
      wb.set = r_.scalar_map(*sn, w.path("set"));
      if (dataset_) check_set_entities(wb, *sn, w.path("set"));
    }
    if (wb.set.empty())
      r_.problem(n, w.path("set"), "required: at least one column: entity to write back");
    if (auto wh = w.get("where")) wb.where = r_.scalar_map(*wh, w.path("where"));
    // An empty where would update every row of the table.
    if (wb.where.empty())
      r_.problem(n, w.path("where"), "required: at least one column: source column to match rows");
    j_.writeback.push_back(std::move(wb));
  }

  /// Check: set's values are entities of the job's dataset, whose ids are written back.
  void check_set_entities(const Writeback& wb, const YAML::Node& set, const std::string& path) {
    for (const auto& [col, entity] : wb.set) {
      const bool found = std::any_of(dataset_->entities.begin(), dataset_->entities.end(),
                                     [&](const Entity& en) { return en.name == entity; });
      if (found) continue;
      std::vector<std::string> names;
      for (const auto& en : dataset_->entities) names.push_back(en.name);
      r_.problem(set[col], child(path, col),
                 "no entity '" + entity + "' in dataset '" + dataset_->name +
                     "'; its entities: " + join(names, ", "));
    }
  }

  void load_check(const MapView& ck, const YAML::Node& n) {
    Check chk;
    if (auto s = ck.require_name("name", n, "")) chk.name = *s;
    if (auto s = ck.require_name("sql", n, "a query returning one value")) chk.sql = *s;
    if (auto v = ck.get("expect"))
      if (auto s = r_.any_scalar(*v, ck.path("expect"))) chk.expect = *s;
    j_.checks.push_back(std::move(chk));
  }

  Reader& r_;
  const Entry& e_;
  const MapView& m_;
  const Config& c_;
  Job& j_;
  std::optional<JobKind> kind_;       // unset when missing or invalid: no kind-specific checks
  const Dataset* dataset_ = nullptr;  // the declared dataset the job names, if any
};

}  // namespace

Job load_job(Reader& r, const Entry& e, const std::string& path, const Config& c) {
  Job j;
  j.name = e.key;
  j.line = line_of(e.key_node);
  MapView m(r, e.value, path,
            {"kind", "source", "dataset", "field", "atomic", "writeback", "after", "checks"});
  if (!m.ok()) return j;
  JobLoader(r, e, m, c, j).load();
  return j;
}

}  // namespace ingestd::config::detail
