// kind: resolve_refs — phase two of a two-phase import: fill the deferred lookups whose target
// exists now, and report the missing ones by key with a completion percentage.
#include <cmath>

#include "handlers/engine/catalog.hpp"
#include "handlers/migration_request/job_support.hpp"

namespace ingestd::migration_request {

namespace {

using nlohmann::json;

struct RefField {
  const config::Entity* entity = nullptr;
  const config::Field* field = nullptr;
};

/// The lookup field a resolve_refs job names (`field` or `entity.field`).
RefField find_ref_field(const config::Dataset& ds, const std::string& name) {
  std::string want_entity, want_field = name;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    want_entity = name.substr(0, dot);
    want_field = name.substr(dot + 1);
  }
  RefField r;
  for (const auto& e : ds.entities)
    for (const auto& f : e.fields)
      if (f.name == want_field && (want_entity.empty() || e.name == want_entity) && f.lookup) r = {&e, &f};
  return r;
}

/// Fills what resolves now (recording what it overwrites) and reports the rest.
json resolve(pqxx::transaction_base& tx, const engine::Bookkeeping& books, const RefField& ref, const std::string& batch_id,
             int64_t& filled_rows) {
  const config::Entity& ent = *ref.entity;
  const config::Field& field = *ref.field;
  engine::TableInfo t = engine::describe_table(tx, ent.table);
  engine::TableInfo l = engine::describe_table(tx, field.lookup->table);
  if (!t.exists || !l.exists)
    throw engine::BatchError("table " + (t.exists ? field.lookup->table : ent.table) + " does not exist");
  engine::describe_id(tx, t, ent.id_column);
  const std::string col = tx.quote_name(field.column), type = t.column_types.at(field.column);
  const std::string id = tx.quote_name(ent.id_column), deferred = books.table(tx, "deferred_refs");
  tx.exec("DROP TABLE IF EXISTS pg_temp.ingestd_rr");
  tx.exec_params("CREATE TEMP TABLE ingestd_rr AS SELECT d.ctid AS dref, d.record_id, d.value, l." +
                     tx.quote_name(field.lookup->returns) + "::text AS resolved FROM " + deferred + " d JOIN " + l.quoted +
                     " l ON l." + tx.quote_name(field.lookup->key) +
                     "::text = d.value WHERE d.table_name = $1 AND d.column_name = $2",
                 t.canonical, field.column);
  const std::string differs = " t." + col + " IS DISTINCT FROM r.resolved::" + type;
  const std::string joined = "t." + id + " = r.record_id::" + t.id_type;
  tx.exec_params("INSERT INTO " + books.table(tx, "changes") + " (batch_id, table_name, record_id, column_name, before, "
                 "after) SELECT $1::uuid, $2, r.record_id, $3, t." + col + "::text, r.resolved FROM " + t.quoted +
                     " t JOIN ingestd_rr r ON " + joined + " WHERE" + differs,
                 batch_id, t.canonical, field.column);
  auto filled = tx.exec("UPDATE " + t.quoted + " t SET " + col + " = r.resolved::" + type + " FROM ingestd_rr r WHERE " +
                        joined + " AND" + differs);
  auto resolved = tx.exec("DELETE FROM " + deferred + " d USING ingestd_rr r WHERE d.ctid = r.dref");
  auto missing = tx.exec_params("SELECT value, count(*) FROM " + deferred +
                                    " WHERE table_name = $1 AND column_name = $2 GROUP BY 1 ORDER BY 2 DESC, 1",
                                t.canonical, field.column);
  json still = json::object();
  int64_t missing_total = 0;
  for (const auto& m : missing) {
    still[m[0].as<std::string>()] = m[1].as<int64_t>();
    missing_total += m[1].as<int64_t>();
  }
  const int64_t done = int64_t(resolved.affected_rows());
  const double pct = done + missing_total ? 100.0 * double(done) / double(done + missing_total) : 100.0;
  filled_rows = int64_t(filled.affected_rows());
  return {{"field", ent.name + "." + field.name},
          {"resolved", done},
          {"filled", filled_rows},
          {"still_missing", still},
          {"still_missing_rows", missing_total},
          {"completion_percent", std::round(pct * 10) / 10}};
}

}  // namespace

Outcome resolve_refs(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job) {
  const auto& cfg = svc.cfg;
  const bool dry_run = ev.payload.value("dry_run", false);
  if (!cfg.datasets.count(job.dataset)) return Outcome::failed("job " + job.name + ": unknown dataset " + job.dataset);
  const RefField ref = find_ref_field(cfg.datasets.at(job.dataset), job.field);
  if (!ref.field) return Outcome::failed("job " + job.name + ": dataset " + job.dataset + " has no lookup field " + job.field);

  const std::string batch_id = create_job_batch(svc, ev, job.name, dry_run);
  // owned while it runs (create_job_batch took the lock), so no instance starting meanwhile
  // takes it for abandoned
  const engine::BatchOwnership own(svc.db, batch_id, engine::BatchOwnership::Adopt{});
  const engine::Bookkeeping books(cfg.postgres.bookkeeping_schema);
  Outcome out;
  out.batch_id = batch_id;
  return run_batch(svc, commit, batch_id, [&] {
    pqxx::work tx(svc.db);
    int64_t filled = 0;
    try {
      out.extra = resolve(tx, books, ref, batch_id, filled);
    } catch (const engine::BatchError& e) {
      throw engine::BatchError("job " + job.name + ": " + e.what());
    }
    for (const auto& [k, n] : out.extra["still_missing"].items())
      out.errors.push_back(k + ": " + std::to_string(n.get<int64_t>()) + " rows still missing");
    out.status = dry_run ? engine::ResultStatus::DryRun : engine::ResultStatus::Completed;
    auto finish = [&](pqxx::transaction_base& ftx) {
      engine::BatchFinish fin;
      fin.status = engine::batch_status_of(out.status);
      fin.rows_total = out.extra["resolved"].get<int64_t>() + out.extra["still_missing_rows"].get<int64_t>();
      fin.updated = filled;
      fin.stats = out.extra;
      books.finish(ftx, batch_id, fin);
      books.audit(ftx, actor_of(ev, svc.cfg), "job:" + job.name, batch_id, out.extra);
      commit.write(ftx, out);
      out.committed = true;
    };
    if (dry_run) {
      tx.abort();
      pqxx::work ftx(svc.db);
      finish(ftx);
      ftx.commit();
    } else {
      finish(tx);
      tx.commit();
    }
    return out;
  }, [&](const pqxx::sql_error& e) { return "job " + job.name + ": " + first_line(e.what()); });
}

}  // namespace ingestd::migration_request
