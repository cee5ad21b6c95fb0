#include "handlers/engine/identity/tier_sql.hpp"

#include <nlohmann/json.hpp>

namespace ingestd::engine {

namespace {

bool string_type(const std::string& t) {
  return t == "text" || t.rfind("character", 0) == 0 || t == "citext" || t == "name";
}

/// Finds the first plan node that reads `relation`: its node type, index and filter.
const nlohmann::json* scan_of(const nlohmann::json& node, const std::string& alias) {
  if (node.value("Alias", "") == alias) return &node;
  if (node.contains("Plans"))
    for (const auto& p : node["Plans"])
      if (auto* s = scan_of(p, alias)) return s;
  return nullptr;
}

}  // namespace

std::string TierSql::composite_text() const {
  std::string c;
  for (size_t i = 0; i < fields.size(); ++i) c += (i ? " || E'\\x1f' || " : "") + fields[i].key_text;
  return "(" + c + ")";
}

std::vector<TierSql> tier_sql(pqxx::transaction_base& tx, const config::Entity& entity, const TableInfo& table,
                              const std::string& bookkeeping) {
  std::vector<TierSql> out;
  for (const auto& tier : identity_tiers(entity)) {
    TierSql ts;
    ts.tier = tier;
    for (int k : tier.fields) {
      const config::Field& f = entity.fields[size_t(k)];
      const std::string bare = tx.quote_name(f.column), col = "t." + bare;
      const std::string type = table.column_types.count(f.column) ? table.column_types.at(f.column) : "text";
      TierFieldSql fs;
      fs.field = k;
      if (f.normalize.kind == config::Normalizer::Kind::Name) {
        fs.key_expr = bookkeeping + ".name_key(" + col + ")";
        fs.index_expr = bookkeeping + ".name_key(" + bare + ")";
        fs.key_text = fs.key_expr;
        fs.probe_type = "text";
      } else {
        fs.key_expr = col;
        fs.index_expr = bare;
        fs.probe_type = string_type(type) ? "text" : type;
        fs.key_text = type == "boolean" ? "CASE WHEN " + col + " THEN 't' ELSE 'f' END" : col + "::text";
      }
      ts.fields.push_back(std::move(fs));
    }
    out.push_back(std::move(ts));
  }
  return out;
}

TierIndex tier_index(pqxx::transaction_base& tx, const TableInfo& table, const TierSql& tier) {
  TierIndex ti;
  ti.tier = tier.tier.number;
  std::string name = table.canonical.substr(table.canonical.find('.') + 1) + "_ingestd_tier" + std::to_string(ti.tier);
  if (name.size() > 63) name = name.substr(name.size() - 63);
  std::string cols;
  for (size_t i = 0; i < tier.fields.size(); ++i) cols += (i ? ", " : "") + tier.fields[i].index_expr;
  ti.create_index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + tx.quote_name(name) + " ON " + table.quoted + " (" + cols + ")";
  // The probe as the loader runs it, with the key parts as parameters of unknown value.
  const std::string probe = "EXPLAIN (FORMAT JSON) SELECT 1 FROM " + table.quoted + " t WHERE " +
                            tier.condition([](size_t) { return std::string("(SELECT NULL::text)"); });
  pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_tier_index");
  sub.exec("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off");
  auto plan = nlohmann::json::parse(sub.exec(probe)[0][0].as<std::string>());
  sub.abort();
  const nlohmann::json* scan = scan_of(plan[0]["Plan"], "t");
  if (scan && scan->contains("Index Name") && !scan->contains("Filter"))
    ti.index = scan->at("Index Name").get<std::string>();
  return ti;
}

}  // namespace ingestd::engine
