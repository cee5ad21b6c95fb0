#!/usr/bin/python3
"""What a fuzzy identity tier costs: FEBRL-shaped people (bench/generate_febrl.py) loaded with
`ingestd load` through bench/febrl/febrl.yaml, with its fuzzy tier and without it, into an
empty table and into a table already holding other people.

    /usr/bin/python3 bench/fuzzy_speed.py [--rows 100000] [--existing 1000000] [--chunk-rows 25000]
                                          [--pg-defaults] [--pair-rules | --large-rules] [--trigram FIELD,…]
                                          [--config FILE] [--missing-ids SHARE] [--copy]

Steps, each on a fresh database of one throwaway PostgreSQL (tuned: shared_buffers 2GB,
max_wal_size 8GB, unless --pg-defaults):
  exact  — the config without its fuzzy tier, into an empty table;
  fuzzy  — the config as is, into an empty table;
  fuzzy into N — the config as is, into a table holding --existing other people (loaded with
           COPY first, the indexes `ingestd check --create-indexes` makes built after);
  exact into N — the config without its fuzzy tier into the same kind of table: how much of the
           growth the exact tiers and the insert into a bigger table bring by themselves.
Reported: wall time of `ingestd load`, its per-row time, the ratios fuzzy/exact and
(fuzzy into N)/(fuzzy) and (exact into N)/(exact), the peak RSS of the ingestd process (VmHWM), and the result's
fuzzy bands. Indexes are made before the timed load (`check --create-indexes`, timed apart).
--missing-ids 0.2: a fifth of the people (in the file and in the table) have no soc_sec_id, and
a duplicate may lose its own (bench/generate_febrl.py); by default everyone has one, so every
row is blocked with open blocks (docs/benchmarks.md) and the table's people are never in them.
--trigram surname adds a blocking rule ["trigram(surname)"] (pg_trgm, a GIN index) to the others.
--pair-rules / --large-rules: the fuzzy tier's blocking rules replaced by twelve two-field rules,
or by the nine rules for a table of millions (LARGE_RULES, bench/febrl_quality.py).
"""

import argparse
import csv
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "febrl" / "febrl.yaml"
SCHEMA = HERE / "febrl" / "schema.sql"
WEIGHTS = HERE / "febrl" / "febrl.weights.yaml"

import febrl_quality as fq  # noqa: E402
from harness import Bench, log, sql  # noqa: E402


# Blocking rules of two fields each: every block stays small however big the table grows (the
# one-field rules of febrl.yaml suit files of thousands of rows, docs/match-quality.md).
PAIR_RULES = ('[[date_of_birth, "dmetaphone(surname)"], [date_of_birth, postcode], [date_of_birth, '
              '"dmetaphone(given_name)"], [date_of_birth, suburb], [date_of_birth, street_number], [postcode, '
              '"dmetaphone(surname)"], [postcode, "dmetaphone(given_name)"], [postcode, street_number], [postcode, '
              'address_1], ["dmetaphone(given_name)", "dmetaphone(surname)"], [suburb, "dmetaphone(surname)"], '
              '[suburb, address_1]]')


def with_rules(text, rules):
    """febrl.yaml's text with the fuzzy tier's blocking rules replaced by `rules`."""
    return fq.edit(text, "blocking:", f"blocking: {rules}", block=True)


def with_trigram_rules(text, fields):
    start = text.index("              blocking: [[")
    end = text.index("              compare:", start)
    rules = text[start:end].strip()[len("blocking: "):].replace("\n", " ")
    extra = "".join(f', ["trigram({f})"]' for f in fields)
    return text[:start] + f"              blocking: {rules[:-1]}{extra}]\n" + text[end:]


def config_text(fuzzy, path=CONFIG, rules=None, trigram=()):
    """The config's text; `rules`: blocking rules in place of its own (PAIR_RULES, LARGE_RULES)."""
    text = path.read_text().replace("weights: febrl.weights.yaml", f"weights: {WEIGHTS}")
    if rules:
        text = with_rules(text, rules)
    if trigram:
        text = with_trigram_rules(text, trigram)
    if fuzzy:
        return text
    start = text.index("          # then probabilistic matching")
    end = text.index("        fields:")
    return text[:start] + text[end:]


class FebrlBench(Bench):
    """The harness, plus a table that already holds other people."""

    def database(self, existing_csv=None):
        url = super().database(SCHEMA.read_text())
        if existing_csv:
            # other people already in the table, as another application wrote them
            rows = self.work / "existing_rows.csv"  # converted once, for every database of the run
            copy_into_table(url, rows if rows.exists() else as_table_rows(existing_csv, rows))
            sql(url, "ANALYZE febrl_persons")
        return url

    def config(self, label, fuzzy, config, rules, trigram):
        """The config of one run, written for it."""
        cfg = self.work / f"{label.replace(' ', '_').replace(chr(92), '')}.yaml"
        cfg.write_text(config_text(fuzzy, Path(config), rules, trigram))
        return cfg

    def yardstick(self, label, table_csv, config, rules, existing_csv=None, trigram=()):
        """PostgreSQL's own `\\copy` of the same rows (as table_csv holds them) into the same kind of
        table, with the indexes the fuzzy config makes: what a plain insert pays for the same rows."""
        url = self.database(existing_csv)
        self.create_indexes(self.config(label, True, config, rules, trigram), url)
        t = time.monotonic()
        copy_into_table(url, table_csv)
        wall = time.monotonic() - t
        log(f"{label}: {wall:.1f}s")
        return {"label": label, "seconds": wall, "rss_mib": "–", "counts": {}}

    def run(self, label, fuzzy, data, config, rules, existing_csv=None, trigram=()):
        cfg = self.config(label, fuzzy, config, rules, trigram)
        r = self.load(label, cfg, self.database(existing_csv), data, "febrl")
        r["counts"] = r["counts"]["person"]
        return r


TABLE_COLUMNS = ["soc_sec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
                 "postcode", "state", "date_of_birth"]


def copy_into_table(url, table_csv):
    """`\\copy` of rows in the table's columns (as_table_rows) into febrl_persons."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
                    f"\\copy febrl_persons ({', '.join(TABLE_COLUMNS)}) FROM '{table_csv}' WITH (FORMAT csv, HEADER true)"],
                   check=True)


def as_table_rows(data, out):
    """The generator's CSV in the table's columns, for `\\copy`: names capitalized (as an application
    would store them), the date ISO, an empty value NULL, a date that is no date left empty (ingestd
    rejects it)."""
    with open(data, newline="") as f, open(out, "w", newline="") as o:
        w = csv.writer(o)
        w.writerow(TABLE_COLUMNS)
        for r in csv.DictReader(f):
            try:
                dob = datetime.datetime.strptime(r["date_of_birth"], "%Y%m%d").date().isoformat()
            except ValueError:
                dob = ""
            w.writerow([r["soc_sec_id"], r["given_name"].title(), r["surname"].title(), r["street_number"],
                        r["address_1"], r["address_2"], r["suburb"], r["postcode"], r["state"], dob])
    return out


def arguments(doc, missing_ids):
    """The options fuzzy_speed.py and fuzzy_precision.py share."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--existing", type=int, default=1000000)
    ap.add_argument("--chunk-rows", type=int, default=25000)
    ap.add_argument("--pg-defaults", action="store_true")
    rules = ap.add_mutually_exclusive_group()
    rules.add_argument("--pair-rules", dest="rules", action="store_const", const=PAIR_RULES,
                       help="the fuzzy tier's blocking rules two fields each")
    rules.add_argument("--large-rules", dest="rules", action="store_const", const=fq.LARGE_RULES,
                       help="the blocking rules for a table of millions (birth date and street in pairs)")
    ap.add_argument("--missing-ids", type=float, default=missing_ids, help="share of people without a soc_sec_id")
    return ap


def rules_name(rules):
    """How a report names the blocking rules of a run."""
    return {PAIR_RULES: "two-field blocking rules (--pair-rules)",
            fq.LARGE_RULES: "the blocking rules for a table of millions (--large-rules)"}.get(rules, "the config's blocking rules")


def generate(tmp, a):
    """The file (people.csv, with duplicates) and the table's other people (existing.csv, another
    seed, none when --existing 0), as `a` asks."""
    data, existing = Path(tmp) / "people.csv", Path(tmp) / "existing.csv"
    gen = [sys.executable, str(HERE / "generate_febrl.py"), "--missing-ids", str(a.missing_ids)]
    subprocess.run(gen + ["--rows", str(a.rows), "--out", str(data)], check=True)
    if a.existing:
        subprocess.run(gen + ["--rows", str(a.existing), "--out", str(existing), "--no-dups", "--seed", "99",
                              "--first-person", "10000000"], check=True)
    return data, existing


def main():
    ap = arguments(__doc__, 0.0)
    ap.add_argument("--config", default=str(CONFIG), help="a variant of bench/febrl/febrl.yaml")
    ap.add_argument("--trigram", default="", help="fields to add a trigram() blocking rule for, comma-separated")
    ap.add_argument("--copy", action="store_true",
                    help="also time \\copy of the same rows into the empty and the big table (the fuzzy config's indexes)")
    a = ap.parse_args()
    tri = [f for f in a.trigram.split(",") if f]
    with tempfile.TemporaryDirectory(prefix="fuzzy-speed-") as tmp:
        data, existing = generate(tmp, a)
        b = FebrlBench(tmp, a.chunk_rows, a.pg_defaults)
        try:
            runs = [b.run("exact", False, data, a.config, a.rules),
                    b.run("fuzzy", True, data, a.config, a.rules, trigram=tri)]
            if a.existing:
                runs.append(b.run(f"fuzzy into {a.existing:,}", True, data, a.config, a.rules, existing, tri))
                runs.append(b.run(f"exact into {a.existing:,}", False, data, a.config, a.rules, existing))
            if a.copy:
                rows = as_table_rows(data, Path(tmp) / "table_rows.csv")
                runs.append(b.yardstick("\\copy", rows, a.config, a.rules, trigram=tri))
                if a.existing:
                    runs.append(b.yardstick(f"\\copy into {a.existing:,}", rows, a.config, a.rules, existing, tri))
        finally:
            b.stop()
    rules = rules_name(a.rules)
    rules += "".join(f' and ["trigram({f})"]' for f in tri)
    if a.missing_ids:
        rules += f", {a.missing_ids:.0%} of the people without a soc_sec_id"
    print(f"\n{a.rows:,} FEBRL-shaped rows, chunk_rows {a.chunk_rows}, {b.settings}, {rules}\n")
    print("| run | load s | µs/row | vs exact | RSS MiB | fuzzy merged / review / new |")
    print("|---|---:|---:|---:|---:|---|")
    for r in runs:
        f = r["counts"].get("fuzzy", {})
        print(f"| {r['label']} | {r['seconds']:.1f} | {r['seconds'] / a.rows * 1e6:.0f} | "
              f"{r['seconds'] / runs[0]['seconds']:.2f}× | {r['rss_mib']} | "
              f"{f.get('merged', '–')} / {f.get('review', '–')} / {f.get('new', '–')} |")
    if a.existing:
        print(f"\nper-row time into {a.existing:,} people / into an empty table: {runs[2]['seconds'] / runs[1]['seconds']:.2f}× "
              f"with the fuzzy tier, {runs[3]['seconds'] / runs[0]['seconds']:.2f}× with the exact tiers alone"
              + (f", {runs[5]['seconds'] / runs[4]['seconds']:.2f}× for \\copy" if a.copy else ""))


if __name__ == "__main__":
    main()
