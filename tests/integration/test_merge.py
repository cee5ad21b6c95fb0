"""`ingestd merge TABLE LOSER --into WINNER`: two records of an entity's table become one (the
winner filled by the merge policy, references repointed, the loser deleted), as one batch that
`ingestd rollback` undoes exactly. No daemon runs: the people example's database, loaded with
`ingestd load`."""

import json
import subprocess

import pytest

from conftest import BIN, Daemon

# José comes with a cédula and an e-mail; "Pepe" is the same man under another e-mail, with the
# phone, birth date and address José lacks. No identity tier joins them, so they are two persons.
PEOPLE = (
    "Cedula,Nombre,Apellido,Email,Telefono,Fecha de nacimiento,Direccion,Programa\n"
    "1023456789,José,García,jose@example.com,,,,Mentors\n"
    ",Pepe,García,pepe@example.com,300 123 4567,15/03/1990,Calle 10 # 5-20,Tutors\n"
    ",Ana,Ruiz,ana@example.com,,,,Mentors\n"
)

SNAPSHOT = {
    "persons": "SELECT * FROM public.persons ORDER BY id",
    "leads": "SELECT * FROM public.leads ORDER BY id",
    "identity_keys": "SELECT table_name, tier, key, record_id, batch_id FROM ingestd.identity_keys ORDER BY 1, 2, 3, 4",
}


def cli(d, *args):
    return subprocess.run([str(BIN), *args, "-c", str(d.config)], env=d.env, capture_output=True, text=True,
                          timeout=60)


def snapshot(d):
    return {name: d.sql(q) for name, q in SNAPSHOT.items()}


def person_id(d, email):
    return str(d.sql("SELECT id FROM public.persons WHERE email = %s", (email,))[0][0])


@pytest.fixture
def people(pg, broker, tmp_path):
    """The people example's database with José, Pepe and Ana and their leads (no daemon)."""
    d = Daemon(pg, broker, tmp_path)
    loaded = cli(d, "load", str(d.inbox_file("people.csv", PEOPLE)), "--dataset", "people")
    assert loaded.returncode == 0, loaded.stderr
    d.load_batch = json.loads(loaded.stdout)["batch_id"]
    assert d.sql("SELECT count(*) FROM public.persons")[0][0] == 3
    return d


def test_merge_repoints_fills_deletes_and_rollback_restores_exactly(people):
    d = people
    jose, pepe = person_id(d, "jose@example.com"), person_id(d, "pepe@example.com")
    before = snapshot(d)

    out = cli(d, "merge", "public.persons", pepe, "--into", jose, "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["status"] == "merged" and r["winner"] == jose and r["loser"] == pepe
    assert r["filled"] == ["phone", "birth_date", "address"]  # José's NULL fields; his e-mail stays (fill_nulls)
    assert r["repointed"] == {"public.leads.person_id": 1}
    batch = r["batch_id"]

    # the loser is gone, its lead points at the winner, the winner holds what it lacked
    assert d.sql("SELECT count(*) FROM public.persons WHERE id = %s", (pepe,))[0][0] == 0
    assert d.sql("SELECT email, phone, birth_date::text, address FROM public.persons WHERE id = %s", (jose,)) == \
        [("jose@example.com", "+573001234567", "1990-03-15", "Calle 10 # 5-20")]
    assert d.sql("SELECT person_id::text, program_type FROM public.leads ORDER BY id")[:2] == \
        [(jose, "mentors"), (jose, "tutors")]
    # one batch, recorded and audited; every changed value is in changes
    assert d.sql("SELECT kind, status, dataset_or_job FROM ingestd.batches WHERE id = %s", (batch,)) == \
        [("merge", "completed", "people")]
    assert d.sql("SELECT action FROM ingestd.audit WHERE batch_id = %s", (batch,)) == [("merge",)]
    changes = d.sql("SELECT table_name, column_name, before, after FROM ingestd.changes WHERE batch_id = %s "
                    "ORDER BY 1, 2", (batch,))
    assert changes == [("public.leads", "person_id", pepe, jose),
                       ("public.persons", "address", None, "Calle 10 # 5-20"),
                       ("public.persons", "birth_date", None, "1990-03-15"),
                       ("public.persons", "phone", None, "+573001234567")]
    # the loser's e-mail is remembered for the winner: it no longer lives in any column
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys WHERE record_id = %s AND key = 'pepe@example.com' "
                 "AND batch_id = %s", (jose, batch))[0][0] == 1

    # the load that made the loser cannot be rolled back under the merge
    refused = cli(d, "rollback", d.load_batch)
    assert refused.returncode == 1
    assert any(batch in e for e in json.loads(refused.stdout)["errors"])

    rb = cli(d, "rollback", batch)
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert json.loads(rb.stdout)["status"] == "completed"
    # exactly as before: the loser with its id and values, its lead on it, José's columns NULL again
    assert snapshot(d) == before
    assert d.sql("SELECT status FROM ingestd.batches WHERE id = %s", (batch,)) == [("rolled_back",)]
    # and now the load itself rolls back
    assert cli(d, "rollback", d.load_batch).returncode == 0
    assert d.sql("SELECT count(*) FROM public.persons")[0][0] == 0


def test_the_losers_email_finds_the_winner_after_a_merge(people):
    d = people
    jose, pepe = person_id(d, "jose@example.com"), person_id(d, "pepe@example.com")
    assert cli(d, "merge", "persons", pepe, "--into", jose).returncode == 0
    again = cli(d, "load", str(d.inbox_file("again.csv", "Nombre,Email,Programa\nPepe,pepe@example.com,Tutors\n")),
                "--dataset", "people")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["person"]["updated"] + \
        json.loads(again.stdout)["counts"]["person"]["unchanged"] == 1
    assert d.sql("SELECT count(*) FROM public.persons")[0][0] == 2
    assert d.sql("SELECT count(*) FROM public.leads WHERE person_id = %s", (jose,))[0][0] == 2


def test_refused_with_a_list_when_a_unique_constraint_would_break(people):
    d = people
    d.sql("ALTER TABLE public.leads ADD CONSTRAINT leads_person_program UNIQUE (person_id, program_type)")
    jose, ana = person_id(d, "jose@example.com"), person_id(d, "ana@example.com")
    lead_jose = str(d.sql("SELECT id FROM public.leads WHERE person_id = %s", (jose,))[0][0])
    lead_ana = str(d.sql("SELECT id FROM public.leads WHERE person_id = %s", (ana,))[0][0])
    before = snapshot(d)
    batches = d.sql("SELECT count(*) FROM ingestd.batches")[0][0]

    out = cli(d, "merge", "public.persons", ana, "--into", jose, "--json")
    assert out.returncode == 1
    r = json.loads(out.stdout)
    assert r["status"] == "refused" and r["batch_id"] is None
    assert "unique constraint" in r["errors"][0]
    assert len(r["errors"]) == 2  # the headline and the one conflicting pair
    conflict = r["errors"][1]
    assert f"id={lead_ana}" in conflict and f"id={lead_jose}" in conflict and "program_type=mentors" in conflict
    assert "leads_person_program" in conflict
    assert f"id={lead_ana}" in out.stderr  # the operator sees the list without --json too
    # nothing changed
    assert snapshot(d) == before
    assert d.sql("SELECT count(*) FROM ingestd.batches")[0][0] == batches
    assert d.sql("SELECT count(*) FROM ingestd.changes WHERE table_name = 'public.leads'")[0][0] == 0
    assert d.sql("SELECT action FROM ingestd.audit ORDER BY id DESC LIMIT 1") == [("merge_refused",)]


def test_refused_for_a_missing_or_the_same_record_and_dry_run_changes_nothing(people):
    d = people
    jose, pepe = person_id(d, "jose@example.com"), person_id(d, "pepe@example.com")
    before = snapshot(d)
    batches = d.sql("SELECT count(*) FROM ingestd.batches")[0][0]

    missing = cli(d, "merge", "public.persons", "999999", "--into", jose)
    assert missing.returncode == 1 and "no record 999999 in public.persons" in missing.stderr
    missing_winner = cli(d, "merge", "public.persons", pepe, "--into", "999999")
    assert missing_winner.returncode == 1 and "no record 999999" in missing_winner.stderr
    same = cli(d, "merge", "public.persons", jose, "--into", jose)
    assert same.returncode == 1 and "same record" in same.stderr
    not_an_id = cli(d, "merge", "public.persons", "abc", "--into", jose)
    assert not_an_id.returncode == 1 and "bigint" in not_an_id.stderr
    d.sql("CREATE TABLE public.notes (id bigserial PRIMARY KEY, body text)")
    d.sql("INSERT INTO public.notes (body) VALUES ('a'), ('b')")
    unwritten = cli(d, "merge", "public.notes", "1", "--into", "2")
    assert unwritten.returncode == 1 and "no dataset entity" in unwritten.stderr
    assert cli(d, "merge", "public.persons", pepe).returncode == 2  # --into is required

    dry = cli(d, "merge", "public.persons", pepe, "--into", jose, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    r = json.loads(dry.stdout)
    assert r["status"] == "dry_run"
    assert r["filled"] == ["phone", "birth_date", "address"] and r["repointed"] == {"public.leads.person_id": 1}
    text = cli(d, "merge", "public.persons", pepe, "--into", jose, "--dry-run")
    assert text.returncode == 0 and "dry run" in text.stdout and "birth_date: NULL -> 1990-03-15" in text.stdout
    # nothing changed: not the tables, not the bookkeeping
    assert snapshot(d) == before
    assert d.sql("SELECT count(*) FROM ingestd.batches")[0][0] == batches
    assert d.sql("SELECT count(*) FROM ingestd.record_merges")[0][0] == 0


def test_rollback_of_a_merge_waits_for_a_later_merge_of_its_winner(people):
    d = people
    jose, pepe, ana = (person_id(d, e) for e in ("jose@example.com", "pepe@example.com", "ana@example.com"))
    before = snapshot(d)
    first = json.loads(cli(d, "merge", "public.persons", pepe, "--into", jose, "--json").stdout)["batch_id"]
    # José, Pepe's winner, goes into Ana: undoing the first merge now would bring Pepe back
    # pointing his lead at a José who is gone
    second = json.loads(cli(d, "merge", "public.persons", jose, "--into", ana, "--json").stdout)["batch_id"]
    refused = cli(d, "rollback", first)
    assert refused.returncode == 1
    assert any(f"batch {second} later merged record {jose} of public.persons into {ana}" in e
               for e in json.loads(refused.stdout)["errors"])
    assert cli(d, "rollback", second).returncode == 0
    assert cli(d, "rollback", first).returncode == 0
    assert snapshot(d) == before


def test_an_open_review_item_that_suggests_the_loser_follows_the_merge_and_rollback(people):
    """A review item the fuzzy tier left suggesting the loser names the winner after `merge` (so
    `review merge ID` without --into merges into a record that exists), and the loser again after
    the merge is rolled back. Decided items keep what they were decided on."""
    d = people
    jose, pepe, ana = (person_id(d, e) for e in ("jose@example.com", "pepe@example.com", "ana@example.com"))
    # as a fuzzy review leaves them: a row whose best candidate is Pepe (open), another decided on Pepe
    item = d.sql("INSERT INTO ingestd.review_queue (batch_id, table_name, record_id, candidate, score, reasons) "
                 "VALUES (%s, 'public.persons', %s, '{\"first_name\": \"pepe\", \"last_name\": \"garcia\", "
                 "\"email\": \"pepe.g@example.com\"}', 9.5, 'fuzzy: score 9.5') RETURNING id",
                 (d.load_batch, pepe))[0][0]
    done = d.sql("INSERT INTO ingestd.review_queue (batch_id, table_name, record_id, candidate, status) VALUES "
                 "(%s, 'public.persons', %s, '{}', 'distinct') RETURNING id", (d.load_batch, pepe))[0][0]
    other = d.sql("INSERT INTO ingestd.review_queue (batch_id, table_name, record_id, candidate) VALUES "
                  "(%s, 'public.persons', %s, '{}') RETURNING id", (d.load_batch, ana))[0][0]

    out = cli(d, "merge", "public.persons", pepe, "--into", jose, "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["repointed"] == {"public.leads.person_id": 1, "ingestd.review_queue.record_id": 1}, r
    suggested = dict(d.sql("SELECT id, record_id FROM ingestd.review_queue"))
    assert suggested == {item: jose, done: pepe, other: ana}

    rb = cli(d, "rollback", r["batch_id"])
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert dict(d.sql("SELECT id, record_id FROM ingestd.review_queue")) == {item: pepe, done: pepe, other: ana}

    # merged again, the item is decided without --into: into the winner, which exists
    assert cli(d, "merge", "public.persons", pepe, "--into", jose).returncode == 0
    decided = cli(d, "review", "merge", str(item))
    assert decided.returncode == 0, decided.stderr
    assert json.loads(decided.stdout)["record_id"] == jose
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys WHERE record_id = %s AND key = 'pepe.g@example.com'",
                 (jose,))[0][0] == 1
