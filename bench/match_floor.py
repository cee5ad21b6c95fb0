#!/usr/bin/python3
"""The SQL floor of matching through the target's own indexes: what PostgreSQL alone needs for
the work every load of issue 14's contract must do, next to `\\copy` and ingestd in one run.

    /usr/bin/python3 bench/match_floor.py [--rows 1000000] [--chunk-rows 25000] [--pg-defaults]
                                          [--seed 1] [--no-ingestd] [--profile]

Steps, on one throwaway PostgreSQL (tuned as bench/driver.py tunes it unless --pg-defaults):
 0. bench/generate_people.py makes the messy file of bench/driver.py (same seed, same knobs).
    Untimed: the file is loaded into a text table, normalized in SQL the way bench/people.yaml
    normalizes it (placeholders NULL, cédula digits, e-mail lowercased, phone +57…, the two
    date formats) and written back out as chunk files of --chunk-rows rows, each row with its
    row number and its three name keys (ingestd.name_key) already made, as the engine makes them
    in C++.
 1. yardstick: psql `\\copy` of the raw file into bench_copy, exactly bench/driver.py's step 1.
 2. floor, new file: into floor_persons (the columns of public.persons that the dataset fills,
    a bigserial key, and the four tier indexes `ingestd check --create-indexes` makes: (cedula),
    (email), (birth_date, name_key(first_name), name_key(last_name)), (phone, name_key(first_name),
    name_key(last_name))), chunk by chunk in one transaction each: COPY the chunk into a temp
    staging table; probe every present key of every row through the index of its tier (one
    `LATERAL … LIMIT 64` per key, as the engine does); insert the rows no key found; write one
    lineage row for the chunk (its row numbers and record ids as arrays). No normalizing in C++,
    no deciding, no review, no merge: less than the contract asks.
 3. floor, the same rows again: the same chunks into the table step 2 filled: COPY, the probes,
    and the fetch of every record hit (its whole row, sent to the client, which must compare it
    with the row to know updated from unchanged); one lineage row per chunk.
 4. unless --no-ingestd: ingestd's steps 3 and 4 of bench/driver.py (a new file, the same rows
    again) on the same cluster, checked against the generator's truth as the driver checks them.
Reported: seconds and ratios to step 1 for each step (INGESTD_BIN picks the binary), the
daemon's own time per engine step (its ingestd_db_query_duration_seconds_sum per op, from
/metrics before and after each load); with --profile, the server time per statement kind of the
ingestd steps (every statement logged, which slows them down).
"""

import argparse
import os
import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import driver  # noqa: E402  (the benchmark's cluster, generator, daemon and checks)
from driver import COLS, ICE, Bench, generate, log  # noqa: E402

import psycopg2  # noqa: E402

NK = "ingestd.name_key"
OP_SUM = re.compile(r'^ingestd_db_query_duration_seconds_sum\{[^}]*op="([^"]+)"[^}]*\} ([0-9.e+-]+)$', re.M)


def op_seconds(bench):
    """The daemon's own time per engine step so far: ingestd_db_query_duration_seconds_sum{op};
    and, as "daemon CPU", the CPU seconds of all its threads (user + system, /proc/PID/stat),
    which the machine's other load moves less than wall time."""
    with urllib.request.urlopen(f"http://127.0.0.1:{bench.http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for op, v in OP_SUM.findall(text):
        out[op] = out.get(op, 0.0) + float(v)
    fields = Path(f"/proc/{bench.daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
    out["daemon CPU"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out
# The chunk files' columns: the row number, the stored values, the name keys the probes use.
STAGE_COLS = ["rn", "cedula", "email", "phone", "first_name", "last_name", "birth_date", "address",
              "k_first", "k_last"]


def prepare_chunks(bench, csv_path, chunk_rows, out_dir):
    """Untimed: the raw file normalized in SQL and cut into chunk files of STAGE_COLS."""
    cols = ", ".join(f"{c} text" for c in COLS)
    bench.sql(f"DROP TABLE IF EXISTS floor_raw; CREATE UNLOGGED TABLE floor_raw (rn bigserial, {cols})")
    r = bench.psql("-c", f"\\copy floor_raw ({', '.join(COLS)}) FROM '{csv_path}' WITH (FORMAT csv, HEADER true)")
    if r.returncode:
        raise RuntimeError(r.stderr)
    ph = "('n/a', 'sin correo', '0000000000')"

    def nul(c):
        return f"CASE WHEN lower(btrim({c})) IN {ph} OR btrim({c}) = '' THEN NULL ELSE btrim({c}) END"

    bench.sql(f"""
      DROP TABLE IF EXISTS floor_norm;
      CREATE UNLOGGED TABLE floor_norm AS
      SELECT rn,
             nullif(CASE WHEN length(regexp_replace({nul('cedula')}, '[^0-9]', '', 'g')) >= 5
                         THEN regexp_replace({nul('cedula')}, '[^0-9]', '', 'g') END, '') AS cedula,
             CASE WHEN {nul('email')} ~ '^[^@ ]+@[^@ ]+\\.[^@ ]+$' THEN lower({nul('email')}) END AS email,
             CASE WHEN length(regexp_replace({nul('telefono')}, '[^0-9]', '', 'g')) = 10
                    THEN '+57' || regexp_replace({nul('telefono')}, '[^0-9]', '', 'g')
                  WHEN regexp_replace({nul('telefono')}, '[^0-9]', '', 'g') ~ '^57[0-9]{{10}}$'
                    THEN '+' || regexp_replace({nul('telefono')}, '[^0-9]', '', 'g') END AS phone,
             {nul('nombre')} AS first_name, {nul('apellido')} AS last_name,
             CASE WHEN fecha_nacimiento ~ '^[0-9]{{2}}/[0-9]{{2}}/[0-9]{{4}}$' THEN to_date(fecha_nacimiento, 'DD/MM/YYYY')
                  WHEN fecha_nacimiento ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN to_date(fecha_nacimiento, 'YYYY-MM-DD')
             END AS birth_date,
             direccion AS address,
             {NK}({nul('nombre')}) AS k_first, {NK}({nul('apellido')}) AS k_last
      FROM floor_raw""")
    n = bench.sql("SELECT count(*) FROM floor_norm")[0][0]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for first in range(1, n + 1, chunk_rows):
        f = out_dir / f"chunk_{first:09d}.tsv"
        r = bench.psql("-c", f"\\copy (SELECT {', '.join(STAGE_COLS)} FROM floor_norm WHERE rn BETWEEN {first} AND "
                             f"{first + chunk_rows - 1} ORDER BY rn) TO '{f}'")
        if r.returncode:
            raise RuntimeError(r.stderr)
        files.append(f)
    bench.sql("DROP TABLE floor_raw, floor_norm")
    return files


def make_floor_table(bench):
    bench.sql(f"""
      DROP TABLE IF EXISTS floor_persons, floor_lineage;
      CREATE TABLE floor_persons (id bigserial PRIMARY KEY, cedula text, email text, phone text, first_name text,
                                  last_name text, birth_date date, address text, batch_id uuid);
      CREATE INDEX ON floor_persons (cedula);
      CREATE INDEX ON floor_persons (email);
      CREATE INDEX ON floor_persons (birth_date, {NK}(first_name), {NK}(last_name));
      CREATE INDEX ON floor_persons (phone, {NK}(first_name), {NK}(last_name));
      CREATE TABLE floor_lineage (batch_id uuid, first_row bigint, last_row bigint, row_numbers bigint[],
                                  record_ids text[]);
      CREATE INDEX ON floor_lineage (batch_id, first_row);""")


PROBE = f"""
  INSERT INTO floor_hits
  SELECT p.rn, x.id FROM floor_stage p CROSS JOIN LATERAL
    (SELECT t.id FROM floor_persons t WHERE t.cedula = p.cedula LIMIT 64) x WHERE p.cedula IS NOT NULL
  UNION ALL
  SELECT p.rn, x.id FROM floor_stage p CROSS JOIN LATERAL
    (SELECT t.id FROM floor_persons t WHERE t.email = p.email LIMIT 64) x WHERE p.email IS NOT NULL
  UNION ALL
  SELECT p.rn, x.id FROM floor_stage p CROSS JOIN LATERAL
    (SELECT t.id FROM floor_persons t WHERE t.birth_date = p.birth_date AND {NK}(t.first_name) = p.k_first
       AND {NK}(t.last_name) = p.k_last LIMIT 64) x
    WHERE p.birth_date IS NOT NULL AND p.k_first IS NOT NULL AND p.k_last IS NOT NULL
  UNION ALL
  SELECT p.rn, x.id FROM floor_stage p CROSS JOIN LATERAL
    (SELECT t.id FROM floor_persons t WHERE t.phone = p.phone AND {NK}(t.first_name) = p.k_first
       AND {NK}(t.last_name) = p.k_last LIMIT 64) x
    WHERE p.phone IS NOT NULL AND p.k_first IS NOT NULL AND p.k_last IS NOT NULL"""


def floor_step(url, files, insert):
    """One transaction per chunk: COPY, probes, then the insert of the rows nothing found (new
    file) or the fetch of the records hit (the same rows again); one lineage row. Seconds."""
    c = psycopg2.connect(url)
    cur = c.cursor()
    cur.execute("SET jit = off")  # as the engine sets it per chunk
    cur.execute("CREATE TEMP TABLE floor_stage (rn bigint, cedula text, email text, phone text, first_name text, "
                "last_name text, birth_date date, address text, k_first text, k_last text) ON COMMIT DELETE ROWS; "
                "CREATE TEMP TABLE floor_hits (rn bigint, id bigint) ON COMMIT DELETE ROWS")
    c.commit()
    fetched = 0
    parts = {}

    def mark(name, t0):
        t1 = time.time()
        parts[name] = parts.get(name, 0.0) + t1 - t0
        return t1

    t = time.time()
    for f in files:
        t0 = time.time()
        with open(f) as fh:
            cur.copy_expert(f"COPY floor_stage ({', '.join(STAGE_COLS)}) FROM STDIN", fh)
        cur.execute("ANALYZE floor_stage")  # as the engine analyzes its staging per chunk
        t0 = mark("copy", t0)
        cur.execute(PROBE)
        t0 = mark("probes", t0)
        if insert:
            cur.execute("WITH ins AS (INSERT INTO floor_persons (cedula, email, phone, first_name, last_name, birth_date, "
                        "address, batch_id) SELECT cedula, email, phone, first_name, last_name, birth_date, address, "
                        "'00000000-0000-0000-0000-000000000001' FROM floor_stage s WHERE NOT EXISTS (SELECT FROM "
                        "floor_hits h WHERE h.rn = s.rn) ORDER BY rn RETURNING id) SELECT count(*) FROM ins")
            fetched += cur.fetchone()[0]
        else:
            cur.execute("SELECT t.* FROM (SELECT DISTINCT id FROM floor_hits) h JOIN LATERAL (SELECT * FROM "
                        "floor_persons t WHERE t.id = h.id OFFSET 0) t ON true")
            fetched += len(cur.fetchall())
        t0 = mark("insert" if insert else "fetch", t0)
        cur.execute("INSERT INTO floor_lineage SELECT '00000000-0000-0000-0000-000000000001', min(rn), max(rn), "
                    "array_agg(rn ORDER BY rn), array_agg(coalesce(h.id::text, '') ORDER BY rn) FROM floor_stage s "
                    "LEFT JOIN (SELECT rn, min(id) AS id FROM floor_hits GROUP BY rn) h USING (rn)")
        c.commit()
        mark("lineage, commit", t0)
    dt = time.time() - t
    c.close()
    log("  " + ", ".join(f"{k} {v:.2f}s" for k, v in parts.items()))
    return dt, fetched


def main():
    ap = argparse.ArgumentParser(description="the SQL floor of matching (see the module doc string)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pg-defaults", action="store_true")
    ap.add_argument("--no-ingestd", action="store_true")
    ap.add_argument("--profile", action="store_true", help="log every statement of the ingestd steps and print the "
                    "server time per statement kind (slows them down)")
    ap.add_argument("--work")
    a = ap.parse_args()
    da = argparse.Namespace(rows=a.rows, chunk_rows=a.chunk_rows, seed=a.seed, pg_defaults=a.pg_defaults,
                            pg_setting=None, work=a.work, dataset="people",
                            kafka_property=["fetch.wait.max.ms=10"], reappear_share=0.2, twin_share=None,
                            common_share=None, family_phone_share=None, placeholder_share=None, floor=False)
    b = Bench(da)
    try:
        csv_path = b.state / "inbox" / f"people_{a.rows}.csv"
        log(f"generating {a.rows} rows")
        truth = generate(csv_path, a.rows, a.seed, 0.2, mess=b.mess(), extra=["--truth-again"])
        b.start_pg()
        b.sql((ICE / "schema.sql").read_text())
        b.write_config()
        b.check_indexes(b.url, "floor")
        files = prepare_chunks(b, csv_path, a.chunk_rows, b.work / "chunks")
        b.sql("CHECKPOINT", url=b.pg.url())
        b.step_copy(csv_path, a.rows)
        copy_s = b.copy_seconds
        b.sql("DROP TABLE bench_copy; CHECKPOINT")
        log(f"\\copy {copy_s:.2f}s")
        make_floor_table(b)
        new_s, inserted = floor_step(b.url, files, insert=True)
        log(f"floor, new file {new_s:.2f}s ({new_s / copy_s:.2f}x), {inserted} rows inserted")
        b.sql("CHECKPOINT")
        again_s, fetched = floor_step(b.url, files, insert=False)
        log(f"floor, same rows again {again_s:.2f}s ({again_s / copy_s:.2f}x), {fetched} records fetched")
        out = [("1. psql \\copy (yardstick)", copy_s), ("2. floor: new file", new_s),
               ("3. floor: the same rows again", again_s)]
        b.sql("DROP TABLE floor_persons, floor_lineage; CHECKPOINT")
        if not a.no_ingestd:
            b.start_broker()
            b.start_daemon(b.url)
            b.set_statement_log(a.profile)
            base = b.counts()
            ops = [op_seconds(b)]
            b.ingest_step("4a. ingestd, new file", csv_path, a.rows, b.expect(truth), base)
            ops.append(op_seconds(b))
            again = b.state / "inbox" / f"people_{a.rows}_again.csv"
            again.write_bytes(csv_path.read_bytes() + b"\n")
            base = b.counts()
            b.ingest_step("4b. ingestd, same rows again", again, a.rows, b.expect(truth["again"]), base)
            ops.append(op_seconds(b))
            b.set_statement_log(False)
            for r in b.results[-2:]:
                out.append((r["step"], r["seconds"]))
            for step, cs in b.checks.items():
                for c in cs:
                    if not c["ok"]:
                        print(f"CHECK FAILED {step}: {c['detail']}")
        print(f"\n{a.rows:,} rows, chunks of {a.chunk_rows:,}, settings: {b.settings_kind}: {b.settings}\n")
        print("| step | seconds | vs \\copy |\n|---|---:|---:|")
        for name, s in out:
            print(f"| {name} | {s:.2f} | {s / copy_s:.2f}× |")
        print(f"\nfloor new file: {inserted:,} rows inserted; floor again: {fetched:,} records fetched")
        if not a.no_ingestd:
            print("\nThe daemon's time per engine step (ingestd_db_query_duration_seconds_sum{op}), seconds:\n")
            print("(daemon CPU: its threads' CPU seconds, the reading thread's included; the others are wall time)\n")
            print("| op | 4a. new file | 4b. same rows again |\n|---|---:|---:|")
            for op in sorted(ops[2], key=lambda k: -(ops[2][k] - ops[0].get(k, 0))):
                d1, d2 = ops[1].get(op, 0) - ops[0].get(op, 0), ops[2][op] - ops[1].get(op, 0)
                if d1 + d2 >= 0.05:
                    print(f"| {op} | {d1:.2f} | {d2:.2f} |")
        for label, prof in b.profile.items():
            tot = sum(v["ms"] for v in prof.values())
            print(f"\nServer time per statement kind, {label} (total {tot / 1000:.1f}s):")
            for k, v in list(prof.items())[:12]:
                print(f"  {v['ms'] / 1000:8.2f}s  n={v['n']:<5} {k[:100]}")
    finally:
        b.procs.stop_all()
        if not a.work:
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
