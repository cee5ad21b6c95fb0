#!/usr/bin/python3
"""What an input format costs: the same bench people (bench/generate_people.py) as CSV, as JSON
Lines with nested objects, and each gzip-compressed, loaded with `ingestd load` through the
four-tier person dataset of bench/people.yaml (and its JSON Lines twin), in one run.

    /usr/bin/python3 bench/formats_speed.py [--rows 100000] [--chunk-rows 25000] [--pg-defaults]
                                            [--formats csv,jsonl,csv.gz,jsonl.gz]

Each format loads into a fresh database of one throwaway PostgreSQL (tuned: shared_buffers 2GB,
max_wal_size 8GB, unless --pg-defaults), indexes made first (`check --create-indexes`, timed
apart). Reported: wall time of `ingestd load`, per-row time, the ratio to CSV, peak RSS of the
ingestd process (VmHWM), file size; and a check that every format gave the same person
counts as CSV.
"""

import argparse
import csv
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "people.yaml"
SCHEMA = HERE.parent / "config" / "examples" / "ice" / "schema.sql"

from harness import Bench  # noqa: E402

# Where each CSV column lives in the JSON Lines twin: nested, as exports from web apps are.
PATHS = {"Cedula": "person.cedula", "Nombre": "person.name.first", "Apellido": "person.name.last",
         "Email": "person.contact.email", "Telefono": "person.contact.phone",
         "Fecha de nacimiento": "person.birth_date", "Direccion": "address"}



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
        b = Bench(tmp, a.chunk_rows, a.pg_defaults)
        cfg = Path(tmp) / "formats.yaml"
        cfg.write_text(config_text())
        try:
            runs = [b.load(f, cfg, b.database(SCHEMA.read_text()), files[f],
                           "people_jsonl" if f.startswith("jsonl") else "people") for f in formats]
        finally:
            b.stop()
    print(f"\n{a.rows:,} bench people, chunk_rows {a.chunk_rows}, {b.settings}\n")
    base = next((r for r in runs if r["label"] == "csv"), runs[0])
    print(f"| input | file MiB | load s | µs/row | vs {base['label']} | peak RSS MiB | inserted / updated / review |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in runs:
        c = r["counts"]["person"]
        print(f"| {r['label']} | {r['bytes'] / 2**20:.1f} | {r['seconds']:.1f} | {r['seconds'] / a.rows * 1e6:.0f} | "
              f"{r['seconds'] / base['seconds']:.2f}× | {r['rss_mib']} | "
              f"{c['inserted']} / {c['updated']} / {c['review']} |")
    same = all(r["counts"]["person"] == runs[0]["counts"]["person"] for r in runs)
    print(f"\nsame person counts in every format: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
