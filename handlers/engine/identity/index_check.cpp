#include "handlers/engine/identity/index_check.hpp"

#include <set>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/tier_sql.hpp"

namespace ingestd::engine {

std::string tier_where(const config::Dataset& ds, const config::Entity& ent, int tier_number) {
  return "datasets." + ds.name + ".entities." + ent.name + ".identity[" + std::to_string(tier_number - 1) + "]";
}

std::string missing_index_problem(const TierIndexReport& r) {
  return r.where + ": no index on " + r.table + " serves this tier; create it with `ingestd check --create-indexes`, "
         "or: " + r.create_index;
}

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
      out.push_back({tier_where(ds, ent, tier.tier.number), t.canonical, ti.index, ti.create_index, false});
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
