#!/usr/bin/python3
"""Are the fuzzy tier's merges right at scale? FEBRL-shaped people (bench/generate_febrl.py, whose
rec_id carries the truth) loaded with `ingestd load` through bench/febrl/febrl.yaml into a table
already holding --existing other people (strangers: drawn from another seed), then every row's
outcome checked against the truth.

    /usr/bin/python3 bench/fuzzy_precision.py [--rows 100000] [--existing 1000000] [--pair-rules | --large-rules]
                                              [--missing-ids 0.2] [--weights febrl|train|PATH]
                                              [--pg-defaults] [--chunk-rows 25000]

--weights febrl (default): bench/febrl/febrl.weights.yaml, trained on FEBRL's dataset2;
train: `ingestd train febrl` on the file itself first (with the config's blocking rules), as a
user with their own data would; PATH: a weights file.

A merge is counted per tier as
  true      — the record holds a row of the same person (or was made by one);
  stranger  — the record is one of the table's people and no row of the file landed on it before;
  false     — the record holds rows of other people of the file only.
A merge into a record an exact tier already joined wrongly to a stranger (a corrupted soc_sec_id
that is a stranger's) counts by the persons that record holds by then. Also counted: rows made
new records although their person already had one (missed), and rows sent to review.
"""

import collections
import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

import fuzzy_speed as fs
from harness import BIN


def outcomes(url, data):
    """Counts per outcome, from the lineage and the truth in the file's rec_id."""
    persons = [row[0].split("-")[1] for row in list(csv.reader(open(data)))[1:]]
    lineage = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-c",
                              "SELECT row_number, coalesce(record_id, ''), action, coalesce(tier::text, '') "
                              "FROM ingestd.row_lineage ORDER BY row_number", url],
                             capture_output=True, text=True, check=True).stdout
    members = collections.defaultdict(set)  # record -> persons of the file whose rows landed on it
    seen, out = set(), collections.Counter()
    for line in lineage.splitlines():
        number, record, action, tier = line.split("\t")
        person = persons[int(number) - 1]
        if action == "review":
            out["review"] += 1
        elif action == "inserted":
            out["new, person already had a record (missed)" if person in seen else "new"] += 1
            members[record].add(person)
        else:
            held = members[record]
            out[f"tier {tier}: " + ("true" if person in held else "stranger" if not held else "false")] += 1
            held.add(person)
        seen.add(person)
    return out


def main():
    ap = fs.arguments(__doc__, 0.2)
    ap.add_argument("--weights", default="febrl", help="febrl | train | PATH")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzzy-precision-") as tmp:
        data, existing = fs.generate(tmp, a)
        weights = Path(tmp) / "weights.yaml"
        if a.weights != "train":
            shutil.copy(fs.WEIGHTS if a.weights == "febrl" else a.weights, weights)
        cfg = Path(tmp) / "fuzzy.yaml"
        cfg.write_text(fs.config_text(True, fs.CONFIG, a.rules).replace(str(fs.WEIGHTS), str(weights)))
        b = fs.FebrlBench(tmp, a.chunk_rows, a.pg_defaults)
        try:
            url = b.database(existing if a.existing else None)
            trained = ""
            if a.weights == "train":
                subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(cfg)], env=b.env(url),
                               capture_output=True, check=True)
                t = subprocess.run([str(BIN), "train", "febrl", str(data), "-c", str(cfg)], env=b.env(url),
                                   capture_output=True, text=True, check=True)
                trained = "\n".join(ln for ln in t.stdout.splitlines() if not ln.startswith(("FIELD", " ")) and
                                    ("rule" in ln or "together" in ln or "pairs:" in ln or "posterior" in ln
                                     or "common values" in ln))
            r = b.load("into", cfg, url, data, "febrl")
            counts = outcomes(url, data)
        finally:
            b.stop()
    rules = fs.rules_name(a.rules)
    print(f"\n{a.rows:,} FEBRL-shaped rows into {a.existing:,} other people, {rules}, {a.missing_ids:.0%} "
          f"without a soc_sec_id, weights {a.weights}, {b.settings}; load {r['seconds']:.1f} s\n")
    if trained:
        print(trained + "\n")
    print("| outcome | rows |\n|---|---:|")
    for k in sorted(counts):
        print(f"| {k} | {counts[k]} |")
    fuzzy = {k.split(": ")[1]: v for k, v in counts.items() if k.startswith("tier 4:")}
    merged = sum(fuzzy.values())
    if merged:
        print(f"\nfuzzy merges: {merged}, right {fuzzy.get('true', 0) / merged:.4f}, into strangers "
              f"{fuzzy.get('stranger', 0)}, into other people of the file {fuzzy.get('false', 0)}")


if __name__ == "__main__":
    main()
