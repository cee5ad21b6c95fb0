#!/usr/bin/python3
"""Identity-matching quality of ingestd on the public FEBRL datasets, through the real pipeline.

For each FEBRL file: a fresh database on a throwaway PostgreSQL, bench/febrl/schema.sql,
`ingestd load FILE --dataset febrl -c CONFIG`, then ingestd.row_lineage (row_number -> record_id)
is scored pairwise against the truth carried by rec_id (rec-N-org and rec-N-dup-K are person N;
ingestd never sees rec_id). Rows that ingestd rejected (ingestd.row_errors) or sent to review
count as unmatched singletons.

    /usr/bin/python3 bench/febrl_quality.py [--chunk-rows N] [--datasets 1,2,3] [--kinds K,...]
                                            [--dedup] [--linkage] [--thresholds] [--chunking]
                                            [--write-doc] [--json PATH]

Three configurations (kinds), derived from bench/febrl/febrl.yaml at run time:

  fuzzy          the file as is: three exact tiers, then the fuzzy (Fellegi–Sunter) tier with
                 never_across: [soc_sec_id]; an impossible date of birth is stored NULL.
  fuzzy-no-ssid  the same without soc_sec_id (its tier, never_across and the field).
  exact          the fuzzy tier removed and date_of_birth a strict date, so an impossible date
                 rejects its row: the exact-only configuration, checked row for row against a
                 Python re-implementation of DESIGN rule 6.

Parts (all of them when none is named; --write-doc needs all of them):

  --dedup       each file loaded once per kind, next to the data README's reference grouping
  --linkage     each file split into A and B (a person's rows alternate A, B, A, … in file
                order) and loaded A then B into one database; fuzzy and fuzzy-no-ssid
  --thresholds  (merge_at, review_at) over THRESHOLDS; fuzzy and fuzzy-no-ssid
  --chunking    chunk_rows over CHUNKINGS; exact and fuzzy-no-ssid

The tests pin the dataset1 figures: tests/integration/test_match_quality.py.
"""

import argparse
import csv
import datetime
import itertools
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

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent                                  # the repository
CONFIG = HERE / "febrl" / "febrl.yaml"
WEIGHTS = HERE / "febrl" / "febrl.weights.yaml"

# Rules for a table of millions that still reach F1 0.99 on FEBRL without the id (docs/match-quality.md,
# "Blocking rules for a table of millions"): the one-field rules whose blocks outgrow max_candidates
# in a big table (and then cost only their probe) as in febrl.yaml; birth date and street, whose
# blocks stay under it and would be fetched and scored, only together with another field.
LARGE_RULES = ('[[postcode], ["dmetaphone(surname)"], ["dmetaphone(given_name)"], [suburb], [date_of_birth, '
               '"dmetaphone(surname)"], [date_of_birth, "dmetaphone(given_name)"], [date_of_birth, state], '
               '[date_of_birth, street_number], [address_1, street_number]]')
BLOCKING = None  # the fuzzy tier's blocking rules in place of febrl.yaml's (--large-rules)
SCHEMA = HERE / "febrl" / "schema.sql"
DATA = Path(os.environ.get("FEBRL_DATA", ROOT.parent / "shared" / "data" / "febrl"))
BIN = Path(os.environ.get("INGESTD_BIN", ROOT / "build" / "ingestd"))
DOC = ROOT / "docs" / "match-quality.md"

KINDS = ("fuzzy", "fuzzy-no-ssid", "exact")
FUZZY_KINDS = ("fuzzy", "fuzzy-no-ssid")
PARTS = ("dedup", "linkage", "thresholds", "chunking")
THRESHOLDS = ((10, 5), (12, 6), (15, 8), (18, 10), (22, 12))   # (merge_at, review_at)
CHUNKINGS = (97, 100000)             # chunk_rows besides --chunk-rows: many small chunks, one chunk
CHUNKING_KINDS = ("exact", "fuzzy-no-ssid")
TRAIN_FILE = "dataset2.csv"          # the file bench/febrl/febrl.weights.yaml was trained on
TRAIN_COMMAND = "build/ingestd train febrl ../shared/data/febrl/dataset2.csv -c bench/febrl/febrl.yaml"

REC_ID = re.compile(r"^rec-(\d+)-(org|dup-\d+)$")
DOB_DATE_LINE = 'date_of_birth: {from: date_of_birth, type: date, formats: ["%Y%m%d"]}'
NULLED = "invalid_value_nulled"      # a warning (the value was stored NULL), not a rejection
CROSS_FIGURES = ("cross_pairs", "cross_found", "cross_recall")   # of a linkage; None for one file


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
            rows.append((i, person_of_rec_id(d["rec_id"], f"{path}: row {i}"), d["rec_id"], d))
    return rows


def person_of_rec_id(rec_id, where):
    m = REC_ID.match(rec_id)
    if not m:
        raise ValueError(f"{where}: unexpected rec_id {rec_id!r}")
    return int(m.group(1))


def person_of(truth):
    return {row: person for row, person, _, _ in truth}


def pairs(n):
    return n * (n - 1) // 2


def true_pairs_of(truth_person):
    """Every pair (a, b), a < b, of rows of the same person."""
    by_person = defaultdict(list)
    for r, p in truth_person.items():
        by_person[p].append(r)
    for rows in by_person.values():
        yield from itertools.combinations(sorted(rows), 2)


def together(predicted, a, b):
    return a in predicted and predicted.get(a) == predicted.get(b)


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
    missed = [(a, b) for a, b in true_pairs_of(truth_person) if not together(predicted, a, b)]
    lost_excluded = sum(1 for a, b in missed if a in excluded or b in excluded)
    return lost_excluded, len(missed) - lost_excluded


def cross_pairs(truth_person, predicted, first_part):
    """(true pairs with one row in `first_part` and one outside it, how many are predicted)."""
    cross = [(a, b) for a, b in true_pairs_of(truth_person) if (a in first_part) != (b in first_part)]
    return len(cross), sum(1 for a, b in cross if together(predicted, a, b))


def name_key(v):
    v = " ".join(v.split()).casefold()
    return "".join(c for c in unicodedata.normalize("NFKD", v) if not unicodedata.combining(c))


def ssid_key(d):
    """soc_sec_id as the config normalizes it (digits only, at least 5 of them), or None."""
    ssn = re.sub(r"\D", "", d["soc_sec_id"])
    return ssn if len(ssn) >= 5 else None


def tier_keys(d):
    """The three exact tier keys of a row, as ingestd normalizes them (None: tier incomplete)."""
    g, s = name_key(d["given_name"]), name_key(d["surname"])
    return [ssid_key(d),
            (g, s, d["date_of_birth"]) if g and s and d["date_of_birth"] else None,
            (g, s, d["postcode"]) if g and s and d["postcode"] else None]


def ssid_differing_pairs(truth, predicted=None):
    """True pairs whose two rows carry two different soc_sec_ids (the generator corrupted the id):
    no configuration holding "two soc_sec_ids are two people" can join them. With `predicted`:
    how many of them it joins."""
    ssid = {row: ssid_key(d) for row, _, _, d in truth}
    differing = [(a, b) for a, b in true_pairs_of(person_of(truth)) if ssid[a] and ssid[b] and ssid[a] != ssid[b]]
    return len(differing) if predicted is None else sum(1 for a, b in differing if together(predicted, a, b))


def ssid_conflicts(truth, predicted):
    """Predicted records holding rows with two different soc_sec_ids."""
    held = defaultdict(set)
    for row, _, _, d in truth:
        if row in predicted and ssid_key(d):
            held[predicted[row]].add(ssid_key(d))
    return sum(1 for ids in held.values() if len(ids) > 1)


def invalid_dates(rows):
    """Rows whose non-empty date_of_birth is not a real %Y%m%d date (exact rejects them, the
    fuzzy kinds store NULL)."""
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


def data_facts(path, truth):
    """What the file itself says, before any matching."""
    true_pairs = sum(pairs(n) for n in Counter(person_of(truth).values()).values())
    differing = ssid_differing_pairs(truth)
    return {"dataset": path.name, "rows": len(truth), "true_pairs": true_pairs, "ssid_differing": differing,
            "recall_cap": 1 - differing / true_pairs, "invalid_dates": len(invalid_dates(truth)),
            "empty_dates": sum(1 for *_, d in truth if not d["date_of_birth"])}


# ---------------------------------------------------------------- configurations

def indent_of(line):
    return len(line) - len(line.lstrip())


def edit(text, start, new=None, block=False):
    """Replace the one line of `text` that starts with `start` (after its indentation) by `new`
    at the same indentation, or remove it (new=None); block=True takes the more deeply indented
    lines under it too. Comment lines right above it go with it (they describe it). Fails when
    febrl.yaml no longer has exactly one such line: the variants must not drift silently."""
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.lstrip().startswith(start)]
    assert len(hits) == 1, f"{CONFIG}: expected one line starting with {start!r}, found {len(hits)}"
    at = first = hits[0]
    end = at + 1
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    while block and end < len(lines) and (not lines[end].strip() or indent_of(lines[end]) > indent_of(lines[at])):
        end += 1
    lines[first:end] = [] if new is None else [" " * indent_of(lines[at]) + new + "\n"]
    return "".join(lines)


def config_variant(kind, thresholds=None):
    """The configuration text of `kind` (one of KINDS), optionally with (merge_at, review_at)."""
    assert kind in KINDS, kind
    text = CONFIG.read_text()
    if kind == "exact":
        assert thresholds is None, "exact has no fuzzy tier"
        text = edit(text, "- fuzzy:", block=True)
        return edit(text, "date_of_birth: {from:", DOB_DATE_LINE)
    # The config is written to a temporary directory, where a relative weights path would point
    # at nothing, and ingestd then scores with untrained default weights without a word: name
    # the committed file by its absolute path.
    assert WEIGHTS.exists(), f"{WEIGHTS} missing: {TRAIN_COMMAND}"
    text = edit(text, "weights:", f"weights: {WEIGHTS}")
    if BLOCKING:
        text = edit(text, "blocking:", f"blocking: {BLOCKING}", block=True)
    if kind == "fuzzy-no-ssid":
        for start in ("- [soc_sec_id]", "never_across:", "soc_sec_id:"):
            text = edit(text, start)
    if thresholds:
        text = edit(text, "merge_at:", f"merge_at: {thresholds[0]}")
        text = edit(text, "review_at:", f"review_at: {thresholds[1]}")
    return text


def tier_names(config_text):
    """The person tiers of a configuration, in order, as lineage numbers them from 1."""
    import yaml

    identity = yaml.safe_load(config_text)["datasets"]["febrl"]["entities"]["person"]["identity"]
    return ["+".join(t) if isinstance(t, list) else next(iter(t)) for t in identity]


# ---------------------------------------------------------------- running ingestd

def binary_signature():
    try:
        st = BIN.stat()
        return (st.st_size, st.st_mtime) if os.access(BIN, os.X_OK) else None
    except FileNotFoundError:
        return None


def wait_for_binary(timeout=300):
    """The binary is rebuilt often by others: wait for it to exist and stop changing."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        sig = binary_signature()
        if sig is not None and sig == last:
            return sig
        last = sig
        time.sleep(2)
    raise SystemExit(f"{BIN} missing or still changing after {timeout}s (build it with scripts/build)")


def ingestd(env, *args):
    """Run the binary; EngineProblem unless it exits 0 (or 3: a load completed with rejects)."""
    cmd = [str(BIN), *map(str, args)]
    for attempt in range(3):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            break
        except OSError:   # missing or busy: a build is relinking it; wait for it to settle
            if attempt == 2:
                raise
            wait_for_binary()
    if proc.returncode not in (0, 3):
        raise EngineProblem(f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}"
                            f"\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def sql(url, *statements):
    """Run statements on `url`; the rows of each, in order."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        out = []
        for s in statements:
            cur.execute(s)
            out.append(cur.fetchall() if cur.description else None)
        return out
    finally:
        conn.close()


def prepare_target(pg, workdir, config_text, chunk_rows):
    """A fresh database with the FEBRL table and the identity indexes the config needs, as an
    operator makes them once per target. (database url, environment for ingestd, config path)."""
    url = pg.url(pg.create_db())
    sql(url, SCHEMA.read_text())
    state = workdir / "state"
    (state / "inbox").mkdir(parents=True, exist_ok=True)
    cfg = workdir / "febrl.yaml"
    cfg.write_text(config_text)
    env = dict(os.environ, INGESTD_BROKERS="127.0.0.1:1", INGESTD_GROUP="ingestd-febrl",
               INGESTD_STATE=str(state), INGESTD_DATABASE_URL=url, INGESTD_HTTP="127.0.0.1:0",
               INGESTD_CHUNK_ROWS=str(chunk_rows))
    ingestd(env, "check", "--create-indexes", "-c", cfg)
    return url, env, cfg


def run_load(env, cfg, csv_path):
    """`ingestd load`: (its result message, seconds, command line)."""
    t0 = time.monotonic()
    proc = ingestd(env, "load", csv_path, "--dataset", "febrl", "-c", cfg)
    seconds = time.monotonic() - t0
    if "is not in the file" in proc.stderr:
        raise EngineProblem(f"a configured column was not found in {csv_path}:\n{proc.stderr[-3000:]}")
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise EngineProblem(f"`ingestd load {csv_path}` printed no result message:\n{proc.stdout[-3000:]}")
    return result, seconds, " ".join(proc.args)


class Outcome:
    """What the loads left in the database, with rows numbered as in `truth`."""

    def __init__(self, truth, lineage, errors, persons, batches):
        self.truth, self.lineage, self.persons, self.batches = truth, lineage, persons, batches
        self.truth_person = person_of(truth)
        self.errors = [e for e in errors if e[2] != NULLED]
        self.rejected = {e[0] for e in self.errors}
        self.nulled = {e[0] for e in errors if e[2] == NULLED}
        self.review = {r[0] for r in lineage if r[2] == "review" or r[1] is None}
        self.predicted = {r[0]: r[1] for r in lineage if r[0] not in self.review}

    @classmethod
    def read(cls, url, offsets, truth):
        """Lineage (row, record_id, action, tier), row errors (row, field, code, message), the
        person count and the batches. Row numbers are shifted by their batch's offset in `offsets`
        ({batch_id: offset}), so that files loaded one after the other number their rows as one."""
        lineage, errors, [[persons]], batches = sql(
            url,
            "SELECT batch_id::text, row_number, record_id, action, tier FROM ingestd.row_lineage "
            "WHERE entity = 'person'",
            "SELECT batch_id::text, row_number, field, code, message FROM ingestd.row_errors",
            "SELECT count(*) FROM public.febrl_persons",
            "SELECT status, rows_total, rows_done, inserted, updated, unchanged, rejected, review FROM ingestd.batches")
        unknown = {r[0] for r in lineage + errors} - offsets.keys()
        if unknown:
            raise EngineProblem(f"lineage or row errors of batches that no load reported: {sorted(unknown)}")
        shift = lambda rows: sorted(((offsets[b] + n, *rest) for b, n, *rest in rows), key=lambda r: r[0])  # noqa
        return cls(truth, shift(lineage), shift(errors), persons, batches)

    def problems(self, kind):
        """Why the outcome cannot be scored honestly (empty: it can)."""
        problems = self.lineage_problems() + self.date_problems(kind)
        conflicts = ssid_conflicts(self.truth, self.predicted)
        if conflicts and kind != "fuzzy-no-ssid":   # there ingestd does not see the id at all
            problems.append(f"{conflicts} records hold rows with two different soc_sec_ids")
        return problems

    def lineage_problems(self):
        """The lineage must account for every data row exactly once (or the row must be rejected),
        and name exactly the person rows the table holds."""
        problems = []
        seen = Counter(r[0] for r in self.lineage)
        dup = [r for r, n in seen.items() if n > 1]
        if dup:
            problems.append(f"rows with more than one person lineage row: {dup[:10]}")
        both = sorted(self.rejected & set(seen))
        if both:
            problems.append(f"rows both rejected and in the lineage: {both[:10]}")
        missing = sorted(set(self.truth_person) - self.rejected - set(seen))
        if missing:
            problems.append(f"{len(missing)} data rows neither in row_lineage nor in row_errors: {missing[:10]}")
        extra = sorted((set(seen) | self.rejected) - set(self.truth_person))
        if extra:
            problems.append(f"row numbers outside 1..{len(self.truth_person)}: {extra[:10]}")
        ids = set(self.predicted.values())
        if len(ids) != self.persons:
            problems.append(f"lineage names {len(ids)} distinct person records, the table has {self.persons}")
        inserted = sum(1 for r in self.lineage if r[2] == "inserted")
        if inserted != self.persons:
            problems.append(f"{inserted} lineage rows say 'inserted', the table has {self.persons} rows")
        return problems

    def date_problems(self, kind):
        """exact rejects exactly the rows with an impossible date; the fuzzy kinds reject nothing
        and store exactly those dates NULL (an invalid_value_nulled warning)."""
        bad = invalid_dates(self.truth)
        if kind == "exact":
            return [] if self.rejected == bad else [f"rejected rows {sorted(self.rejected)[:10]} are not the rows "
                                                    f"with an impossible date {sorted(bad)[:10]}"]
        problems = [f"rows rejected: {sorted(self.rejected)[:10]}"] if self.rejected else []
        if self.nulled != bad:
            problems.append(f"rows with a date stored NULL {sorted(self.nulled)[:10]} are not the rows with an "
                            f"impossible date {sorted(bad)[:10]}")
        return problems

    def figures(self, kind, tiers):
        """Pairwise scores and counts. tiers: the configuration's tier names, in order."""
        s = score(self.truth_person, self.predicted)
        s["lost_excluded"], s["lost_unmatched"] = missed_pairs(self.truth_person, self.predicted,
                                                               self.rejected | self.review)
        s.update(rows=len(self.truth_person), persons=self.persons, rejected=len(self.rejected),
                 nulled=len(self.nulled), review=len(self.review),
                 ssid_conflicts=ssid_conflicts(self.truth, self.predicted),
                 ssid_pairs_found=ssid_differing_pairs(self.truth, self.predicted),
                 reject_codes=dict(Counter(e[2] for e in self.errors)),
                 tiers=dict(Counter(tiers[r[3] - 1] for r in self.lineage if r[2] in ("updated", "unchanged"))),
                 batches=self.batches, same_as_rule6_reference=None)
        if kind == "exact":
            # the same rules recomputed in Python on the rows ingestd loaded: does ingestd group exactly so?
            rule6 = reference_grouping(self.truth, blocking=True, exclude=self.rejected | self.review)
            s["same_as_rule6_reference"] = partition(self.predicted) == partition(rule6)
        return s

    def cross_file(self, first_rows):
        """Recall over the true pairs with one row among rows 1..first_rows and one after them."""
        n, found = cross_pairs(self.truth_person, self.predicted, set(range(1, first_rows + 1)))
        return {"cross_pairs": n, "cross_found": found, "cross_recall": found / n if n else 1.0}


def fuzzy_bands(results):
    """merged/review/new of the fuzzy tier, summed over the loads (None: no fuzzy tier)."""
    bands = [r.get("counts", {}).get("person", {}).get("fuzzy") for r in results]
    if not bands or None in bands:
        return None
    return {k: sum(b[k] for b in bands) for k in ("merged", "review", "new")}


def numbered_as_one(parts):
    """The truth rows of several files as one file: each file's row numbers follow the last one
    of the file before. (truth, offset of each part)."""
    truth, offsets = [], []
    for _, rows in parts:
        offsets.append(len(truth))
        truth += [(row + offsets[-1], *rest) for row, *rest in rows]
    return truth, offsets


def score_loads(pg, name, parts, workdir, chunk_rows, kind, thresholds=None):
    """Load the files of `parts` ([(csv path, truth rows)]) in order into one fresh database
    through ingestd and score the lineage of all their rows together. Returns a dict of figures
    named `name`; raises EngineProblem."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    truth, offsets = numbered_as_one(parts)
    config_text = config_variant(kind, thresholds)
    url, env, cfg = prepare_target(pg, workdir, config_text, chunk_rows)
    loads = [run_load(env, cfg, path) for path, _ in parts]
    outcome = Outcome.read(url, {r["batch_id"]: o for (r, _, _), o in zip(loads, offsets)}, truth)
    problems = outcome.problems(kind)
    if problems:
        raise EngineProblem(f"{name} ({kind}, chunk_rows={chunk_rows}, thresholds={thresholds}): "
                            + "; ".join(problems))
    s = outcome.figures(kind, tier_names(config_text))
    s.update(dataset=name, kind=kind, thresholds=thresholds, chunk_rows=chunk_rows,
             part_rows=[len(rows) for _, rows in parts], fuzzy=fuzzy_bands([r for r, _, _ in loads]),
             seconds=sum(sec for _, sec, _ in loads), commands=[c for _, _, c in loads],
             results=[r for r, _, _ in loads], database_url=url,
             **(outcome.cross_file(offsets[1]) if len(parts) > 1 else dict.fromkeys(CROSS_FIGURES)))
    return s


def load_and_score(pg, csv_path, workdir, chunk_rows=1000, kind="fuzzy", truth=None, thresholds=None):
    """One file into a fresh database. pg: a conftest.Postgres."""
    csv_path = Path(csv_path)
    truth = truth if truth is not None else read_truth(csv_path)
    return score_loads(pg, csv_path.name, [(csv_path, truth)], workdir, chunk_rows, kind, thresholds)


def split_alternately(csv_path, workdir):
    """Write A.csv and B.csv from csv_path: each person's rows go to A, B, A, … in file order.
    The header and the lines are copied as they are, so ingestd reads them as it reads the file."""
    lines = Path(csv_path).read_text(encoding="utf-8").splitlines(keepends=True)
    out = {"A": [lines[0]], "B": [lines[0]]}
    seen = Counter()
    for n, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        person = person_of_rec_id(next(csv.reader([line], skipinitialspace=True))[0].strip(), f"{csv_path}: row {n}")
        out["AB"[seen[person] % 2]].append(line if line.endswith("\n") else line + "\n")
        seen[person] += 1
    paths = []
    for half, text in out.items():
        paths.append(Path(workdir) / f"{Path(csv_path).stem}-{half}.csv")
        paths[-1].write_text("".join(text), encoding="utf-8")
    return paths


def link_and_score(pg, csv_path, workdir, chunk_rows=1000, kind="fuzzy"):
    """Two-file linkage: csv_path split into A and B (split_alternately), loaded A then B into
    one fresh database, scored as one file (B's rows after A's) with the cross-file recall."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    halves = [(p, read_truth(p)) for p in split_alternately(csv_path, workdir)]
    if sum(len(t) for _, t in halves) != len(read_truth(csv_path)):
        raise ValueError(f"{csv_path}: the split lost rows (a record over several lines?)")
    return score_loads(pg, Path(csv_path).name, halves, workdir, chunk_rows, kind)


def retrain_reproduces(pg, workdir):
    """Does TRAIN_COMMAND, run now, write the committed weights file again? (Training is
    deterministic; it needs the database for the blocking rules' dmetaphone().)"""
    workdir.mkdir(parents=True, exist_ok=True)
    _, env, cfg = prepare_target(pg, workdir, config_variant("fuzzy"), 1000)
    out = workdir / "retrained.weights.yaml"
    ingestd(env, "train", "febrl", DATA / TRAIN_FILE, "-c", cfg, "--output", out)
    return out.read_text() == WEIGHTS.read_text()


# ---------------------------------------------------------------- report

def f4(x):
    return "–" if x is None else f"{x:.4f}"


def opt(x):
    return "–" if x is None else str(x)


def md_table(header, rows):
    return "\n".join([f"| {' | '.join(header)} |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
                     + [f"| {' | '.join(map(str, r))} |" for r in rows])


def bands(s):
    b = s["fuzzy"]
    return "–" if b is None else f"{b['merged']} / {b['review']} / {b['new']}"


DEDUP_HEADER = ["file", "config", "rows", "persons created", "rejected", "dob stored NULL", "review",
                "fuzzy merged / review / new", "true pairs", "predicted pairs", "correct pairs", "precision",
                "recall", "F1", "records with 2 ssids", "load s"]


def dedup_row(s):
    return [s["dataset"], s["kind"], s["rows"], s["persons"], s["rejected"], s["nulled"], s["review"], bands(s),
            s["true_pairs"], s["pred_pairs"], s["tp"], f4(s["precision"]), f4(s["recall"]), f4(s["f1"]),
            s["ssid_conflicts"], f"{s['seconds']:.1f}"]


def reference_row(r):
    return [r["dataset"], "reference", r["rows"], "–", 0, "–", 0, "–", r["true_pairs"], r["pred_pairs"], r["tp"],
            f4(r["precision"]), f4(r["recall"]), f4(r["f1"]), r["ssid_conflicts"], "–"]


LINKAGE_HEADER = ["file", "config", "rows A", "rows B", "persons created", "review", "fuzzy merged / review / new",
                  "precision", "recall", "F1", "cross-file true pairs", "found", "cross-file recall",
                  "records with 2 ssids", "load s (A+B)"]


def linkage_row(s):
    return [s["dataset"], s["kind"], *s["part_rows"], s["persons"], s["review"], bands(s), f4(s["precision"]),
            f4(s["recall"]), f4(s["f1"]), s["cross_pairs"], s["cross_found"], f4(s["cross_recall"]),
            s["ssid_conflicts"], f"{s['seconds']:.1f}"]


THRESHOLD_HEADER = ["file", "config", "merge_at", "review_at", "precision", "recall", "F1", "rows in review",
                    "fuzzy merged"]


def threshold_row(s):
    return [s["dataset"], s["kind"], *s["thresholds"], f4(s["precision"]), f4(s["recall"]), f4(s["f1"]),
            s["review"], opt(s["fuzzy"] and s["fuzzy"]["merged"])]


CHUNKING_HEADER = ["file", "config", "chunk_rows", "persons created", "rows in review", "precision", "recall", "F1"]


def chunking_row(s):
    return [s["dataset"], s["kind"], s["chunk_rows"], s["persons"], s["review"], f4(s["precision"]),
            f4(s["recall"]), f4(s["f1"])]


ROW_FORMATS = {"dedup": (DEDUP_HEADER, dedup_row), "linkage": (LINKAGE_HEADER, linkage_row),
               "thresholds": (THRESHOLD_HEADER, threshold_row), "chunking": (CHUNKING_HEADER, chunking_row)}


DATA_HEADER = ["file", "rows", "true pairs", "impossible date_of_birth", "empty date_of_birth"]


def data_row(d):
    return [d["dataset"], d["rows"], d["true_pairs"], d["invalid_dates"], d["empty_dates"]]


SSID_HEADER = ["file", "true pairs", "with 2 different soc_sec_ids", "recall cap (1 − share)", "recall exact",
               "recall fuzzy", "recall fuzzy-no-ssid", "2-ssid pairs found by fuzzy-no-ssid"]


def ssid_row(d, dedup):
    got = {s["kind"]: s for s in dedup if s["dataset"] == d["dataset"]}
    recall = lambda kind: f4(got[kind]["recall"]) if kind in got else "–"  # noqa: E731
    found = got["fuzzy-no-ssid"]["ssid_pairs_found"] if "fuzzy-no-ssid" in got else "–"
    return [d["dataset"], d["true_pairs"], d["ssid_differing"], f4(d["recall_cap"]), recall("exact"),
            recall("fuzzy"), recall("fuzzy-no-ssid"), found]


def ssid_note(dedup):
    """What the fuzzy tier did next to soc_sec_id, summed over the files."""
    runs = [s for s in dedup if s["kind"] == "fuzzy" and s["fuzzy"]]
    if not runs:
        return ""
    total = {k: sum(s["fuzzy"][k] for s in runs) for k in ("merged", "review", "new")}
    return (f"With soc_sec_id in the configuration (`fuzzy`), the fuzzy tier judged {sum(total.values())} rows "
            f"that no exact key placed ({', '.join(s['dataset'] for s in runs)}), merged {total['merged']} of them "
            f"and sent {total['review']} to review.")


def config_excerpt():
    """The dataset part of bench/febrl/febrl.yaml, as committed."""
    text = CONFIG.read_text()
    return "```yaml\n" + text[text.index("datasets:"):].rstrip() + "\n```"


def miss_note(s):
    rule6 = s["same_as_rule6_reference"]
    return (f"- {s['dataset']}, {s['kind']}: missed true pairs {s['true_pairs'] - s['tp']} — {s['lost_excluded']} "
            f"involving a rejected or review row, {s['lost_unmatched']} between two loaded rows; rows joined to a "
            f"record, by tier: {', '.join(f'{k} {n}' for k, n in s['tiers'].items()) or 'none'}"
            + ("" if rule6 is None else f"; grouping identical to the Python rule-6 reference: "
                                        f"{'yes' if rule6 else 'NO'}"))


def tables(out):
    """The report's sections, as markdown: {name: text}."""
    by_file = lambda rows: sorted(rows, key=lambda s: s["dataset"])  # noqa: E731 (stable: kinds keep their order)
    chunked = [s for s in out["dedup"] if s["kind"] in CHUNKING_KINDS] + out["chunking"]
    chunked.sort(key=lambda s: (s["dataset"], CHUNKING_KINDS.index(s["kind"]), s["chunk_rows"]))
    dedup = []
    for d in out["data"]:
        dedup += [dedup_row(s) for s in out["dedup"] if s["dataset"] == d["dataset"]]
        dedup += [reference_row(r) for r in out["reference"] if r["dataset"] == d["dataset"]]
    return {
        "config": config_excerpt(),
        "data": md_table(DATA_HEADER, [data_row(d) for d in out["data"]]),
        "ssid": "\n\n".join(filter(None, [md_table(SSID_HEADER, [ssid_row(d, out["dedup"]) for d in out["data"]]),
                                          ssid_note(out["dedup"])])),
        "figures": md_table(DEDUP_HEADER, dedup) + "\n\n" + "\n".join(miss_note(s) for s in out["dedup"]),
        "linkage": md_table(LINKAGE_HEADER, [linkage_row(s) for s in by_file(out["linkage"])]),
        "thresholds": md_table(THRESHOLD_HEADER, [threshold_row(s) for s in by_file(out["thresholds"])]),
        "chunking": md_table(CHUNKING_HEADER, [chunking_row(s) for s in chunked]),
    }


def weights_note(retrained):
    """How the committed weights were made, from the file's own header, and whether they still come out so."""
    lines = WEIGHTS.read_text().splitlines()
    lead = list(itertools.takewhile(lambda line: line.startswith("#"), lines))  # the comment that opens it
    header = " ".join(line.lstrip("# ").strip() for line in lead)
    frequent = yaml.safe_load(WEIGHTS.read_text()).get("frequent") or {}  # term frequencies
    if frequent:
        header += (". Common values listed (term frequencies): " +
                   ", ".join(f"{f} {len(v['values'])}" for f, v in frequent.items()))
    again = {None: "not checked in this run", True: "yes, byte for byte", False: "NO — the file is stale"}[retrained]
    return (f"```sh\n{TRAIN_COMMAND}\n```\n\nThe file's header: {header}\n\n"
            f"Running the command again in this benchmark run reproduces the committed file: {again}.")


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunk-rows", type=int, default=1000)
    ap.add_argument("--datasets", default="1,2,3", help="which datasetN.csv files (default 1,2,3)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"configurations for --dedup (default {','.join(KINDS)})")
    for part in PARTS:
        ap.add_argument(f"--{part}", action="store_true", help=f"run the {part} part (default: all parts)")
    ap.add_argument("--write-doc", action="store_true", help=f"write the figures into {DOC.relative_to(ROOT)}")
    ap.add_argument("--json", help="also write all figures as JSON to this path")
    ap.add_argument("--large-rules", action="store_true",
                    help="the fuzzy tier's blocking rules for a table of millions (LARGE_RULES) in place of febrl.yaml's")
    args = ap.parse_args()
    args.kinds = [k.strip() for k in args.kinds.split(",")]
    if set(args.kinds) - set(KINDS):
        ap.error(f"--kinds: choose from {', '.join(KINDS)}")
    args.parts = [p for p in PARTS if getattr(args, p)] or list(PARTS)
    args.files = [DATA / f"dataset{n.strip()}.csv" for n in args.datasets.split(",")]
    if args.write_doc and (args.parts != list(PARTS) or args.kinds != list(KINDS) or len(args.files) != 3 or
                           args.large_rules):
        ap.error("--write-doc needs the full run (all files, kinds and parts) of febrl.yaml as it is")
    global BLOCKING
    BLOCKING = LARGE_RULES if args.large_rules else None
    return args


def run_file(pg, tmp, f, args, out):
    """Every measurement of one FEBRL file, appended to `out` and printed as it comes."""
    truth = read_truth(f)
    out["data"].append(data_facts(f, truth))
    work = lambda *name: tmp / "-".join([f.stem, *map(str, name)])  # noqa: E731
    if "dedup" in args.parts:
        ref = reference_grouping(truth)
        out["reference"].append(dict(score(person_of(truth), ref), dataset=f.name, rows=len(truth),
                                     ssid_conflicts=ssid_conflicts(truth, ref)))
        for kind in args.kinds:
            keep(out, "dedup", load_and_score(pg, f, work(kind), args.chunk_rows, kind, truth))
    if "linkage" in args.parts:
        for kind in FUZZY_KINDS:
            keep(out, "linkage", link_and_score(pg, f, work("linkage", kind), args.chunk_rows, kind))
    if "thresholds" in args.parts:
        for kind, th in itertools.product(FUZZY_KINDS, THRESHOLDS):
            keep(out, "thresholds", load_and_score(pg, f, work(kind, *th), args.chunk_rows, kind, truth, th))
    if "chunking" in args.parts:
        for kind, rows in itertools.product(CHUNKING_KINDS, CHUNKINGS):
            keep(out, "chunking", load_and_score(pg, f, work(kind, "chunk", rows), rows, kind, truth))


def keep(out, part, s):
    """Add a measurement to `out` and print its table row at once: the full run takes a while."""
    out[part].append(s)
    header, row = ROW_FORMATS[part]
    print(md_table(header, [row(s)]).splitlines()[-1], flush=True)


def main():
    args = parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"FEBRL data not found at {DATA} (set FEBRL_DATA)")
    for f in args.files:
        if not f.exists():
            raise SystemExit(f"{f} not found")
    binary = wait_for_binary()
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import Postgres  # noqa: E402  (the fixtures' throwaway cluster)

    out = {"data": [], "reference": [], "retrained": None, **{part: [] for part in PARTS}}
    t_all = time.monotonic()
    pg = Postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="febrl-quality-") as tmp:
            for f in args.files:
                run_file(pg, Path(tmp), f, args, out)
            if any(f.name == TRAIN_FILE for f in args.files):
                out["retrained"] = retrain_reproduces(pg, Path(tmp) / "train")
    finally:
        pg.stop()
    out["total_seconds"] = time.monotonic() - t_all
    out["binary_changed"] = binary_signature() != binary
    report(out, args)


def report(out, args):
    sections = tables(out)
    shown = ["data"] + [{"dedup": "figures"}.get(p, p) for p in args.parts] + ["ssid"] * ("dedup" in args.parts)
    print()
    for name in shown:
        print(f"{name}:\n{sections[name]}\n")
    print(weights_note(out["retrained"]))
    print(f"\ntotal {out['total_seconds']:.1f} s (chunk_rows={args.chunk_rows})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    if out["binary_changed"]:
        # figures from two builds side by side would compare nothing
        print(f"WARNING: {BIN} was rebuilt during the run; run again", file=sys.stderr)
        if args.write_doc:
            raise SystemExit(f"{DOC} not written")
    if args.write_doc:
        sections["weights"] = weights_note(out["retrained"])
        sections["figures"] += (f"\n\nchunk_rows={args.chunk_rows}; whole run {out['total_seconds']:.0f} s "
                                f"(every part, including initdb) on this machine.")
        write_doc(sections)
        print(f"wrote {DOC}")


def write_doc(sections):
    """Replace each `<!-- NAME:begin -->…<!-- NAME:end -->` block of the doc by its section. The
    prose around the blocks is written by hand and holds no measured number."""
    text = DOC.read_text()
    for name, body in sections.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{DOC}: no {begin} … {end} block")
        text = text[:text.index(begin)] + f"{begin}\n{body}\n{end}" + text[text.index(end) + len(end):]
    DOC.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except EngineProblem as e:
        print(f"ENGINE PROBLEM: {e}", file=sys.stderr)
        sys.exit(1)
