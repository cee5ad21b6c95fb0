// Loads a `kind: documents` dataset (issue 17): the table a file becomes a row of, the owner
// record it is linked to (an entity of another dataset, matched through its identity tiers by
// keys of the event's `metadata`) and the optional content-addressed store; and the check of the
// owner, which needs every dataset loaded.
#include <algorithm>

#include "config/load_sections.hpp"

namespace ingestd::config::detail {

namespace {

/// Keys of one kind of dataset given to the other: a mistake to say, not an extra to ignore.
void refuse_keys(Reader& r, const MapView& m, std::initializer_list<std::string_view> keys, const std::string& why) {
  for (auto key : keys)
    if (auto v = m.get_raw(key)) r.problem(*v, m.path(key), std::string(key) + " " + why);
}

void load_target(Reader& r, const MapView& m, DocumentsSpec& d) {
  MapView t(r, *m.get("target"), m.path("target"),
            {"table", "id", "owner_column", "uri", "path", "sha256", "size_bytes", "media_type", "original_name",
             "batch_id"});
  if (!t.ok()) return;
  if (auto s = t.require_name("table", t.node(), "the documents table, e.g. public.student_documents")) d.table = *s;
  if (auto s = t.require_name("owner_column", t.node(), "the column that holds the owner record's id"))
    d.owner_column = *s;
  if (auto s = t.require_name("sha256", t.node(), "the column of the file's sha256, unique per owner")) d.sha256 = *s;
  t.read_name("id", d.id_column);
  for (auto [key, out] : {std::pair{"uri", &d.uri}, std::pair{"path", &d.path}, std::pair{"size_bytes", &d.size_bytes},
                          std::pair{"media_type", &d.media_type}, std::pair{"original_name", &d.original_name},
                          std::pair{"batch_id", &d.batch_id}})
    t.read_name(key, *out);
  if (!d.path.empty() && d.store_dir.empty())
    r.problem(*t.get("path"), t.path("path"), "a stored path needs store_dir (where files are copied to)");
}

void load_owner(Reader& r, const MapView& m, DocumentsSpec& d) {
  MapView o(r, *m.get("owner"), m.path("owner"), {"dataset", "entity", "match"});
  if (!o.ok()) return;
  d.line = line_of(o.node());
  if (auto s = o.require_name("dataset", o.node(), "the dataset whose entity owns the documents")) d.owner_dataset = *s;
  o.read_name("entity", d.owner_entity);
  if (auto v = o.get("match")) {
    d.match = r.scalar_map(*v, o.path("match"));
    if (d.match.empty()) r.problem(*v, o.path("match"), "expected at least one owner field: metadata key");
  } else {
    r.problem(o.node(), o.path("match"), "required key is missing (owner field: metadata key, e.g. {cedula: cedula})");
  }
}

}  // namespace

bool is_documents(Reader& r, const MapView& m) {
  const YAML::Node* v = m.get("kind");
  if (!v) return false;
  return r.choice<bool>(*v, m.path("kind"), {{"records", false}, {"documents", true}}).value_or(false);
}

DocumentsSpec load_documents(Reader& r, const MapView& m, const YAML::Node& at) {
  DocumentsSpec d;
  refuse_keys(r, m, {"format", "csv", "jsonl", "xlsx", "atomic", "null_values", "entities"},
              "applies to datasets of records; a documents dataset stores each file as one row");
  if (auto v = m.get("store_dir"))
    if (auto s = r.name_text(*v, m.path("store_dir"))) {
      if ((*s)[0] != '/') r.problem(*v, m.path("store_dir"), "expected an absolute path, got '" + *s + "'");
      d.store_dir = *s;
    }
  if (m.get("target"))
    load_target(r, m, d);
  else
    r.problem(at, m.path("target"), "required key is missing (the documents table and its columns)");
  if (m.get("owner"))
    load_owner(r, m, d);
  else
    r.problem(at, m.path("owner"), "required key is missing (the dataset entity a document belongs to)");
  return d;
}

void refuse_document_keys(Reader& r, const MapView& m) {
  refuse_keys(r, m, {"target", "owner", "store_dir"}, "applies to kind: documents");
}

void check_document_owners(Reader& r, Config& c) {
  for (auto& [name, ds] : c.datasets) {
    if (!ds.documents || ds.documents->owner_dataset.empty()) continue;
    DocumentsSpec& d = *ds.documents;
    const std::string path = "datasets." + name + ".owner";
    const auto owner = c.datasets.find(d.owner_dataset);
    if (owner == c.datasets.end() || owner->second.documents) {
      r.problem(d.line, path + ".dataset", "'" + d.owner_dataset + "' is no dataset of records in this config");
      continue;
    }
    const auto& ents = owner->second.entities;
    if (d.owner_entity.empty() && ents.size() == 1) d.owner_entity = ents.front().name;
    const auto ent = std::find_if(ents.begin(), ents.end(), [&](auto& e) { return e.name == d.owner_entity; });
    if (ent == ents.end()) {
      r.problem(d.line, path + ".entity",
                (d.owner_entity.empty() ? "required: dataset " + d.owner_dataset + " has several entities"
                                        : "no entity '" + d.owner_entity + "' in dataset " + d.owner_dataset));
      continue;
    }
    std::vector<std::string> fields;
    for (const auto& f : ent->fields) fields.push_back(f.name);
    for (const auto& [field, key] : d.match)
      if (std::find(fields.begin(), fields.end(), field) == fields.end())
        r.problem(d.line, path + ".match." + field,
                  "entity " + ent->name + " has no field '" + field + "'; its fields: " + join(fields, ", "));
    const auto covered = [&](const std::vector<std::string>& tier) {
      return std::all_of(tier.begin(), tier.end(), [&](auto& f) {
        return std::any_of(d.match.begin(), d.match.end(), [&](auto& mk) { return mk.first == f; });
      });
    };
    if (std::none_of(ent->identity.begin(), ent->identity.end(), covered))
      r.problem(
          d.line, path + ".match",
          "matches no identity tier of " + d.owner_dataset + "." + ent->name + " whole; name every field of one tier");
  }
}

}  // namespace ingestd::config::detail
