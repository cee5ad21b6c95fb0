#include "handlers/migration_request/migration_request.hpp"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "handlers/engine/loader.hpp"
#include "handlers/engine/rollback.hpp"
#include "handlers/engine/sql.hpp"

namespace ingestd::migration_request {

namespace {

using nlohmann::json;

/// A failed check in an atomic job: thrown to roll the whole job back.
struct ChecksFailed : std::runtime_error {
  json checks;
  explicit ChecksFailed(json c) : std::runtime_error("checks failed"), checks(std::move(c)) {}
};

std::string str(const json& p, const char* k, const std::string& def = "") {
  return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : def;
}

const json& params_of(const Event& ev) {
  static const json empty = json::object();
  return ev.payload.contains("params") && ev.payload["params"].is_object() ? ev.payload["params"] : empty;
}

std::string actor_of(const Event& ev) { return str(ev.payload, "submitted_by", "kafka:" + ev.event_id); }

bool same_value(const std::string& actual, const std::string& expect) {
  if (actual == expect) return true;
  try {
    size_t a = 0, b = 0;
    double x = std::stod(actual, &a), y = std::stod(expect, &b);
    return a == actual.size() && b == expect.size() && x == y;
  } catch (...) {
    return false;
  }
}

/// Runs a job's checks in `tx`: [{name, expected, actual, passed}]; a check whose SQL fails
/// counts as failed with the database's message.
json run_checks(pqxx::transaction_base& tx, const config::Job& job, bool& all_passed) {
  json out = json::array();
  all_passed = true;
  for (const auto& c : job.checks) {
    json r = {{"name", c.name}, {"expected", c.expect}};
    try {
      pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_check");
      auto res = sub.exec(c.sql);
      sub.commit();
      std::string actual = res.empty() || res[0].empty() || res[0][0].is_null() ? "" : res[0][0].c_str();
      r["actual"] = actual;
      r["passed"] = same_value(actual, c.expect);
    } catch (const pqxx::sql_error& e) {
      r["actual"] = nullptr;
      r["error"] = first_line(e.what());
      r["passed"] = false;
    }
    if (!r["passed"].get<bool>()) all_passed = false;
    out.push_back(r);
  }
  return out;
}

Outcome failed(const std::string& why, const std::string& batch_id = "") { return Outcome::failed(why, batch_id); }

std::string create_batch(Services& svc, const Event& ev, const std::string& job, bool dry_run) {
  pqxx::work tx(svc.db);
  const std::string qs = tx.quote_name(svc.cfg.postgres.bookkeeping_schema);
  auto id = tx.exec_params1("INSERT INTO " + qs + ".batches (id, kind, dataset_or_job, dry_run, status, submitted_by, "
                            "event_id, owner, heartbeat_at, source_system, program) VALUES (gen_random_uuid(), 'job', $1, $2, "
                            "'running', $3, $4, $5, now(), $6, $7) RETURNING id::text",
                            job, dry_run, str(ev.payload, "submitted_by"), ev.event_id, svc.instance_id,
                            "job:" + job, str(params_of(ev), "program"))[0]
                .as<std::string>();
  if (!ev.event_id.empty())
    tx.exec_params("UPDATE " + qs + ".events SET batch_id = $2::uuid WHERE event_id = $1", ev.event_id, id);
  tx.commit();
  return id;
}

Outcome migrate(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job) {
  auto log = spdlog::get("runtime");
  const auto& cfg = svc.cfg;
  const bool dry_run = ev.payload.value("dry_run", false);
  std::string mode = str(ev.payload, "mode", job.watermark.empty() ? "full" : "incremental");
  if (mode != "full" && mode != "incremental") return failed("mode must be full or incremental, got " + mode);
  if (mode == "incremental" && job.watermark.empty())
    return failed("job " + job.name + " has no source.watermark, so it can only run in mode full");
  if (!cfg.datasets.count(job.dataset)) return failed("job " + job.name + ": unknown dataset " + job.dataset);
  const config::Dataset& ds = cfg.datasets.at(job.dataset);
  const std::string qs = svc.db.quote_name(cfg.postgres.bookkeeping_schema);

  engine::QuerySource q;
  if (job.source_database.empty()) q.url = cfg.postgres.url;
  else if (cfg.sources.count(job.source_database)) q.url = cfg.sources.at(job.source_database).url;
  else return failed("job " + job.name + ": unknown source database " + job.source_database);
  q.sql = job.source_sql;
  q.watermark_column = job.watermark;
  std::optional<std::string> from_watermark;
  if (mode == "incremental") {
    pqxx::read_transaction tx(svc.db);
    auto w = tx.exec_params("SELECT value FROM " + qs + ".watermarks WHERE job = $1", job.name);
    if (!w.empty() && !w[0][0].is_null()) from_watermark = w[0][0].as<std::string>();
  }
  q.watermark = from_watermark;

  const std::string batch_id = create_batch(svc, ev, job.name, dry_run);
  engine::LoadRequest req;
  req.dataset = &ds;
  req.batch_id = batch_id;
  req.dry_run = dry_run;
  req.atomic = job.atomic;
  req.chunk_rows = cfg.processing.chunk_rows;
  req.bookkeeping_schema = cfg.postgres.bookkeeping_schema;
  req.reject_path = (std::filesystem::path(cfg.files.rejects_dir) / ("job-" + job.name) / (batch_id + ".rejects.csv")).string();
  req.writeback = &job.writeback;
  req.vars = {{"batch_id", batch_id},
              {"source_system", "job:" + job.name},
              {"program", str(params_of(ev), "program")},
              {"submitted_by", str(ev.payload, "submitted_by")}};

  Outcome out;
  out.batch_id = batch_id;
  bool checks_passed = true;
  auto before_final = [&](pqxx::transaction_base& tx, engine::LoadResult& r) {
    for (size_t i = 0; i < job.after.size(); ++i) {
      try {
        pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_after");
        sub.exec(job.after[i]);
        sub.commit();
      } catch (const pqxx::sql_error& e) {
        throw engine::BatchError("job " + job.name + ": after[" + std::to_string(i) + "] failed: " + first_line(e.what()) +
                                 "; statement: " + job.after[i]);
      }
    }
    if (!job.checks.empty()) {
      r.extra["checks"] = run_checks(tx, job, checks_passed);
      if (!checks_passed && (job.atomic || dry_run) && !dry_run) throw ChecksFailed(r.extra["checks"]);
    }
  };
  auto final_step = [&](pqxx::transaction_base& tx, const engine::LoadResult& r) {
    out.counts = r.counts;
    out.entity_order = r.entity_order;
    out.errors = r.first_errors;
    out.extra = r.extra;
    out.extra["mode"] = mode;
    out.extra["rows"] = r.rows_read;
    if (from_watermark) out.extra["watermark_from"] = *from_watermark;
    out.status = dry_run ? "dry_run" : !checks_passed ? "failed" : r.rows_rejected ? "completed_with_rejects" : "completed";
    if (!checks_passed) out.errors.insert(out.errors.begin(), "job " + job.name + ": checks failed");
    out.reject_file = r.rows_rejected > 0 ? req.reject_path : "";
    // the seed scripts' backfill audit: created, reused, linked, already linked, errors
    json audit = {{"created", 0}, {"reused", 0}, {"errors", r.rows_rejected}, {"rows", r.rows_read}, {"mode", mode}};
    if (!r.entity_order.empty()) {
      const auto& c = r.counts.at(r.entity_order.front());
      audit["created"] = c.inserted;
      audit["reused"] = c.updated + c.unchanged;
    }
    if (r.extra.contains("writeback")) {
      audit["linked"] = r.extra["writeback"]["linked"];
      audit["already_linked"] = r.extra["writeback"]["already_linked"];
    }
    out.extra["statistics"] = audit;
    if (!dry_run && checks_passed && !job.watermark.empty() && r.max_watermark) {
      tx.exec_params("INSERT INTO " + qs + ".watermarks (job, value) VALUES ($1, $2) ON CONFLICT (job) DO UPDATE SET "
                     "value = excluded.value, updated_at = now()",
                     job.name, *r.max_watermark);
      out.extra["watermark_to"] = *r.max_watermark;
    }
    tx.exec_params("UPDATE " + qs + ".batches SET status = $2, rows_total = $3, reject_file = $4, stats = stats || $5::jsonb, "
                   "finished_at = now() WHERE id = $1::uuid",
                   batch_id, out.status, r.rows_read, out.reject_file.empty() ? std::nullopt : std::optional(out.reject_file),
                   out.extra.dump());
    tx.exec_params("INSERT INTO " + qs + ".audit (actor, action, batch_id, payload) VALUES ($1, $2, $3::uuid, $4::jsonb)",
                   actor_of(ev), std::string(dry_run ? "job_dry_run:" : "job:") + job.name, batch_id, audit.dump());
    commit.write(tx, out);
    out.committed = true;
  };
  try {
    auto r = engine::load_query(svc.db, req, q, svc, final_step, before_final);
    if (r.interrupted) {
      // a job is not resumed row by row: its source may have changed; the next delivery reruns it
      return fail_batch(svc, commit, batch_id, "job " + job.name + " interrupted by shutdown; submit it again");
    }
  } catch (const ChecksFailed& e) {
    return fail_batch(svc, commit, batch_id, "job " + job.name + ": checks failed; the job was rolled back (atomic)",
                      {{"checks", e.checks}});
  } catch (const engine::BatchError& e) {
    if (log) log->warn("job {} batch {}: {}", job.name, batch_id, e.what());
    return fail_batch(svc, commit, batch_id, e.what());
  } catch (const pqxx::sql_error& e) {
    // configuration or schema mismatch surfacing as SQL: name the job and the database's words
    return fail_batch(svc, commit, batch_id, "job " + job.name + ": " + first_line(e.what()) + "; statement: " +
                                                 first_line(e.query()));
  }
  return out;
}

Outcome resolve_refs(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job) {
  const auto& cfg = svc.cfg;
  const bool dry_run = ev.payload.value("dry_run", false);
  if (!cfg.datasets.count(job.dataset)) return failed("job " + job.name + ": unknown dataset " + job.dataset);
  const config::Dataset& ds = cfg.datasets.at(job.dataset);
  const config::Entity* ent = nullptr;
  const config::Field* field = nullptr;
  std::string want_entity, want_field = job.field;
  if (auto dot = job.field.find('.'); dot != std::string::npos) {
    want_entity = job.field.substr(0, dot);
    want_field = job.field.substr(dot + 1);
  }
  for (const auto& e : ds.entities)
    for (const auto& f : e.fields)
      if (f.name == want_field && (want_entity.empty() || e.name == want_entity) && f.lookup) {
        ent = &e;
        field = &f;
      }
  if (!field) return failed("job " + job.name + ": dataset " + job.dataset + " has no lookup field " + job.field);

  const std::string batch_id = create_batch(svc, ev, job.name, dry_run);
  Outcome out;
  out.batch_id = batch_id;
  try {
    pqxx::work tx(svc.db);
    const std::string qs = tx.quote_name(cfg.postgres.bookkeeping_schema);
    engine::TableInfo t = engine::describe_table(tx, ent->table);
    engine::TableInfo l = engine::describe_table(tx, field->lookup->table);
    if (!t.exists || !l.exists) throw engine::BatchError("job " + job.name + ": table " + (t.exists ? field->lookup->table : ent->table) + " does not exist");
    engine::describe_id(tx, t, ent->id_column);
    const std::string col = tx.quote_name(field->column), type = t.column_types.at(field->column);
    const std::string id = tx.quote_name(ent->id_column);
    tx.exec("DROP TABLE IF EXISTS pg_temp.ingestd_rr");
    tx.exec_params("CREATE TEMP TABLE ingestd_rr AS SELECT d.ctid AS dref, d.record_id, d.value, l." +
                       tx.quote_name(field->lookup->returns) + "::text AS resolved FROM " + qs + ".deferred_refs d JOIN " +
                       l.quoted + " l ON l." + tx.quote_name(field->lookup->key) +
                       "::text = d.value WHERE d.table_name = $1 AND d.column_name = $2",
                   t.canonical, field->column);
    tx.exec_params("INSERT INTO " + qs + ".changes (batch_id, table_name, record_id, column_name, before, after) "
                   "SELECT $1::uuid, $2, r.record_id, $3, t." + col + "::text, r.resolved FROM " + t.quoted +
                       " t JOIN ingestd_rr r ON t." + id + " = r.record_id::" + t.id_type + " WHERE t." + col +
                       " IS DISTINCT FROM r.resolved::" + type,
                   batch_id, t.canonical, field->column);
    auto filled = tx.exec("UPDATE " + t.quoted + " t SET " + col + " = r.resolved::" + type + " FROM ingestd_rr r WHERE t." +
                          id + " = r.record_id::" + t.id_type + " AND t." + col + " IS DISTINCT FROM r.resolved::" + type);
    auto resolved = tx.exec("DELETE FROM " + qs + ".deferred_refs d USING ingestd_rr r WHERE d.ctid = r.dref");
    auto missing = tx.exec_params("SELECT value, count(*) FROM " + qs +
                                      ".deferred_refs WHERE table_name = $1 AND column_name = $2 GROUP BY 1 ORDER BY 2 DESC, 1",
                                  t.canonical, field->column);
    json still = json::object();
    int64_t missing_total = 0;
    for (const auto& m : missing) {
      still[m[0].as<std::string>()] = m[1].as<int64_t>();
      missing_total += m[1].as<int64_t>();
    }
    const int64_t done = int64_t(resolved.affected_rows());
    const double pct = done + missing_total ? 100.0 * double(done) / double(done + missing_total) : 100.0;
    out.extra = {{"field", ent->name + "." + field->name},
                 {"resolved", done},
                 {"filled", int64_t(filled.affected_rows())},
                 {"still_missing", still},
                 {"still_missing_rows", missing_total},
                 {"completion_percent", std::round(pct * 10) / 10}};
    for (const auto& [k, n] : still.items())
      out.errors.push_back(k + ": " + std::to_string(n.get<int64_t>()) + " rows still missing");
    out.status = dry_run ? "dry_run" : "completed";
    auto finish = [&](pqxx::transaction_base& ftx) {
      ftx.exec_params("UPDATE " + qs + ".batches SET status = $2, rows_total = $3, updated = $4, stats = stats || $5::jsonb, "
                      "finished_at = now() WHERE id = $1::uuid",
                      batch_id, out.status, done + missing_total, int64_t(filled.affected_rows()), out.extra.dump());
      ftx.exec_params("INSERT INTO " + qs + ".audit (actor, action, batch_id, payload) VALUES ($1, $2, $3::uuid, $4::jsonb)",
                      actor_of(ev), "job:" + job.name, batch_id, out.extra.dump());
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
  } catch (const engine::BatchError& e) {
    return fail_batch(svc, commit, batch_id, e.what());
  } catch (const pqxx::sql_error& e) {
    return fail_batch(svc, commit, batch_id, "job " + job.name + ": " + first_line(e.what()));
  }
  return out;
}

Outcome checks_only(const Event& ev, Services& svc, EventCommit& commit) {
  const std::string name = str(params_of(ev), "job");
  if (!svc.cfg.jobs.count(name)) return failed("job checks needs params.job naming a configured job; got '" + name + "'");
  const config::Job& job = svc.cfg.jobs.at(name);
  Outcome o;
  pqxx::work tx(svc.db);
  bool passed = true;
  o.extra["job"] = name;
  o.extra["checks"] = run_checks(tx, job, passed);
  o.status = passed ? "completed" : "failed";
  if (!passed) o.errors.push_back("job " + name + ": checks failed");
  const std::string qs = tx.quote_name(svc.cfg.postgres.bookkeeping_schema);
  tx.exec_params("INSERT INTO " + qs + ".audit (actor, action, payload) VALUES ($1, 'checks', $2::jsonb)", actor_of(ev),
                 o.extra.dump());
  commit.write(tx, o);
  tx.commit();
  o.committed = true;
  return o;
}

Outcome rollback(const Event& ev, Services& svc, EventCommit& commit) {
  Outcome o;
  const auto& params = params_of(ev);
  if (!params.contains("batch_id") || !params["batch_id"].is_string()) {
    o.status = "failed";
    o.errors.push_back("job rollback needs params.batch_id (the batch to roll back)");
    return o;
  }
  const std::string batch = params["batch_id"].get<std::string>();
  const bool dry_run = ev.payload.value("dry_run", false);
  engine::rollback_batch(svc.db, svc.cfg, batch, dry_run, actor_of(ev),
                         [&](pqxx::transaction_base& tx, const engine::RollbackResult& r) {
                           o.status = r.status;
                           o.errors = r.errors;
                           o.extra["rolled_back_batch"] = batch;
                           o.extra["rollback"] = r.stats;
                           commit.write(tx, o);
                           o.committed = true;
                         });
  return o;
}

}  // namespace

Outcome handle(const Event& ev, Services& svc, EventCommit& commit) {
  const std::string name = ev.payload.value("job", "");
  if (name == "rollback") return rollback(ev, svc, commit);
  if (name == "checks") return checks_only(ev, svc, commit);
  const config::Job& job = svc.cfg.jobs.at(name);  // validate_event refused unknown jobs
  if (job.kind == config::JobKind::Migrate) return migrate(ev, svc, commit, job);
  if (job.kind == config::JobKind::ResolveRefs) return resolve_refs(ev, svc, commit, job);
  return failed("job " + name + ": unknown kind " + std::string(config::to_string(job.kind)));
}

}  // namespace ingestd::migration_request
