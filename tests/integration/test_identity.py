"""The identity engine end to end on the ICE example (config/examples/ice): four tiers, conflict
blocking, identity memory, review, fill-NULL enrichment, students and leads linked to
persons, deferred school lookups, dry-run, a second run that creates nothing, rollback."""

import json
import subprocess
import threading
import uuid

import pytest

from conftest import BIN, EXAMPLES, Daemon

ICE = EXAMPLES / "ice"
FILE1 = (ICE / "ice_2025_11.csv").read_bytes()
FILE2 = (ICE / "ice_2025_12.csv").read_bytes()
TABLES = {
    "persons": "SELECT id, cedula, email, phone, first_name, last_name, birth_date::text, address, data_source, "
               "csv_enriched, batch_id::text FROM persons ORDER BY id",
    "students": "SELECT id, person_id, grade, school_id, batch_id::text FROM students ORDER BY id",
    "leads": "SELECT id, person_id, program_type, status, source_system, program, batch_id::text FROM leads ORDER BY id",
}


def snapshot(d):
    return {t: d.sql(q) for t, q in TABLES.items()}


@pytest.fixture
def ice(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=4)
    d.start()
    yield d
    assert d.stop() == 0, d.log.read_text()[-3000:]


def load(d, name, content, **extra):
    p = d.inbox_file(name, content)
    ev = d.publish(d.file_event(p, dataset="ice_staging", program="ice-2025", **extra), key="ice_staging")
    return d.result(ev["event_id"])


def person_id(d, **where):
    (k, v), = where.items()
    return d.sql(f"SELECT id FROM persons WHERE {k} = %s", (v,))[0][0]


def test_ice_staging_to_production(ice):
    d = ice
    dry = load(d, "dry.csv", FILE1, dry_run=True)
    assert dry["status"] == "dry_run"
    assert snapshot(d) == {"persons": [], "students": [], "leads": []}
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 0

    r = load(d, "ice_2025_11.csv", FILE1)
    assert r["status"] == "completed_with_rejects"
    assert r["counts"] == dry["counts"], "dry-run must report what the real run does"
    c = r["counts"]
    assert (c["person"]["inserted"], c["person"]["updated"], c["person"]["unchanged"], c["person"]["rejected"]) == \
           (5, 1, 1, 3)
    assert c["person"]["matched_by_tier"] == {"1": 1, "2": 1}
    assert c["student"]["inserted"] == 3 and c["lead"]["inserted"] == 6 and c["lead"]["updated"] == 1

    # José: dotted and plain cédula in different chunks are one person; accents and case folded
    jose = person_id(d, cedula="1023456789")
    assert d.sql("SELECT first_name, last_name, email, phone, csv_enriched FROM persons WHERE id = %s", (jose,)) == \
        [("José", "García", "jose.garcia@example.com", "+573001234567", False)]
    # two different cédulas sharing an e-mail are two people
    assert d.sql("SELECT count(*) FROM persons WHERE email = 'shared@example.com'")[0][0] == 2
    # María: upper-case e-mail in a later chunk matched; the phone she lacked was filled
    maria = person_id(d, email="maria.lopez@example.com")
    assert d.sql("SELECT phone, csv_enriched, address FROM persons WHERE id = %s", (maria,)) == \
        [("+573015550199", True, "Carrera 7\nApto 302")]
    # her lead's status was overwritten by the later row (merge: overwrite for that field)
    assert d.sql("SELECT status FROM leads WHERE person_id = %s", (maria,)) == [("contacted",)]
    ch = d.sql("SELECT column_name, before, after FROM ingestd.changes WHERE record_id = %s AND table_name = "
               "'public.persons' ORDER BY column_name", (str(maria),))
    assert ch == [("csv_enriched", "false", "true"), ("phone", None, "+573015550199")]
    # students: school looked up, or deferred when the school is not there yet
    assert d.sql("SELECT s.grade, sc.salesforce_id FROM students s LEFT JOIN schools sc ON sc.id = s.school_id "
                 "ORDER BY s.grade") == [(9, "SCH-B"), (10, "SCH-A"), (11, None)]
    assert d.sql("SELECT column_name, lookup_table, lookup_key, value FROM ingestd.deferred_refs") == \
        [("school_id", "public.schools", "salesforce_id", "SCH-Z")]
    # lineage: one row per input row and entity that got it
    assert d.sql("SELECT count(*) FROM ingestd.row_lineage WHERE entity = 'person'")[0][0] == 7
    assert d.sql("SELECT action, tier FROM ingestd.row_lineage WHERE entity = 'person' AND row_number = 8") == \
        [("unchanged", 1)]
    assert d.sql("SELECT DISTINCT program, source_system FROM leads") == [("ice-2025", "tests")]
    errors = d.sql("SELECT row_number, code FROM ingestd.row_errors ORDER BY 1")
    assert errors == [(5, "invalid_value"), (6, "invalid_value"), (7, "required")]

    # second file: Pepe matches José only through a remembered e-mail that fill_nulls did not
    # store; Ana's cédula with María's e-mail claims two people and waits for review
    r2 = load(d, "ice_2025_12.csv", FILE2)
    assert r2["status"] == "completed"
    p = r2["counts"]["person"]
    assert (p["inserted"], p["updated"], p["unchanged"], p["review"]) == (1, 1, 1, 1), r2
    assert d.sql("SELECT program_type FROM leads WHERE person_id = %s ORDER BY 1", (jose,)) == \
        [("alumni",), ("mentors",), ("tutors",)]
    assert d.sql("SELECT email FROM persons WHERE id = %s", (jose,)) == [("jose.garcia@example.com",)]
    review = d.sql("SELECT table_name, candidate->>'cedula', candidate->>'email', status, reasons FROM "
                   "ingestd.review_queue WHERE status = 'open'")
    assert len(review) == 1
    assert review[0][:4] == ("public.persons", "55666777", "maria.lopez@example.com", "open")
    assert str(person_id(d, cedula="55666777")) in review[0][4] and str(maria) in review[0][4]
    assert r2["counts"]["lead"]["review"] == 1
    assert d.sql("SELECT status FROM ingestd.review_queue WHERE table_name = 'public.leads'") == [("waiting",)]
    pedro = d.sql("SELECT email, csv_enriched FROM persons WHERE first_name = 'Pedro'")
    assert pedro == [("pedro@example.com", True)]

    # the same data again (another file name, one more blank line: another hash) creates nothing
    before = snapshot(d)
    r3 = load(d, "again.csv", FILE1 + b"\n")
    for entity, counts in r3["counts"].items():
        assert counts["inserted"] == 0, (entity, counts)
    after = snapshot(d)
    assert len(after["persons"]) == len(before["persons"]) == 6
    assert len(after["leads"]) == len(before["leads"]) and len(after["students"]) == len(before["students"])


def test_a_person_repeated_in_one_chunk_leaves_each_key_once(ice):
    # three rows of one new person in one chunk (chunk_rows 4), the cédula and e-mail written
    # three ways: one record, and each identity key held once -- in the record's own columns,
    # so identity memory (keys a record does not hold) stays empty
    d = ice
    head = FILE1.split(b"\n", 1)[0]
    rows = [b"1.098.765.432,LUCIA,Mendez,Lucia.Mendez@Example.com,,20/07/2001,,Tutors,New,,",
            b"1098765432,Luc\xc3\xada,M\xc3\xa9ndez,lucia.mendez@example.com,300 765 4321,20/07/2001,,Tutors,Contacted,,",
            b"1 098 765 432,lucia,mendez,LUCIA.MENDEZ@EXAMPLE.COM,(300) 765-4321,2001-07-20,,Tutors,Enrolled,,"]
    r = load(d, "lucia.csv", head + b"\n" + b"\n".join(rows) + b"\n")
    assert r["status"] == "completed", r
    assert r["counts"]["person"]["inserted"] == 1 and r["counts"]["lead"]["inserted"] == 1, r
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 1
    assert d.sql("SELECT cedula, email, phone, first_name, last_name, birth_date::text FROM persons") == \
        [("1098765432", "lucia.mendez@example.com", "+573007654321", "Lucia", "Mendez", "2001-07-20")]
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 0


def test_rollback_restores_tables_exactly(ice):
    d = ice
    empty = snapshot(d)
    r1 = load(d, "ice_2025_11.csv", FILE1)
    s1 = snapshot(d)
    keys1 = d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0]
    r2 = load(d, "ice_2025_12.csv", FILE2)
    assert r2["status"] == "completed"
    s2 = snapshot(d)
    assert s2 != s1

    # batch 1 cannot go first: batch 2 changed persons it inserted
    refused = subprocess.run([str(BIN), "rollback", r1["batch_id"], "-c", str(d.config)], env=d.env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    out = json.loads(refused.stdout)
    assert out["status"] == "failed" and "refused" in out["errors"][0]
    assert any(r2["batch_id"] in e and "public.persons.email" in e for e in out["errors"][1:])
    assert snapshot(d) == s2

    # a dry run of the rollback of batch 2 changes nothing
    ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "rollback", "dry_run": True,
          "params": {"batch_id": r2["batch_id"]}, "submitted_by": "ops"}
    d.publish(ev, topic="ingest.jobs", key="rollback")
    assert d.result(ev["event_id"])["status"] == "dry_run"
    assert snapshot(d) == s2

    # the rollback job over Kafka
    ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "rollback",
          "params": {"batch_id": r2["batch_id"]}, "submitted_by": "ops"}
    d.publish(ev, topic="ingest.jobs", key="rollback")
    rb = d.result(ev["event_id"])
    assert rb["status"] == "completed", rb
    assert snapshot(d) == s1
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == keys1
    assert d.sql("SELECT status FROM ingestd.batches WHERE id = %s", (r2["batch_id"],)) == [("rolled_back",)]
    assert d.sql("SELECT DISTINCT status FROM ingestd.review_queue") == [("rolled_back",)]
    assert d.sql("SELECT origin->>'claimed_by', action FROM ingestd.audit WHERE batch_id = %s ORDER BY id",
                 (r2["batch_id"],)) == [("ops", "rollback_dry_run"), ("ops", "rollback")] or \
        d.sql("SELECT origin->>'claimed_by', action FROM ingestd.audit WHERE batch_id = %s AND action = 'rollback'",
              (r2["batch_id"],)) == [("ops", "rollback")]

    # now batch 1, from the CLI
    ok = subprocess.run([str(BIN), "rollback", r1["batch_id"], "-c", str(d.config)], env=d.env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert snapshot(d) == empty
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 0
    assert d.sql("SELECT count(*) FROM ingestd.deferred_refs")[0][0] == 0
    again = subprocess.run([str(BIN), "rollback", r1["batch_id"], "-c", str(d.config)], env=d.env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "rolled_back" in json.loads(again.stdout)["errors"][0]
    # after a rollback the same file may be loaded again
    r1b = load(d, "ice_2025_11_again.csv", FILE1)
    assert r1b["status"] == "completed_with_rejects" and r1b["counts"]["person"]["inserted"] == 5


def test_racing_instances_create_one_record_per_person(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=50)
    header = "Cedula,Nombre,Apellido,Email"
    people = [f"{30000000 + i},Nombre{i},Apellido{i},p{i}@example.com" for i in range(300)]
    files = []
    for k in range(3):
        # every file holds every person, in another order and with other e-mail case
        rows = people[k * 100:] + people[:k * 100]
        if k:
            rows = [r.upper() for r in rows]
        f = tmp_path / f"race{k}.csv"
        f.write_text("\n".join([header] + rows) + "\n")
        files.append(f)
    results = [None] * 3

    def run(k):
        results[k] = subprocess.run([str(BIN), "load", str(files[k]), "--dataset", "ice_staging", "-c", str(d.config)],
                                    env=d.env, capture_output=True, text=True, timeout=180)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
    assert d.sql("SELECT count(*), count(DISTINCT cedula) FROM persons")[0] == (300, 300)
    inserted = sum(json.loads(r.stdout)["counts"]["person"]["inserted"] for r in results)
    assert inserted == 300
