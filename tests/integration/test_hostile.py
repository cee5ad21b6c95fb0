"""Hostile input: each refused with a reason, nothing written, the daemon up. These complement
test_file_arrival.py (which covers malformed JSON, a missing uri, an unknown dataset, a number as
dataset, an unknown type, a path outside the roots, `..`, a symlinked file, a sha256 or size
mismatch, a missing file, a directory)."""

import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BIN, Daemon
from faults import (consume_raw, healthy, make_password_role, metric, people_csv, publish_raw, ready, settle_results, shared_db,
                    wait_results)

CSV_OK = "Cedula,Nombre,Apellido\n12345678,Ana,Ruiz\n"


def persons_count(d):
    return d.sql("SELECT count(*) FROM persons")[0][0]


def dead_letters(d):
    out = []
    for m in consume_raw(d.broker.bootstrap, "ingest.dead-letter"):
        h = dict(zip(m["headers"][0::2], m["headers"][1::2]))
        out.append((m.get("payload"), h))
    return out


def test_hostile_events_are_dead_lettered_with_a_reason(daemon):
    d = daemon
    base = {"type": "file.arrived", "dataset": "people", "uri": f"file://{d.inbox_file('x.csv', CSV_OK)}"}

    def ev(**kw):
        e = dict(base, event_id=str(uuid.uuid4()))
        for k, v in kw.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    cases = {
        "event_id_number": (ev(event_id=7), "schema: /properties/event_id: expected string, got number"),
        "event_id_missing": (ev(event_id=None), "schema: /required: missing required field event_id"),
        "event_id_empty": (ev(event_id=""), "schema: /properties/event_id: String should be no fewer than 1 characters"),
        "uri_number": (ev(uri=5), "schema: /properties/uri: expected string, got number"),
        "dataset_missing": (ev(dataset=None), "schema: /required: missing required field dataset"),
        "type_number": (ev(type=3), "missing required field type"),
        "dry_run_string": (ev(dry_run="yes"), "schema: /properties/dry_run: expected boolean or null, got string"),
        "size_string": (ev(size_bytes="12"), "schema: /properties/size_bytes: expected integer or null, got string"),
        "size_negative": (ev(size_bytes=-1), "schema: /properties/size_bytes: expected a number >= 0, got -1"),
        "sha_number": (ev(sha256=123), "schema: /properties/sha256: expected string or null, got number"),
        "options_string": (ev(options="x"), "schema: /properties/options: expected object or null, got string"),
        "delimiter_long": (ev(options={"delimiter": ";;"}),
                           "schema: /properties/options/properties/delimiter: String should be no more than 1 characters"),
        "delimiter_number": (ev(options={"delimiter": 9}),
                             "schema: /properties/options/properties/delimiter: expected string, got number"),
        "encoding_number": (ev(options={"encoding": 1}), "schema: /properties/options/properties/encoding: expected string, got number"),
        "job_on_files_topic": (dict(ev(), type="job.requested", job="x"), "does not belong on topic"),
    }
    raw = {
        "invalid_utf8": (b'{"event_id": "\xff\xfe", "type": "file.arrived"}', "malformed JSON"),
        "nul_byte": (b'{"event_id": "a\x00b", "type": "file.arrived"}', "malformed JSON"),
        "deep_nesting": ('{"a":' * 100000 + "1" + "}" * 100000, None),
        "just_null": ("null", "not a JSON object"),
    }
    for payload, _ in cases.values():
        d.broker.publish("ingest.files", payload, key="people")
    for payload, _ in raw.values():
        publish_raw(d.broker.bootstrap, "ingest.files", payload, key="people", max_bytes=4 * 1024 * 1024)
    good = d.publish(d.file_event(d.inbox_file("good.csv", CSV_OK)))
    assert d.result(good["event_id"], timeout=120)["status"] == "completed"

    dl = dead_letters(d)
    assert len(dl) == len(cases) + len(raw), [h["error"] for _, h in dl]
    by_payload = {p: h for p, h in dl}
    for name, (payload, reason) in cases.items():
        h = by_payload[json.dumps(payload)]
        assert reason in h["error"], (name, h)
        assert h["source_topic"] == "ingest.files" and h["attempts"] == "0"
        eid = payload.get("event_id")
        if isinstance(eid, str) and eid and name not in ("type_number",):
            rs = d.results(eid)
            assert [r["status"] for r in rs] == ["failed"] and reason in rs[0]["errors"][0], (name, rs)
    errors = [h["error"] for _, h in dl]
    for name, (_, reason) in raw.items():
        if reason:
            assert any(reason in e for e in errors), (name, errors)
    # only the good file was loaded; nothing else wrote a row or a batch
    assert persons_count(d) == 1
    assert d.sql("SELECT count(*) FROM ingestd.batches") == [(1,)]
    text = d.http("/metrics")[1]
    assert metric(text, "ingestd_dead_letters_total", reason="wrong_type") >= 10
    assert healthy(d) and ready(d)


def test_hostile_file_locations(daemon, tmp_path):
    d = daemon
    inbox = d.state / "inbox"
    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    (outside_dir / "x.csv").write_text(CSV_OK)
    os.symlink(outside_dir, inbox / "linked_dir")
    sibling = d.state / "inbox2"  # shares the root's name as a prefix
    sibling.mkdir()
    (sibling / "x.csv").write_text(CSV_OK)
    fifo = inbox / "pipe.csv"
    os.mkfifo(fifo)
    os.symlink("/etc/passwd", inbox / "passwd.csv")
    os.link(outside_dir / "x.csv", inbox / "hardlinked.csv")  # the same file under a name outside
    cases = {
        "hard_link": (f"file://{inbox}/hardlinked.csv", "hard links"),
        "symlinked_dir": (f"file://{inbox}/linked_dir/x.csv", "outside files.allowed_roots"),
        "prefix_sibling": (f"file://{sibling}/x.csv", "outside files.allowed_roots"),
        "percent_dotdot": (f"file://{inbox}/%2e%2e/inbox2/x.csv", "outside files.allowed_roots"),
        "symlink_etc": (f"file://{inbox}/passwd.csv", "outside files.allowed_roots"),
        "fifo": (f"file://{fifo}", "not a regular file"),
        "other_host": ("file://evil.example.com/etc/passwd", "only local files"),
        "http": ("http://evil.example.com/x.csv", "only file:// URIs"),
        "relative": ("inbox/x.csv", "not an absolute path"),
        "proc": ("file:///proc/self/environ", "outside files.allowed_roots"),
    }
    evs = {}
    for name, (uri, _) in cases.items():
        evs[name] = d.publish({"event_id": str(uuid.uuid4()), "type": "file.arrived", "dataset": "people", "uri": uri})
    got = wait_results(d, [e["event_id"] for e in evs.values()], timeout=120)
    for name, (_, reason) in cases.items():
        rs = got[evs[name]["event_id"]]
        assert [r["status"] for r in rs] == ["failed"], (name, rs)
        assert reason in rs[0]["errors"][0], (name, rs[0]["errors"])
    assert persons_count(d) == 0
    assert d.sql("SELECT count(*) FROM ingestd.batches") == [(0,)]
    assert healthy(d) and ready(d)


def load(d, name, content, timeout=180):
    p = d.inbox_file(name, content)
    return d.result(d.publish(d.file_event(p))["event_id"], timeout=timeout)


def test_hostile_file_contents(daemon):
    d = daemon
    # empty and header-only files: nothing to load, nothing written
    empty = load(d, "empty.csv", b"")
    assert empty["status"] == "failed" and "empty" in empty["errors"][0].lower(), empty
    header_only = load(d, "header.csv", "Cedula,Nombre,Apellido\n")
    assert header_only["status"] in ("completed", "failed"), header_only
    assert persons_count(d) == 0

    # ragged rows and invalid UTF-8: only the bad rows are refused, each with a reason
    ragged = load(d, "ragged.csv", "Cedula,Nombre,Apellido\n11111111,Ana,Ruiz\n22222222,Bea\n"
                                   "33333333,Cam,Diaz,extra,more\n44444444,Dan,Eco\n")
    assert ragged["status"] == "completed_with_rejects", ragged
    errs = d.sql("SELECT e.row_number, e.message FROM ingestd.row_errors e WHERE batch_id = %s ORDER BY 1",
                 (ragged["batch_id"],))
    assert [e[0] for e in errs] == [2, 3], errs
    assert all(re.search(r"field|column", e[1]) for e in errs), errs
    assert sorted(c for (c,) in d.sql("SELECT cedula FROM persons")) == ["11111111", "44444444"]
    assert healthy(d) and ready(d)


def test_invalid_utf8_row_is_rejected_alone(daemon):
    d = daemon
    utf = load(d, "utf.csv", b"Cedula,Nombre,Apellido\n55555555,Ana\xff\xfe,Ruiz\n66666666,Eva,Gil\n")
    assert d.sql("SELECT status FROM ingestd.batches") != [("running",)], "batch left running"
    assert utf["status"] == "completed_with_rejects", utf
    errs = d.sql("SELECT row_number, code FROM ingestd.row_errors")
    assert errs == [(1, "invalid_encoding")], errs
    assert d.sql("SELECT cedula FROM persons") == [("66666666",)]


def test_event_over_1_mib_is_refused_and_the_partition_moves_on(daemon):
    d = daemon
    huge = {"event_id": str(uuid.uuid4()), "type": "file.arrived", "dataset": "people",
            "uri": f"file://{d.inbox_file('x.csv', CSV_OK)}", "pad": "x" * (1024 * 1024 + 10)}
    publish_raw(d.broker.bootstrap, "ingest.files", json.dumps(huge), key="people", max_bytes=4 * 1024 * 1024)
    good = d.publish(d.file_event(d.inbox_file("good.csv", CSV_OK)))
    try:
        assert d.result(good["event_id"], timeout=30)["status"] == "completed"
    finally:
        assert healthy(d)
    dl = dead_letters(d)
    assert len(dl) == 1 and "the limit is 1 MiB" in dl[0][1]["error"], dl
    assert [r["status"] for r in d.results(huge["event_id"])] == ["failed"]
    assert persons_count(d) == 1


def test_huge_field_and_very_wide_line(daemon):
    d = daemon
    before = persons_count(d)
    big = "Cedula,Nombre,Direccion\n77777777,Ana,\"" + "x" * (10 * 1024 * 1024) + "\"\n88888888,Bea,ok\n"
    r = load(d, "bigfield.csv", big)
    assert r["status"] in ("completed_with_rejects", "failed", "completed"), r
    wide = "Cedula,Nombre," + ",".join(f"c{i}" for i in range(100000)) + "\n99999999,Ana," + ",".join(
        "v" for _ in range(100000)) + "\n"
    r2 = load(d, "wide.csv", wide)
    assert r2["status"] in ("completed", "completed_with_rejects", "failed"), r2
    wide_row = "Cedula,Nombre\n12121212,Ana" + ",v" * 200000 + "\n13131313,Bea\n"
    r3 = load(d, "wide_row.csv", wide_row)
    assert r3["status"] in ("completed_with_rejects", "failed"), r3
    print("bigfield", r["status"], r["errors"][:1], "wide", r2["status"], r2["errors"][:1], "widerow", r3["status"],
          r3["errors"][:1])
    assert healthy(d) and ready(d)


def test_sql_in_values_and_headers_is_data(daemon):
    d = daemon
    evil = [
        "Robert'); DROP TABLE persons; --",
        "x\"; DELETE FROM persons; --",
        "\\N",
        "\\.",
        "a\tb",
        "back\\slash",
        "$$; DROP TABLE leads; $$",
        "E'\\x00'",
    ]
    header = 'Cedula,Nombre,Apellido,Direccion,"Programa"" ); DROP TABLE persons; --",x\'); DROP TABLE leads;--'
    lines = [header]
    for i, v in enumerate(evil):
        q = '"' + v.replace('"', '""') + '"'
        lines.append(f"{60000000 + i},Ana{i},{q},{q},p,q")
    r = load(d, "evil.csv", "\n".join(lines) + "\n")
    assert r["status"] == "completed", r
    rows = dict(d.sql("SELECT cedula, address FROM persons"))
    for i, v in enumerate(evil):
        assert rows[str(60000000 + i)] == v, (v, rows[str(60000000 + i)])
    assert d.sql("SELECT to_regclass('public.persons') IS NOT NULL, to_regclass('public.leads') IS NOT NULL") == [
        (True, True)]
    # a config-quoted identifier never meets the header text: the odd headers are just unknown columns
    assert healthy(d) and ready(d)


PASSWORD = "Pa55-w0rd_Secr3t!x7Q"


def test_database_password_never_printed(pg, broker, tmp_path):
    db = shared_db(pg)
    role, url = make_password_role(pg, PASSWORD, db)
    d = Daemon(pg, broker, tmp_path, db=db, indexes=False)
    d.env["INGESTD_DATABASE_URL"] = url
    d.url = pg.url(db)  # the tests' own queries
    made = d.create_indexes()  # as the role that owns the tables and will own the bookkeeping schema
    assert made.returncode == 0 and PASSWORD not in made.stdout + made.stderr, made
    d.start()
    try:
        ok = load(d, "ok.csv", people_csv(range(5)))
        assert ok["status"] == "completed"
        bad = load(d, "bad.csv", "Apellido\nRuiz\n")
        assert bad["status"] == "failed"
        d.broker.publish("ingest.files", "{not json", key="people")
        # a constraint the target enforces and the loader must report
        d.sql(f"ALTER TABLE persons ADD CONSTRAINT short_name CHECK (length(first_name) < 20)")
        rej = load(d, "long.csv", "Cedula,Nombre\n98765432,Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n")
        assert rej["status"] in ("completed_with_rejects", "failed")
        # lose the connection: the reconnect path logs errors
        d.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        again = load(d, "again.csv", people_csv(range(5, 10)))
        assert again["status"] == "completed"
        status = d.http("/status")[1]
        metrics = d.http("/metrics")[1]
        check = subprocess.run([str(BIN), "check", "-c", str(d.config)], env=d.env, capture_output=True, text=True,
                               timeout=60)
        wrong = dict(d.env, INGESTD_DATABASE_URL=url.replace(f":{pg.port}/", ":1/"))
        check_bad = subprocess.run([str(BIN), "check", "-c", str(d.config)], env=wrong, capture_output=True,
                                   text=True, timeout=60)
        load_bad = subprocess.run([str(BIN), "load", str(d.state / "inbox" / "ok.csv"), "--dataset", "people", "-c",
                                   str(d.config)], env=wrong, capture_output=True, text=True, timeout=60)
        assert check_bad.returncode != 0 and load_bad.returncode != 0
    finally:
        assert d.stop() == 0
    everything = {
        "log": d.log.read_text(),
        "results": json.dumps(d.broker.consume("ingest.results")),
        "dead_letters": json.dumps(d.broker.consume("ingest.dead-letter")),
        "status": status,
        "metrics": metrics,
        "check": check.stdout + check.stderr,
        "check_unreachable": check_bad.stdout + check_bad.stderr,
        "load_unreachable": load_bad.stdout + load_bad.stderr,
        "bookkeeping": json.dumps(d.sql("SELECT row_to_json(e)::text FROM ingestd.events e") +
                                  d.sql("SELECT row_to_json(b)::text FROM ingestd.batches b") +
                                  d.sql("SELECT row_to_json(r)::text FROM ingestd.row_errors r")),
    }
    from urllib.parse import quote
    for where, text in everything.items():
        for form in (PASSWORD, quote(PASSWORD, safe="")):
            assert form not in text, f"database password printed in {where}"
