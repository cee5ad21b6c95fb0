"""The files people actually have: the same people as CSV, gzip CSV, zstd CSV and JSON Lines with
nested objects load into the same rows with the same rejects; a gzip JSON Lines file goes through
the daemon; a truncated gzip file fails its batch clearly and the daemon goes on."""

import csv
import gzip
import hashlib
import io
import json
import subprocess

from conftest import BIN, EXAMPLES, Daemon

LEADS_1 = (EXAMPLES / "people" / "leads_2025_11.csv").read_bytes()

# The people dataset again, reading JSON Lines: each CSV column's value from a path.
PATHS = {"Cedula": "person.cedula", "Email": "person.email", "Telefono": "person.phone",
         "Nombre": "person.name.first", "Apellido": "person.name.last",
         "Fecha de nacimiento": "person.birth_date", "Direccion": "address", "Programa": "program"}

JSONL_DATASET = """
  people_jsonl:
    format: jsonl
    jsonl: {max_line_bytes: 4096}
    entities:
      person:
        table: public.persons
        id: id
        identity:
          - [cedula]
          - [email]
          - [first_name, last_name, birth_date]
          - [first_name, last_name, phone]
        fields:
          cedula:     {from: person.cedula, normalize: {digits: {min_digits: 5}}}
          email:      {from: [person.email, person.correo], normalize: email}
          phone:      {from: person.phone, normalize: {phone: {region: CO, invalid: null}}}
          first_name: {from: person.name.first, normalize: name, required: true}
          last_name:  {from: person.name.last, normalize: name}
          birth_date: {from: person.birth_date, type: date, formats: ["%d/%m/%Y", "%Y-%m-%d"]}
          address:    {from: address}
          extra:      {from: extra, type: json}
        merge: fill_nulls
        on_insert: {data_source: csv_only, batch_id: $batch_id}
        on_update: {csv_enriched: true}
      lead:
        table: public.leads
        identity: [[person, program_type]]
        fields:
          person:       {column: person_id, ref: person}
          program_type: {from: program, normalize: lower}
        on_insert: {batch_id: $batch_id, source_system: $source_system}
"""
CONFIG = (EXAMPLES / "people" / "people.yaml").read_text() + JSONL_DATASET


def as_jsonl(csv_bytes):
    """The CSV's rows as JSON objects nested by PATHS; an empty value is sometimes null, sometimes
    absent, and an all-digit cédula is a JSON number: the reader must treat them alike."""
    out = []
    for i, row in enumerate(csv.DictReader(io.StringIO(csv_bytes.decode()))):
        obj = {}
        for col, value in row.items():
            if value == "" and i % 2:
                continue
            v = None if value == "" else (int(value) if col == "Cedula" and value.isdigit() else value)
            *parents, leaf = PATHS[col].split(".")
            node = obj
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = v
        out.append(json.dumps(obj, ensure_ascii=i % 3 == 0))
    return ("\n".join(out) + "\n").encode()


def fresh(pg, broker, tmp, chunk_rows=3):
    """A database with the people tables (plus a jsonb column), and the indexes `ingestd check
    --create-indexes` makes: which also proves check accepts a jsonl dataset."""
    d = Daemon(pg, broker, tmp, config_text=CONFIG, indexes=False, chunk_rows=chunk_rows)
    d.sql("ALTER TABLE persons ADD COLUMN extra jsonb")
    made = d.create_indexes()
    assert made.returncode == 0, made.stdout + made.stderr
    return d


def load(d, path, dataset):
    r = subprocess.run([str(BIN), "load", str(path), "--dataset", dataset, "-c", str(d.config)], env=d.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 3), r.stderr
    return json.loads(r.stdout)


def unpath(text):
    for col, path in PATHS.items():
        text = text.replace(path, col)
    return text


def outcome(d, result):
    """What a user compares: people, their leads, row errors and the reject file's rows."""
    people = d.sql("SELECT cedula, email, phone, first_name, last_name, birth_date::text, address, csv_enriched "
                   "FROM persons ORDER BY first_name, cedula")
    leads = d.sql("SELECT p.first_name, p.cedula, l.program_type FROM leads l JOIN persons p ON p.id = l.person_id "
                  "ORDER BY 1, 2, 3")
    errors = [(n, unpath(f or ""), c, unpath(m)) for n, f, c, m in
              d.sql("SELECT row_number, field, code, message FROM ingestd.row_errors ORDER BY row_number, field")]
    text = open(result["reject_file"], encoding="utf-8").read()
    if result["reject_file"].endswith(".jsonl"):
        rejects = [(j["_ingestd_row"], unpath(j["_ingestd_error"])) for j in map(json.loads, text.splitlines())]
    else:
        rejects = [(int(r["_ingestd_row"]), r["_ingestd_error"]) for r in csv.DictReader(io.StringIO(text))]
    return people, leads, errors, rejects


def test_csv_gzip_zstd_and_jsonl_give_the_same_people_and_rejects(pg, broker, tmp_path):
    files = {"csv": LEADS_1, "csv.gz": gzip.compress(LEADS_1),
             "csv.zst": subprocess.run(["zstd", "-q", "-c"], input=LEADS_1, capture_output=True, check=True).stdout,
             "jsonl": as_jsonl(LEADS_1)}
    seen = {}
    for name, content in files.items():
        d = fresh(pg, broker, tmp_path / name)
        path = d.inbox_file("leads." + name, content)
        r = load(d, path, "people_jsonl" if name == "jsonl" else "people")
        assert r["status"] == "completed_with_rejects", (name, r)
        assert r["counts"]["person"]["inserted"] == 5 and r["counts"]["person"]["rejected"] == 3, (name, r)
        seen[name] = outcome(d, r)
        b = d.sql("SELECT sha256, size_bytes FROM ingestd.batches")[0]
        assert b == (hashlib.sha256(content).hexdigest(), len(content)), name  # the file as sent
    people, leads, errors, rejects = seen["csv"]
    assert len(people) == 5 and len(leads) == 6
    assert [e[0] for e in errors] == [7, 8, 9] and [r[0] for r in rejects] == [7, 8, 9]
    for name in ("csv.gz", "csv.zst", "jsonl"):
        assert seen[name] == seen["csv"], name


def test_gzip_jsonl_through_the_daemon_with_bad_lines_and_a_truncated_file(pg, broker, tmp_path):
    d = fresh(pg, broker, tmp_path, chunk_rows=500)
    d.start()
    try:
        lines = [
            {"person": {"cedula": 52987654, "email": "Ana@Example.com", "name": {"first": "ana", "last": "ruiz"}},
             "program": "Mentors", "extra": {"score": 0.1, "tags": ["a", "b"], "ok": True}},
            "",
            "{\"person\": {\"name\": {\"first\": \"Broken\"}",
            [1, 2],
            {"person": {"correo": "luis@example.com", "name": {"first": "Luis"}}, "program": "Tutors"},
        ]
        text = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n"
        gz = gzip.compress(text.encode())
        path = d.inbox_file("people.jsonl.gz", gz)
        ev = d.publish(d.file_event(path, dataset="people_jsonl", sha256=hashlib.sha256(gz).hexdigest(),
                                    size_bytes=len(gz)), key="people_jsonl")
        r = d.result(ev["event_id"])
        assert r["status"] == "completed_with_rejects", r
        assert r["rows"] == 4 and r["counts"]["person"]["inserted"] == 2 and r["counts"]["person"]["rejected"] == 2
        assert d.sql("SELECT cedula, email, first_name, extra->>'score', extra->'tags' FROM persons ORDER BY id") == \
            [("52987654", "ana@example.com", "Ana", "0.1", ["a", "b"]), (None, "luis@example.com", "Luis", None, None)]
        rejects = [json.loads(l) for l in open(r["reject_file"], encoding="utf-8")]
        assert [(j["_ingestd_row"], j["_ingestd_line"]) for j in rejects] == [(2, lines[2]), (3, json.dumps(lines[3]))]
        assert rejects[0]["_ingestd_error"].startswith("line 3: not valid JSON: column ")
        assert rejects[1]["_ingestd_error"] == "line 4: the line is a JSON array, not an object"
        assert d.sql("SELECT row_number, code FROM ingestd.row_errors ORDER BY 1") == \
            [(2, "invalid_json"), (3, "not_an_object")]

        # CSV options for a JSON Lines dataset would do nothing: the event is refused, saying so
        opt = d.publish(d.file_event(path, dataset="people_jsonl", options={"encoding": "latin1"}), key="people_jsonl")
        r = d.result(opt["event_id"])
        assert r["status"] == "failed" and "options.encoding applies to csv datasets" in json.dumps(r), r

        # a gzip file cut short (an interrupted upload): the batch fails saying so; the daemon goes on
        many = "".join(json.dumps({"person": {"cedula": 70000000 + i, "name": {"first": f"P{i}"}}}) + "\n"
                       for i in range(4000))
        cut = gzip.compress(many.encode())
        cut = cut[: len(cut) // 2]
        bad = d.publish(d.file_event(d.inbox_file("cut.jsonl.gz", cut), dataset="people_jsonl"), key="people_jsonl")
        r = d.result(bad["event_id"], timeout=90)
        assert r["status"] == "failed" and f"truncated gzip stream at byte {len(cut)}" in r["errors"][0], r
        assert d.sql("SELECT status FROM ingestd.batches WHERE id = %s", (r["batch_id"],)) == [("failed",)]
        # the chunks committed before the cut stay in the (failed) batch, as with any mid-file error
        assert 0 < d.sql("SELECT count(*) FROM persons WHERE first_name LIKE 'P%%'")[0][0] < 4000
        after = d.publish(d.file_event(d.inbox_file("after.jsonl", '{"person":{"name":{"first":"Zoe"}}}\n'),
                                       dataset="people_jsonl"), key="people_jsonl")
        assert d.result(after["event_id"])["status"] == "completed"
        assert d.sql("SELECT count(*) FROM persons WHERE first_name = 'Zoe'")[0][0] == 1
    finally:
        assert d.stop() == 0
