"""Identity through the target's own rows (the identity issue): people already in the table are
found whoever wrote them, the outcome does not depend on chunk_rows, every row is accounted for,
`check` names the index behind every tier, and C++ and SQL compute the same name keys."""

import csv
import json
import subprocess
import uuid

import pytest

from conftest import BIN, EXAMPLES, ROOT, Daemon

HEAD = "Cedula,Nombre,Apellido,Email,Telefono,Fecha de nacimiento,Direccion,Programa,Estado,Grado,School SF Id"


def load(d, name, content, dataset="ice_staging", **extra):
    p = d.inbox_file(name, content)
    ev = d.publish(d.file_event(p, dataset=dataset, **extra), key=dataset)
    return d.result(ev["event_id"], timeout=240)


@pytest.fixture
def ice(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=1000)
    d.start()
    yield d
    assert d.stop() == 0, d.log.read_text()[-3000:]


def test_people_inserted_by_plain_sql_are_found(ice):
    d = ice
    # 10,000 persons written by another application, with plain INSERTs: stored values in the
    # form ingestd stores them, some without a cédula or e-mail
    d.sql("INSERT INTO persons (cedula, email, phone, first_name, last_name, birth_date) "
          "SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE (40000000 + g)::text END, "
          "CASE WHEN g % 3 = 1 THEN NULL ELSE 'p' || g || '@example.com' END, NULL, "
          "'Nombre' || g, 'Pérez', date '1960-01-01' + g FROM generate_series(1, 10000) g")
    rows = []
    for g in range(2, 10001, 2):  # half of them, each as a loader would see it again
        ced = "" if g % 3 == 0 else f"{40000000 + g:,}".replace(",", ".")
        mail = "" if g % 3 == 1 else f"P{g}@EXAMPLE.COM"
        born = (__import__("datetime").date(1960, 1, 1) + __import__("datetime").timedelta(days=g)).strftime("%d/%m/%Y")
        rows.append(f"{ced},NOMBRE{g},perez,{mail},300 {g:07d},{born},,Mentors,New,,")
    for n in range(700):  # and people nobody had
        rows.append(f"{70000000 + n},Nueva{n},Gente,nueva{n}@example.com,,,,Mentors,New,,")
    r = load(d, "half.csv", HEAD + "\n" + "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    c = r["counts"]["person"]
    assert c["inserted"] == 700, c
    assert c["updated"] == 5000 and c["unchanged"] == 0, c  # each fills the phone the other application lacked
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 10700
    assert d.sql("SELECT count(*) FROM persons WHERE phone IS NOT NULL")[0][0] == 5000
    # and every key is held once: in the records' own columns, none in identity memory
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys WHERE table_name = 'public.persons'")[0][0] == 0


def test_a_person_another_writer_adds_between_two_files_is_found_and_filled(ice):
    d = ice
    r1 = load(d, "a.csv", HEAD + "\n1023456789,José,García,jose@example.com,,15/03/1990,,Mentors,New,,\n")
    assert r1["counts"]["person"]["inserted"] == 1
    d.sql("INSERT INTO persons (cedula, first_name, last_name, birth_date) VALUES "
          "('55666777', 'Ana', 'Pérez', '1992-02-02')")
    r2 = load(d, "b.csv", HEAD + "\n55.666.777,ANA,PEREZ,ana@example.com,(301) 555-0101,02/02/1992,Calle 1,Mentors,New,,\n"
              ",Ana,Perez,,,1992-02-02,,Tutors,New,,\n")
    assert r2["status"] == "completed", r2
    assert r2["counts"]["person"] == {"inserted": 0, "updated": 1, "unchanged": 1, "rejected": 0, "review": 0,
                                      "matched_by_tier": {"1": 1, "3": 1}}, r2
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 2
    assert d.sql("SELECT email, phone, address, csv_enriched FROM persons WHERE cedula = '55666777'") == \
        [("ana@example.com", "+573015550101", "Calle 1", True)]


def test_a_known_record_is_updated_only_by_a_row_that_fills_one_of_its_nulls(ice):
    # Lineage judges each row against its record's stored values: a row that brings only what
    # its record holds (or less) is unchanged, one that brings a value for a column the record
    # has NULL updates it, whichever fill_nulls field that is.
    d = ice
    r1 = load(d, "k1.csv", HEAD + "\n1023456789,José,García,jose@example.com,,15/03/1990,,Mentors,New,,\n"
              "1098765432,Ana,Pérez,,(301) 555-0101,02/02/1992,Calle 1,Mentors,New,,\n")
    assert r1["counts"]["person"]["inserted"] == 2, r1
    r2 = load(d, "k2.csv", HEAD + "\n1023456789,José,García,jose@example.com,,15/03/1990,,Mentors,New,,\n"  # as stored
              "1098765432,Ana,Pérez,,(301) 555-0101,,Calle 1,Mentors,New,,\n"  # less than stored
              "1023456789,José,García,,(300) 555-0199,,,Mentors,New,,\n"  # José's phone, NULL until now
              "1098765432,Ana,Pérez,ana@example.com,,,,Mentors,New,,\n")  # Ana's e-mail, NULL until now
    assert r2["status"] == "completed", r2
    c = r2["counts"]["person"]
    assert (c["inserted"], c["updated"], c["unchanged"], c["review"]) == (0, 2, 2, 0), r2
    assert d.sql("SELECT row_number, action FROM ingestd.row_lineage WHERE entity = 'person' AND batch_id = %s "
                 "ORDER BY row_number", (r2["batch_id"],)) == \
        [(1, "unchanged"), (2, "unchanged"), (3, "updated"), (4, "updated")]
    assert d.sql("SELECT cedula, email, phone FROM persons ORDER BY id") == [
        ("1023456789", "jose@example.com", "+573005550199"), ("1098765432", "ana@example.com", "+573015550101")]


AMBIGUOUS = "\n".join([HEAD,
    "55666777,Ana,Pérez,shared@example.com,,02/02/1992,,Mentors,New,,",
    "88999000,Anabel,Pérez,shared@example.com,,03/03/1993,,Mentors,New,,",
    ",Someone,Else,shared@example.com,,,,Mentors,New,,",      # two records claim it: review
    "1023456789,José,García,,3001234567,,,Tutors,New,,",
    ",jose,garcia,jose@example.com,300 123 4567,,,Tutors,Contacted,,",  # by name + phone
    "1023456789,JOSE,GARCIA,,,15/03/1990,,Tutors,New,,",
    ",María,López,maria@example.com,,01/07/1985,,Tutors,New,,",
    ",MARIA,LOPEZ,,,1985-07-01,,Tutors,New,,",
    "",
])


@pytest.mark.parametrize("chunk_rows", [1, 7, 50000])
def test_the_outcome_does_not_depend_on_chunk_rows(pg, broker, tmp_path, chunk_rows):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=chunk_rows)
    d.start()
    try:
        r = load(d, "amb.csv", AMBIGUOUS)
        assert r["status"] == "completed", r
        # the same for every chunk size: records, lineage actions, one review item naming both
        assert r["counts"]["person"] == {"inserted": 4, "updated": 2, "unchanged": 1, "rejected": 0, "review": 1,
                                         "matched_by_tier": {"1": 1, "3": 1, "4": 1}}, r
        assert d.sql("SELECT cedula, email, phone, first_name, last_name, birth_date::text FROM persons ORDER BY id") == [
            ("55666777", "shared@example.com", None, "Ana", "Pérez", "1992-02-02"),
            ("88999000", "shared@example.com", None, "Anabel", "Pérez", "1993-03-03"),
            ("1023456789", "jose@example.com", "+573001234567", "José", "García", "1990-03-15"),
            (None, "maria@example.com", None, "María", "López", "1985-07-01")]
        assert d.sql("SELECT row_number, action, tier FROM ingestd.row_lineage WHERE entity = 'person' "
                     "ORDER BY row_number") == [(1, "inserted", None), (2, "inserted", None), (3, "review", None),
                                                (4, "inserted", None), (5, "updated", 4), (6, "updated", 1),
                                                (7, "inserted", None), (8, "unchanged", 3)]
        ids = [i for (i,) in d.sql("SELECT id::text FROM persons WHERE email = 'shared@example.com' ORDER BY id")]
        assert d.sql("SELECT reasons FROM ingestd.review_queue WHERE status = 'open'") == \
            [(f"matches {ids[0]} (tier 2), {ids[1]} (tier 2)",)]
        # the row's lead waits for that decision, with its values
        assert d.sql("SELECT status, reasons, candidate->>'program_type' FROM ingestd.review_queue "
                     "WHERE table_name = 'public.leads'") == [("waiting", "waits for the review of this row's person",
                                                               "mentors")]
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("decision", ["merge", "distinct"])
def test_a_lead_that_waited_for_its_persons_review_is_completed_by_the_decision(ice, decision):
    """The entities that depend on a reviewed row are completed when it is decided: row 3's person
    is in review (two records claim its e-mail), so its lead waited. `review merge` into Ana finds
    Ana's Mentors lead (identity person + program) and fills it; `review distinct` makes a new
    person and a new lead for her, stamped like a loaded one. Lineage says so; rollback undoes it."""
    d = ice
    r = load(d, "amb.csv", AMBIGUOUS)
    assert r["counts"]["lead"]["review"] == 1, r
    listed = subprocess.run([str(BIN), "review", "list", "--json", "-c", str(d.config)], env=d.env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1, listed  # the waiting lead is not listed
    (item,) = d.sql("SELECT id FROM ingestd.review_queue WHERE status = 'open'")[0]
    ana = d.sql("SELECT id::text FROM persons WHERE cedula = '55666777'")[0][0]
    leads_before = d.sql("SELECT count(*) FROM leads")[0][0]
    args = ["review", decision, str(item)] + (["--into", ana] if decision == "merge" else [])
    out = subprocess.run([str(BIN), *args, "-c", str(d.config)], env=d.env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    (dep,) = res["dependents"]
    assert dep["table"] == "public.leads" and dep["status"] == ("merged" if decision == "merge" else "distinct"), res
    person = res["record_id"]
    assert d.sql("SELECT person_id::text, program_type FROM leads WHERE id = %s", (int(dep["record_id"]),)) == \
        [(person, "mentors")]
    if decision == "merge":
        assert person == ana and d.sql("SELECT count(*) FROM leads")[0][0] == leads_before
    else:
        assert person != ana and d.sql("SELECT count(*) FROM leads")[0][0] == leads_before + 1
        assert d.sql("SELECT batch_id::text, source_system FROM leads WHERE id = %s", (int(dep["record_id"]),)) == \
            [(r["batch_id"], "tests")]
    assert d.sql("SELECT entity, action, record_id FROM ingestd.row_lineage WHERE batch_id = %s AND row_number = 3 "
                 "ORDER BY entity", (r["batch_id"],)) == \
        [("lead", "updated" if decision == "merge" else "inserted", dep["record_id"]),
         ("person", "updated" if decision == "merge" else "inserted", person)]
    assert d.sql("SELECT status FROM ingestd.review_queue WHERE table_name = 'public.leads'") == [(dep["status"],)]
    rb = subprocess.run([str(BIN), "rollback", r["batch_id"], "-c", str(d.config)], env=d.env, capture_output=True,
                        text=True)
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 0 and d.sql("SELECT count(*) FROM leads")[0][0] == 0


def test_keyless_rows_from_a_query_each_make_a_record(pg, broker, tmp_path):
    # the backfill example without its one-customer-per-lead tier: a lead with no PSID, phone or
    # e-mail still gets a customer of its own, and the counts add up to the rows read
    text = (EXAMPLES / "backfill" / "backfill.yaml").read_text()
    text = text.replace("identity: [[psid], [phone], [email], [lead]]", "identity: [[psid], [phone], [email]]")
    text = text.replace("          lead:  {column: first_lead_id, from: id, type: bigint, merge: keep}\n", "")
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=3, config_text=text)
    d.create_indexes()
    d.start()
    try:
        ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "backfill_customers", "submitted_by": "ops"}
        d.publish(ev, topic="ingest.jobs", key="backfill_customers")
        r = d.result(ev["event_id"])
        assert r["status"] == "completed", r
        c = r["counts"]["customer"]
        assert r["rows"] == 8 and c["inserted"] + c["updated"] + c["unchanged"] + c["rejected"] + c["review"] == 8, r
        # 1-4 one customer; 5 and 7 by e-mail; 6 (short phone, no key) and 8 (nothing) alone
        assert c["inserted"] == 4, c
        assert d.sql("SELECT count(*) FROM leads WHERE customer_id IS NULL")[0][0] == 0
        assert all(x["passed"] for x in r["checks"]), r["checks"]
    finally:
        assert d.stop() == 0


def test_check_names_the_index_behind_every_tier_and_creates_the_missing(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", chunk_rows=10)
    d.sql("DROP INDEX persons_ingestd_tier3")
    check = subprocess.run([str(BIN), "check", "-c", str(d.config)], env=d.env, capture_output=True, text=True)
    assert check.returncode == 2, check
    assert "datasets.ice_staging.entities.person.identity[2]: no index on public.persons serves this tier" in check.stderr
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "persons_ingestd_tier3" ON "public"."persons" ' \
           '("birth_date", "ingestd".name_key("first_name"), "ingestd".name_key("last_name"))' in check.stderr
    assert "identity[0]: public.persons index persons_ingestd_tier1" in check.stdout
    # a load refuses too, naming the same statement, instead of scanning the table for every key
    d.start()
    try:
        r = load(d, "x.csv", HEAD + "\n123456,Ana,Ruiz,,,,,Mentors,New,,\n")
        assert r["status"] == "failed" and "identity[2]" in r["errors"][0] and "CREATE INDEX" in r["errors"][0], r
    finally:
        assert d.stop() == 0
    fix = d.create_indexes()
    assert fix.returncode == 0, fix.stderr
    assert "identity[2]: created: CREATE INDEX CONCURRENTLY" in fix.stdout
    again = subprocess.run([str(BIN), "check", "-c", str(d.config)], env=d.env, capture_output=True, text=True)
    assert again.returncode == 0 and "identity[2]: public.persons index persons_ingestd_tier3" in again.stdout


def test_cpp_and_sql_name_keys_are_equal_on_a_corpus(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice")  # its check --create-indexes migrated the schema
    names = set()
    febrl = ROOT.parent / "shared" / "data" / "febrl"  # where the project keeps it; absent on CI machines
    for f in ("dataset1", "dataset2", "dataset3"):
        if (febrl / f"{f}.csv").exists():
            with open(febrl / f"{f}.csv", newline="") as fh:
                for r in csv.DictReader(fh, skipinitialspace=True):
                    names.update(v for k, v in r.items() if k in ("given_name", "surname") and v)
    corpus = sorted(names) + [
        "  José   GARCÍA  ", "jose garcia", "O'Brien", "d’Artagnan", "MARÍA-JOSÉ", "Ñandú", "Ærøskøbing", "Straße",
        "STRASSE", "ßa", "İstanbul", "ΣΟΦΊΑ", "Νίκος", "Łukasz", "Zoë", "\u00a0Ana\u2003María\u200b", "ǅemal", "ﬁnn",
        "Nguyễn Thị Minh Khai", "Dvořák", "Å", "A\u030a", "x\ufeff", "‘quoted’", "Ch'ng", "van der Berg", "MacDONALD",
        "ÇAĞLAR", "Ａｎａ", "한국어 이름", "Jose\tGarcia", "Ana  Lopez", " Ana", "ΟΔΥΣΣΕΥΣ", "  "]
    out = subprocess.run([str(BIN), "name-key"], input="\n".join(corpus) + "\n", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:len(corpus)]
    pairs = []  # (value, the C++ key): the raw value, and the value as ingestd stores it
    for name, line in zip(corpus, lines):
        key, stored = line.split("\t")
        key = None if key == "\\N" else key
        pairs += [(v, key) for v in (name, stored) if v != "\\N"]
    sql = d.sql("SELECT ingestd.name_key(v) FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i",
                ([v for v, _ in pairs],))
    differ = [(v, key, s) for (v, key), (s,) in zip(pairs, sql) if s != key]
    assert len(sql) == len(pairs)
    assert len(corpus) > (4000 if names else 30)
    assert differ == []


def test_explain_names_a_rows_record_tier_and_errors_and_a_records_rows(ice):
    d = ice
    r = load(d, "explain.csv", HEAD + "\n"
             "1023456789,José,García,jose@example.com,,15/03/1990,,Mentors,New,,\n"
             ",Jose,Garcia,JOSE@example.com,300 123 4567,,,Mentors,New,,\n"
             "2034567891,Ana,Ruiz,ana@example,,,,Mentors,New,,\n")
    assert r["status"] == "completed_with_rejects", r

    def explain(*args):
        p = subprocess.run([str(BIN), "explain", *args, "-c", str(d.config)], env=d.env, capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = explain(r["batch_id"], "2", "--json")
    assert rc == 0, err
    row2 = json.loads(out)
    person = [e for e in row2["entities"] if e["entity"] == "person"][0]
    pid = d.sql("SELECT id::text FROM persons WHERE cedula = '1023456789'")[0][0]
    assert person["record_id"] == pid and person["action"] == "updated", row2
    assert person["tier"] == 2 and person["tier_fields"] == ["email"], person
    # filled within the batch that created the record: part of its insert, no change to record
    assert person["batch_changes"] == [], person
    assert d.sql("SELECT phone FROM persons WHERE id::text = %s", (pid,))[0][0] == "+573001234567"
    rc, out, _ = explain(r["batch_id"], "1", "--json")
    assert [e["action"] for e in json.loads(out)["entities"] if e["entity"] == "person"] == ["inserted"]
    rc, out, _ = explain(r["batch_id"], "3", "--json")
    row3 = json.loads(out)
    assert row3["entities"] == [] and row3["errors"] and "ana@example" in row3["errors"][0]["message"], row3
    # a later file fills the address the stored record lacks: a change of that batch
    r2 = load(d, "explain2.csv", HEAD + "\n1023456789,José,García,,,,Calle 1 # 2-3,Mentors,New,,\n")
    rc, out, _ = explain(r2["batch_id"], "1", "--json")
    later = [e for e in json.loads(out)["entities"] if e["entity"] == "person"][0]
    assert later["action"] == "updated" and later["tier"] == 1 and later["tier_fields"] == ["cedula"], later
    # (and csv_enriched, which the example's on_update sets)
    assert sorted((c["column"], c["before"], c["after"]) for c in later["batch_changes"]) == [
        ("address", None, "Calle 1 # 2-3"), ("csv_enriched", "false", "true")]
    # which rows made the record, and what they changed
    rc, out, err = explain("--record", "persons", pid, "--json")
    assert rc == 0, err
    rec = json.loads(out)
    assert [(x["batch_id"], x["row"], x["action"]) for x in rec["rows"] if x["entity"] == "person"] == sorted(
        [(r["batch_id"], 1, "inserted"), (r["batch_id"], 2, "updated"), (r2["batch_id"], 1, "updated")])
    assert sorted((c["batch_id"], c["column"]) for c in rec["changes"]) == [(r2["batch_id"], "address"),
                                                                           (r2["batch_id"], "csv_enriched")], rec
    # the table form, and clear refusals
    rc, out, _ = explain(r["batch_id"], "2")
    assert rc == 0 and "updated" in out and '["email"]' in out, out
    rc, _, err = explain(r["batch_id"], "2x")
    assert rc == 2 and "ROW must be a row number" in err
    rc, _, err = explain(str(uuid.uuid4()), "1")
    assert rc == 1 and "no batch" in err


def test_identity_memory_an_earlier_version_wrote_is_compacted_and_what_it_remembers_still_matches(ice):
    d = ice
    r = load(d, "c.csv", HEAD + "\n1023456789,José,García,jose@example.com,,15/03/1990,,Mentors,New,,\n")
    pid = d.sql("SELECT id::text FROM persons WHERE cedula = '1023456789'")[0][0]
    # what an earlier ingestd wrote: every key of the record, and an e-mail it no longer holds
    d.sql("INSERT INTO ingestd.identity_keys (table_name, tier, key, record_id, batch_id) VALUES "
          "('public.persons', 1, '1023456789', %(p)s, %(b)s), ('public.persons', 2, 'jose@example.com', %(p)s, %(b)s), "
          "('public.persons', 2, 'old@example.com', %(p)s, %(b)s)", {"p": pid, "b": r["batch_id"]})
    d.sql("DELETE FROM ingestd.identity_compactions")  # an installation upgraded from that version
    fix = d.create_indexes()  # `ingestd check --create-indexes` compacts as it goes
    assert fix.returncode == 0, fix.stderr
    assert d.sql("SELECT tier, key FROM ingestd.identity_keys WHERE record_id = %s ORDER BY tier, key", (pid,)) == \
        [(2, "old@example.com")]
    assert d.sql("SELECT count(*), sum(rows_removed) FROM ingestd.identity_compactions "
                 "WHERE table_name = 'public.persons'")[0] == (4, 2)
    # once: a second run removes nothing and records nothing new
    assert d.create_indexes().returncode == 0
    assert d.sql("SELECT count(*) FROM ingestd.identity_compactions WHERE table_name = 'public.persons'")[0][0] == 4
    # the remembered e-mail still finds her
    r2 = load(d, "c2.csv", HEAD + "\n,Jose,Garcia,OLD@example.com,300 123 4567,,,Mentors,New,,\n")
    c = r2["counts"]["person"]
    assert c["inserted"] == 0 and c["updated"] == 1 and c["matched_by_tier"] == {"2": 1}, c
    assert d.sql("SELECT count(*) FROM persons")[0][0] == 1


def test_remembered_keys_match_whether_memory_is_smaller_or_larger_than_the_chunk(ice):
    """Memory is read with one hash join while it holds fewer rows for the table than the chunk
    has keys, and one index probe per key past that: both ways find a remembered e-mail."""
    d = ice
    r = load(d, "m.csv", HEAD + "\n1044556677,Marta,Rojas,marta@example.com,,02/02/1992,,Mentors,New,,\n")
    pid = d.sql("SELECT id::text FROM persons WHERE cedula = '1044556677'")[0][0]
    d.sql("INSERT INTO ingestd.identity_keys (table_name, tier, key, record_id, batch_id) VALUES "
          "('public.persons', 2, 'marta.old@example.com', %s, %s)", (pid, r["batch_id"]))
    # few memory rows, a chunk of two rows (up to eight keys): the hash join
    r1 = load(d, "m1.csv", HEAD + "\n,Marta,Rojas,MARTA.OLD@example.com,,,,Mentors,New,,\n"
              ",Otro,Nuevo,otro.nuevo@example.com,,,,Mentors,New,,\n")
    c = r1["counts"]["person"]
    assert c["inserted"] == 1 and c["unchanged"] + c["updated"] == 1 and c["matched_by_tier"] == {"2": 1}, c
    # 300 memory rows of other records: one probe per key
    d.sql("INSERT INTO ingestd.identity_keys (table_name, tier, key, record_id, batch_id) SELECT 'public.persons', 2, "
          "'gone' || g || '@example.com', '-1', %s FROM generate_series(1, 300) g", (r["batch_id"],))
    try:  # the module's later tests share the database: the 300 rows go whatever happens here
        assert d.sql("SELECT count(*) FROM ingestd.identity_keys WHERE table_name = 'public.persons'")[0][0] > 300
        r2 = load(d, "m2.csv", HEAD + "\n,Marta,Rojas,marta.old@example.com,300 765 4321,,,Mentors,New,,\n")
        c = r2["counts"]["person"]
        assert c["inserted"] == 0 and c["updated"] == 1 and c["matched_by_tier"] == {"2": 1}, c
        assert d.sql("SELECT phone FROM persons WHERE id = %s", (int(pid),)) == [("+573007654321",)]
    finally:
        d.sql("DELETE FROM ingestd.identity_keys WHERE record_id = '-1'")


def test_placeholders_are_null_and_an_invalid_phone_is_stored_as_null_with_a_warning(ice):
    d = ice
    r = load(d, "p.csv", HEAD + "\n"
             "N/A,Ana,Ruiz,sin correo,,01/02/1990,,Mentors,New,,\n"
             " n/a ,Luis,Gómez,SIN CORREO,,03/04/1985,,Mentors,New,,\n"
             "3045678912,Eva,Díaz,eva@example.com,12,,,Mentors,New,,\n")
    # the placeholders join nobody: two people, not one; nothing is rejected
    assert r["status"] == "completed" and r["counts"]["person"]["rejected"] == 0, r
    assert r["counts"]["person"]["inserted"] == 3, r
    assert d.sql("SELECT count(*) FROM persons WHERE cedula IS NULL AND email IS NULL")[0][0] == 2
    # the phone `invalid: null` turned away: stored as NULL, a warning with its own code
    assert d.sql("SELECT phone FROM persons WHERE cedula = '3045678912'")[0][0] is None
    assert d.sql("SELECT row_number, field, code FROM ingestd.row_errors WHERE batch_id = %s", (r["batch_id"],)) == \
        [(3, "Telefono", "invalid_value_nulled")]
