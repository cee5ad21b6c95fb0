// kind: migrate — rows of a SQL query through a dataset's mapping, with writeback, `after`
// statements, checks and a watermark for incremental runs.
#include <filesystem>

#include "handlers/engine/loader.hpp"
#include "handlers/migration_request/job_support.hpp"

namespace ingestd::migration_request {

namespace {

using nlohmann::json;

/// A failed check in an atomic job: thrown to roll the whole job back.
struct ChecksFailed : std::runtime_error {
  json checks;
  explicit ChecksFailed(json c) : std::runtime_error("checks failed"), checks(std::move(c)) {}
};

/// One run of a migrate job: what it reads, where it stands, what it answers.
struct MigrateRun {
  MigrateRun(const Event& e, Services& s, EventCommit& c, const config::Job& j) : ev(e), svc(s), commit(c), job(j) {}
  const Event& ev;
  Services& svc;
  EventCommit& commit;
  const config::Job& job;
  bool dry_run = false;
  std::string mode;
  std::optional<std::string> from_watermark;
  std::string batch_id;
  engine::LoadRequest req;
  bool checks_passed = true;
  Outcome out;

  /// The source query, or the reason the job cannot run.
  std::string plan_source(engine::QuerySource& q);
  void prepare_request();
  void run_after_and_checks(pqxx::transaction_base& tx, engine::LoadResult& r);
  void finish(pqxx::transaction_base& tx, const engine::LoadResult& r);
  json audit_of(const engine::LoadResult& r) const;
};

std::string MigrateRun::plan_source(engine::QuerySource& q) {
  const auto& cfg = svc.cfg;
  mode = str(ev.payload, "mode", job.watermark.empty() ? "full" : "incremental");
  if (mode != "full" && mode != "incremental") return "mode must be full or incremental, got " + mode;
  if (mode == "incremental" && job.watermark.empty())
    return "job " + job.name + " has no source.watermark, so it can only run in mode full";
  if (!cfg.datasets.count(job.dataset)) return "job " + job.name + ": unknown dataset " + job.dataset;
  if (job.source_database.empty()) q.url = cfg.postgres.url;
  else if (cfg.sources.count(job.source_database)) q.url = cfg.sources.at(job.source_database).url;
  else return "job " + job.name + ": unknown source database " + job.source_database;
  q.sql = job.source_sql;
  q.watermark_column = job.watermark;
  if (mode == "incremental") {
    pqxx::read_transaction tx(svc.db);
    auto w = tx.exec_params("SELECT value FROM " + engine::Bookkeeping(cfg.postgres.bookkeeping_schema).table(tx, "watermarks") +
                                " WHERE job = $1",
                            job.name);
    if (!w.empty() && !w[0][0].is_null()) from_watermark = w[0][0].as<std::string>();
  }
  q.watermark = from_watermark;
  return "";
}

void MigrateRun::prepare_request() {
  const auto& cfg = svc.cfg;
  req.dataset = &cfg.datasets.at(job.dataset);
  req.batch_id = batch_id;
  req.dry_run = dry_run;
  req.atomic = job.atomic;
  req.chunk_rows = cfg.processing.chunk_rows;
  req.chunk_bytes = cfg.processing.chunk_bytes;
  req.bookkeeping_schema = cfg.postgres.bookkeeping_schema;
  req.reject_path = (std::filesystem::path(cfg.files.rejects_dir) / ("job-" + job.name) / (batch_id + ".rejects.csv")).string();
  req.writeback = &job.writeback;
  req.vars = {{"batch_id", batch_id},
              {"source_system", "job:" + job.name},
              {"program", str(params_of(ev), "program")},
              {"submitted_by", str(ev.payload, "submitted_by")}};
}

void MigrateRun::run_after_and_checks(pqxx::transaction_base& tx, engine::LoadResult& r) {
  for (size_t i = 0; i < job.after.size(); ++i) {
    try {
      pqxx::subtransaction sub(dynamic_cast<pqxx::dbtransaction&>(tx), "ingestd_after");
      sub.exec(job.after[i]);
      sub.commit();
    } catch (const pqxx::sql_error& e) {
      if (engine::classify_db_error(e).retry()) throw;
      throw engine::BatchError("job " + job.name + ": after[" + std::to_string(i) + "] failed: " + first_line(e.what()) +
                               "; statement: " + job.after[i]);
    }
  }
  if (job.checks.empty()) return;
  r.extra["checks"] = run_checks(tx, job, checks_passed);
  if (!checks_passed && job.atomic && !dry_run) throw ChecksFailed(r.extra["checks"]);
}

json MigrateRun::audit_of(const engine::LoadResult& r) const {
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
  return audit;
}

void MigrateRun::finish(pqxx::transaction_base& tx, const engine::LoadResult& r) {
  using engine::ResultStatus;
  out.counts = r.counts;
  out.entity_order = r.entity_order;
  out.errors = r.first_errors;
  out.extra = r.extra;
  out.extra["mode"] = mode;
  out.extra["rows"] = r.rows_read;
  if (from_watermark) out.extra["watermark_from"] = *from_watermark;
  out.status = dry_run          ? ResultStatus::DryRun
               : !checks_passed ? ResultStatus::Failed
               : r.rows_rejected ? ResultStatus::CompletedWithRejects
                                 : ResultStatus::Completed;
  if (!checks_passed) out.errors.insert(out.errors.begin(), "job " + job.name + ": checks failed");
  out.reject_file = r.rows_rejected > 0 ? req.reject_path : "";
  const json audit = audit_of(r);
  out.extra["statistics"] = audit;
  const engine::Bookkeeping books(req.bookkeeping_schema);
  if (!dry_run && checks_passed && !job.watermark.empty() && r.max_watermark) {
    tx.exec_params("INSERT INTO " + books.table(tx, "watermarks") + " (job, value) VALUES ($1, $2) ON CONFLICT (job) DO "
                   "UPDATE SET value = excluded.value, updated_at = now()",
                   job.name, *r.max_watermark);
    out.extra["watermark_to"] = *r.max_watermark;
  }
  engine::BatchFinish fin;
  fin.status = engine::batch_status_of(out.status);
  fin.rows_total = r.rows_read;
  if (!out.reject_file.empty()) fin.reject_file = out.reject_file;
  fin.stats = out.extra;
  books.finish(tx, batch_id, fin);
  books.audit(tx, actor_of(ev, svc.cfg), std::string(dry_run ? "job_dry_run:" : "job:") + job.name, batch_id, audit);
  commit.write(tx, out);
  out.committed = true;
}

}  // namespace

Outcome migrate(const Event& ev, Services& svc, EventCommit& commit, const config::Job& job) {
  MigrateRun run(ev, svc, commit, job);
  run.dry_run = ev.payload.value("dry_run", false);
  engine::QuerySource q;
  if (auto why = run.plan_source(q); !why.empty()) return Outcome::failed(why);
  run.batch_id = create_job_batch(svc, ev, job.name, run.dry_run);
  // owned while it runs (create_job_batch took the lock), so no instance starting meanwhile
  // takes it for abandoned
  const engine::BatchOwnership own(svc.db, run.batch_id, engine::BatchOwnership::Adopt{});
  run.prepare_request();
  run.out.batch_id = run.batch_id;
  auto before_final = [&](pqxx::transaction_base& tx, engine::LoadResult& r) { run.run_after_and_checks(tx, r); };
  auto final_step = [&](pqxx::transaction_base& tx, const engine::LoadResult& r) { run.finish(tx, r); };
  return run_batch(svc, commit, run.batch_id, [&] {
    try {
      if (engine::load_query(svc.db, run.req, q, svc, final_step, before_final).interrupted)
        // a job is not resumed row by row: its source may have changed; the next delivery reruns it
        return fail_batch(svc, commit, run.batch_id, "job " + job.name + " interrupted by shutdown; submit it again");
    } catch (const ChecksFailed& e) {
      return fail_batch(svc, commit, run.batch_id,
                        "job " + job.name + ": checks failed; the job was rolled back (atomic)", {{"checks", e.checks}});
    }
    return run.out;
  }, [&](const pqxx::sql_error& e) {
    // configuration or schema mismatch surfacing as SQL: name the job and the database's words
    return "job " + job.name + ": " + first_line(e.what()) + "; statement: " + first_line(e.query());
  });
}

}  // namespace ingestd::migration_request
