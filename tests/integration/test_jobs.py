"""Migration-request jobs end to end, one per seed case of DESIGN §9: customer backfill,
two-phase student import, legacy migration (second database, full then incremental),
ingestion batches for program instances. Jobs are requested as an operator would: a
job.requested event on the jobs topic; the checks are SQL on the target."""

import json
import subprocess
import uuid

import psycopg2
import pytest

from conftest import BIN, EXAMPLES, Daemon


def job(d, name, **extra):
    ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": name, "submitted_by": "ops"}
    ev.update(extra)
    d.publish(ev, topic="ingest.jobs", key=name)
    return d.result(ev["event_id"])


@pytest.fixture
def backfill(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)
    d.start()
    yield d
    assert d.stop() == 0


def test_customer_backfill(backfill):
    d = backfill
    dry = job(d, "backfill_customers", dry_run=True)
    assert dry["status"] == "dry_run", dry
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 0
    assert d.sql("SELECT count(*) FROM leads WHERE customer_id IS NOT NULL")[0][0] == 0

    r = job(d, "backfill_customers")
    assert r["status"] == "completed", r
    assert r["counts"] == dry["counts"]
    assert r["statistics"] == dry["statistics"]
    assert r["statistics"] == {"created": 4, "reused": 4, "linked": 8, "already_linked": 0, "errors": 0, "rows": 8,
                               "mode": "full"}
    assert all(c["passed"] for c in r["checks"]) and [c["name"] for c in r["checks"]] == \
        ["leads_without_customer", "jobs_without_customer"]
    # grouping: PSID joins 1+2, phone (10+ digits) joins 3, e-mail joins 4 (a later chunk);
    # 5 and 7 share an e-mail; 6 (short phone) and 8 (nothing) get a customer each
    groups = d.sql("SELECT array_agg(id ORDER BY id) FROM leads GROUP BY customer_id ORDER BY min(id)")
    assert [g[0] for g in groups] == [[1, 2, 3, 4], [5, 7], [6], [8]]
    assert d.sql("SELECT count(*) FROM jobs j JOIN leads l ON l.id = j.lead_id WHERE j.customer_id = l.customer_id")[0][0] == 5
    c1 = d.sql("SELECT psid, phone, email, first_lead_id, grouped_by_tier FROM customers WHERE first_lead_id = 1")
    assert c1 == [("PSID-1", "3001112233", "ana@example.com", 1, 1)]
    # the actor is where the event came from; the uploader's submitted_by is kept as a claim
    audit = d.sql("SELECT actor LIKE 'kafka:ingest.jobs/%%@%%', origin->>'claimed_by', action, payload->>'created', "
                  "payload->>'linked' FROM ingestd.audit WHERE action = 'job:backfill_customers'")
    assert audit == [(True, "ops", "job:backfill_customers", "4", "8")]

    again = job(d, "backfill_customers")
    assert again["status"] == "completed"
    assert again["statistics"]["created"] == 0 and again["rows"] == 0
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 4

    checks = job(d, "checks", params={"job": "backfill_customers"})
    assert checks["status"] == "completed" and all(c["actual"] == "0" for c in checks["checks"])

    # `after` statements are arbitrary SQL that no rollback can know: while jobs still point
    # at the customers, the rollback refuses and says why
    refused = job(d, "rollback", params={"batch_id": r["batch_id"]})
    assert refused["status"] == "failed" and "jobs_customer_id_fkey" in refused["errors"][0]
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 4
    # undo the after-step by hand; then the writeback is undone by a rollback of the job's batch
    d.sql("UPDATE jobs SET customer_id = NULL")
    rb = job(d, "rollback", params={"batch_id": r["batch_id"]})
    assert rb["status"] == "completed", rb
    assert d.sql("SELECT count(*) FROM leads WHERE customer_id IS NOT NULL")[0][0] == 0
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 0


def test_backfill_failing_check_marks_job_failed(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)
    d.config.write_text(d.config.read_text().replace("expect: 0}", "expect: 1}", 1))
    d.start()
    try:
        r = job(d, "backfill_customers")
        assert r["status"] == "failed"
        failed = [c for c in r["checks"] if not c["passed"]]
        assert failed == [{"name": "leads_without_customer", "expected": "1", "actual": "0", "passed": False}]
    finally:
        assert d.stop() == 0


def test_job_errors_are_clear(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)
    d.sql("ALTER TABLE leads RENAME COLUMN psid TO messenger_psid")
    d.start()
    try:
        r = job(d, "backfill_customers")
        assert r["status"] == "failed"
        assert "source query failed" in r["errors"][0] and "psid" in r["errors"][0] and "SELECT id, psid" in r["errors"][0]
        assert d.sql("SELECT status FROM ingestd.batches") == [("failed",)]
    finally:
        assert d.stop() == 0


def test_two_phase_student_import(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=4)
    d.start()
    try:
        p = d.inbox_file("ice.csv", (EXAMPLES / "ice" / "ice_2025_11.csv").read_bytes())
        d.result(d.publish(d.file_event(p, dataset="ice_staging"), key="ice_staging")["event_id"])
        p2 = d.inbox_file("more.csv", "Cedula,Nombre,Apellido,Grado,School SF Id\n44556677,Lina,Mora,8,SCH-C\n")
        d.result(d.publish(d.file_event(p2, dataset="ice_staging"), key="ice_staging")["event_id"])
        first = job(d, "assign_schools")
        assert first["status"] == "completed"
        assert first["resolved"] == 0 and first["still_missing"] == {"SCH-C": 1, "SCH-Z": 1}
        assert first["completion_percent"] == 0

        d.sql("INSERT INTO schools (salesforce_id, name) VALUES ('SCH-Z', 'Colegio Zipaquirá')")
        second = job(d, "assign_schools")
        assert second["status"] == "completed"
        assert second["resolved"] == 1 and second["filled"] == 1
        assert second["still_missing"] == {"SCH-C": 1} and second["completion_percent"] == 50
        assert "SCH-C: 1 rows still missing" in second["errors"]
        assert d.sql("SELECT s.grade, sc.salesforce_id FROM students s LEFT JOIN schools sc ON sc.id = s.school_id "
                     "ORDER BY s.grade") == [(8, None), (9, "SCH-B"), (10, "SCH-A"), (11, "SCH-Z")]
        assert d.sql("SELECT value FROM ingestd.deferred_refs") == [("SCH-C",)]
    finally:
        assert d.stop() == 0


def test_legacy_migration_full_then_incremental(pg, broker, tmp_path):
    legacy_db = pg.create_db()
    c = psycopg2.connect(pg.url(legacy_db))
    c.autocommit = True
    c.cursor().execute((EXAMPLES / "legacy" / "legacy.sql").read_text())
    d = Daemon(pg, broker, tmp_path, example="legacy", chunk_rows=2, indexes=False)
    d.env["LEGACY_DATABASE_URL"] = pg.url(legacy_db)
    assert d.create_indexes().returncode == 0  # the config needs LEGACY_DATABASE_URL
    d.start()
    try:
        dry = job(d, "mdw_patients", mode="full", dry_run=True)
        assert dry["status"] == "dry_run" and d.sql("SELECT count(*) FROM patients")[0][0] == 0
        r = job(d, "mdw_patients", mode="full")
        assert r["status"] == "completed", r
        assert r["counts"] == dry["counts"]
        assert r["rows"] == 3 and r["counts"]["patient"]["inserted"] == 2
        rows = d.sql("SELECT document_number, email, first_name, last_name, legacy_patient_id FROM patients ORDER BY legacy_patient_id")
        # patient 12 has no document but Ana's e-mail: the same person as patient 10
        assert rows == [("55666777", "ana@example.com", "Ana", "Pérez", 10),
                        ("12345678", "luis@example.com", "Luis", "Gómez", 11)]
        assert r["watermark_to"].startswith("2024-01-03 10:00:00")
        assert d.sql("SELECT value FROM ingestd.watermarks WHERE job = 'mdw_patients'")[0][0].startswith("2024-01-03")

        cur = c.cursor()
        cur.execute("INSERT INTO auth_user VALUES (4, 'sofia@example.com', 'sofía', 'castro')")
        cur.execute("INSERT INTO dispatch_patient VALUES (13, 4, '99887766', '2024-02-01 09:00+00')")
        cur.execute("UPDATE dispatch_patient SET updated_at = '2024-02-02 09:00+00' WHERE id = 11")
        inc = job(d, "mdw_patients")  # incremental is the default for a job with a watermark
        assert inc["status"] == "completed", inc
        assert inc["mode"] == "incremental" and inc["rows"] == 2
        assert inc["counts"]["patient"]["inserted"] == 1 and inc["counts"]["patient"]["unchanged"] == 1
        assert inc["watermark_to"].startswith("2024-02-02 09:00:00")
        assert d.sql("SELECT count(*) FROM patients")[0][0] == 3
        nothing = job(d, "mdw_patients")
        assert nothing["rows"] == 0 and nothing["counts"]["patient"]["inserted"] == 0
    finally:
        c.close()
        assert d.stop() == 0


def test_ingestion_batches_for_program_instances(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="sessions", chunk_rows=2)
    d.start()
    try:
        src = (EXAMPLES / "sessions" / "sessions_week1.csv").read_bytes()
        p = d.inbox_file("week1.csv", src)
        r = d.result(d.publish(d.file_event(p, dataset="sessions", program="mentors-ukraine-2024-q4"),
                               key="sessions")["event_id"])
        assert r["status"] == "completed_with_rejects"
        assert r["counts"]["session"]["inserted"] == 3 and r["counts"]["session"]["rejected"] == 1
        rows = d.sql("SELECT s.session_code, s.mentor_email, s.held_on::text, s.minutes, pi.slug, s.batch_id::text "
                     "FROM sessions s JOIN program_instances pi ON pi.id = s.program_instance_id ORDER BY 1")
        assert [x[:5] for x in rows] == [("S-001", "olena@example.com", "2024-10-07", 60, "mentors-ukraine-2024-q4"),
                                         ("S-002", "olena@example.com", "2024-10-08", 45, "mentors-ukraine-2024-q4"),
                                         ("S-004", "taras@example.com", "2024-10-10", 30, "mentors-ukraine-2024-q4")]
        assert {x[5] for x in rows} == {r["batch_id"]}
        b = d.sql("SELECT uri, sha256, size_bytes, rows_total, last_row_committed, reject_file, status, program "
                  "FROM ingestd.batches")[0]
        assert b[0].endswith("week1.csv") and b[2] == len(src) and b[3] == 4 and b[4] == 4
        assert b[5] == r["reject_file"] and b[6] == "completed_with_rejects" and b[7] == "mentors-ukraine-2024-q4"
        assert d.sql("SELECT row_number, field FROM ingestd.row_errors") == [(3, "Minutes")]
        again = d.result(d.publish(d.file_event(d.inbox_file("week1_resent.csv", src), dataset="sessions",
                                                program="mentors-ukraine-2024-q4"), key="sessions")["event_id"])
        assert again["status"] == "duplicate" and again["batch_id"] == r["batch_id"]
        unknown = d.result(d.publish(d.file_event(d.inbox_file("w1b.csv", src + b"\n"), dataset="sessions",
                                                  program="no-such-program"), key="sessions")["event_id"])
        assert unknown["counts"]["session"]["inserted"] == 0 and unknown["counts"]["session"]["rejected"] == 4
        # the result names the row, column and code; the value is in row_errors (issue 16 item 6)
        assert unknown["errors"][0] == "row 1, $program: lookup_missing"
        assert any("no-such-program" in m for (m,) in d.sql("SELECT message FROM ingestd.row_errors "
                                                             "WHERE batch_id = %s", (unknown["batch_id"],)))
    finally:
        assert d.stop() == 0


def test_run_job_without_kafka_matches_the_event_driven_run(pg, broker, tmp_path):
    # the one-off migration workflow: a person at a terminal, no broker involved
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)  # config and database; no daemon

    def run_job(*args):
        return subprocess.run([str(BIN), "run-job", *args, "-c", str(d.config)], env=d.env, capture_output=True,
                              text=True, timeout=120)

    dry = run_job("backfill_customers", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["status"] == "dry_run"
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 0
    real = run_job("backfill_customers", "--mode", "full")
    assert real.returncode == 0, real.stderr
    r = json.loads(real.stdout)
    # the same result as test_customer_backfill's event-driven run
    assert r["status"] == "completed" and r["counts"] == json.loads(dry.stdout)["counts"]
    assert r["statistics"] == {"created": 4, "reused": 4, "linked": 8, "already_linked": 0, "errors": 0, "rows": 8,
                               "mode": "full"}
    assert all(c["passed"] for c in r["checks"])
    groups = d.sql("SELECT array_agg(id ORDER BY id) FROM leads GROUP BY customer_id ORDER BY min(id)")
    assert [g[0] for g in groups] == [[1, 2, 3, 4], [5, 7], [6], [8]]
    assert d.sql("SELECT kind, status, submitted_by LIKE 'cli:%%' FROM ingestd.batches WHERE id = %s",
                 (r["batch_id"],)) == [("job", "completed", True)]
    # built-ins too: the rollback refuses while `after` pointed jobs at the customers (exit 1)
    refused = run_job("rollback", "--param", f"batch_id={r['batch_id']}")
    assert refused.returncode == 1 and json.loads(refused.stdout)["status"] == "failed"
    # usage errors: exit 2, nothing run
    assert run_job("no_such_job").returncode == 2
    bad = run_job("backfill_customers", "--param", "novalue")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    assert d.sql("SELECT count(*) FROM ingestd.batches")[0][0] == 2


def test_check_plans_every_job_statement_before_a_run(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)
    good = d.config.read_text()

    def check(text):
        d.config.write_text(text)
        return subprocess.run([str(BIN), "check", "-c", str(d.config)], env=d.env, capture_output=True, text=True,
                              timeout=60)

    ok = check(good)
    assert ok.returncode == 0, ok.stderr
    # a typo in each statement a job runs: named by its key path, nothing run
    bad = check(good.replace("SELECT id, psid, phone", "SELECT id, psidd, phone")
                .replace("UPDATE jobs j SET", "UPDATE jobz j SET")
                .replace("FROM jobs WHERE customer_id IS NULL", "FROM jobs WHERE customerid IS NULL"))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "jobs.backfill_customers.source.sql: ERROR:  column \"psidd\" does not exist" in bad.stderr, bad.stderr
    assert "jobs.backfill_customers.after[0]: ERROR:  relation \"jobz\" does not exist" in bad.stderr, bad.stderr
    assert "jobs.backfill_customers.checks[1] (jobs_without_customer): ERROR:  column \"customerid\"" in bad.stderr
    assert d.sql("SELECT count(*) FROM customers")[0][0] == 0
    # a source database that cannot be reached
    unreachable = good.replace("jobs:\n", "sources:\n  old: {url: \"postgresql://127.0.0.1:1/nothing\"}\njobs:\n", 1) \
                      .replace("    source: {sql:", "    source: {database: old, sql:", 1)
    out = check(unreachable)
    assert out.returncode == 2 and "jobs.backfill_customers.source.database: cannot connect to sources.old" in out.stderr, \
        out.stderr


def test_events_run_only_the_jobs_the_config_lists(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3)
    d.config.write_text(d.config.read_text().replace("event_jobs: [backfill_customers, checks, rollback]",
                                                     "event_jobs: [checks]"))
    d.start()
    try:
        r = job(d, "backfill_customers")
        assert r["status"] == "failed" and "processing.event_jobs" in r["errors"][0], r
        assert d.sql("SELECT count(*) FROM customers")[0][0] == 0
        assert 'ingestd_dead_letters_total{reason="not_allowed"} 1' in d.http("/metrics")[1]
        assert job(d, "checks", params={"job": "backfill_customers"})["status"] in ("completed", "failed")
    finally:
        assert d.stop() == 0
    # the operator at a terminal may run it
    out = subprocess.run([str(BIN), "run-job", "backfill_customers", "-c", str(d.config)], env=d.env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
