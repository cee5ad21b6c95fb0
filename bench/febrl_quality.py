#!/usr/bin/python3
"""Identity-matching quality of ingestd on the public FEBRL datasets, through the real pipeline.

For each FEBRL file: a fresh database on a throwaway PostgreSQL, bench/febrl/schema.sql,
`ingestd load FILE --dataset febrl -c bench/febrl/febrl.yaml`, then ingestd.row_lineage
(row_number -> record_id) is scored pairwise against the truth carried by rec_id
(rec-N-org and rec-N-dup-K are person N; ingestd never sees rec_id). Rows that ingestd
rejected (ingestd.row_errors) or sent to review count as unmatched singletons.

    /usr/bin/python3 bench/febrl_quality.py [--chunk-rows N] [--datasets 1,2,3] [--no-text-dob]
                                            [--write-doc] [--doc PATH]

Two configurations are measured: `date` (bench/febrl/febrl.yaml as is: date_of_birth is a
date, so an impossible date such as month 00 rejects its row) and `text-dob` (the same config
with date_of_birth kept as text, so every row is loaded and matched). A reference grouping
computed here in Python (the same three exact tiers with plain transitive closure and no
conflict blocking, on all rows) is printed next to them, to compare with the data README.

The tests pin the `date` figures on dataset1: tests/integration/test_match_quality.py.
"""

import argparse
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent                                  # the repository
CONFIG = HERE / "febrl" / "febrl.yaml"
SCHEMA = HERE / "febrl" / "schema.sql"
DATA = Path(os.environ.get("FEBRL_DATA", ROOT.parent / "shared" / "data" / "febrl"))
BIN = Path(os.environ.get("INGESTD_BIN", ROOT / "build" / "ingestd"))
DOC = ROOT / "docs" / "match-quality.md"

REC_ID = re.compile(r"^rec-(\d+)-(org|dup-\d+)$")
DOB_DATE_LINE = 'date_of_birth: {from: date_of_birth, type: date, formats: ["%Y%m%d"]}'
DOB_TEXT_LINE = "date_of_birth: {from: date_of_birth}"


class EngineProblem(Exception):
    """ingestd did something the benchmark cannot score honestly (crash, wrong lineage)."""


# ---------------------------------------------------------------- truth and scoring

def read_truth(path):
    """[(row_number, person, rec_id, fields dict)] for the data rows, row_number 1-based."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f, skipinitialspace=True)
        header = [h.strip() for h in next(r)]
        for i, rec in enumerate(r, start=1):
            d = dict(zip(header, (v.strip() for v in rec)))
            m = REC_ID.match(d["rec_id"])
            if not m:
                raise ValueError(f"{path}: row {i}: unexpected rec_id {d['rec_id']!r}")
            rows.append((i, int(m.group(1)), d["rec_id"], d))
    return rows


def pairs(n):
    return n * (n - 1) // 2


def score(truth_person, predicted):
    """Pairwise precision/recall/F1. truth_person: {row: person}; predicted: {row: cluster}
    (rows missing from `predicted` are singletons)."""
    pred = {r: predicted.get(r, ("single", r)) for r in truth_person}
    true_pairs = sum(pairs(n) for n in Counter(truth_person.values()).values())
    pred_pairs = sum(pairs(n) for n in Counter(pred.values()).values())
    tp = sum(pairs(n) for n in Counter((pred[r], truth_person[r]) for r in truth_person).values())
    p = tp / pred_pairs if pred_pairs else 1.0
    rc = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
    return {"true_pairs": true_pairs, "pred_pairs": pred_pairs, "tp": tp,
            "precision": p, "recall": rc, "f1": f1}


def partition(assign):
    groups = defaultdict(set)
    for r, c in assign.items():
        groups[c].add(r)
    return {frozenset(g) for g in groups.values()}


def missed_pairs(truth_person, predicted, excluded):
    """True pairs not predicted, split by whether a row of the pair is in `excluded`
    (rejected or in review) or both rows were loaded and simply not matched."""
    by_person = defaultdict(list)
    for r, p in truth_person.items():
        by_person[p].append(r)
    lost_excluded = lost_unmatched = 0
    for rows in by_person.values():
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                a, b = rows[i], rows[j]
                if a in predicted and predicted.get(a) == predicted.get(b):
                    continue
                if a in excluded or b in excluded:
                    lost_excluded += 1
                else:
                    lost_unmatched += 1
    return lost_excluded, lost_unmatched


def name_key(v):
    v = " ".join(v.split()).casefold()
    return "".join(c for c in unicodedata.normalize("NFKD", v) if not unicodedata.combining(c))


def tier_keys(d):
    """The three exact tier keys of a row, as ingestd normalizes them (None: tier incomplete)."""
    ssn = re.sub(r"\D", "", d["soc_sec_id"])
    g, s = name_key(d["given_name"]), name_key(d["surname"])
    return [ssn if len(ssn) >= 5 else None,
            (g, s, d["date_of_birth"]) if g and s and d["date_of_birth"] else None,
            (g, s, d["postcode"]) if g and s and d["postcode"] else None]


def invalid_dates(rows):
    """Rows whose non-empty date_of_birth is not a real %Y%m%d date: the date config rejects them."""
    bad = set()
    for row, _, _, d in rows:
        if d["date_of_birth"]:
            try:
                datetime.datetime.strptime(d["date_of_birth"], "%Y%m%d")
            except ValueError:
                bad.add(row)
    return bad


def reference_grouping(rows, blocking=False, exclude=()):
    """Exact keys on the three tiers, grouped transitively in Python. blocking=False is the
    data README's method; blocking=True adds DESIGN rule 6 (a conflicting non-null key at a
    higher tier blocks a lower-tier join), which is what ingestd implements. Rows in
    `exclude` are left out (singletons). {row: cluster root}."""
    keys = {r[0]: tier_keys(r[3]) for r in rows if r[0] not in exclude}
    parent = {r: r for r in keys}
    held = {r: [{k} if k is not None else set() for k in ks] for r, ks in keys.items()}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def conflicts(a, b, below):
        return blocking and any(held[a][t] and held[b][t] and not (held[a][t] & held[b][t]) for t in range(below))

    for t in range(3):
        holders = defaultdict(list)
        for r, ks in keys.items():
            if ks[t] is not None:
                holders[ks[t]].append(r)
        for rs in holders.values():
            for j in range(1, len(rs)):
                for h in range(j):
                    ra, rb = find(rs[h]), find(rs[j])
                    if ra == rb or conflicts(ra, rb, t):
                        if ra == rb:
                            break
                        continue
                    parent[rb] = ra
                    for u in range(3):
                        held[ra][u] |= held[rb][u]
                    break
    return {r: find(r) for r in parent}


# ---------------------------------------------------------------- running ingestd

def wait_for_binary(timeout=300):
    """The binary is rebuilt often by others: wait for it to exist and stop changing."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            st = BIN.stat()
            sig = (st.st_size, st.st_mtime)
            if os.access(BIN, os.X_OK) and sig == last:
                return
            last = sig
        except FileNotFoundError:
            last = None
        time.sleep(2)
    raise SystemExit(f"{BIN} missing or still changing after {timeout}s (build it with scripts/build)")


def config_variant(kind):
    text = CONFIG.read_text()
    if kind == "date":
        return text
    assert DOB_DATE_LINE in text, f"{CONFIG}: expected the line {DOB_DATE_LINE!r}"
    return text.replace(DOB_DATE_LINE, DOB_TEXT_LINE)


def schema_variant(kind):
    text = SCHEMA.read_text()
    if kind == "date":
        return text
    assert "date_of_birth date" in text, f"{SCHEMA}: expected a date_of_birth date column"
    return text.replace("date_of_birth date", "date_of_birth text")


def load_and_score(pg, csv_path, workdir, chunk_rows=1000, kind="date", truth=None):
    """Load csv_path into a fresh database through ingestd and score the lineage.
    pg: a conftest.Postgres. Returns a dict of figures and counts; raises EngineProblem."""
    import psycopg2

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    truth = truth if truth is not None else read_truth(csv_path)
    truth_person = {row: person for row, person, _, _ in truth}

    db = pg.create_db()
    url = pg.url(db)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(schema_variant(kind))

        state = workdir / "state"
        (state / "inbox").mkdir(parents=True, exist_ok=True)
        cfg = workdir / "febrl.yaml"
        cfg.write_text(config_variant(kind))
        env = dict(os.environ, INGESTD_BROKERS="127.0.0.1:1", INGESTD_GROUP="ingestd-febrl",
                   INGESTD_STATE=str(state), INGESTD_DATABASE_URL=url, INGESTD_HTTP="127.0.0.1:0",
                   INGESTD_CHUNK_ROWS=str(chunk_rows))
        # the identity indexes the tiers need, as an operator makes them once per target
        made = subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(cfg)], env=env, capture_output=True,
                              text=True, timeout=600)
        if made.returncode != 0:
            raise EngineProblem(f"`ingestd check --create-indexes` exited {made.returncode}:\n{made.stderr[-3000:]}")
        cmd = [str(BIN), "load", str(csv_path), "--dataset", "febrl", "-c", str(cfg)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            raise EngineProblem(f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}"
                                f"\nstderr:\n{proc.stderr[-3000:]}")
        if "is not in the file" in proc.stderr:
            raise EngineProblem(f"a configured column was not found in {csv_path}:\n{proc.stderr[-3000:]}")
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            result = {"raw": proc.stdout}

        cur.execute("SELECT row_number, record_id, action, tier FROM ingestd.row_lineage "
                    "WHERE entity = 'person' ORDER BY row_number")
        lineage = cur.fetchall()
        # warnings (a value stored NULL, invalid: null) are not rejections: the row loaded
        cur.execute("SELECT row_number, field, code, message FROM ingestd.row_errors "
                    "WHERE code <> 'invalid_value_nulled' ORDER BY row_number")
        errors = cur.fetchall()
        cur.execute("SELECT count(*) FROM public.febrl_persons")
        persons = cur.fetchone()[0]
        cur.execute("SELECT status, rows_total, rows_done, inserted, updated, unchanged, rejected, review "
                    "FROM ingestd.batches")
        batches = cur.fetchall()
    finally:
        conn.close()

    # The lineage must account for every data row exactly once (or the row must be rejected).
    problems = []
    seen = Counter(r[0] for r in lineage)
    dup = [r for r, n in seen.items() if n > 1]
    if dup:
        problems.append(f"rows with more than one person lineage row: {dup[:10]}")
    rejected = {r[0] for r in errors}
    both = sorted(rejected & set(seen))
    if both:
        problems.append(f"rows both rejected and in the lineage: {both[:10]}")
    missing = sorted(set(truth_person) - rejected - set(seen))
    if missing:
        problems.append(f"{len(missing)} data rows neither in row_lineage nor in row_errors: {missing[:10]}")
    extra = sorted((set(seen) | rejected) - set(truth_person))
    if extra:
        problems.append(f"row numbers outside 1..{len(truth_person)}: {extra[:10]}")
    predicted, review = {}, set()
    for row, record_id, action, tier in lineage:
        if action == "review" or record_id is None:
            review.add(row)
        else:
            predicted[row] = record_id
    ids = set(predicted.values())
    if len(ids) != persons:
        problems.append(f"lineage names {len(ids)} distinct person records, the table has {persons}")
    inserted = sum(1 for r in lineage if r[2] == "inserted")
    if inserted != persons:
        problems.append(f"{inserted} lineage rows say 'inserted', the table has {persons} rows")
    if kind == "date" and rejected and rejected != invalid_dates(truth):
        problems.append(f"rejected rows {sorted(rejected)[:10]} are not the rows with an impossible date "
                        f"{sorted(invalid_dates(truth))[:10]}")
    if problems:
        raise EngineProblem(f"{csv_path.name} ({kind}, chunk_rows={chunk_rows}): " + "; ".join(problems))

    s = score(truth_person, predicted)
    # The same rules recomputed in Python on the rows ingestd loaded: does ingestd group exactly so?
    rule6 = reference_grouping(truth, blocking=True, exclude=rejected | review)
    s["same_as_rule6_reference"] = partition(predicted) == partition(rule6)
    lost_excluded, lost_unmatched = missed_pairs(truth_person, predicted, rejected | review)
    s.update(dataset=csv_path.name, kind=kind, chunk_rows=chunk_rows, seconds=seconds, rows=len(truth_person),
             persons=persons, rejected=len(rejected), review=len(review),
             reject_codes=dict(Counter(e[2] for e in errors)), reject_examples=[e[3] for e in errors[:5]],
             tiers=dict(Counter(str(r[3]) for r in lineage if r[2] in ("updated", "unchanged"))),
             lost_excluded=lost_excluded, lost_unmatched=lost_unmatched,
             command=" ".join(cmd), result=result, batches=batches, database_url=url)
    return s


# ---------------------------------------------------------------- report

def fmt_row(s):
    return (f"| {s['dataset']} | {s['kind']} | {s['rows']} | {s['persons']} | {s['rejected']} | {s['review']} | "
            f"{s['true_pairs']} | {s['pred_pairs']} | {s['tp']} | {s['precision']:.4f} | {s['recall']:.4f} | "
            f"{s['f1']:.4f} | {s['seconds']:.1f} |")


HEADER = ("| file | config | rows | persons created | rejected | review | true pairs | predicted pairs | "
          "correct pairs | precision | recall | F1 | load s |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def ref_row(name, rows, s):
    return (f"| {name} | reference | {rows} | – | 0 | 0 | {s['true_pairs']} | {s['pred_pairs']} | {s['tp']} | "
            f"{s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | – |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunk-rows", type=int, default=1000)
    ap.add_argument("--datasets", default="1,2,3", help="which datasetN.csv files (default 1,2,3)")
    ap.add_argument("--no-text-dob", action="store_true", help="only the date configuration")
    ap.add_argument("--write-doc", action="store_true", help=f"write the figures into {DOC.relative_to(ROOT)}")
    ap.add_argument("--json", help="also write all figures as JSON to this path")
    args = ap.parse_args()

    if not DATA.is_dir():
        raise SystemExit(f"FEBRL data not found at {DATA} (set FEBRL_DATA)")
    files = [DATA / f"dataset{n.strip()}.csv" for n in args.datasets.split(",")]
    for f in files:
        if not f.exists():
            raise SystemExit(f"{f} not found")
    wait_for_binary()

    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import Postgres  # noqa: E402  (the fixtures' throwaway cluster)

    kinds = ["date"] if args.no_text_dob else ["date", "text-dob"]
    results, refs = [], []
    t_all = time.monotonic()
    pg = Postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="febrl-quality-") as tmp:
            for f in files:
                truth = read_truth(f)
                truth_person = {row: person for row, person, _, _ in truth}
                refs.append((f.name, len(truth), score(truth_person, reference_grouping(truth))))
                for kind in kinds:
                    s = load_and_score(pg, f, Path(tmp) / f"{f.stem}-{kind}", args.chunk_rows, kind, truth)
                    results.append(s)
                    print(fmt_row(s), flush=True)
    finally:
        pg.stop()
    total = time.monotonic() - t_all

    print()
    print(HEADER)
    for f in files:
        for s in results:
            if s["dataset"] == f.name:
                print(fmt_row(s))
        for name, n, s in refs:
            if name == f.name:
                print(ref_row(name, n, s))
    print()
    for s in results:
        print(f"{s['dataset']} {s['kind']}: missed true pairs {s['true_pairs'] - s['tp']} "
              f"(involving a rejected or review row: {s['lost_excluded']}; both rows loaded, not matched: "
              f"{s['lost_unmatched']}); reject codes {s['reject_codes']}; rows joined by tier {s['tiers']}; "
              f"grouping identical to the rule-6 reference: {s['same_as_rule6_reference']}")
    print(f"total {total:.1f} s (chunk_rows={args.chunk_rows})")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "reference": refs, "total_seconds": total},
                                              indent=2, default=str))
    if args.write_doc:
        write_doc(results, refs, files, args, total)
        print(f"wrote {DOC}")


def write_doc(results, refs, files, args, total):
    lines = []
    for f in files:
        for s in results:
            if s["dataset"] == f.name:
                lines.append(fmt_row(s))
        for name, n, s in refs:
            if name == f.name:
                lines.append(ref_row(name, n, s))
    table = HEADER + "\n" + "\n".join(lines)
    misses = "\n".join(
        f"- {s['dataset']}, {s['kind']}: {s['true_pairs'] - s['tp']} true pairs missed — {s['lost_excluded']} "
        f"involving a rejected or review row, {s['lost_unmatched']} between two loaded rows; "
        f"rows joined to a record, by tier: {s['tiers']}; grouping identical to the Python rule-6 reference: "
        f"{'yes' if s['same_as_rule6_reference'] else 'NO'}"
        for s in results)
    text = DOC.read_text() if DOC.exists() else ""
    begin, end = "<!-- figures:begin -->", "<!-- figures:end -->"
    block = (f"{begin}\n{table}\n\n{misses}\n\nchunk_rows={args.chunk_rows}; whole run {total:.0f} s "
             f"(including initdb and the reference grouping) on this machine.\n{end}")
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except EngineProblem as e:
        print(f"ENGINE PROBLEM: {e}", file=sys.stderr)
        sys.exit(1)
