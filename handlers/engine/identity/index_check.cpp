#include "handlers/engine/identity/index_check.hpp"

#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "handlers/engine/catalog.hpp"
#include "handlers/engine/documents.hpp"
#include "handlers/engine/identity/fuzzy_matcher.hpp"
#include "handlers/engine/identity/tier_sql.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

std::string tier_where(const config::Dataset& ds, const config::Entity& ent, int tier_number) {
  return "datasets." + ds.name + ".entities." + ent.name + ".identity[" + std::to_string(tier_number - 1) + "]";
}

std::string missing_index_problem(const TierIndexReport& r) {
  const std::string what = !r.purpose.empty()
                               ? "unique index on " + r.table + " serves the " + r.purpose
                               : "index on " + r.table + " serves this " +
                                     (r.open ? "blocking rule's open blocks" : r.blocking ? "blocking rule" : "tier");
  return r.where + ": no " + what +
         "; create it with `ingestd check --create-indexes`, or: " + (r.before.empty() ? "" : r.before + "; ") +
         r.create_index;
}

namespace {

/// The table's rows by its statistics; nothing when it was never analyzed, or is empty.
std::optional<double> table_rows(pqxx::transaction_base& tx, const TableInfo& t) {
  auto rel = tx.exec_params("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)", t.quoted);
  if (rel.empty() || rel[0][0].as<double>() < 1) return std::nullopt;
  return rel[0][0].as<double>();
}

/// Rows a key of `rule` holds by the planner's statistics (a generic plan of its probe), or
/// nothing when the table has none yet.
std::optional<double> block_rows(pqxx::transaction_base& tx, const TableInfo& t, const TierSql& rule) {
  if (!table_rows(tx, t)) return std::nullopt;
  try {
    pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "block_rows");
    const size_t n = rule.fields.size();
    sub.exec("SET LOCAL plan_cache_mode = force_generic_plan");
    sub.exec("PREPARE ingestd_block_rows(" + sql::join_n(n, ", ", [](size_t) { return "text"; }) +
             ") AS SELECT 1 FROM " + t.quoted + " t WHERE " +
             rule.condition([](size_t i) { return "$" + std::to_string(i + 1); }));
    auto plan = sub.exec("EXPLAIN (FORMAT JSON) EXECUTE ingestd_block_rows(" +
                         sql::join_n(n, ", ", [](size_t) { return "NULL"; }) + ")");
    sub.exec("DEALLOCATE ingestd_block_rows");
    const auto j = nlohmann::json::parse(plan[0][0].c_str());
    sub.commit();
    return j.at(0).at("Plan").at("Plan Rows").get<double>();
  } catch (const std::exception&) {
    return std::nullopt;  // an estimate is a courtesy: the check goes on without it
  }
}

TierIndexReport report(std::string where, const TableInfo& t, const TierIndex& ti) {
  TierIndexReport r;
  r.where = std::move(where);
  r.table = t.canonical;
  r.index = ti.index;
  r.create_index = ti.create_index;
  return r;
}

}  // namespace

std::string block_size_note(const TierIndexReport& r) {
  if (r.similarity) {
    char rows[64] = "";
    if (r.table_rows) snprintf(rows, sizeof rows, " (about %.0f rows)", *r.table_rows);
    return std::string(" (a similarity search: each distinct key a load meets reads every similar row of the table") +
           rows + ", so its cost grows with the table; docs/benchmarks.md, trigram blocking rules)";
  }
  if (!r.block_rows) return "";
  char buf[64];
  snprintf(buf, sizeof buf, "%.0f", *r.block_rows);
  std::string note = std::string(" (about ") + buf + " rows a key at the table's size";
  if (*r.block_rows > r.max_candidates)
    note += "; over max_candidates " + std::to_string(r.max_candidates) + ", so its blocks give no candidates: "
            "combine it with another field to keep them small";
  return note + ")";
}

std::vector<TierIndexReport> entity_indexes(pqxx::transaction_base& tx, const config::Dataset& ds,
                                            const config::Entity& ent, const TableInfo& t, const std::string& bk,
                                            bool estimate) {
  std::vector<TierIndexReport> out;
  for (const auto& tier : tier_sql(tx, ent, t, bk)) {
    TierIndex ti = tier_index(tx, t, tier);
    out.push_back(report(tier_where(ds, ent, tier.tier.number), t, ti));
  }
  std::vector<std::string> missing;
  // rows holding every never_across value are blocked among the records that hold none: a
  // partial index per equality rule serves those probes
  const std::string open = open_blocks(ent) ? open_predicate(never_sql(tx, ent, t, bk)) : "";
  for (const auto& rule : blocking_sql(tx, ent, t, bk, missing)) {
    // the id last: a block's first max_candidates + 1 members are read in order from the
    // index; a trigram rule's similar keys come from a trigram index, then are ordered by id
    const bool trigram = rule.lowest_similarity() > 0;
    TierIndex ti = trigram ? trigram_index(tx, t, rule) : tier_index(tx, t, rule, "block", tx.quote_name(ent.id_column));
    TierIndexReport r = report(tier_where(ds, ent, int(ent.identity.size()) + 1) + ".fuzzy.blocking[" +
                                   std::to_string(rule.tier.number - 1) + "]",
                               t, ti);
    r.blocking = true;
    for (const auto& f : rule.fields)
      if (!f.probe_function.empty() && f.probe_function.find('.') == std::string::npos) {
        // the phonetic functions come with PostgreSQL's fuzzystrmatch (a trusted extension)
        r.before = "CREATE EXTENSION IF NOT EXISTS fuzzystrmatch";
        r.index.clear();
      } else if (f.similarity > 0 && f.similarity_function.find('.') == std::string::npos) {
        r.before = "CREATE EXTENSION IF NOT EXISTS pg_trgm";  // trusted too
        r.index.clear();
      }
    r.max_candidates = ent.fuzzy->max_candidates;
    r.similarity = trigram;
    if (estimate && trigram) r.table_rows = table_rows(tx, t);
    // a similarity search has no rows per key the planner could tell from a generic plan
    if (estimate && !r.index.empty() && !trigram) r.block_rows = block_rows(tx, t, rule);
    out.push_back(std::move(r));
    if (open.empty() || trigram) continue;
    TierIndexReport o = out.back();  // the same rule's open blocks: a partial index
    const TierIndex oi = tier_index(tx, t, rule, "open", tx.quote_name(ent.id_column), open);
    o.where += " (open blocks)";
    o.index = o.before.empty() ? oi.index : "";  // a missing function comes first
    o.create_index = oi.create_index;
    o.open = true;
    o.block_rows.reset();
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<TierIndexReport> identity_indexes(pqxx::connection& conn, const config::Dataset& ds,
                                              const std::string& bookkeeping_schema) {
  std::vector<TierIndexReport> out;
  pqxx::read_transaction tx(conn);
  if (ds.documents && describe_table(tx, ds.documents->table).exists) out.push_back(documents_index(tx, ds));
  const std::string bk = tx.quote_name(bookkeeping_schema);
  for (const auto& ent : ds.entities) {
    TableInfo t = describe_table(tx, ent.table);
    if (!t.exists) continue;  // the schema checks report it
    for (auto& r : entity_indexes(tx, ds, ent, t, bk, true)) out.push_back(std::move(r));
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
