#!/usr/bin/python3
"""Excel input against CSV in one run: the bench's people (bench/generate_people.py) as CSV and
as a workbook, each loaded with `ingestd load` into a fresh database of one throwaway
PostgreSQL (the tests' initdb cluster, fsync off), timed and with the process's peak RSS.

    /usr/bin/python3 bench/xlsx_speed.py [--rows 100000] [--chunk-rows 50000] [--work DIR]

The workbook is written by python3-xlsxwriter as Excel writes one: shared strings, cédulas that
are all digits as numbers, birth dates as date cells (dd/mm/yyyy), the rest as text. Both loads
must give the same counts (the script fails otherwise). Peak RSS is the load process's VmHWM (bench/harness.py).
"""

import argparse
import csv
import datetime
import json
import subprocess
import tempfile
import time
from pathlib import Path

import xlsxwriter

ROOT = Path(__file__).resolve().parents[1]
from harness import Bench  # noqa: E402


def to_workbook(csv_path, xlsx_path):
    wb = xlsxwriter.Workbook(str(xlsx_path))
    ws = wb.add_worksheet("People")
    date = wb.add_format({"num_format": "dd/mm/yyyy"})
    with open(csv_path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            for j, v in enumerate(row):
                if i and j == 0 and v.isdigit() and not v.startswith("0") and len(v) < 16:
                    ws.write_number(i, j, int(v))
                elif i and j == 5 and v:
                    try:
                        ws.write_datetime(i, j, datetime.datetime.strptime(v, "%d/%m/%Y"), date)
                    except ValueError:
                        ws.write_string(i, j, v)
                elif v:
                    ws.write_string(i, j, v)
    wb.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--chunk-rows", type=int, default=50000)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ingestd-xlsx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = work / "people.csv", work / "people.xlsx"
    subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / "generate_people.py"), "--rows", str(args.rows),
                    "--out", str(csv_path), "--date-style", "dmy"], check=True)
    t0 = time.monotonic()
    to_workbook(csv_path, xlsx_path)
    print(f"workbook written in {time.monotonic() - t0:.1f}s: {xlsx_path.stat().st_size / 2**20:.1f} MiB "
          f"(CSV {csv_path.stat().st_size / 2**20:.1f} MiB)")
    people = (ROOT / "bench" / "people.yaml").read_text()
    as_xlsx = people.replace('    csv: {delimiter: ",", encoding: utf-8, header: true}\n',
                             "    format: xlsx\n    xlsx: {sheet: People}\n")
    assert as_xlsx != people
    b = Bench(work, args.chunk_rows, pg_defaults=True)  # the tests' cluster settings, as before
    schema = (ROOT / "config" / "examples" / "ice" / "schema.sql").read_text()
    runs = {}
    try:
        for name, text, path in (("csv", people, csv_path), ("xlsx", as_xlsx, xlsx_path)):
            cfg = work / f"{name}.yaml"
            cfg.write_text(text)
            runs[name] = b.load(name, cfg, b.database(schema), path, "people")
    finally:
        b.stop()
    for name, r in runs.items():
        print(f"{name:5} {r['seconds']:8.2f} s  peak RSS {r['rss_mib']:7.1f} MiB  "
              f"counts {json.dumps(r['result']['counts'])}")
    ratio = runs["xlsx"]["seconds"] / runs["csv"]["seconds"]
    print(f"xlsx / csv time: {ratio:.2f}x")
    if runs["xlsx"]["result"]["counts"] != runs["csv"]["result"]["counts"]:
        raise SystemExit("the workbook and the CSV gave different counts")


if __name__ == "__main__":
    main()
