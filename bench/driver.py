#!/usr/bin/python3
"""ingestd throughput and latency benchmark, in one run on one throwaway PostgreSQL.

    /usr/bin/python3 bench/driver.py [--rows N] [--reappear-share 0.2] [--seed S] [--chunk-rows 50000]
                                     [--dataset people|ice_staging] [--latency-events 100] [--with-10m]
                                     [--existing N] [--no-pgloader] [--no-floor] [--work DIR] [--json FILE]
(scripts/bench installs what is missing, builds, then runs this.)

Steps (each on the same PostgreSQL 15 cluster, made by initdb with fsync = off, as the tests do,
with shared_buffers = 2GB and max_wal_size = 8GB unless --pg-setting says otherwise):
 0. bench/generate_people.py makes people_N.csv (ICE `ice_staging` columns) and its truth.
 1. yardstick: psql `\\copy` of the file into bench_copy: the 11 CSV columns as text plus
    `id bigserial PRIMARY KEY`, with btree indexes on cedula, email and (nombre, apellido,
    fecha_nacimiento) -- what the target persons table needs for its identity tiers. \\copy
    does no normalization, matching or merging: it is the floor.
 2. pgloader (the Debian package) of the same file into bench_pgloader, identical to bench_copy.
 3. ingestd end to end: `ingestd embedded-broker` in its own process, `ingestd run` with
    bench/people.yaml (--dataset people, the default: the four-tier person dataset, persons
    only) or config/examples/ice/ice.yaml (--dataset ice_staging: a person, a student and a lead
    from each row), chunk_rows from --chunk-rows, config/examples/ice/schema.sql applied to a
    fresh database, and `ingestd submit file PATH --dataset NAME --wait`: wall time from
    publish to result (the submit command also hashes the file: timed separately and reported).
    Then persons == the generator's distinct people, leads == the same (0 for people),
    review == 0.
 3f. the floor (unless --no-floor): every table step 3 wrote (persons, identity_keys,
    row_lineage, changes; students and leads for ice_staging) copied out and timed back in with
    `\\copy` into an empty table with the same columns and indexes: what PostgreSQL alone needs to
    write what ingestd writes, without reading, matching or merging anything.
 4. the same content under another name with one extra trailing newline (so its sha256
    differs; otherwise it is a duplicate by hash): every row matches, the update path.
 5. only with --with-10m: 10M new people, then a file of 1M rows (1M further people with the
    usual re-appearances among themselves) into that target.
 6. latency: --latency-events files of 10 new people each (distinct content), published one at
    a time (the next after the previous result) and then all at once; publish->result latency
    is result-message timestamp minus event-message timestamp (both Kafka CreateTime, set by
    the producing process on this machine's clock), read back from the topics with kcat.
Peak RSS of the daemon is VmHWM from /proc/PID/status, read before it is stopped.
The server log has every statement's duration (log_min_duration_statement = 0 during the
ingestd steps); a summary per statement kind is printed ("Where the time goes").
Every process started here, and the PostgreSQL cluster, is stopped at the end, also on failure.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Postgres, free_port  # noqa: E402  (the tests' throwaway cluster)

import psycopg2  # noqa: E402

BIN = Path(os.environ.get("INGESTD_BIN", ROOT / "build" / "ingestd"))
# What an operator sets on a server with a few GiB to spare (the PostgreSQL manual suggests
# shared_buffers at a quarter of RAM); PostgreSQL's own defaults (128MB, 1GB) are sized to start
# anywhere, not for bulk loads. --pg-setting adds to or overrides these.
PG_SETTINGS = ["shared_buffers=2GB", "max_wal_size=8GB"]
ICE = ROOT / "config" / "examples" / "ice"
# --dataset: the config each one is in. `people` is the four-tier person dataset (persons
# only); `ice_staging` also derives a student and a lead from each row (three entities).
DATASETS = {"people": HERE / "people.yaml", "ice_staging": ICE / "ice.yaml"}
GEN = HERE / "generate_people.py"
COLS = ["cedula", "nombre", "apellido", "email", "telefono", "fecha_nacimiento", "direccion", "programa",
        "estado", "grado", "school_sf_id"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


DATE_STYLE = "mixed"


def generate(out, rows, seed, reappear, first_person=0, twin_share=None):
    truth = Path(str(out) + ".truth.json")
    cmd = [sys.executable, str(GEN), "--rows", str(rows), "--seed", str(seed), "--reappear-share", str(reappear),
           "--first-person", str(first_person), "--out", str(out), "--truth", str(truth), "--date-style", DATE_STYLE]
    if twin_share is not None:
        cmd += ["--twin-share", str(twin_share)]
    subprocess.run(cmd, check=True)
    return json.loads(truth.read_text())


class Procs:
    """Everything started here, stopped in reverse order."""

    def __init__(self):
        self.stack = []

    def push(self, name, stop):
        self.stack.append((name, stop))

    def stop_all(self):
        while self.stack:
            name, stop = self.stack.pop()
            try:
                stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {name}: {e}")


def stop_popen(p, sig=signal.SIGTERM, timeout=60):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = Procs()
        self.work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="ingestd-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.state = self.work / "state"
        (self.state / "inbox").mkdir(parents=True, exist_ok=True)
        self.results = []      # table rows
        self.notes = []
        self.profile = {}

    # ------------------------------------------------------------------ infrastructure
    def start_pg(self):
        self.pg = Postgres()
        self.procs.push("postgres", self.pg.stop)
        # Server settings apply to every step alike (the yardstick included); shared_buffers
        # needs a restart.
        settings = dict(kv.split("=", 1) for kv in PG_SETTINGS + (self.a.pg_setting or []))
        for k, v in settings.items():
            self.sql(f"ALTER SYSTEM SET {k} = %s", (v,), url=self.pg.url())
        self.pg._run([str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), "-l", str(self.pg.log), "-w",
                      "restart"])
        self.settings = self.sql("SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY "
                                 "name) FROM pg_settings WHERE name = ANY(%s)",
                                 (["fsync", "shared_buffers", "max_wal_size", "work_mem"],), url=self.pg.url())[0][0]
        self.notes.append(f"server settings: {self.settings}")
        log(f"PostgreSQL on port {self.pg.port} ({self.pg.dir}): {self.settings}")
        self.db = self.pg.create_db()
        self.url = self.pg.url(self.db)

    def sql(self, q, args=None, url=None):
        c = psycopg2.connect(url or self.url)
        c.autocommit = True
        cur = c.cursor()
        cur.execute(q, args)
        rows = cur.fetchall() if cur.description else None
        c.close()
        return rows

    def psql(self, *args, url=None):
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url or self.url, *args],
                              capture_output=True, text=True)

    def set_statement_log(self, on):
        self.sql(f"ALTER SYSTEM SET log_min_duration_statement = {0 if on else -1}", url=self.pg.url())
        self.sql("SELECT pg_reload_conf()", url=self.pg.url())
        time.sleep(0.3)

    def log_offset(self):
        return self.pg.log.stat().st_size if self.pg.log.exists() else 0

    def start_broker(self):
        addr = self.work / "broker.address"
        self.broker = subprocess.Popen([str(BIN), "embedded-broker", "--address-file", str(addr)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.push("broker", lambda: stop_popen(self.broker, timeout=10))
        self.bootstrap = self.broker.stdout.readline().strip()
        if not self.bootstrap:
            raise RuntimeError("embedded broker did not start")
        # drain its output so it never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.broker.stdout], daemon=True).start()
        log(f"embedded broker at {self.bootstrap}")

    def daemon_env(self, db_url):
        self.http_port = free_port()
        return dict(os.environ, INGESTD_BROKERS=self.bootstrap, INGESTD_GROUP="ingestd-bench",
                    INGESTD_STATE=str(self.state), INGESTD_DATABASE_URL=db_url,
                    INGESTD_HTTP=f"127.0.0.1:{self.http_port}", INGESTD_CHUNK_ROWS=str(self.a.chunk_rows))

    def start_daemon(self, db_url):
        self.config = self.work / DATASETS[self.a.dataset].name
        text = DATASETS[self.a.dataset].read_text()
        if self.a.kafka_property:
            props = "".join(f"\n    {k}: \"{v}\"" for k, v in (kv.split("=", 1) for kv in self.a.kafka_property))
            text = text.replace("  group_id: ${INGESTD_GROUP}\n", "  group_id: ${INGESTD_GROUP}\n  properties:" + props + "\n", 1)
        self.config.write_text(text)
        self.env = self.daemon_env(db_url)
        self.dlog = open(self.work / "ingestd.log", "ab")
        self.daemon = subprocess.Popen([str(BIN), "run", "-c", str(self.config)], env=self.env,
                                       stdout=self.dlog, stderr=subprocess.STDOUT)
        self.procs.push("ingestd", lambda: stop_popen(self.daemon))
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError("ingestd exited; see " + str(self.work / "ingestd.log"))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        log(f"ingestd ready (pid {self.daemon.pid})")
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("ingestd not ready in 60s")

    def daemon_rss(self):
        out = {}
        for line in Path(f"/proc/{self.daemon.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) // 1024   # MiB
        return out

    # ------------------------------------------------------------------ steps
    def make_yard_table(self, name):
        cols = ", ".join(f"{c} text" for c in COLS)
        self.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigserial PRIMARY KEY, {cols});"
                 f"CREATE INDEX ON {name} (cedula); CREATE INDEX ON {name} (email);"
                 f"CREATE INDEX ON {name} (nombre, apellido, fecha_nacimiento);")

    def step_copy(self, csv_path, rows):
        self.make_yard_table("bench_copy")
        t = time.time()
        r = self.psql("-c", f"\\copy bench_copy ({', '.join(COLS)}) FROM '{csv_path}' WITH (FORMAT csv, HEADER true)")
        dt = time.time() - t
        if r.returncode:
            raise RuntimeError("\\copy failed: " + r.stderr)
        n = self.sql("SELECT count(*) FROM bench_copy")[0][0]
        self.add("1. psql \\copy (yardstick)", rows, dt, f"{n} rows in table")
        self.copy_seconds = dt

    def step_pgloader(self, csv_path, rows):
        if self.a.no_pgloader:
            self.add("2. pgloader", rows, None, "skipped (--no-pgloader)")
            return
        if not shutil.which("pgloader"):
            self.add("2. pgloader", rows, None, "pgloader not installed")
            return
        self.make_yard_table("bench_pgloader")
        load = self.work / "pgloader.load"
        load.write_text(
            f"LOAD CSV FROM '{csv_path}' ({', '.join(COLS)})\n"
            f"  INTO {self.url}?tablename=bench_pgloader ({', '.join(COLS)})\n"
            "  WITH skip header = 1, fields optionally enclosed by '\"', fields escaped by double-quote,\n"
            "       fields terminated by ','\n"
            "  SET client_encoding to 'utf8';\n")
        t = time.time()
        r = subprocess.run(["pgloader", "--no-ssl-cert-verification", str(load)], capture_output=True, text=True,
                           cwd=self.work)
        dt = time.time() - t
        (self.work / "pgloader.out").write_text(r.stdout + r.stderr)
        n = self.sql("SELECT count(*) FROM bench_pgloader")[0][0]
        if r.returncode or n != rows:
            tail = (r.stdout + r.stderr).strip().splitlines()[-8:]
            self.add("2. pgloader", rows, dt if n == rows else None,
                     f"exit {r.returncode}, {n} rows loaded; " + " | ".join(tail)[:400])
        else:
            self.add("2. pgloader", rows, dt, f"{n} rows in table")

    def submit(self, path, timeout=7200):
        """publish with `ingestd submit file --wait`; returns (wall seconds, result dict, hash seconds)."""
        t = time.time()
        hashlib.sha256(Path(path).read_bytes()).hexdigest()
        hash_s = time.time() - t
        t = time.time()
        r = subprocess.run([str(BIN), "submit", "file", str(path), "--dataset", self.a.dataset, "-c", str(self.config),
                            "--wait", "--timeout", str(timeout), "--source-system", "bench"],
                           env=self.env, capture_output=True, text=True)
        dt = time.time() - t
        try:
            res = json.loads(r.stdout)
        except ValueError:
            res = {"status": "no result", "stderr": r.stderr[-2000:], "rc": r.returncode}
        return dt, res, hash_s

    def counts(self):
        q = self.sql("SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM leads), "
                     "(SELECT count(*) FROM students), (SELECT count(*) FROM ingestd.review_queue), "
                     "(SELECT count(*) FROM ingestd.row_errors)")[0]
        return dict(zip(["persons", "leads", "students", "review", "row_errors"], q))

    def batch_times(self, batch_id):
        r = self.sql("SELECT extract(epoch FROM finished_at - started_at), rows_total, inserted, updated, unchanged, "
                     "rejected, review FROM ingestd.batches WHERE id = %s", (batch_id,))
        return r[0] if r else None

    def ingest_step(self, label, path, rows, expect_people, expect_leads):
        off = self.log_offset()
        dt, res, hash_s = self.submit(path)
        prof = self.summarize_log(off)
        self.profile[label] = prof
        c = self.counts()
        bt = self.batch_times(res.get("batch_id")) if res.get("batch_id") else None
        rss = self.daemon_rss() if self.daemon.poll() is None else {}
        ok = (res.get("status") in ("completed", "completed_with_rejects") and c["persons"] == expect_people
              and c["leads"] == expect_leads and c["review"] == 0)
        pc = res.get("counts", {}).get("person") if isinstance(res.get("counts"), dict) else None
        note = (f"status {res.get('status')}; persons {c['persons']} (truth {expect_people}), leads {c['leads']} "
                f"(truth {expect_leads}), students {c['students']}, review {c['review']}, row_errors {c['row_errors']}; "
                f"person counts {json.dumps(pc)}; batch started->finished {bt[0]:.1f}s" if bt else
                f"status {res.get('status')}; {json.dumps(res)[:600]}")
        note += f"; sha256 of the file {hash_s:.2f}s (inside the wall time); daemon VmHWM {rss.get('VmHWM')} MiB"
        self.add(label, rows, dt, ("OK " if ok else "CHECK FAILED ") + note, rss=rss.get("VmHWM"), ok=ok)
        log(label, f"{dt:.1f}s", res.get("status"), c)
        return res

    # ------------------------------------------------------------------ latency
    def step_latency(self):
        n = self.a.latency_events
        if n <= 0:
            return
        files = []
        base = 50_000_000   # people numbers far from the throughput files'
        for i in range(2 * n):
            p = self.state / "inbox" / f"small_{i:03d}.csv"
            subprocess.run([sys.executable, str(GEN), "--rows", "10", "--seed", str(self.a.seed), "--reappear-share", "0",
                            "--twin-share", "0", "--first-person", str(base + 10 * i), "--out", str(p)],
                           check=True, stderr=subprocess.DEVNULL)
            files.append(p)
        cons = subprocess.Popen(["kcat", "-b", self.bootstrap, "-C", "-t", "ingest.results", "-o", "end", "-J", "-u", "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.push("kcat consumer", lambda: stop_popen(cons, timeout=5))
        time.sleep(2)   # let the consumer reach the end of the topic
        seen = {}
        lock = threading.Condition()

        def reader():
            for line in cons.stdout:
                try:
                    m = json.loads(line)
                    pl = json.loads(m["payload"])
                except (ValueError, KeyError, TypeError):
                    continue
                with lock:
                    seen[pl.get("event_id")] = (m.get("ts"), pl)
                    lock.notify_all()
        threading.Thread(target=reader, daemon=True).start()

        def event(p):
            data = p.read_bytes()
            return {"event_id": str(uuid.uuid4()), "type": "file.arrived", "dataset": self.a.dataset,
                    "uri": f"file://{p}", "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
                    "source_system": "bench", "submitted_by": "bench"}

        def publish(evs):
            payload = "".join(json.dumps(e) + "\n" for e in evs)
            subprocess.run(["kcat", "-b", self.bootstrap, "-P", "-t", "ingest.files", "-k", self.a.dataset],
                           input=payload, text=True, check=True, timeout=60)

        def wait(ids, timeout):
            deadline = time.time() + timeout
            with lock:
                while not all(i in seen for i in ids) and time.time() < deadline:
                    lock.wait(0.5)
            return all(i in seen for i in ids)

        modes = {}
        seq = [event(p) for p in files[:n]]
        for e in seq:
            publish([e])
            if not wait([e["event_id"]], 120):
                raise RuntimeError("latency: no result for " + e["event_id"])
        modes["one at a time"] = seq
        burst = [event(p) for p in files[n:]]
        publish(burst)
        if not wait([e["event_id"] for e in burst], 600):
            raise RuntimeError("latency: burst results missing")
        modes[f"{n} at once"] = burst
        # event timestamps from the files topic
        out = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", "ingest.files", "-o", "beginning", "-e", "-J",
                              "-q"], capture_output=True, text=True, timeout=60)
        ev_ts = {}
        for line in out.stdout.splitlines():
            try:
                m = json.loads(line)
                ev_ts[json.loads(m["payload"])["event_id"]] = m["ts"]
            except (ValueError, KeyError, TypeError):
                pass
        self.latency = {}
        for mode, evs in modes.items():
            lat = sorted(seen[e["event_id"]][0] - ev_ts[e["event_id"]] for e in evs)
            statuses = defaultdict(int)
            for e in evs:
                statuses[seen[e["event_id"]][1].get("status")] += 1
            q = statistics.quantiles(lat, n=100, method="inclusive")
            self.latency[mode] = {"n": len(lat), "p50_ms": q[49], "p99_ms": q[98], "max_ms": lat[-1],
                                  "min_ms": lat[0], "statuses": dict(statuses)}
            log("latency", mode, self.latency[mode])

    # ------------------------------------------------------------------ statement log
    def summarize_log(self, offset):
        """Total duration per statement kind in the server log from offset on."""
        if not self.pg.log.exists():
            return {}
        with open(self.pg.log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        kinds = defaultdict(lambda: [0, 0.0])
        pat = re.compile(r"LOG:  duration: ([0-9.]+) ms  (?:statement|execute [^:]*|parse [^:]*|bind [^:]*): (.*)")
        for line in text.splitlines():
            m = pat.search(line)
            if not m:
                continue
            ms, stmt = float(m.group(1)), m.group(2)
            k = statement_kind(stmt)
            kinds[k][0] += 1
            kinds[k][1] += ms
        return {k: {"n": v[0], "ms": round(v[1], 1)} for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][1])}

    # ------------------------------------------------------------------ bookkeeping
    def add(self, label, rows, seconds, note, rss=None, ok=None):
        self.results.append({"step": label, "rows": rows, "seconds": seconds, "note": note, "rss_mib": rss, "ok": ok})

    def report(self):
        cs = getattr(self, "copy_seconds", None)
        print()
        print(f"| step | rows | seconds | rows/s | time vs \\copy | peak RSS (MiB) |")
        print(f"|---|---:|---:|---:|---:|---:|")
        for r in self.results:
            s = r["seconds"]
            rate = f"{r['rows'] / s:,.0f}" if s else "-"
            ratio = f"{s / cs:.1f}x" if s and cs else "-"
            print(f"| {r['step']} | {r['rows']:,} | {s:.2f} | {rate} | {ratio} | {r['rss_mib'] or ''} |"
                  if s else f"| {r['step']} | {r['rows']:,} | - | - | - | |")
        print()
        for r in self.results:
            print(f"- {r['step']}: {r['note']}")
        if getattr(self, "latency", None):
            print()
            print("| latency mode | events | p50 ms | p99 ms | min ms | max ms | statuses |")
            print("|---|---:|---:|---:|---:|---:|---|")
            for mode, l in self.latency.items():
                print(f"| {mode} | {l['n']} | {l['p50_ms']:.0f} | {l['p99_ms']:.0f} | {l['min_ms']:.0f} | "
                      f"{l['max_ms']:.0f} | {l['statuses']} |")
        for label, prof in self.profile.items():
            tot = sum(v["ms"] for v in prof.values())
            print(f"\nServer time per statement kind, {label} (total {tot / 1000:.1f}s):")
            for k, v in list(prof.items())[:14]:
                print(f"  {v['ms'] / 1000:8.2f}s {100 * v['ms'] / tot if tot else 0:5.1f}%  n={v['n']:<5} {k}")
        for n in self.notes:
            print("note:", n)

    # ------------------------------------------------------------------ the run
    def run(self):
        a = self.a
        csv_path = self.state / "inbox" / f"people_{a.rows}.csv"
        log(f"generating {a.rows} rows -> {csv_path}")
        t = time.time()
        truth = generate(csv_path, a.rows, a.seed, a.reappear_share)
        log(f"generated in {time.time() - t:.0f}s: {truth['distinct_people']} distinct people")
        self.truth = truth
        self.start_pg()
        self.sql((ICE / "schema.sql").read_text())
        self.step_copy(csv_path, a.rows)
        log("copy", f"{self.copy_seconds:.1f}s")
        self.step_pgloader(csv_path, a.rows)
        log("pgloader", self.results[-1]["seconds"], self.results[-1]["note"][:200])
        self.sql("DROP TABLE bench_copy, bench_pgloader" if self.sql(
            "SELECT to_regclass('bench_pgloader')")[0][0] else "DROP TABLE bench_copy")
        self.start_broker()
        self.start_daemon(self.url)
        self.set_statement_log(True)
        people = truth["distinct_people"]
        leads = self.leads_per_person() * people
        self.ingest_step("3. ingestd, new file", csv_path, a.rows, people, leads)
        if a.floor:
            self.step_floor()
        again = self.state / "inbox" / f"people_{a.rows}_again.csv"
        again.write_bytes(csv_path.read_bytes() + b"\n")
        self.ingest_step("4. ingestd, same rows again (update path)", again, a.rows, people, leads)
        self.set_statement_log(False)
        if a.with_10m and not a.existing:
            a.existing = 10_000_000
        if a.existing:
            self.step_existing(a.existing)
        try:
            self.step_latency()
        except Exception as e:
            self.notes.append(f"latency step failed: {e}")
        self.final_rss = self.daemon_rss()

    def step_existing(self, n):
        """n new people preloaded through ingestd, then a file of --rows rows of further people:
        compared with step 3 (the same number of rows into an empty target)."""
        a = self.a
        big = self.state / "inbox" / f"people_existing_{n}.csv"
        tn = generate(big, n, a.seed + 1, 0.0, first_person=100_000_000)
        base = self.counts()
        dt, res, _ = self.submit(big, timeout=6 * 3600)
        self.add(f"5a. ingestd, preload {n:,} new people", n, dt, f"status {res.get('status')}; {self.counts()}")
        more = self.state / "inbox" / "people_more.csv"
        t1 = generate(more, a.rows, a.seed + 1, a.reappear_share, first_person=100_000_000 + n)
        self.ingest_step(f"5b. ingestd, {a.rows:,} rows into {n:,} existing people", more, a.rows,
                         base["persons"] + tn["distinct_people"] + t1["distinct_people"],
                         base["leads"] + self.leads_per_person() * (tn["distinct_people"] + t1["distinct_people"]))

    def leads_per_person(self):
        """ice_staging makes one lead per person (Programa is fixed per person); people none."""
        return 1 if self.a.dataset == "ice_staging" else 0

    def step_floor(self):
        """What PostgreSQL alone needs to write what step 3 wrote: each table the load wrote
        (the targets, identity_keys, row_lineage, changes) copied out, then timed back in with
        `\\copy` into an empty table with the same columns and indexes. No reading, normalizing,
        matching or merging: the floor for this bookkeeping, next to the yardstick's one table."""
        tables = ["public.persons", "public.students", "public.leads", "ingestd.identity_keys",
                  "ingestd.row_lineage", "ingestd.changes"]
        total, parts = 0.0, []
        for t in tables:
            n = self.sql(f"SELECT count(*) FROM {t}")[0][0]
            if not n:
                continue
            f = self.work / "floor.copy"
            r = self.psql("-c", f"\\copy {t} TO '{f}'")
            if r.returncode:
                raise RuntimeError(r.stderr)
            self.sql("DROP TABLE IF EXISTS bench_floor; "
                     f"CREATE TABLE bench_floor (LIKE {t} INCLUDING DEFAULTS INCLUDING INDEXES)")
            t0 = time.time()
            r = self.psql("-c", f"\\copy bench_floor FROM '{f}'")
            dt = time.time() - t0
            if r.returncode:
                raise RuntimeError(r.stderr)
            total += dt
            parts.append(f"{t} {n:,} rows {dt:.2f}s")
            f.unlink()
        self.sql("DROP TABLE IF EXISTS bench_floor")
        self.add("3f. \\copy of what step 3 wrote (floor)", self.a.rows, total, "; ".join(parts))


def statement_kind(stmt):
    s = re.sub(r"\s+", " ", stmt).strip()
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\b\d+\b", "N", s)
    m = re.match(r"(CREATE TEMP TABLE \w+|INSERT INTO [\w.\"]+|UPDATE [\w.\"]+|DELETE FROM [\w.\"]+|COPY [\w.\"]+|"
                 r"SELECT pg_\w+|SELECT|DROP TABLE|BEGIN|COMMIT|ROLLBACK|SET \w+|ANALYZE|[A-Z]+)", s)
    head = m.group(1) if m else s[:40]
    if head in ("SELECT", "UPDATE ingestd_res", "DELETE FROM ingestd_cand"):
        head = s[:70]
    return head


def main():
    ap = argparse.ArgumentParser(description="ingestd benchmark (see the module doc string)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reappear-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--latency-events", type=int, default=100)
    ap.add_argument("--with-10m", action="store_true", help="step 5 with --existing 10000000 (hours)")
    ap.add_argument("--existing", type=int, default=0,
                    help="step 5: preload this many new people through ingestd, then --rows rows more")
    ap.add_argument("--no-pgloader", action="store_true")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="people",
                    help="people: persons only, four tiers (the default); ice_staging: persons, students, leads")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip step 3f (\\copy of the rows step 3 wrote)")
    ap.add_argument("--pg-setting", action="append", metavar="KEY=VALUE",
                    help="a server setting for the cluster, after the defaults " + ", ".join(PG_SETTINGS) +
                    " (e.g. shared_buffers=128MB for PostgreSQL's own default)")
    ap.add_argument("--kafka-property", action="append", metavar="KEY=VALUE",
                    help="a librdkafka property for the daemon (kafka.properties), e.g. fetch.wait.max.ms=10")
    ap.add_argument("--work", help="working directory (default: a new temporary one, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--date-style", choices=["mixed", "dmy"], default="mixed",
                    help="birth-date formats in the generated file (generate_people.py --date-style)")
    a = ap.parse_args()
    global DATE_STYLE
    DATE_STYLE = a.date_style
    b = Bench(a)
    rc = 0

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # SIGTERM and SIGINT (also when started in the background, where SIGINT is ignored) stop
    # the run through the cleanup below.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        b.run()
    except (Exception, KeyboardInterrupt) as e:
        log("FAILED:", repr(e))
        b.notes.append(f"run failed or interrupted: {e!r}")
        rc = 1
    finally:
        b.procs.stop_all()
        b.report()
        if a.json:
            Path(a.json).write_text(json.dumps({"results": b.results, "latency": getattr(b, "latency", None),
                                                "profile": b.profile, "truth": getattr(b, "truth", None),
                                                "notes": b.notes}, indent=1))
        if not a.keep and not a.work:
            shutil.rmtree(b.work, ignore_errors=True)
        else:
            log("work directory kept:", b.work)
    if any(r["ok"] is False for r in b.results):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
