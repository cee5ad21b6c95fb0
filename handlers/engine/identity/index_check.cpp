#include "handlers/engine/identity/index_check.hpp"

#include <set>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/tier_sql.hpp"

namespace ingestd::engine {

std::string tier_where(const config::Dataset& ds, const config::Entity& ent, int tier_number) {
  return "datasets." + ds.name + ".entities." + ent.name + ".identity[" + std::to_string(tier_number - 1) + "]";
}

std::string missing_index_problem(const TierIndexReport& r) {
  return r.where + ": no index on " + r.table + " serves this " + (r.blocking ? "blocking rule" : "tier") +
         "; create it with `ingestd check --create-indexes`, or: " + (r.before.empty() ? "" : r.before + "; ") +
         r.create_index;
}

std::vector<TierIndexReport> entity_indexes(pqxx::transaction_base& tx, const config::Dataset& ds,
                                            const config::Entity& ent, const TableInfo& t, const std::string& bk) {
  std::vector<TierIndexReport> out;
  for (const auto& tier : tier_sql(tx, ent, t, bk)) {
    TierIndex ti = tier_index(tx, t, tier);
    out.push_back({tier_where(ds, ent, tier.tier.number), t.canonical, ti.index, ti.create_index, false, false, ""});
  }
  std::vector<std::string> missing;
  for (const auto& rule : blocking_sql(tx, ent, t, bk, missing)) {
    // the id last: a big block is cut at the lowest ids, read in order from the index
    TierIndex ti = tier_index(tx, t, rule, "block", tx.quote_name(ent.id_column));
    TierIndexReport r{tier_where(ds, ent, int(ent.identity.size()) + 1) + ".fuzzy.blocking[" +
                          std::to_string(rule.tier.number - 1) + "]",
                      t.canonical, ti.index, ti.create_index, false, true, ""};
    for (const auto& f : rule.fields)
      if (!f.probe_function.empty() && f.probe_function.find('.') == std::string::npos) {
        // the phonetic functions come with PostgreSQL's fuzzystrmatch (a trusted extension)
        r.before = "CREATE EXTENSION IF NOT EXISTS fuzzystrmatch";
        r.index.clear();
      }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<TierIndexReport> identity_indexes(pqxx::connection& conn, const config::Dataset& ds,
                                              const std::string& bookkeeping_schema) {
  std::vector<TierIndexReport> out;
  pqxx::read_transaction tx(conn);
  const std::string bk = tx.quote_name(bookkeeping_schema);
  for (const auto& ent : ds.entities) {
    TableInfo t = describe_table(tx, ent.table);
    if (!t.exists) continue;  // the schema checks report it
    for (auto& r : entity_indexes(tx, ds, ent, t, bk)) out.push_back(std::move(r));
  }
  return out;
}

void create_identity_indexes(pqxx::connection& conn, std::vector<TierIndexReport>& reports) {
  std::set<std::string> tables, done;
  for (auto& r : reports) {
    if (!r.index.empty()) continue;
    if (!r.before.empty() && done.insert(r.before).second) pqxx::nontransaction(conn).exec(r.before);
    if (done.insert(r.create_index).second) {
      pqxx::nontransaction tx(conn);  // CREATE INDEX CONCURRENTLY cannot run in a transaction
      tx.exec(r.create_index);  // a function the extension just made is found on the search path
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
