#include "handlers/engine/identity/compaction.hpp"

#include <spdlog/spdlog.h>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/identity/tier_sql.hpp"

namespace ingestd::engine {

namespace {

int64_t compact_tier(pqxx::transaction_base& tx, const std::string& bk, const TableInfo& t, const std::string& id,
                     const TierSql& tier) {
  const std::string signature = tier.composite_text();
  const std::string done = bk + ".identity_compactions";
  if (!tx.exec_params("SELECT 1 FROM " + done + " WHERE table_name = $1 AND tier = $2 AND signature = $3", t.canonical,
                      tier.tier.number, signature)
           .empty())
    return -1;
  auto del = tx.exec_params("DELETE FROM " + bk + ".identity_keys k USING " + t.quoted + " t WHERE k.table_name = $1 AND "
                            "k.tier = $2 AND t." + id + "::text = k.record_id AND k.key = " + signature,
                            t.canonical, tier.tier.number);
  tx.exec_params("INSERT INTO " + done + " (table_name, tier, signature, rows_removed) VALUES ($1, $2, $3, $4)",
                 t.canonical, tier.tier.number, signature, int64_t(del.affected_rows()));
  return int64_t(del.affected_rows());
}

}  // namespace

int64_t compact_identity_memory(pqxx::connection& conn, const config::Config& cfg) {
  int64_t removed = 0;
  pqxx::work tx(conn);
  const std::string bk = tx.quote_name(cfg.postgres.bookkeeping_schema);
  tx.exec("SELECT set_config('DateStyle', 'ISO, YMD', true)");
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('ingestd:identity_compaction'))");
  for (const auto& [name, ds] : cfg.datasets)
    for (const auto& ent : ds.entities) {
      TableInfo t = describe_table(tx, ent.table);
      if (!t.exists || !t.column_types.count(ent.id_column)) continue;
      for (const auto& tier : tier_sql(tx, ent, t, bk)) {
        const int64_t n = compact_tier(tx, bk, t, tx.quote_name(ent.id_column), tier);
        if (n <= 0) continue;
        spdlog::info("identity memory of {} tier {}: {} keys the records hold in their own columns removed", t.canonical,
                     tier.tier.number, n);
        removed += n;
      }
    }
  tx.commit();
  return removed;
}

}  // namespace ingestd::engine
