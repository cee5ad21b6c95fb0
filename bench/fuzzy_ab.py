#!/usr/bin/python3
"""Two (or more) ingestd binaries compared on the same load, alternated: FEBRL-shaped rows
(bench/generate_febrl.py, a fifth of the people without a soc_sec_id by default) loaded through
bench/febrl/febrl.yaml into a table already holding --existing other people. The table and its
indexes are built once, in a template database; every load gets a fresh copy of it
(CREATE DATABASE … TEMPLATE), so each binary meets the same table, and rounds alternate the
binaries so that this machine's noise falls on all of them alike.

    /usr/bin/python3 bench/fuzzy_ab.py BINARY[,BINARY…] [--rounds 2] [--rows 100000]
                                       [--existing 1000000] [--missing-ids 0.2] [--chunk-rows 25000]
                                       [--pg-defaults] [--vacuum]

Printed per load: the binary, wall time, the daemon's own CPU time (steadier than wall time
here), peak RSS and the fuzzy bands (which must be the same for binaries that only differ in
speed). --vacuum: the table is vacuumed once built, as autovacuum leaves a table that has sat
a while (its pages all visible: an index-only scan then reads no row).
"""

import argparse
import json
import tempfile
from pathlib import Path

import fuzzy_speed as fs
import harness
from harness import sql


def main():
    ap = fs.arguments(__doc__, 0.2)
    ap.add_argument("binaries", help="comma-separated paths of ingestd binaries")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vacuum", action="store_true", help="VACUUM ANALYZE the table once built")
    a = ap.parse_args()
    bins = [Path(b).resolve() for b in a.binaries.split(",")]
    with tempfile.TemporaryDirectory(prefix="fuzzy-ab-") as tmp:
        data, existing = fs.generate(tmp, a)
        b = fs.FebrlBench(tmp, a.chunk_rows, a.pg_defaults)
        try:
            cfg = b.config("fuzzy", True, fs.CONFIG, a.rules, ())
            url = b.database(existing if a.existing else None)
            harness.BIN = bins[0]
            b.create_indexes(cfg, url)
            template = url.rsplit("/", 1)[1].split("?")[0]
            if a.vacuum:
                sql(url, "VACUUM ANALYZE")
            sql(b.pg.url(), "CHECKPOINT")
            for i in range(a.rounds):
                for n, binary in enumerate(bins):
                    copy = f"ab_{i}_{n}"
                    sql(b.pg.url(), f"CREATE DATABASE {copy} TEMPLATE {template}")
                    harness.BIN = binary  # Bench.load runs and watches harness.BIN
                    r = b.load(binary.name, cfg, url.replace(template, copy), data, "febrl")
                    print(f"{binary} wall {r['seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} s, RSS {r['rss_mib']} MiB,",
                          json.dumps(r["counts"]["person"].get("fuzzy")), flush=True)
                    sql(b.pg.url(), f"DROP DATABASE {copy}")
        finally:
            b.stop()


if __name__ == "__main__":
    main()
