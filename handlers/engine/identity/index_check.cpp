#include "handlers/engine/identity/index_check.hpp"

#include <set>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/tier_sql.hpp"

namespace ingestd::engine {

std::vector<TierIndexReport> identity_indexes(pqxx::connection& conn, const config::Dataset& ds,
                                              const std::string& bookkeeping_schema) {
  std::vector<TierIndexReport> out;
  pqxx::read_transaction tx(conn);
  const std::string bk = tx.quote_name(bookkeeping_schema);
  for (const auto& ent : ds.entities) {
    TableInfo t = describe_table(tx, ent.table);
    if (!t.exists) continue;  // the schema checks report it
    for (const auto& tier : tier_sql(tx, ent, t, bk)) {
      TierIndex ti = tier_index(tx, t, tier);
      out.push_back({"datasets." + ds.name + ".entities." + ent.name + ".identity[" +
                         std::to_string(tier.tier.number - 1) + "]",
                     t.canonical, ti.index, ti.create_index, false});
    }
  }
  return out;
}

void create_identity_indexes(pqxx::connection& conn, std::vector<TierIndexReport>& reports) {
  std::set<std::string> tables, done;
  for (auto& r : reports) {
    if (!r.index.empty()) continue;
    if (done.insert(r.create_index).second) {
      pqxx::nontransaction tx(conn);  // CREATE INDEX CONCURRENTLY cannot run in a transaction
      tx.exec(r.create_index);
    }
    r.created = true;
    tables.insert(r.table);
  }
  for (const auto& t : tables) {
    pqxx::nontransaction tx(conn);
    tx.exec("ANALYZE " + tx.quote_name(t.substr(0, t.find('.'))) + "." + tx.quote_name(t.substr(t.find('.') + 1)));
  }
}

}  // namespace ingestd::engine
