"""End to end: an uploader publishes file.arrived events with kcat; ingestd (the real binary)
loads them into a real PostgreSQL. Assertions are what a user would check: rows, results,
rejects, dead letters, metrics."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BIN, EXAMPLES, Daemon
from faults import slow_trigger, wait_committed

LEADS_1 = (EXAMPLES / "people" / "leads_2025_11.csv").read_bytes()
LEADS_2 = (EXAMPLES / "people" / "leads_2025_12.csv").read_bytes()


def persons(d):
    return d.sql("SELECT cedula, email, phone, first_name, last_name, birth_date::text, address, csv_enriched "
                 "FROM persons ORDER BY first_name, cedula")


def test_file_loads_with_tiers_merges_and_rejects(daemon):
    path = daemon.inbox_file("leads_2025_11.csv", LEADS_1)
    ev = daemon.publish(daemon.file_event(path))
    r = daemon.result(ev["event_id"])

    assert r["status"] == "completed_with_rejects"
    assert r["counts"]["person"]["inserted"] == 5
    assert r["counts"]["person"]["rejected"] == 3
    assert r["counts"]["lead"]["inserted"] == 6
    rows = persons(daemon)
    assert len(rows) == 5
    by_name = {(p[3], p[0]): p for p in rows}
    jose = by_name[("José", "1023456789")]
    # dotted cédula, upper-case e-mail, local phone format, title-cased accented name
    assert jose[1] == "jose.garcia@example.com" and jose[2] == "+573001234567" and jose[4] == "García"
    assert jose[6] == "Calle 10 # 5-20, Bogotá"  # quoted comma
    maria = [p for p in rows if p[3] == "María"]
    assert len(maria) == 1 and maria[0][6] == "Carrera 7\nApto 302"  # quoted newline, two rows one person
    # two different cédulas sharing one e-mail are two people
    assert sorted(p[0] for p in rows if p[1] == "shared@example.com") == ["55666777", "88999000"]
    pedro = [p for p in rows if p[3] == "Pedro"][0]
    assert pedro[6] == 'He said "hola"'
    assert daemon.sql("SELECT count(*) FROM leads")[0][0] == 6

    errors = daemon.sql("SELECT row_number, field, code, message FROM ingestd.row_errors ORDER BY row_number")
    assert [(e[0], e[1], e[2]) for e in errors] == [(7, "Email", "invalid_value"),
                                                   (8, "Fecha de nacimiento", "invalid_value"),
                                                   (9, "Nombre", "required")]
    assert "carlos@example" in errors[0][3] and "31/02/1990" in errors[1][3]
    rej = open(r["reject_file"], encoding="utf-8").read().splitlines()
    assert rej[0].startswith("Cedula,Nombre") and rej[0].endswith("_ingestd_row,_ingestd_error")
    assert len(rej) == 4
    assert rej[1].startswith(",Carlos,Ruiz,carlos@example") and ",7," in rej[1] and "invalid email" in rej[1]

    lineage = daemon.sql("SELECT action, count(*) FROM ingestd.row_lineage WHERE entity = 'person' GROUP BY 1")
    assert dict(lineage) == {"inserted": 5, "unchanged": 2}
    b = daemon.sql("SELECT status, rows_total, last_row_committed, inserted, rejected, sha256 FROM ingestd.batches")
    assert b == [("completed_with_rejects", 10, 10, 5, 3, hashlib.sha256(LEADS_1).hexdigest())]


def test_second_file_enriches_without_erasing(daemon):
    p1 = daemon.inbox_file("a.csv", LEADS_1)
    daemon.result(daemon.publish(daemon.file_event(p1))["event_id"])
    p2 = daemon.inbox_file("b.csv", LEADS_2)  # header "Correo" is the e-mail alias
    r = daemon.result(daemon.publish(daemon.file_event(p2))["event_id"])
    assert r["status"] == "completed"
    assert r["counts"]["person"] == {"inserted": 1, "updated": 1, "unchanged": 1, "rejected": 0, "review": 0,
                                     "matched_by_tier": {"2": 1, "4": 1}}
    rows = {p[3]: p for p in persons(daemon) if p[3] in ("José", "Pedro", "Sofía")}
    # José: address kept (fill_nulls never overwrites), nothing changed, not marked enriched
    assert rows["José"][6] == "Calle 10 # 5-20, Bogotá" and rows["José"][7] is False
    # Pedro matched by name + phone (tier 4) and got his e-mail and birth date filled
    assert rows["Pedro"][1] == "pedro@example.com" and rows["Pedro"][5] == "1980-12-20" and rows["Pedro"][7] is True
    assert "Sofía" in rows
    ch = daemon.sql("SELECT column_name, before, after FROM ingestd.changes ORDER BY column_name")
    assert ("email", None, "pedro@example.com") in ch and ("csv_enriched", "false", "true") in ch


def test_redelivery_and_same_content_are_duplicates(daemon):
    path = daemon.inbox_file("a.csv", LEADS_1)
    ev = daemon.publish(daemon.file_event(path))
    first = daemon.result(ev["event_id"])
    daemon.publish(ev)  # the same event again
    dup = daemon.result(ev["event_id"], status="duplicate")
    assert dup["batch_id"] == first["batch_id"]
    # the same bytes under another name and event id: re-import detected by sha256
    other = daemon.inbox_file("copy_of_a.csv", LEADS_1)
    ev2 = daemon.publish(daemon.file_event(other))
    r2 = daemon.result(ev2["event_id"])
    assert r2["status"] == "duplicate" and r2["batch_id"] == first["batch_id"]
    assert daemon.sql("SELECT count(*) FROM persons")[0][0] == 5
    assert daemon.sql("SELECT count(*) FROM ingestd.batches")[0][0] == 1
    assert len(daemon.results(ev["event_id"])) == 2


def test_refusals_outside_roots_symlinks_and_hashes(daemon, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_bytes(LEADS_2)
    link = daemon.state / "inbox" / "escape.csv"
    os.symlink(outside, link)
    good = daemon.inbox_file("good.csv", LEADS_2)
    cases = {
        "outside": daemon.file_event(outside),
        "dotdot": daemon.file_event(f"{daemon.state}/inbox/../../outside.csv"),
        "symlink": daemon.file_event(link),
        "sha": daemon.file_event(good, sha256="0" * 64),
        "size": daemon.file_event(good, size_bytes=3),
        "missing": daemon.file_event(daemon.state / "inbox" / "nope.csv"),
        "directory": daemon.file_event(daemon.state / "inbox"),
    }
    for ev in cases.values():
        daemon.publish(ev)
    res = {k: daemon.result(ev["event_id"]) for k, ev in cases.items()}
    for k, r in res.items():
        assert r["status"] == "failed", k
    assert "outside files.allowed_roots" in res["outside"]["errors"][0]
    assert "outside files.allowed_roots" in res["dotdot"]["errors"][0]
    assert "resolves to" in res["symlink"]["errors"][0] and "outside" in res["symlink"]["errors"][0]
    assert "sha256 mismatch" in res["sha"]["errors"][0]
    assert "size mismatch" in res["size"]["errors"][0]
    assert "does not exist" in res["missing"]["errors"][0]
    assert "not a regular file" in res["directory"]["errors"][0]
    assert daemon.sql("SELECT count(*) FROM persons")[0][0] == 0
    # a correct hash passes
    ok = daemon.publish(daemon.file_event(good, sha256=hashlib.sha256(LEADS_2).hexdigest(), size_bytes=len(LEADS_2)))
    assert daemon.result(ok["event_id"])["status"] == "completed"


def test_bad_events_are_dead_lettered_and_daemon_stays_up(daemon):
    good_id = str(uuid.uuid4())
    bad = [
        ("{not json", "malformed JSON"),
        (json.dumps([1, 2]), "not a JSON object"),
        (json.dumps({"event_id": "e-1", "type": "file.arrived", "dataset": "people"}), "missing required field uri"),
        (json.dumps({"event_id": "e-2", "type": "file.arrived", "dataset": "nope", "uri": "file:///x"}),
         "unknown dataset nope"),
        (json.dumps({"event_id": "e-3", "type": "file.arrived", "dataset": 5, "uri": "file:///x"}),
         "schema: /properties/dataset: expected string, got number"),
        (json.dumps({"event_id": "e-4", "type": "party.started"}), "unknown event type"),
    ]
    for payload, _ in bad:
        daemon.broker.publish("ingest.files", payload, key="people")
    path = daemon.inbox_file("after.csv", LEADS_2)
    daemon.publish(daemon.file_event(path) | {"event_id": good_id})
    assert daemon.result(good_id)["status"] == "completed"

    dl = daemon.broker.consume("ingest.dead-letter")
    assert len(dl) == len(bad)
    for msg, (payload, reason) in zip(sorted(dl, key=lambda m: m["payload"]), sorted(bad)):
        headers = dict(zip(msg["headers"][0::2], msg["headers"][1::2]))
        assert msg["payload"] == payload
        assert reason in headers["error"], (headers, reason)
        assert headers["source_topic"] == "ingest.files"
        assert "source_partition" in headers and "source_offset" in headers
    assert daemon.result("e-2")["status"] == "failed"
    assert daemon.http("/healthz")[0] == 200 and daemon.http("/readyz")[0] == 200
    metrics = daemon.http("/metrics")[1]
    assert re.search(r'ingestd_dead_letters_total\{reason="malformed"\} 2', metrics)
    assert re.search(r'ingestd_events_total\{outcome="dead_letter",topic="ingest.files"\} 6', metrics)


def test_metrics_pass_promtool_and_count_rows(daemon):
    path = daemon.inbox_file("a.csv", LEADS_1)
    daemon.result(daemon.publish(daemon.file_event(path))["event_id"])
    code, text = daemon.http("/metrics")
    assert code == 200
    assert re.search(r'ingestd_rows_total\{dataset="people",entity="person",outcome="inserted"\} 5', text)
    assert re.search(r'ingestd_rows_total\{dataset="people",entity="person",outcome="rejected"\} 3', text)
    assert re.search(r'ingestd_events_total\{outcome="completed_with_rejects",topic="ingest.files"\} 1', text)
    assert re.search(r'ingestd_identity_matches_total\{dataset="people",entity="person",tier="1"\} 1', text)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    status = json.loads(daemon.http("/status")[1])
    assert status["recent"][0]["status"] == "completed_with_rejects"
    # each step of a load has its own series, as the dashboard's per-step panel expects (the
    # second file updates records the first made)
    p2 = daemon.inbox_file("b.csv", LEADS_2)
    assert daemon.result(daemon.publish(daemon.file_event(p2))["event_id"])["counts"]["person"]["updated"] > 0
    text = daemon.http("/metrics")[1]
    ops = set(re.findall(r'ingestd_db_query_duration_seconds_count\{op="([a-z]+)"\} [1-9]', text))
    assert {"chunk", "lock", "stage", "candidates", "decide", "aggregate", "insert", "update", "keys", "review",
            "lineage"} <= ops, ops


def test_encoding_delimiter_bom_and_crlf(daemon):
    latin = ("Cedula;Nombre;Apellido\r\n12345678;José;Muñoz\r\n").encode("latin-1")
    p = daemon.inbox_file("latin.csv", latin)
    r = daemon.result(daemon.publish(daemon.file_event(p, options={"delimiter": ";", "encoding": "latin1"}))["event_id"])
    assert r["status"] == "completed", r
    bom = "\ufeffCedula,Nombre,Apellido\r\n87654321,\"Ana, María\",Ruiz\r\n".encode()
    p2 = daemon.inbox_file("bom.csv", bom)
    r2 = daemon.result(daemon.publish(daemon.file_event(p2))["event_id"])
    assert r2["status"] == "completed", r2
    rows = daemon.sql("SELECT cedula, first_name, last_name FROM persons ORDER BY cedula")
    assert rows == [("12345678", "José", "Muñoz"), ("87654321", "Ana, María", "Ruiz")]


def test_missing_required_column_fails_batch_naming_it(daemon):
    p = daemon.inbox_file("noname.csv", "Cedula,Apellido\n123456,Ruiz\n")
    r = daemon.result(daemon.publish(daemon.file_event(p))["event_id"])
    assert r["status"] == "failed"
    assert "'Nombre'" in r["errors"][0] and "person.first_name" in r["errors"][0]
    assert daemon.sql("SELECT status FROM ingestd.batches") == [("failed",)]


def test_dry_run_reports_and_changes_nothing(daemon):
    p = daemon.inbox_file("a.csv", LEADS_1)
    r = daemon.result(daemon.publish(daemon.file_event(p, dry_run=True))["event_id"])
    assert r["status"] == "dry_run"
    assert daemon.sql("SELECT count(*) FROM persons")[0][0] == 0
    real = daemon.result(daemon.publish(daemon.file_event(p))["event_id"])
    assert real["status"] == "completed_with_rejects"
    assert r["counts"] == real["counts"]


def test_jobs_topic_answers_for_unknown_and_unimplemented_jobs(daemon):
    ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "no_such_job"}
    daemon.publish(ev, topic="ingest.jobs", key="no_such_job")
    r = daemon.result(ev["event_id"])
    assert r["status"] == "failed" and "unknown job no_such_job" in r["errors"][0]


def test_kill9_mid_file_resumes_at_next_row(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, chunk_rows=500)
    # slow the load down so the kill lands mid-file: a trigger sleeps per chunk statement
    slow_trigger(d)
    d.start()
    n = 6000
    lines = ["Cedula,Nombre,Apellido,Email"] + [f"{10000000 + i},Nombre{i},Apellido{i},p{i}@example.com"
                                               for i in range(n)]
    path = d.inbox_file("big.csv", "\n".join(lines) + "\n")
    ev = d.publish(d.file_event(path))
    deadline = time.time() + 60
    while time.time() < deadline:
        done = d.sql("SELECT coalesce(max(last_row_committed), 0) FROM ingestd.batches")[0][0]
        if done >= 1500:
            break
        time.sleep(0.1)
    assert 0 < done < n
    d.stop(sig=signal.SIGKILL)
    committed = d.sql("SELECT last_row_committed FROM ingestd.batches")[0][0]
    assert d.sql("SELECT count(*) FROM persons")[0][0] == committed
    d.start()
    r = d.result(ev["event_id"], timeout=120)
    assert r["status"] == "completed"
    assert d.sql("SELECT count(*), count(DISTINCT cedula) FROM persons")[0] == (n, n)
    assert d.sql("SELECT count(*) FROM ingestd.row_lineage WHERE entity='person'")[0][0] == n
    assert d.sql("SELECT status, last_row_committed FROM ingestd.batches") == [("completed", n)]
    assert len(d.results(ev["event_id"])) == 1
    assert d.stop() == 0


def test_kill9_mid_file_keeps_every_rejected_row_in_the_reject_file(pg, broker, tmp_path):
    """On resume the reject file is rebuilt from ingestd.row_errors, a page of rows at a time:
    after a kill -9 mid-file it lists every rejected row once, in row order, those rejected
    before the kill (more than one page) and after it."""
    d = Daemon(pg, broker, tmp_path, chunk_rows=500)
    slow_trigger(d)
    d.start()
    n = 6000
    bad = [i for i in range(n) if i % 4]  # three rows in four carry an e-mail without a domain
    lines = ["Cedula,Nombre,Apellido,Email"] + [
        f"{30000000 + i},Nombre{i},Apellido{i}," + (f"bad{i}@" if i % 4 else f"p{i}@example.com") for i in range(n)]
    path = d.inbox_file("half_bad.csv", "\n".join(lines) + "\n")
    ev = d.publish(d.file_event(path))
    assert wait_committed(d, 1999, timeout=60) < n
    d.stop(sig=signal.SIGKILL)
    assert d.sql("SELECT count(DISTINCT row_number) FROM ingestd.row_errors")[0][0] > 1000  # more than a page
    d.start()
    r = d.result(ev["event_id"], timeout=120)
    assert r["status"] == "completed_with_rejects", r
    c = r["counts"]["person"]
    assert (r["rows"], c["inserted"], c["rejected"]) == (n, n - len(bad), len(bad)), r
    rej = open(r["reject_file"], encoding="utf-8").read().splitlines()
    assert rej[0] == "Cedula,Nombre,Apellido,Email,_ingestd_row,_ingestd_error"
    assert [int(line.split(",")[4]) for line in rej[1:]] == [i + 1 for i in bad]  # row 1: the first after the header
    assert rej[1].startswith(f"30000001,Nombre1,Apellido1,bad1@,2,")
    assert d.stop() == 0


def test_sigterm_finishes_chunk_and_exits_zero(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, chunk_rows=500)
    slow_trigger(d)  # slow the load down so the test can act mid-file
    d.start()
    lines = ["Cedula,Nombre"] + [f"{20000000 + i},N{i}" for i in range(5000)]
    path = d.inbox_file("big.csv", "\n".join(lines) + "\n")
    ev = d.publish(d.file_event(path))
    wait_committed(d, 499, timeout=60)
    # /status shows the running batch with its progress, rate and ETA
    running = json.loads(d.http("/status")[1])["running"]
    assert len(running) == 1 and running[0]["rows_done"] >= 500, running
    assert running[0]["size_bytes"] == path.stat().st_size and "eta_seconds" in running[0] and 0 < running[0]["percent"] < 100
    assert d.stop(sig=signal.SIGTERM) == 0
    committed = d.sql("SELECT last_row_committed FROM ingestd.batches")[0][0]
    assert committed % 500 == 0 and committed < 5000  # stopped on a chunk boundary
    assert d.sql("SELECT count(*) FROM persons")[0][0] == committed
    assert "stopped" in d.log.read_text()
    d.start()
    assert d.result(ev["event_id"], timeout=120)["status"] == "completed"
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 5000
    assert d.stop() == 0


def test_submit_cli_publishes_a_proper_event(daemon):
    path = daemon.inbox_file("a.csv", LEADS_2)
    out = subprocess.run([str(BIN), "submit", "file", str(path), "--dataset", "people", "-c", str(daemon.config),
                          "--source-system", "cli-test", "--wait", "--timeout", "60"],
                         env=daemon.env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["status"] == "completed" and r["counts"]["person"]["inserted"] == 3
    assert daemon.sql("SELECT DISTINCT source_system FROM leads") == [("cli-test",)]
    b = daemon.sql("SELECT sha256, size_bytes FROM ingestd.batches")[0]
    assert b == (hashlib.sha256(LEADS_2).hexdigest(), len(LEADS_2))


def test_check_refuses_bad_config_with_key_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kafka:\n  brokers: embedded\n  topix: {}\npostgres:\n  url: postgresql:///x\n"
                   "datasets:\n  d:\n    entities:\n      p:\n        table: t\n        identity: [[nope]]\n"
                   "        fields:\n          a: {from: A}\n")
    out = subprocess.run([str(BIN), "check", "-c", str(cfg), "--offline"], capture_output=True, text=True)
    assert out.returncode == 2
    assert f"{cfg}:3: kafka.topix: unknown key" in out.stderr
    assert "datasets.d.entities.p.identity[0]" in out.stderr
    good = subprocess.run([str(BIN), "check", "-c", str(EXAMPLES.parent / "ingestd.example.yaml"), "--offline"],
                          env=dict(os.environ, INGESTD_DATABASE_URL="postgresql:///x"), capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


def test_load_cli_runs_the_pipeline_without_kafka(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)  # config and database only; no daemon running
    src = tmp_path / "elsewhere.csv"
    src.write_bytes(LEADS_1)
    cmd = [str(BIN), "load", str(src), "--dataset", "people", "-c", str(d.config)]
    dry = subprocess.run(cmd + ["--dry-run"], env=d.env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["status"] == "dry_run"
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 0
    real = subprocess.run(cmd, env=d.env, capture_output=True, text=True, timeout=60)
    assert real.returncode == 3, real.stderr  # DESIGN §6: 3 = completed with rejects
    r = json.loads(real.stdout)
    assert r["status"] == "completed_with_rejects" and r["counts"] == json.loads(dry.stdout)["counts"]
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 5
    bad = subprocess.run([str(BIN), "load", str(src), "--dataset", "nope", "-c", str(d.config)], env=d.env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown dataset nope" in bad.stderr


def test_file_changed_while_read_fails_the_batch(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, chunk_rows=500)
    slow_trigger(d)  # slow the load down so the test can act mid-file
    d.start()
    try:
        lines = ["Cedula,Nombre"] + [f"{40000000 + i},N{i}" for i in range(10000)]
        path = d.inbox_file("moving.csv", "\n".join(lines) + "\n")
        ev = d.publish(d.file_event(path))
        wait_committed(d, 499, timeout=60)
        with open(path, "a") as f:  # the uploader rewrites the file under our feet
            f.write("49999999,Late\n")
        r = d.result(ev["event_id"], timeout=120)
        assert r["status"] == "failed" and "changed while it was being read" in r["errors"][0], r
        assert d.sql("SELECT status FROM ingestd.batches") == [("failed",)]
        assert d.sql("SELECT count(*) FROM persons WHERE first_name = 'Late'")[0][0] == 0
        assert d.http("/readyz")[0] == 200
    finally:
        assert d.stop() == 0
