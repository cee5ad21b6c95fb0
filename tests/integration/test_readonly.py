"""Commands that only read (status, review list, explain) never migrate: a role that may only
SELECT runs them, with the grants docs/operations.md gives; an older bookkeeping schema is
reported and left as it was; an absent one is reported with exit 2 and not created."""

import json
import re
import subprocess

import pytest

from conftest import BIN, EXAMPLES, ROOT, Daemon


def cli(d, *args, url=None, timeout=60):
    env = dict(d.env, INGESTD_DATABASE_URL=url or d.url)
    return subprocess.run([str(BIN), *args, "-c", str(d.config)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def reader_sql(role, db):
    """The read-only role's SQL exactly as docs/operations.md gives it, for this role and database."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```sql\n(CREATE ROLE ingestd_reader.*?)```", doc, re.S).group(1)
    return block.replace("ingestd_reader", role).replace("DATABASE app", f"DATABASE {db}")


def migrations(d):
    return d.sql("SELECT version, checksum FROM ingestd.schema_migrations ORDER BY version")


@pytest.fixture
def ice(pg, broker, tmp_path):
    """The ice example's database, migrated by `check --create-indexes`, with two files loaded
    (the second leaves one row in review); the daemon is not running."""
    d = Daemon(pg, broker, tmp_path, example="ice")
    for name in ("ice_2025_11.csv", "ice_2025_12.csv"):
        out = cli(d, "load", str(d.inbox_file(name, (EXAMPLES / "ice" / name).read_bytes())), "--dataset",
                  "ice_staging")
        assert out.returncode in (0, 3), out.stderr
        d.last_batch = json.loads(out.stdout)["batch_id"]
    return d


def test_a_role_with_only_select_runs_status_review_list_and_explain(ice):
    role = f"reader_{ice.db}"
    ice.sql(reader_sql(role, ice.db))
    url = ice.url.replace("postgres@", f"{role}@")
    before = migrations(ice)
    status = cli(ice, "status", url=url)
    assert status.returncode == 0, status.stderr
    assert ice.last_batch in status.stdout and "review queue open: 1" in status.stdout
    one = cli(ice, "status", ice.last_batch, "--json", url=url)
    assert one.returncode == 0 and json.loads(one.stdout)["batch_id"] == ice.last_batch, one.stderr
    listing = cli(ice, "review", "list", url=url)
    assert listing.returncode == 0 and "55666777" in listing.stdout, listing.stderr
    explain = cli(ice, "explain", ice.last_batch, "1", "--json", url=url)
    assert explain.returncode == 0, explain.stderr
    assert json.loads(explain.stdout)["entities"], explain.stdout
    assert "schema" not in status.stderr + listing.stderr + explain.stderr  # up to date: nothing to say
    # the role really may not write: a command that migrates fails for it, and nothing changed
    merge = cli(ice, "review", "distinct", "1", url=url)
    assert merge.returncode != 0 and "permission denied" in merge.stderr, merge
    assert migrations(ice) == before


def test_an_older_schema_is_reported_and_left_as_it_was(ice):
    latest = migrations(ice)[-1][0]
    ice.sql("DELETE FROM ingestd.schema_migrations WHERE version = %s", (latest,))
    before = migrations(ice)
    said = f"is at version {latest - 1}, this binary expects {latest}"
    for args in (["status"], ["review", "list"], ["explain", ice.last_batch, "1"]):
        out = cli(ice, *args)  # as the owner, who could migrate
        assert out.returncode == 0, (args, out.stderr)
        assert said in out.stderr and "`ingestd run`" in out.stderr, (args, out.stderr)
        assert migrations(ice) == before, args
    assert ice.last_batch in cli(ice, "status").stdout
    # what an older schema lacks (here: a table status counts) is said, with exit 2
    ice.sql("ALTER TABLE ingestd.deferred_refs RENAME TO deferred_refs_elsewhere")
    out = cli(ice, "status")
    assert out.returncode == 2 and said in out.stderr and "deferred_refs" in out.stderr, out
    ice.sql("ALTER TABLE ingestd.deferred_refs_elsewhere RENAME TO deferred_refs")
    # a command that writes still migrates
    assert cli(ice, "review", "distinct", "1").returncode == 0
    assert migrations(ice)[-1][0] == latest


def test_an_absent_schema_exits_2_and_is_not_created(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, example="ice", indexes=False)  # the tables, no bookkeeping schema
    for args in (["status"], ["review", "list"], ["explain", "00000000-0000-0000-0000-000000000000", "1"]):
        out = cli(d, *args)
        assert out.returncode == 2, (args, out)
        assert "bookkeeping schema ingestd does not exist yet" in out.stderr and "`ingestd run`" in out.stderr
    assert d.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'ingestd'") == [(0,)]
