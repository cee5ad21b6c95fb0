#!/usr/bin/python3
"""What a fuzzy identity tier costs: FEBRL-shaped people (bench/generate_febrl.py) loaded with
`ingestd load` through bench/febrl/febrl.yaml, with its fuzzy tier and without it, into an
empty table and into a table already holding other people.

    /usr/bin/python3 bench/fuzzy_speed.py [--rows 100000] [--existing 1000000] [--chunk-rows 25000]
                                          [--pg-defaults] [--pair-rules] [--config FILE]

Steps, each on a fresh database of one throwaway PostgreSQL (tuned: shared_buffers 2GB,
max_wal_size 8GB, unless --pg-defaults):
  exact  — the config without its fuzzy tier, into an empty table;
  fuzzy  — the config as is, into an empty table;
  fuzzy into N — the config as is, into a table holding --existing other people (loaded with
           COPY first, the indexes `ingestd check --create-indexes` makes built after).
Reported: wall time of `ingestd load`, its per-row time, the ratios fuzzy/exact and
(fuzzy into N)/(fuzzy), the peak RSS of the ingestd process (ru_maxrss), and the result's
fuzzy bands. Indexes are made before the timed load (`check --create-indexes`, timed apart).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(os.environ.get("INGESTD_BIN", ROOT / "build" / "ingestd"))
CONFIG = HERE / "febrl" / "febrl.yaml"
SCHEMA = HERE / "febrl" / "schema.sql"
WEIGHTS = HERE / "febrl" / "febrl.weights.yaml"
TUNED = ["shared_buffers=2GB", "max_wal_size=8GB"]

sys.path.insert(0, str(ROOT / "tests" / "integration"))
import psycopg2  # noqa: E402
from conftest import Postgres  # noqa: E402


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# Blocking rules of two fields each: every block stays small however big the table grows (the
# one-field rules of febrl.yaml suit files of thousands of rows, docs/match-quality.md).
PAIR_RULES = ('[[date_of_birth, "dmetaphone(surname)"], [date_of_birth, postcode], [date_of_birth, '
              '"dmetaphone(given_name)"], [date_of_birth, suburb], [date_of_birth, street_number], [postcode, '
              '"dmetaphone(surname)"], [postcode, "dmetaphone(given_name)"], [postcode, street_number], [postcode, '
              'address_1], ["dmetaphone(given_name)", "dmetaphone(surname)"], [suburb, "dmetaphone(surname)"], '
              '[suburb, address_1]]')


def with_pair_rules(text):
    start = text.index("              blocking: [[")
    end = text.index("              compare:", start)
    return text[:start] + f"              blocking: {PAIR_RULES}\n" + text[end:]


def config_text(fuzzy, path=CONFIG, pair_rules=False):
    text = path.read_text().replace("weights: febrl.weights.yaml", f"weights: {WEIGHTS}")
    if pair_rules:
        text = with_pair_rules(text)
    if fuzzy:
        return text
    start = text.index("          # then probabilistic matching")
    end = text.index("        fields:")
    return text[:start] + text[end:]


def sql(url, q):
    c = psycopg2.connect(url)
    c.autocommit = True
    c.cursor().execute(q)
    c.close()


class Bench:
    def __init__(self, a, work):
        self.a, self.work = a, Path(work)
        self.pg = Postgres()
        settings = [] if a.pg_defaults else TUNED
        for kv in settings:
            k, v = kv.split("=", 1)
            sql(self.pg.url(), f"ALTER SYSTEM SET {k} = '{v}'")
        self.pg._run([str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), "-l", str(self.pg.log), "-w", "restart"])
        self.settings = "PostgreSQL defaults" if a.pg_defaults else "tuned (" + ", ".join(TUNED) + ")"

    def env(self, url):
        return dict(os.environ, INGESTD_BROKERS="127.0.0.1:9", INGESTD_GROUP="bench", INGESTD_STATE=str(self.work),
                    INGESTD_DATABASE_URL=url, INGESTD_HTTP="127.0.0.1:0", INGESTD_CHUNK_ROWS=str(self.a.chunk_rows))

    def database(self, existing_csv=None):
        url = self.pg.url(self.pg.create_db())
        sql(url, SCHEMA.read_text())
        if existing_csv:
            # other people already in the table, as another application wrote them
            cols = "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, dob, ssid"
            sql(url, f"CREATE UNLOGGED TABLE raw ({', '.join(c + ' text' for c in cols.split(', '))})")
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
                            f"\\copy raw FROM '{existing_csv}' WITH (FORMAT csv, HEADER true)"], check=True)
            sql(url, "INSERT INTO febrl_persons (soc_sec_id, given_name, surname, street_number, address_1, address_2, "
                     "suburb, postcode, state, date_of_birth) SELECT ssid, initcap(given_name), initcap(surname), "
                     "street_number, address_1, nullif(address_2, ''), suburb, postcode, state, "
                     "to_date(dob, 'YYYYMMDD') FROM raw; DROP TABLE raw; ANALYZE febrl_persons")
        return url

    def load(self, label, fuzzy, data, existing_csv=None):
        url = self.database(existing_csv)
        cfg = self.work / f"{label.replace(' ', '_')}.yaml"
        cfg.write_text(config_text(fuzzy, Path(self.a.config), self.a.pair_rules))
        t = time.monotonic()
        chk = subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(cfg)], env=self.env(url),
                             capture_output=True, text=True)
        idx = time.monotonic() - t
        if chk.returncode:
            raise SystemExit(f"check --create-indexes failed: {chk.stdout}{chk.stderr}")
        t = time.monotonic()
        p = subprocess.Popen([str(BIN), "load", str(data), "--dataset", "febrl", "-c", str(cfg)], env=self.env(url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        wall = time.monotonic() - t
        _, status, usage = os.wait4(p.pid, 0) if p.returncode is None else (0, 0, None)
        rss = usage.ru_maxrss // 1024 if usage else self.last_rss()
        if p.returncode not in (0, 3):
            raise SystemExit(f"{label}: load exited {p.returncode}: {err[-2000:]}")
        counts = json.loads(out)["counts"]["person"]
        log(f"{label}: {wall:.1f}s ({idx:.1f}s indexes), RSS {rss} MiB, {counts}")
        return {"label": label, "seconds": wall, "index_seconds": idx, "rss_mib": rss, "counts": counts}

    @staticmethod
    def last_rss():
        import resource
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--existing", type=int, default=1000000)
    ap.add_argument("--chunk-rows", type=int, default=25000)
    ap.add_argument("--pg-defaults", action="store_true")
    ap.add_argument("--config", default=str(CONFIG), help="a variant of bench/febrl/febrl.yaml")
    ap.add_argument("--pair-rules", action="store_true", help="the fuzzy tier's blocking rules two fields each")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzzy-speed-") as tmp:
        data, existing = Path(tmp) / "people.csv", Path(tmp) / "existing.csv"
        gen = [sys.executable, str(HERE / "generate_febrl.py")]
        subprocess.run(gen + ["--rows", str(a.rows), "--out", str(data)], check=True)
        if a.existing:
            subprocess.run(gen + ["--rows", str(a.existing), "--out", str(existing), "--no-dups", "--seed", "99",
                                  "--first-person", "10000000"], check=True)
        b = Bench(a, tmp)
        try:
            runs = [b.load("exact", False, data), b.load("fuzzy", True, data)]
            if a.existing:
                runs.append(b.load(f"fuzzy into {a.existing:,}", True, data, existing))
        finally:
            b.pg.stop()
    rules = "two-field blocking rules (--pair-rules)" if a.pair_rules else "the config's blocking rules"
    print(f"\n{a.rows:,} FEBRL-shaped rows, chunk_rows {a.chunk_rows}, {b.settings}, {rules}\n")
    print("| run | load s | µs/row | vs exact | RSS MiB | fuzzy merged / review / new |")
    print("|---|---:|---:|---:|---:|---|")
    for r in runs:
        f = r["counts"].get("fuzzy", {})
        print(f"| {r['label']} | {r['seconds']:.1f} | {r['seconds'] / a.rows * 1e6:.0f} | "
              f"{r['seconds'] / runs[0]['seconds']:.2f}× | {r['rss_mib']} | "
              f"{f.get('merged', '–')} / {f.get('review', '–')} / {f.get('new', '–')} |")
    if len(runs) == 3:
        print(f"\nper-row time into {a.existing:,} people / into an empty table: {runs[2]['seconds'] / runs[1]['seconds']:.2f}×")


if __name__ == "__main__":
    main()
