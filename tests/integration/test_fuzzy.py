"""Fuzzy matching end to end (the fuzzy issue): a typo'd name with the same birth date and
postcode merges, the same person with a different national ID never does, a middle score goes
to review; the scores are explained, counted in the result and on /metrics, and a review
decision is remembered by the next load."""

import json
import subprocess

import pytest

from conftest import BIN, Daemon

CONFIG = """
kafka:
  brokers: ${INGESTD_BROKERS}
  group_id: ${INGESTD_GROUP}
  embedded_address_file: ${INGESTD_STATE}/kafka.address
postgres: {url: "${INGESTD_DATABASE_URL}"}
http: {listen: "${INGESTD_HTTP}"}
files: {allowed_roots: ["${INGESTD_STATE}/inbox"], rejects_dir: "${INGESTD_STATE}/rejects"}
processing: {chunk_rows: "${INGESTD_CHUNK_ROWS}", max_attempts: 3, retry_base_seconds: 0.2}
datasets:
  patients:
    entities:
      patient:
        table: public.patients
        identity:
          - [national_id]
          - [given_name, surname, birth_date]
          - fuzzy:
              blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]
              compare:
                # weights log2(m/u): given 6.41 / 3.32 / 0 / -5.57; surname 7.41 / 3.32 / -4.30;
                # birth_date 9.73 / 8.97 / 2.32 / -4.31; postcode 6.49 / -3.31
                given_name: {jaro_winkler: [0.9], initial: true, m: [0.85, 0.1, 0.03, 0.02], u: [0.01, 0.01, 0.03, 0.95]}
                surname:    {jaro_winkler: [0.9], m: [0.85, 0.1, 0.05], u: [0.005, 0.01, 0.985]}
                birth_date: {date: [31], transposed: true, m: [0.85, 0.05, 0.05, 0.05], u: [0.001, 0.0001, 0.01, 0.9889]}
                postcode:   {exact: , m: [0.9, 0.1], u: [0.01, 0.99]}
              never_across: [national_id]
              merge_at: 20
              review_at: 10
        fields:
          national_id: {column: national_id, from: ID, normalize: digits}
          given_name:  {column: given_name, from: Given, normalize: name}
          surname:     {column: surname, from: Surname, normalize: name}
          birth_date:  {column: birth_date, from: Born, type: date, formats: ["%d/%m/%Y"]}
          postcode:    {column: postcode, from: Postcode}
          phone:       {column: phone, from: Phone}
"""

SCHEMA = """
CREATE TABLE public.patients (id bigserial PRIMARY KEY, national_id text, given_name text, surname text,
                              birth_date date, postcode text, phone text);
"""

HEAD = "ID,Given,Surname,Born,Postcode,Phone"
SECOND = [HEAD,
          ",Katharine,Smith,17/05/1980,2000,0299990000",   # typo'd name, same birth date and postcode: 26.95
          ",K,Smith,17/05/1980,3000,",                     # initial only, another postcode: 13.83, review
          "222,Katherine,Smith,17/05/1980,2000,"]          # a different national ID: never the same person


def cli(d, *args):
    return subprocess.run([str(BIN), *args, "-c", str(d.config)], env=d.env, capture_output=True, text=True,
                          timeout=60)


def load(d, name, content, **extra):
    p = d.inbox_file(name, content)
    return d.result(d.publish(d.file_event(p, dataset="patients", **extra), key="patients")["event_id"], timeout=120)


@pytest.fixture
def clinic(pg, broker, tmp_path):
    db = pg.create_db()
    d = Daemon(pg, broker, tmp_path, db=db, chunk_rows=2, config_text=CONFIG, indexes=False)
    d.sql(SCHEMA)
    made = d.create_indexes()
    assert made.returncode == 0, made.stdout + made.stderr
    d.start()
    yield d
    assert d.stop() == 0, d.log.read_text()[-3000:]


def test_typo_merges_other_id_never_middle_goes_to_review_and_the_decision_is_remembered(clinic):
    d = clinic
    # check names the index behind every blocking rule (it made them above, with fuzzystrmatch)
    chk = cli(d, "check")
    assert chk.returncode == 0, chk.stderr
    for i in range(3):
        assert f"identity[2].fuzzy.blocking[{i}]: public.patients index patients_ingestd_block{i + 1}" in chk.stdout, \
            chk.stdout

    r1 = load(d, "first.csv", HEAD + "\n111,Katherine,Smith,17/05/1980,2000,\n")
    assert r1["counts"]["patient"]["inserted"] == 1
    orig = d.sql("SELECT id FROM patients")[0][0]

    # a dry run scores the same rows and counts its bands, but its weights are not on /metrics
    dry = load(d, "second-dry.csv", "\n".join(SECOND) + "\n", dry_run=True)
    assert dry["status"] == "dry_run" and dry["counts"]["patient"]["fuzzy"]["merged"] == 1, dry
    r2 = load(d, "second.csv", "\n".join(SECOND) + "\n")
    assert r2["status"] == "completed", r2
    c = r2["counts"]["patient"]
    assert (c["inserted"], c["updated"], c["unchanged"], c["review"]) == (1, 1, 0, 1), c
    assert c["matched_by_tier"] == {"3": 1}, c
    assert c["fuzzy"] == {"merged": 1, "review": 1, "new": 1}, c

    # the typo merged into the record (filling its phone); the other national ID is its own person
    assert d.sql("SELECT id, given_name, phone FROM patients WHERE national_id = '111'") == \
        [(orig, "Katherine", "0299990000")]
    assert d.sql("SELECT count(*) FROM patients WHERE national_id = '222' AND given_name = 'Katherine'")[0][0] == 1
    assert d.sql("SELECT count(*) FROM patients")[0][0] == 2

    lineage = d.sql("SELECT row_number, record_id, action, tier, score::float8 FROM ingestd.row_lineage "
                    "WHERE batch_id = %s ORDER BY row_number", (r2["batch_id"],))
    assert lineage[0] == (1, str(orig), "updated", 3, pytest.approx(26.95, abs=0.02))
    assert lineage[1][:4] == (2, None, "review", None) and float(lineage[1][4]) == pytest.approx(13.83, abs=0.02)
    assert lineage[2][2] == "inserted"

    # explain: the score and every field's level and weight
    ex = cli(d, "explain", r2["batch_id"], "1", "--json")
    assert ex.returncode == 0, ex.stderr
    person = json.loads(ex.stdout)["entities"][0]
    assert person["tier_fields"] == "fuzzy"
    pair = person["fuzzy"][0]
    assert pair["decision"] == "merged" and pair["record_id"] == str(orig)
    levels = {f["field"]: (f["level"], f["weight"]) for f in pair["fields"]}
    assert levels == {"given_name": ("jaro_winkler>=0.9", 3.32), "surname": ("exact", 7.41),
                      "birth_date": ("exact", 9.73), "postcode": ("exact", 6.49)}, levels
    table = cli(d, "explain", r2["batch_id"], "1")
    assert "jaro_winkler>=0.9" in table.stdout and "SCORE" in table.stdout, table.stdout

    # the row in review names its candidate, its weight and why
    item, record, score, reasons = d.sql("SELECT id, record_id, score, reasons FROM ingestd.review_queue "
                                         "WHERE status = 'open'")[0]
    assert record == str(orig) and score == pytest.approx(13.83, abs=0.02)
    assert "given_name initial +0.00" in reasons and "postcode disagrees -3.31" in reasons, reasons

    # review list: the row beside its candidate, field by field, with the tier's levels and weights
    listed = cli(d, "review", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [i["id"] for i in items] == [item] and items[0]["row"] == 2 and items[0]["entity"] == "patient"
    assert items[0]["values"]["given_name"] == "K" and items[0]["values"]["postcode"] == "3000"
    cand = items[0]["candidates"]
    assert [c["record_id"] for c in cand] == [str(orig)] and cand[0]["score"] == pytest.approx(13.83, abs=0.02)
    assert cand[0]["values"]["given_name"] == "Katherine" and cand[0]["values"]["postcode"] == "2000"
    assert {f["field"]: f["level"] for f in cand[0]["fields"]}["postcode"] == "disagrees"
    table = cli(d, "review", "list")
    assert f"RECORD {orig} (13.83" in table.stdout and "[initial 0" in table.stdout, table.stdout
    assert "K " in table.stdout and "Katherine" in table.stdout
    paged = cli(d, "review", "list", "--after", str(item))
    assert "review queue is empty after item" in paged.stdout, paged.stdout

    # the weights histogram: the two rows that had candidates (the third's only one was ruled out)
    status, metrics = d.http("/metrics")
    assert 'ingestd_match_weight_count{dataset="patients",entity="patient"} 2' in metrics, metrics[-3000:]

    # merge without --into takes the candidate the tier named; the decision teaches identity memory
    merged = cli(d, "review", "merge", str(item))
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["record_id"] == str(orig)

    # the same rows again (another file: CRLF line ends): nothing new, nothing in review
    r3 = load(d, "second-again.csv", "\r\n".join(SECOND) + "\r\n")
    c3 = r3["counts"]["patient"]
    assert (c3["inserted"], c3["review"]) == (0, 0), c3
    assert d.sql("SELECT count(*) FROM patients")[0][0] == 2


def test_train_writes_the_same_weights_twice_from_the_same_file(clinic, tmp_path):
    d = clinic
    rows = [HEAD]
    given = ["Katherine", "Katharine", "John", "Jon", "Maria", "Mariah", "Peter", "Petra", "Lucas", "Luke"]
    for i in range(400):  # people and near-copies of them, sharing postcodes and birth dates
        g, born = given[i % 10], f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1950 + i % 40}"
        rows.append(f",{g},Smith{i // 4},{born},{2000 + i % 50},")
    data = d.inbox_file("train.csv", "\n".join(rows) + "\n")
    outs = []
    for n in (1, 2):
        out = tmp_path / f"weights{n}.yaml"
        r = cli(d, "train", "patients", str(data), "--output", str(out))
        assert r.returncode == 0, r.stderr
        assert "trained on 400 rows" in r.stdout and "given_name" in r.stdout, r.stdout
        outs.append(out.read_bytes())
    assert "\nrows: 400  #" in outs[0].decode(), outs[0].decode()
    assert outs[0] == outs[1]
    text = outs[0].decode()
    for field in ("given_name", "surname", "birth_date", "postcode"):
        assert f"  {field}: {{m: [" in text, text
    # the file is what the tier reads: a config naming it loads, with these weights
    cfg = d.config.read_text().replace("review_at: 10", f"review_at: 10\n              weights: {tmp_path / 'weights1.yaml'}")
    (tmp_path / "trained.yaml").write_text(cfg)
    chk = subprocess.run([str(BIN), "check", "--offline", "-c", str(tmp_path / "trained.yaml")], env=d.env,
                         capture_output=True, text=True, timeout=60)
    assert chk.returncode == 0, chk.stderr


def test_check_names_what_a_blocking_rule_needs_and_the_load_refuses_without_it(pg, broker, tmp_path):
    db = pg.create_db()
    d = Daemon(pg, broker, tmp_path, db=db, chunk_rows=2, config_text=CONFIG, indexes=False)
    d.sql(SCHEMA)
    # no index and no fuzzystrmatch yet: a load refuses, naming the rule (it migrates the
    # bookkeeping schema first), and writes nothing
    p = d.inbox_file("one.csv", HEAD + "\n111,Ana,Pérez,01/02/1990,2000,\n")
    r = cli(d, "load", str(p), "--dataset", "patients")
    assert r.returncode == 1 and "serves this blocking rule" in (r.stdout + r.stderr), r.stdout + r.stderr
    assert d.sql("SELECT count(*) FROM patients")[0][0] == 0
    # check names every rule without an index and prints what makes it
    chk = cli(d, "check")
    assert chk.returncode == 2, chk.stdout + chk.stderr
    assert "identity[2].fuzzy.blocking[2]: no index on public.patients serves this blocking rule" in chk.stderr, \
        chk.stderr
    assert "CREATE EXTENSION IF NOT EXISTS fuzzystrmatch; CREATE INDEX CONCURRENTLY IF NOT EXISTS " \
           "\"patients_ingestd_block3\"" in chk.stderr, chk.stderr
    assert "identity[2].fuzzy.blocking[0]: no index" in chk.stderr and "(\"postcode\", \"id\")" in chk.stderr
    # --create-indexes makes the extension and the indexes; then the load goes through
    assert cli(d, "check", "--create-indexes").returncode == 0
    r = cli(d, "load", str(p), "--dataset", "patients")
    assert r.returncode == 0, r.stdout + r.stderr
    assert d.sql("SELECT count(*) FROM patients")[0][0] == 1
    # with statistics, check tells each rule's block size, and names a rule whose blocks outgrow
    # max_candidates (5,000 people in one postcode, each born on another day)
    d.sql("INSERT INTO patients (given_name, surname, birth_date, postcode) SELECT 'P' || g, 'S' || g, "
          "date '1900-01-01' + g, '4000' FROM generate_series(1, 5000) g; ANALYZE patients")
    chk = cli(d, "check")
    assert chk.returncode == 0, chk.stderr
    lines = {ln.split(":")[0]: ln for ln in chk.stdout.splitlines() if "fuzzy.blocking" in ln}
    postcode = lines["datasets.patients.entities.patient.identity[2].fuzzy.blocking[0]"]
    assert "rows a key" in postcode and "over max_candidates 50" in postcode, chk.stdout
    born = lines["datasets.patients.entities.patient.identity[2].fuzzy.blocking[1]"]
    assert "(about 1 rows a key at the table's size)" in born, chk.stdout


def test_a_candidate_every_row_of_its_block_conflicts_with_is_not_fetched_but_keeps_its_place(pg, broker, tmp_path):
    """A record whose never_across values conflict with those of every row of its block is
    ruled out in PostgreSQL and never fetched; it still counts towards max_candidates, so the
    rows' outcome is the one of a run that fetched it: here, with a record an earlier row of the
    chunk made, it takes its blocks over max_candidates, so they give no candidates (the blocks as
    the table would hold them)."""
    db = pg.create_db()
    config = CONFIG.replace("review_at: 10", "review_at: 10\n              max_candidates: 2") \
        .replace("never_across: [national_id]", "never_across: [national_id, phone]")
    d = Daemon(pg, broker, tmp_path, db=db, chunk_rows=50, indexes=False, config_text=config)
    d.sql(SCHEMA)
    # 1, 2: Quux of postcode 2000 with other phones; 3: Maria Lopez without an ID; 4: with one
    d.sql("INSERT INTO patients (national_id, given_name, surname, birth_date, postcode, phone) VALUES "
          "('901', 'Anna', 'Quux', '1971-04-04', '2000', '0211'), ('902', 'Bob', 'Quux', '1972-05-05', '2000', '0222'), "
          "(NULL, 'Maria', 'Lopez', '1970-03-03', '4000', NULL), ('556', 'Maria', 'Lopez', '1970-03-03', '4000', NULL)")
    assert d.create_indexes().returncode == 0
    d.start()
    rows = [HEAD,
            ",Zed,Quux,01/01/1950,2000,0299",  # 1 and 2 have other phones: a new record, Zed
            # 1 and 2 conflict again and, with the Zed the chunk made, take the postcode's and
            # the surname's blocks over two: no candidates, so that Zed is never met (scored, 16.0:
            # review)
            ",Zed,Quux,02/02/1960,2000,0299",
            "555,Mariah,Lopez,03/03/1970,4000,"]  # 4 has another ID, 3 none: merges into 3
    r = load(d, "quux.csv", "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    c = r["counts"]["patient"]
    assert (c["inserted"], c["updated"], c["unchanged"], c["review"], c["rejected"]) == (2, 1, 0, 0, 0), c
    assert c["fuzzy"] == {"merged": 1, "review": 0, "new": 2}, c
    assert d.sql("SELECT id, national_id, given_name FROM patients WHERE surname = 'Lopez' ORDER BY id") == \
        [(3, "555", "Maria"), (4, "556", "Maria")]
    assert d.sql("SELECT birth_date::text FROM patients WHERE given_name = 'Zed' ORDER BY 1") == \
        [("1950-01-01",), ("1960-02-02",)]
    assert d.sql("SELECT count(*) FROM ingestd.review_queue")[0][0] == 0
    assert d.stop() == 0, d.log.read_text()[-3000:]


def test_a_row_with_a_national_id_is_blocked_among_the_records_without_one(pg, broker, tmp_path):
    """A row that holds its national ID (never_across, and the first exact tier) could only ever
    be scored against records that hold none: one holding the same ID places it by the exact
    tier, one holding another conflicts. So its blocks count only those records (partial
    indexes `check` names), and a crowd of other people with IDs no longer takes every block
    over max_candidates."""
    config = CONFIG.replace("review_at: 10", "review_at: 10\n              max_candidates: 2")
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=50, indexes=False, config_text=config)
    d.sql(SCHEMA)
    d.sql("INSERT INTO patients (national_id, given_name, surname, birth_date, postcode) VALUES "
          "('901', 'Anna', 'Smith', '1980-05-17', '2000'), ('902', 'Bob', 'Smith', '1980-05-17', '2000'), "
          "(NULL, 'Katherine', 'Smith', '1980-05-17', '2000')")
    assert d.create_indexes().returncode == 0
    # without its partial index, check names what makes it, and a load refuses
    d.sql("DROP INDEX patients_ingestd_open1")
    chk = cli(d, "check")
    assert chk.returncode == 2, chk.stdout + chk.stderr
    assert "identity[2].fuzzy.blocking[0] (open blocks): no index on public.patients serves this blocking rule's " \
           "open blocks" in chk.stderr, chk.stderr
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "patients_ingestd_open1" ON "public"."patients" ("postcode", ' \
           '"id") WHERE' in chk.stderr and "IS NULL" in chk.stderr, chk.stderr
    p = d.inbox_file("refused.csv", HEAD + "\n555,Katharine,Smith,17/05/1980,2000,\n")
    r = cli(d, "load", str(p), "--dataset", "patients")
    assert r.returncode == 1 and "open blocks" in (r.stdout + r.stderr), r.stdout + r.stderr
    assert d.create_indexes().returncode == 0
    chk = cli(d, "check")
    assert chk.returncode == 0, chk.stderr
    for i in range(3):
        assert f"identity[2].fuzzy.blocking[{i}] (open blocks): public.patients index patients_ingestd_open{i + 1}" \
            in chk.stdout, chk.stdout
    d.start()
    r = load(d, "ids.csv", HEAD + "\n555,Katharine,Smith,17/05/1980,2000,\n")
    assert r["status"] == "completed", r
    c = r["counts"]["patient"]
    assert c["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, c
    assert d.sql("SELECT id, national_id, given_name FROM patients ORDER BY id") == \
        [(1, "901", "Anna"), (2, "902", "Bob"), (3, "555", "Katherine")]
    assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_spellings_of_one_phonetic_code_in_a_chunk_name_their_block_once(pg, broker, tmp_path, chunk_rows):
    """Thomson and Tomson (dmetaphone TMSN both) in one chunk probe the same block: its stored
    records are named once and take their places under max_candidates once, so the record the
    chunk made for Tomson still fits beside the table's Thomson and the second row merges into
    it, as it does one row per chunk."""
    config = CONFIG.replace("review_at: 10", "review_at: 10\n              max_candidates: 2") \
        .replace('blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]', 'blocking: [["dmetaphone(surname)"]]')
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=chunk_rows, indexes=False, config_text=config)
    d.sql(SCHEMA)
    d.sql("INSERT INTO patients (national_id, given_name, surname, birth_date, postcode) "
          "VALUES ('901', 'Anna', 'Thomson', '1971-04-04', '2000')")
    assert d.create_indexes().returncode == 0
    d.start()
    rows = [HEAD, ",Zed,Tomson,01/01/1950,9000,", ",Zed,Thomson,01/01/1950,9000,"]
    r = load(d, "tmsn.csv", "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    c = r["counts"]["patient"]
    assert c["fuzzy"] == {"merged": 1, "review": 0, "new": 1}, c
    assert (c["inserted"], c["updated"] + c["unchanged"], c["review"], c["rejected"]) == (1, 1, 0, 0), c
    assert d.sql("SELECT given_name, surname FROM patients ORDER BY id") == [("Anna", "Thomson"), ("Zed", "Tomson")]
    assert d.stop() == 0, d.log.read_text()[-3000:]


TRIGRAM_ROWS = [HEAD,
                ",Katherine,Johnston,17/05/1980,2000,0299",  # the table's Johnstone (written by plain SQL)
                ",Marcus,Delacroix,03/03/1975,5000,0400",    # new
                ",Marcus,Delacroy,03/03/1975,5000,",          # similar to the row above: the chunk's record
                ",Katherine,Jones,17/05/1980,2000,"]           # not similar to Johnstone: never scored, new


def test_trigram_blocking_finds_a_misspelt_surname_in_the_table_and_in_the_chunk(pg, broker, tmp_path):
    """A blocking rule `trigram(surname)` finds records whose surname is similar to the row's
    by pg_trgm, through a trigram index on the target; the records an earlier row of the same
    chunk made are found by the same similarity, computed in C++, so chunk_rows 1 and 50 give
    the same records and lineage. A surname below the similarity is in no block at all."""
    config = CONFIG.replace('blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]',
                            'blocking: [["trigram(surname)"]]')
    outcome = {}
    for chunk_rows in (50, 1):
        d = Daemon(pg, broker, tmp_path / f"c{chunk_rows}", db=pg.create_db(), chunk_rows=chunk_rows, indexes=False,
                   config_text=config)
        d.sql(SCHEMA + "INSERT INTO patients (given_name, surname, birth_date, postcode) "
                       "VALUES ('Katherine', 'Johnstone', '1980-05-17', '2000');")
        p = d.inbox_file("people.csv", "\n".join(TRIGRAM_ROWS) + "\n")
        if chunk_rows == 50:
            # a load refuses without the rule's index (migrating the bookkeeping schema first);
            # check names what the rule needs: pg_trgm and a trigram index on the surname's key
            r = cli(d, "load", str(p), "--dataset", "patients")
            assert r.returncode == 1 and "serves this blocking rule" in (r.stdout + r.stderr), r.stdout + r.stderr
            chk = cli(d, "check")
            assert chk.returncode == 2, chk.stdout + chk.stderr
            assert "identity[2].fuzzy.blocking[0]: no index on public.patients serves this blocking rule" in chk.stderr
            assert "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY IF NOT EXISTS " \
                   "\"patients_ingestd_block1\" ON \"public\".\"patients\" USING gin ((\"ingestd\".name_key(\"surname\")) " \
                   "gin_trgm_ops) WITH (fastupdate = off)" in chk.stderr, chk.stderr
        assert d.create_indexes().returncode == 0
        chk = cli(d, "check")
        assert chk.returncode == 0, chk.stdout + chk.stderr
        assert "identity[2].fuzzy.blocking[0]: public.patients index patients_ingestd_block1 (a similarity search: " \
               "each distinct key a load meets reads every similar row of the table (about 1 rows), so its cost grows" in chk.stdout, \
               chk.stdout
        r = cli(d, "load", str(p), "--dataset", "patients")
        assert r.returncode == 0, r.stdout + r.stderr
        people = d.sql("SELECT id, given_name, surname, phone FROM patients ORDER BY id")
        assert people == [(1, "Katherine", "Johnstone", "0299"), (2, "Marcus", "Delacroix", "0400"),
                          (3, "Katherine", "Jones", None)], (chunk_rows, people)
        lineage = d.sql("SELECT row_number, record_id, action, tier FROM ingestd.row_lineage ORDER BY row_number")
        assert [(n, rec, action) for n, rec, action, _ in lineage] == \
            [(1, "1", "updated"), (2, "2", "inserted"), (3, "2", "unchanged"), (4, "3", "inserted")], lineage
        assert [t for *_, t in lineage][:3:2] == [3, 3], lineage  # rows 1 and 3 by the fuzzy tier
        assert d.sql("SELECT count(*) FROM ingestd.review_queue")[0][0] == 0
        outcome[chunk_rows] = (people, lineage)
    assert outcome[50] == outcome[1]

    # below pg_trgm's default similarity (0.3) the index still finds what the rule asks for:
    # Jones is 0.23 similar to Johnstone, so at 0.2 the table's Johnstone is her candidate
    # (18.3: the surname disagrees) and she goes to review. A second rule at 0.9 keeps only its
    # own: Katherina is 0.67 similar to Katherine (15.2 had they met: review), so she is new.
    d = Daemon(pg, broker, tmp_path / "low", db=pg.create_db(), chunk_rows=50, indexes=False,
               config_text=config.replace('"trigram(surname)"]',
                                          '"trigram(surname, 0.2)"], ["trigram(given_name, 0.9)"]'))
    d.sql(SCHEMA + "INSERT INTO patients (given_name, surname, birth_date, postcode) "
                   "VALUES ('Katherine', 'Johnstone', '1980-05-17', '2000');")
    assert d.create_indexes().returncode == 0
    rows = TRIGRAM_ROWS + [",Katherina,Zzyzx,17/05/1980,2000,"]
    r = cli(d, "load", str(d.inbox_file("people.csv", "\n".join(rows) + "\n")), "--dataset", "patients")
    assert r.returncode == 0, r.stdout + r.stderr
    assert d.sql("SELECT row_number, action FROM ingestd.row_lineage WHERE row_number >= 4 ORDER BY 1") == \
        [(4, "review"), (5, "inserted")]
    assert d.sql("SELECT count(*) FROM patients")[0][0] == 3
