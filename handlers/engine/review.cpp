#include "handlers/engine/review.hpp"

#include "handlers/engine/identity/keys.hpp"
#include "handlers/engine/identity/matcher.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/normalize.hpp"

namespace ingestd::engine {

FieldKeys reviewed_field_keys(const config::Entity& entity, const nlohmann::json& values) {
  FieldKeys keys(entity.fields.size());
  for (size_t k = 0; k < entity.fields.size(); ++k) {
    const auto& f = entity.fields[k];
    if (!values.contains(f.name) || values[f.name].is_null()) continue;
    const std::string v = values[f.name].is_string() ? values[f.name].get<std::string>() : values[f.name].dump();
    keys[k] = field_key(f, normalize(f.normalize, v), v);
  }
  return keys;
}

void remember_reviewed_keys(pqxx::transaction_base& tx, const std::string& bookkeeping_schema,
                            const config::Entity& entity, const TableInfo& table, const nlohmann::json& candidate,
                            const std::string& record_id, const std::string& batch_id) {
  const std::string bk = tx.quote_name(bookkeeping_schema);
  const FieldKeys keys = reviewed_field_keys(entity, candidate);
  tx.exec("SELECT set_config('DateStyle', 'ISO, YMD', true)");
  for (const auto& tier : tier_sql(tx, entity, table, bk)) {
    std::vector<std::vector<int>> one{tier.tier.fields};
    const auto key = composite_keys(keys, one)[0];
    if (!key) continue;
    tx.exec_params("INSERT INTO " + bk + ".identity_keys (table_name, tier, key, record_id, batch_id) SELECT $1::text, "
                   "$2::int, $3::text, $4::text, $5::uuid FROM " + table.quoted + " t WHERE t." + tx.quote_name(entity.id_column) + "::text = $4 "
                   "AND " + tier.composite_text() + " IS DISTINCT FROM $3::text AND NOT EXISTS (SELECT 1 FROM " + bk +
                       ".identity_keys WHERE hashtextextended(key, tier) = hashtextextended($3::text, $2::int) AND "
                       "table_name = $1::text AND tier = $2::int AND key = $3::text AND record_id = $4::text)",
                   table.canonical, tier.tier.number, *key, record_id, batch_id);
  }
}

void settle_lineage(pqxx::transaction_base& tx, const std::string& bookkeeping_schema, const std::string& batch_id,
                    const std::string& table, int64_t row_number, const std::string& record_id, bool inserted) {
  const std::string lineage = tx.quote_name(bookkeeping_schema) + ".lineage";
  tx.exec_params("UPDATE " + lineage + " l SET record_ids[p.pos] = $4, actions[p.pos] = $5::\"char\" FROM (SELECT ctid AS "
                 "c, array_position(row_numbers, $2::bigint) AS pos FROM " + lineage + " WHERE batch_id = $1::uuid AND "
                 "table_name = $3 AND $2::bigint BETWEEN first_row AND last_row) p WHERE l.ctid = p.c AND p.pos IS NOT "
                 "NULL AND l.actions[p.pos] = 'r'",
                 batch_id, row_number, table, record_id, std::string(inserted ? "i" : "u"));
}

}  // namespace ingestd::engine
