#include "handlers/engine/writeback.hpp"

#include "handlers/engine/errors.hpp"
#include "handlers/engine/merge/sql_builder.hpp"

namespace ingestd::engine {

Writeback::Writeback(pqxx::transaction_base& tx, const std::vector<config::Writeback>* cfg, const config::Dataset& ds,
                     RowBuilder& builder, std::vector<bool>& referenced) {
  if (!cfg) return;
  for (const auto& wb : *cfg) {
    Plan p;
    p.cfg = &wb;
    p.table = describe_table(tx, wb.table);
    const TableInfo& t = p.table;
    if (!t.exists) throw BatchError("writeback table " + wb.table + " does not exist");
    for (const auto* cols : {&wb.set, &wb.where})
      for (auto& [c, v] : *cols)
        if (!t.column_types.count(c)) throw BatchError("writeback column " + wb.table + "." + c + " does not exist");
    if (t.pk.empty()) throw BatchError("writeback table " + wb.table + " needs a single-column primary key");
    for (const auto& [col, entity] : wb.set) {
      size_t e = 0;
      while (e < ds.entities.size() && ds.entities[e].name != entity) ++e;
      if (e == ds.entities.size())
        throw BatchError("writeback to " + wb.table + ": no entity " + entity + " in dataset " + ds.name);
      p.set.emplace_back(col, e);
      referenced[e] = true;  // its record ids are needed after resolution
    }
    for (const auto& [col, src] : wb.where)
      p.where.emplace_back(col, builder.pass_through(src, "writeback to " + wb.table + " (where " + col + ")"));
    plans_.push_back(std::move(p));
  }
}

void Writeback::apply(pqxx::transaction_base& tx, const std::string& bookkeeping, const std::string& batch_id,
                      const std::vector<Row*>& rows) {
  for (const Plan& p : plans_) {
    stage(tx, p, rows);
    apply(tx, bookkeeping, batch_id, p);
    tx.exec("DROP TABLE pg_temp.ingestd_wb");
  }
}

void Writeback::stage(pqxx::transaction_base& tx, const Plan& p, const std::vector<Row*>& rows) {
  std::vector<std::string> cols;
  for (size_t i = 0; i < p.set.size(); ++i) cols.push_back("s" + std::to_string(i));
  for (size_t i = 0; i < p.where.size(); ++i) cols.push_back("w" + std::to_string(i));
  tx.exec("DROP TABLE IF EXISTS pg_temp.ingestd_wb");
  tx.exec("CREATE TEMP TABLE ingestd_wb (" + sql::join_n(cols.size(), ", ", [&](size_t i) { return cols[i] + " text"; }) +
          ")");
  CopyIn wr(tx, "pg_temp.ingestd_wb", cols);
  std::string line;
  for (Row* r : rows) {
    bool complete = true;
    for (auto& [c, e] : p.set)
      if (!r->record_ids[e]) complete = false;
    if (!complete) continue;
    line.clear();
    for (size_t i = 0; i < p.set.size(); ++i) {
      if (i) line += '\t';
      append_copy_value(line, r->record_ids[p.set[i].second]);
    }
    for (auto& [c, idx] : p.where) {
      line += '\t';
      append_copy_value(line, r->source[idx]);
    }
    wr.line(line);
  }
  wr.complete();
}

void Writeback::apply(pqxx::transaction_base& tx, const std::string& bookkeeping, const std::string& batch_id,
                      const Plan& p) {
  const TableInfo& t = p.table;
  sql::Quoter q(tx);
  const std::string join = sql::join_n(p.where.size(), " AND ", [&](size_t i) {
    return q.col("t", p.where[i].first) + " = w.w" + std::to_string(i) + "::" + t.column_types.at(p.where[i].first);
  });
  auto value = [&](size_t i) { return "w.s" + std::to_string(i) + "::" + t.column_types.at(p.set[i].first); };
  auto differs = [&](size_t i) { return q.col("t", p.set[i].first) + " IS DISTINCT FROM " + value(i); };
  const std::string vals = sql::join_n(p.set.size(), ", ", [&](size_t i) {
    return "(" + q.lit(p.set[i].first) + ", " + q.col("t", p.set[i].first) + "::text, w.s" + std::to_string(i) + ", " +
           differs(i) + ")";
  });
  // what the writeback overwrites goes to changes, so a rollback undoes it
  tx.exec_params("INSERT INTO " + bookkeeping + ".changes (batch_id, table_name, record_id, column_name, before, after) "
                 "SELECT $1::uuid, $2, " + q.col("t", t.pk) + "::text, v.col, v.before, v.after FROM " + t.quoted +
                     " t JOIN pg_temp.ingestd_wb w ON " + join + " CROSS JOIN LATERAL (VALUES " + vals +
                     ") v(col, before, after, chg) WHERE v.chg",
                 batch_id, t.canonical);
  auto up = tx.exec("UPDATE " + t.quoted + " t SET " +
                    sql::join_n(p.set.size(), ", ", [&](size_t i) { return q.id(p.set[i].first) + " = " + value(i); }) +
                    " FROM pg_temp.ingestd_wb w WHERE " + join + " AND (" + sql::join_n(p.set.size(), " OR ", differs) +
                    ")");
  auto all = tx.exec("SELECT count(*) FROM " + t.quoted + " t JOIN pg_temp.ingestd_wb w ON " + join);
  linked_ += int64_t(up.affected_rows());
  already_linked_ += all[0][0].as<int64_t>() - int64_t(up.affected_rows());
}

}  // namespace ingestd::engine
