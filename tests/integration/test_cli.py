"""Operator commands against a running daemon's database and broker: status, review
decisions, dead-letter replay, exit codes."""

import json
import subprocess
import uuid

import pytest

from conftest import BIN, EXAMPLES, Daemon


def cli(d, *args, timeout=60):
    return subprocess.run([str(BIN), *args, "-c", str(d.config)], env=d.env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def ice(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=4)
    d.start()
    yield d
    assert d.stop() == 0


def load(d, name, content):
    p = d.inbox_file(name, content)
    return d.result(d.publish(d.file_event(p, dataset="ice_staging"), key="ice_staging")["event_id"])


def test_status_shows_batches_and_one_batch_in_detail(ice):
    r = load(ice, "a.csv", (EXAMPLES / "ice" / "ice_2025_11.csv").read_bytes())
    out = cli(ice, "status")
    assert out.returncode == 0, out.stderr
    assert "RUNNING" in out.stdout and "(none)" in out.stdout
    assert r["batch_id"] in out.stdout and "completed_with_rejects" in out.stdout
    detail = cli(ice, "status", r["batch_id"], "--json")
    j = json.loads(detail.stdout)
    assert j["status"] == "completed_with_rejects" and j["rows_done"] == 10 and j["rejected"] == 3
    assert j["stats"]["counts"]["person"]["inserted"] == 5
    table = cli(ice, "status", r["batch_id"])
    assert "ENTITY" in table.stdout and "person" in table.stdout and "row 5" in table.stdout
    missing = cli(ice, "status", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no batch" in missing.stderr


def test_review_merge_and_distinct(ice):
    load(ice, "a.csv", (EXAMPLES / "ice" / "ice_2025_11.csv").read_bytes())
    r2 = load(ice, "b.csv", (EXAMPLES / "ice" / "ice_2025_12.csv").read_bytes())
    assert r2["counts"]["person"]["review"] == 1
    listing = cli(ice, "review", "list")
    assert listing.returncode == 0 and "55666777" in listing.stdout
    item = ice.sql("SELECT id FROM ingestd.review_queue WHERE status = 'open'")[0][0]
    ana = ice.sql("SELECT id FROM persons WHERE cedula = '55666777'")[0][0]
    # two records claim the row by exact keys: neither is a better guess, so merge names one
    # (regression: the first claimant was suggested and taken without --into)
    assert ice.sql("SELECT record_id FROM ingestd.review_queue WHERE id = %s", (item,)) == [(None,)]
    guess = cli(ice, "review", "merge", str(item))
    assert guess.returncode != 0 and "--into" in guess.stderr, guess
    merged = cli(ice, "review", "merge", str(item), "--into", str(ana))
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["status"] == "merged"
    assert ice.sql("SELECT status, record_id, decided_by FROM ingestd.review_queue WHERE id = %s", (item,))[0][:2] == \
        ("merged", str(ana))
    # the decision is remembered: the same row again now matches Ana without review
    again = load(ice, "c.csv", b"Cedula,Nombre,Apellido,Correo\n55666777,Ana,P\xc3\xa9rez,maria.lopez@example.com\n")
    assert again["counts"]["person"]["review"] == 1  # still two records hold those keys: María and Ana
    item2 = ice.sql("SELECT id FROM ingestd.review_queue WHERE status = 'open'")[0][0]
    before = ice.sql("SELECT count(*) FROM persons")[0][0]
    distinct = cli(ice, "review", "distinct", str(item2))
    assert distinct.returncode == 0, distinct.stderr
    assert ice.sql("SELECT count(*) FROM persons")[0][0] == before + 1
    assert cli(ice, "review", "distinct", str(item2)).returncode == 1  # already decided
    assert ice.sql("SELECT action FROM ingestd.audit WHERE action LIKE 'review_%' ORDER BY id") == \
        [("review_merge",), ("review_distinct",)]


def test_dlq_replay_republishes_to_source_topic(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.start()
    try:
        # an event for a dataset the config does not have yet is dead-lettered...
        p = d.inbox_file("later.csv", "Cedula,Nombre\n123456,Ana\n")
        ev = d.file_event(p, dataset="people_later")
        d.publish(ev)
        assert d.result(ev["event_id"])["status"] == "failed"
        assert len(d.broker.consume("ingest.dead-letter")) == 1
        # ...the operator adds the dataset, reloads, and replays the dead letters
        d.config.write_text(d.config.read_text().replace(
            "datasets:\n  people:", "datasets:\n  people_later:\n    entities:\n      person:\n"
            "        table: public.persons\n        identity: [[cedula]]\n        fields:\n"
            "          cedula: {from: Cedula, normalize: digits}\n          first_name: {from: Nombre, required: true}\n"
            "  people:", 1))
        d.proc.send_signal(1)  # SIGHUP
        import time
        deadline = time.time() + 10
        while time.time() < deadline and 'ingestd_reloads_total{outcome="success"} 1' not in d.http("/metrics")[1]:
            time.sleep(0.2)
        # a dead letter whose source_topic header names a topic this config does not consume is
        # not published there (anyone who can write the dead-letter topic could forge one)
        d.broker.publish("ingest.dead-letter", ev, key="x", headers={"source_topic": "payments.commands"})
        dry = cli(d, "dlq", "replay", "--dry-run")
        assert dry.returncode == 0 and json.loads(dry.stdout)["replayed"] == 1
        assert json.loads(dry.stdout)["refused"] == {"payments.commands": 1}
        out = cli(d, "dlq", "replay")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["by_topic"] == {"ingest.files": 1}
        # the replayed event keeps its event_id: its dead-letter result was terminal, so the
        # inbox answers duplicate -- the operator republishes under a new id to load it
        res = d.result(ev["event_id"], status="duplicate")
        assert res["original_status"] == "dead_letter"
        again = cli(d, "dlq", "replay")
        assert json.loads(again.stdout)["replayed"] == 0  # its position is committed
    finally:
        assert d.stop() == 0


def test_usage_errors_exit_2(tmp_path):
    assert subprocess.run([str(BIN)], capture_output=True).returncode == 2
    assert subprocess.run([str(BIN), "frobnicate"], capture_output=True).returncode == 2
    assert subprocess.run([str(BIN), "run", "-c", str(tmp_path / "missing.yaml")], capture_output=True).returncode == 2
    assert subprocess.run([str(BIN), "--help"], capture_output=True).returncode == 0
    assert subprocess.run([str(BIN), "review", "merge", "--help"], capture_output=True).returncode == 0


def test_check_accepts_every_format_it_reads_and_names_the_others(tmp_path):
    cfg = tmp_path / "ingestd.yaml"
    base = ("postgres: {url: postgresql://localhost/x}\ndatasets:\n  feed:\n    format: FORMAT\n    entities:\n"
            "      person:\n        table: persons\n        fields:\n          name: {from: name}\n")
    for fmt in ("csv", "jsonl", "xlsx"):
        cfg.write_text(base.replace("FORMAT", fmt))
        ok = subprocess.run([str(BIN), "check", "--offline", "-c", str(cfg)], capture_output=True, text=True)
        assert ok.returncode == 0, (fmt, ok.stderr)
    cfg.write_text(base.replace("FORMAT", "parquet"))
    out = subprocess.run([str(BIN), "check", "--offline", "-c", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 2 and "datasets.feed.format" in out.stderr and "parquet" in out.stderr, out
