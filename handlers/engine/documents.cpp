#include "handlers/engine/documents.hpp"

#include <algorithm>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/errors.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/merge/sql_builder.hpp"
#include "handlers/engine/row_builder.hpp"

namespace ingestd::engine {

namespace {

/// The owner entity as the metadata feeds it: its fields and tiers unchanged (so keys and tier
/// SQL are the load's), each matched field read from its metadata key, every other one absent;
/// exact tiers only.
config::Dataset metadata_dataset(const config::Config& cfg, const config::DocumentsSpec& d) {
  const config::Dataset& owner_ds = cfg.datasets.at(d.owner_dataset);
  config::Dataset ds;
  ds.name = owner_ds.name;
  ds.null_values = owner_ds.null_values;
  config::Entity e = owner_entity(cfg, d);
  e.fuzzy.reset();
  for (auto& f : e.fields) {
    f.from.clear();
    f.ref.reset();
    f.lookup.reset();
    f.required = false;
    for (const auto& [field, key] : d.match)
      if (field == f.name) f.from = {key};
  }
  ds.entities.push_back(std::move(e));
  return ds;
}

/// The owner entity's field keys from the metadata, or the reason a value was refused.
std::optional<Row> metadata_row(const config::Dataset& ds, const config::DocumentsSpec& d,
                                const nlohmann::json& metadata, std::string& error) {
  std::vector<std::string> header;
  Record rec;
  for (const auto& [field, key] : d.match) {
    header.push_back(key);
    rec.fields.push_back(metadata_text(metadata, key));
  }
  rec.raw = metadata.dump();
  const std::map<std::string, std::string> no_vars;
  const RowBuilder builder(ds, header, no_vars);
  Row row;
  RowErrors errors;
  builder.build(rec, 1, row, errors);
  if (!row.rejected) return row;
  error = "metadata." + errors.list.front().field + ": " + errors.list.front().message;
  return std::nullopt;
}

/// The owner table's matcher, refusing a tier no index serves (as a load does).
std::unique_ptr<Matcher> owner_matcher(pqxx::transaction_base& tx, const config::Config& cfg, const config::Dataset& ds,
                                       TableInfo& t) {
  const config::Entity& e = ds.entities.front();
  t = describe_table(tx, e.table);
  if (!t.exists)
    throw BatchError("datasets." + ds.name + ".entities." + e.name + ".table: table " + e.table + " does not exist");
  describe_id(tx, t, e.id_column);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  std::vector<std::string> problems;
  for (const auto& r : entity_indexes(tx, ds, e, t, bk))
    if (r.index.empty()) problems.push_back(missing_index_problem(r));
  if (!problems.empty()) throw BatchError(sql::join(problems, "; "));
  return make_matcher(tx, e, t, MatchTarget{bk, t.quoted, tx.quote_name(e.id_column), t.id_type});
}

std::string given_keys(const config::DocumentsSpec& d, const nlohmann::json& metadata) {
  std::vector<std::string> given;
  for (const auto& [field, key] : d.match)
    if (!metadata_text(metadata, key).empty()) given.push_back(key + "=" + metadata_text(metadata, key));
  return sql::join(given, ", ");
}

}  // namespace

DocumentOwner find_owner(pqxx::transaction_base& tx, const config::Config& cfg, const config::DocumentsSpec& d,
                         const nlohmann::json& metadata, const std::string& batch_id, Metrics* metrics) {
  DocumentOwner out;
  const config::Dataset ds = metadata_dataset(cfg, d);
  const auto row = metadata_row(ds, d, metadata, out.error);
  if (!row) return out;
  TableInfo t;
  const auto matcher = owner_matcher(tx, cfg, ds, t);
  const std::string who = d.owner_dataset + "." + d.owner_entity + " (" + t.canonical + ")";
  const std::map<std::string, std::string> no_vars;
  StepSql sql(tx, metrics, t.canonical, batch_id, d.owner_entity, no_vars);
  const OneRowMatch m = match_one_row(sql, *matcher, row->keys.front());
  if (!m.keyed)
    out.error = "metadata " + given_keys(d, metadata) + " completes no identity tier of " + who;
  else if (!m.claimants.empty())
    out.error = "owner ambiguous: records " + sql::join(m.claimants, " and ") + " of " + who + " both match metadata " +
                given_keys(d, metadata);
  else if (m.id.empty())
    out.error = "owner not found: no record of " + who + " matches metadata " + given_keys(d, metadata);
  out.id = m.id;
  out.tier = m.tier;
  return out;
}

}  // namespace ingestd::engine
