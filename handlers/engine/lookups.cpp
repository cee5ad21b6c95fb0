#include "handlers/engine/lookups.hpp"

#include <set>
#include <unordered_map>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/normalize.hpp"

namespace ingestd::engine {

namespace {

void resolve_field(pqxx::transaction_base& tx, const EntityMapping& m, size_t k, const TableInfo& lt, Chunk& chunk) {
  const config::Field& f = m.cfg->fields[k];
  std::set<std::string> wanted;
  for (Row& r : chunk.rows)
    if (!r.rejected && r.values[m.index][k]) wanted.insert(*r.values[m.index][k]);
  if (wanted.empty()) return;
  const std::string key = tx.quote_name(f.lookup->key);
  auto res = tx.exec_params("SELECT l." + key + "::text, l." + tx.quote_name(f.lookup->returns) + "::text FROM " +
                                lt.quoted + " l WHERE l." + key + "::text = ANY($1::text[])",
                            text_array_literal(wanted));
  std::unordered_map<std::string, std::string> found;
  for (const auto& row : res)
    if (!row[1].is_null()) found.emplace(row[0].as<std::string>(), row[1].as<std::string>());
  const std::string col = f.from.empty() ? f.name : f.from.front();
  for (Row& r : chunk.rows) {
    if (r.rejected || !r.values[m.index][k]) continue;
    auto& v = r.values[m.index][k];
    if (auto it = found.find(*v); it != found.end()) {
      v = it->second;
      r.keys[m.index][k] = it->second;
      continue;
    }
    if (f.on_missing == config::OnMissing::Reject) {
      reject(chunk.errors, r, col, "lookup_missing",
             "no " + f.lookup->table + " row with " + f.lookup->key + " = " + quoted_value(*v));
      continue;
    }
    if (f.on_missing == config::OnMissing::Defer) r.deferred[m.index][k] = v;
    v.reset();
    r.keys[m.index][k].reset();
  }
}

}  // namespace

void resolve_lookups(pqxx::transaction_base& tx, const std::vector<EntityMapping>& entities,
                     const std::vector<EntityTables>& tables, Chunk& chunk) {
  for (const EntityMapping& m : entities)
    for (size_t k = 0; k < m.cfg->fields.size(); ++k)
      if (m.cfg->fields[k].lookup) resolve_field(tx, m, k, tables[m.index].lookup_tables[k], chunk);
}

}  // namespace ingestd::engine
