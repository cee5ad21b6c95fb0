#!/usr/bin/python3
"""What an input format costs: the same bench people (bench/generate_people.py) as CSV, as JSON
Lines with nested objects, and each gzip-compressed, loaded with `ingestd load` through the
four-tier person dataset of bench/people.yaml (and its JSON Lines twin), in one run.

    /usr/bin/python3 bench/formats_speed.py [--rows 100000] [--chunk-rows 25000] [--pg-defaults]
                                            [--formats csv,jsonl,csv.gz,jsonl.gz]

Each format loads into a fresh database of one throwaway PostgreSQL (tuned: shared_buffers 2GB,
max_wal_size 8GB, unless --pg-defaults), indexes made first (`check --create-indexes`, timed
apart). Reported: wall time of `ingestd load`, per-row time, the ratio to CSV, peak RSS of the
ingestd process (ru_maxrss), file size; and a check that every format gave the same person
counts as CSV.
"""

import argparse
import csv
import gzip
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
CONFIG = HERE / "people.yaml"
SCHEMA = ROOT / "config" / "examples" / "ice" / "schema.sql"
TUNED = ["shared_buffers=2GB", "max_wal_size=8GB"]

sys.path.insert(0, str(ROOT / "tests" / "integration"))
import psycopg2  # noqa: E402
from conftest import Postgres  # noqa: E402

# Where each CSV column lives in the JSON Lines twin: nested, as exports from web apps are.
PATHS = {"Cedula": "person.cedula", "Nombre": "person.name.first", "Apellido": "person.name.last",
         "Email": "person.contact.email", "Telefono": "person.contact.phone",
         "Fecha de nacimiento": "person.birth_date", "Direccion": "address"}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def config_text():
    """bench/people.yaml plus `people_jsonl`: the same entity, `from:` the nested paths."""
    text = CONFIG.read_text()
    start = text.index("  people:\n")
    body = text[start:].replace("  people:\n", "  people_jsonl:\n    format: jsonl\n", 1)
    body = body.replace("    csv: {delimiter: \",\", encoding: utf-8, header: true}\n", "")
    body = body.replace("from: [Email, Correo]", "from: " + PATHS["Email"])
    for col, path in PATHS.items():
        body = body.replace(f"from: {col}}}", f"from: {path}}}").replace(f"from: {col},", f"from: {path},")
    return text + "\n" + body


def to_jsonl(csv_path, out_path):
    with open(csv_path, newline="", encoding="utf-8") as f, open(out_path, "w", encoding="utf-8") as out:
        for row in csv.DictReader(f):
            obj = {}
            for col, path in PATHS.items():
                if row.get(col, "") == "":
                    continue
                *parents, leaf = path.split(".")
                node = obj
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = row[col]
            for extra in ("Programa", "Estado", "Grado", "School SF Id"):  # carried, unused
                if row.get(extra):
                    obj.setdefault("extra", {})[extra] = row[extra]
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def sql(url, q):
    c = psycopg2.connect(url)
    c.autocommit = True
    c.cursor().execute(q)
    c.close()


class Bench:
    def __init__(self, a, work):
        self.a, self.work = a, Path(work)
        self.pg = Postgres()
        for kv in ([] if a.pg_defaults else TUNED):
            k, v = kv.split("=", 1)
            sql(self.pg.url(), f"ALTER SYSTEM SET {k} = '{v}'")
        self.pg._run([str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), "-l", str(self.pg.log), "-w", "restart"])
        self.settings = "PostgreSQL defaults" if a.pg_defaults else "tuned (" + ", ".join(TUNED) + ")"
        self.cfg = self.work / "formats.yaml"
        self.cfg.write_text(config_text())

    def env(self, url):
        return dict(os.environ, INGESTD_BROKERS="127.0.0.1:9", INGESTD_GROUP="bench", INGESTD_STATE=str(self.work),
                    INGESTD_DATABASE_URL=url, INGESTD_HTTP="127.0.0.1:0", INGESTD_CHUNK_ROWS=str(self.a.chunk_rows))

    def load(self, label, data, dataset):
        url = self.pg.url(self.pg.create_db())
        sql(url, SCHEMA.read_text())
        t = time.monotonic()
        chk = subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(self.cfg)], env=self.env(url),
                             capture_output=True, text=True)
        if chk.returncode:
            raise SystemExit(f"check --create-indexes failed: {chk.stdout}{chk.stderr}")
        idx = time.monotonic() - t
        t = time.monotonic()
        p = subprocess.Popen([str(BIN), "load", str(data), "--dataset", dataset, "-c", str(self.cfg)],
                             env=self.env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = p.stdout.read()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - t
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            raise SystemExit(f"{label}: load exited {code}: {err[-2000:]}")
        counts = json.loads(out)["counts"]["person"]
        rss = usage.ru_maxrss // 1024
        log(f"{label}: {wall:.1f}s ({idx:.1f}s indexes), RSS {rss} MiB, {counts}")
        return {"label": label, "seconds": wall, "rss_mib": rss, "counts": counts, "bytes": data.stat().st_size}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--chunk-rows", type=int, default=25000)
    ap.add_argument("--pg-defaults", action="store_true")
    ap.add_argument("--formats", default="csv,jsonl,csv.gz,jsonl.gz")
    a = ap.parse_args()
    formats = a.formats.split(",")
    with tempfile.TemporaryDirectory(prefix="formats-speed-") as tmp:
        files = {"csv": Path(tmp) / "people.csv", "jsonl": Path(tmp) / "people.jsonl"}
        subprocess.run([sys.executable, str(HERE / "generate_people.py"), "--rows", str(a.rows), "--out",
                        str(files["csv"])], check=True, stdout=subprocess.DEVNULL)
        to_jsonl(files["csv"], files["jsonl"])
        for plain in ("csv", "jsonl"):
            files[plain + ".gz"] = Path(tmp) / f"people.{plain}.gz"
            files[plain + ".gz"].write_bytes(gzip.compress(files[plain].read_bytes(), 6))
        b = Bench(a, tmp)
        try:
            runs = [b.load(f, files[f], "people_jsonl" if f.startswith("jsonl") else "people") for f in formats]
        finally:
            b.pg.stop()
    print(f"\n{a.rows:,} bench people, chunk_rows {a.chunk_rows}, {b.settings}\n")
    base = next((r for r in runs if r["label"] == "csv"), runs[0])
    print(f"| input | file MiB | load s | µs/row | vs {base['label']} | peak RSS MiB | inserted / updated / review |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in runs:
        c = r["counts"]
        print(f"| {r['label']} | {r['bytes'] / 2**20:.1f} | {r['seconds']:.1f} | {r['seconds'] / a.rows * 1e6:.0f} | "
              f"{r['seconds'] / base['seconds']:.2f}× | {r['rss_mib']} | "
              f"{c['inserted']} / {c['updated']} / {c['review']} |")
    same = all(r["counts"] == runs[0]["counts"] for r in runs)
    print(f"\nsame person counts in every format: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
