#!/usr/bin/python3
"""ingestd throughput and latency benchmark, in one run on one throwaway PostgreSQL.

    /usr/bin/python3 bench/driver.py [--rows N] [--reappear-share 0.2] [--seed S] [--chunk-rows 50000]
                                     [--dataset people|ice_staging] [--latency-events 100] [--with-10m]
                                     [--existing N] [--no-pgloader] [--no-floor] [--pg-defaults]
                                     [--common-share F] [--family-phone-share F] [--placeholder-share F]
                                     [--work DIR] [--json FILE]
(scripts/bench installs what is missing, builds, then runs this.)

Steps (each on the same PostgreSQL 15 cluster, made by initdb with fsync = off, as the tests do,
with shared_buffers = 2GB and max_wal_size = 8GB -- the "tuned" settings -- unless --pg-defaults
leaves PostgreSQL's defaults; --pg-setting adds to either):
 0. bench/generate_people.py makes people_N.csv (ICE `ice_staging` columns), messy by default
    (common names, shared family phones, placeholders; see its doc string), and its truth under
    ingestd's rules: the records and review rows a correct ingestd makes, for the file and for
    the same file again on top (--truth-again), next to the true number of humans.
 *. config/examples/ice/schema.sql, then `ingestd check --create-indexes -c CONFIG` (it applies
    the bookkeeping migrations, name_key among them, and makes one btree per identity tier on
    the targets), before any step.
 1. yardstick: psql `\\copy` of the file into bench_copy: the 11 CSV columns as text plus
    `id bigserial PRIMARY KEY`, with the index shapes ingestd made on persons: (cedula), (email),
    (ingestd.name_key(nombre), ingestd.name_key(apellido), fecha_nacimiento) and
    (ingestd.name_key(nombre), ingestd.name_key(apellido), telefono). \\copy does no
    normalization, matching or merging: it is the floor.
 2. pgloader (the Debian package) of the same file into bench_pgloader, identical to bench_copy.
 3. ingestd end to end: `ingestd embedded-broker` in its own process, `ingestd run` with
    bench/people.yaml (--dataset people, the default: the four-tier person dataset, persons
    only) or config/examples/ice/ice.yaml (--dataset ice_staging: a person, a student and a lead
    from each row), chunk_rows from --chunk-rows; once /readyz answers 200 and /status shows the
    daemon's partitions assigned (joining the consumer group takes the mock cluster about 3 s
    after start; until the thirteenth session the first file's time included it), `ingestd submit
    file PATH --dataset NAME --wait`: wall time from publish to result (the submit command also hashes the file: timed
    separately and reported). Checks: persons == the truth's expected records; the batch's
    person counts: inserted == expected records, updated + unchanged == expected merges (and per
    tier), review == expected review rows, rejected == 0, and for every entity inserted +
    updated + unchanged + rejected + review (+ skipped) == rows; the review queue grew by the
    expected review rows; for ice_staging, leads == the truth's (record, Programa) pairs.
    The daemon logs a line per chunk; min / median / max of those times are reported per step,
    flagged when the slowest chunk took more than 3x the median.
 3f. the floor (unless --no-floor): every table step 3 wrote (persons, identity_keys, lineage,
    changes, review_queue; students and leads for ice_staging) copied out and timed back in with
    `\\copy` into an empty table with the same columns and indexes: what PostgreSQL alone needs
    to write what ingestd writes, without reading, matching or merging anything.
 4. the same content under another name with one extra trailing newline (so its sha256
    differs; otherwise it is a duplicate by hash): every row matches, the update path. Checked
    against the truth of the file loaded again (no new record; rows that now match two records
    go to review).
 5. only with --existing N (--with-10m: N = 10,000,000): a fresh embedded broker and database;
    the generator writes N existing people as already-normalized persons rows, `\\copy`'d into
    public.persons (5a), then `ingestd check --create-indexes` builds the tier indexes over them
    (5a'), then a daemon loads a file of --rows rows of which --existing-share are existing
    people and the rest new (5b). Checked like step 3: persons == N + the truth's records.
 6. latency: --latency-events files of 10 new people each (distinct content, no messiness),
    published one at a time (the next after the previous result) and then all at once;
    publish->result latency is result-message timestamp minus event-message timestamp (both Kafka
    CreateTime, set by the producing process on this machine's clock), read back from the topics
    with kcat. Runs on the last daemon (after step 5 when there is one).
Peak RSS of the daemon is VmHWM from /proc/PID/status, read before it is stopped.
The server log has every statement's duration (log_min_duration_statement = 0 during steps 3,
4 and 5b); a summary per statement kind is printed ("Where the time goes").
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


# The generator's messiness knobs the driver passes on (None: the generator's default).
MESS = {"twin_share": "--twin-share", "common_share": "--common-share", "family_phone_share": "--family-phone-share",
        "placeholder_share": "--placeholder-share"}


def generate(out, rows, seed, reappear, first_person=0, mess=None, extra=()):
    truth = Path(str(out) + ".truth.json")
    cmd = [sys.executable, str(GEN), "--rows", str(rows), "--seed", str(seed), "--reappear-share", str(reappear),
           "--first-person", str(first_person), "--out", str(out), "--truth", str(truth), "--date-style", DATE_STYLE]
    for k, v in (mess or {}).items():
        if v is not None:
            cmd += [MESS[k], str(v)]
    subprocess.run(cmd + list(extra), check=True)
    return json.loads(truth.read_text())


CHUNK_LINE = re.compile(r"batch ([0-9a-f-]{36}): chunk of rows (\d+)-(\d+) in (\d+) ms \((\d+) rejected\)")


def chunk_stats(log_path, batch_id):
    """Per-chunk times of one batch from the daemon's log lines
    `batch <uuid>: chunk of rows A-B in N ms (R rejected)`."""
    ms = []
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return None
    for m in CHUNK_LINE.finditer(text):
        if m.group(1) == batch_id:
            ms.append(int(m.group(4)))
    if not ms:
        return None
    med = statistics.median(ms)
    return {"chunks": len(ms), "min_ms": min(ms), "median_ms": med, "max_ms": max(ms),
            "max_over_median": round(max(ms) / med, 2) if med else None,
            "flag": bool(med and max(ms) > 3 * med), "ms": ms}



def md_table(header, align, rows):
    """Prints a markdown table: the header cells, one alignment letter per column ('l' or 'r'),
    and the rows' cells."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")

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
        self.chunks = {}       # step -> per-chunk times from the daemon log
        self.checks = {}       # step -> the checks and their outcome

    # ------------------------------------------------------------------ infrastructure
    def start_pg(self):
        self.pg = Postgres()
        self.procs.push("postgres", self.pg.stop)
        # Server settings apply to every step alike (the yardstick included); shared_buffers
        # needs a restart.
        base = [] if self.a.pg_defaults else PG_SETTINGS
        settings = dict(kv.split("=", 1) for kv in base + (self.a.pg_setting or []))
        self.settings_kind = ("PostgreSQL defaults (--pg-defaults)" if self.a.pg_defaults else
                              "tuned (" + ", ".join(PG_SETTINGS) + ")")
        if self.a.pg_setting:
            self.settings_kind += " + --pg-setting " + ", ".join(self.a.pg_setting)
        for k, v in settings.items():
            self.sql(f"ALTER SYSTEM SET {k} = %s", (v,), url=self.pg.url())
        self.pg._run([str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), "-l", str(self.pg.log), "-w",
                      "restart"])
        self.settings = self.sql("SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY "
                                 "name) FROM pg_settings WHERE name = ANY(%s)",
                                 (["fsync", "shared_buffers", "max_wal_size", "work_mem"],), url=self.pg.url())[0][0]
        self.notes.append(f"server settings: {self.settings_kind}: {self.settings}")
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
        return dict(os.environ, INGESTD_BROKERS=getattr(self, "bootstrap", None) or "127.0.0.1:9",
                    INGESTD_GROUP="ingestd-bench", INGESTD_STATE=str(self.state), INGESTD_DATABASE_URL=db_url,
                    INGESTD_HTTP=f"127.0.0.1:{self.http_port}", INGESTD_CHUNK_ROWS=str(self.a.chunk_rows))

    def write_config(self):
        self.config = self.work / DATASETS[self.a.dataset].name
        text = DATASETS[self.a.dataset].read_text()
        if self.a.kafka_property:
            props = "".join(f"\n    {k}: \"{v}\"" for k, v in (kv.split("=", 1) for kv in self.a.kafka_property))
            text = text.replace("  group_id: ${INGESTD_GROUP}\n", "  group_id: ${INGESTD_GROUP}\n  properties:" + props + "\n", 1)
        self.config.write_text(text)

    def check_indexes(self, db_url, label):
        """`ingestd check --create-indexes`: the bookkeeping migrations (name_key among them) and
        one btree per identity tier on the targets; then `ingestd check` lists the index behind
        every tier. Returns the seconds the first took."""
        env = self.daemon_env(db_url)
        t = time.time()
        r = subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(self.config)], env=env,
                           capture_output=True, text=True)
        dt = time.time() - t
        if r.returncode:
            raise RuntimeError(f"ingestd check --create-indexes failed ({r.returncode}): {r.stdout} {r.stderr}")
        r2 = subprocess.run([str(BIN), "check", "-c", str(self.config)], env=env, capture_output=True, text=True)
        if r2.returncode:
            raise RuntimeError(f"ingestd check failed ({r2.returncode}): {r2.stdout} {r2.stderr}")
        lines = [ln.strip() for ln in (r.stdout + r2.stdout).splitlines() if "identity[" in ln]
        self.notes.append(f"{label}: `ingestd check --create-indexes` {dt:.2f}s; " + "; ".join(lines))
        log(f"check --create-indexes ({label}) {dt:.1f}s")
        return dt

    def start_daemon(self, db_url):
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
                # Ready, and a member of the consumer group with its partitions: joining the
                # group takes the mock cluster about 3 s after start, which a daemon that runs
                # for weeks pays once; it is not part of loading the first file.
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as r:
                    ready = r.status == 200
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status", timeout=2) as r:
                    assigned = bool(json.loads(r.read()).get("assignment"))
                if ready and assigned:
                    log(f"ingestd ready, partitions assigned (pid {self.daemon.pid})")
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
        # The index shapes `ingestd check --create-indexes` made on persons, over the text
        # copies of the CSV columns (ingestd.name_key exists: the check ran before).
        cols = ", ".join(f"{c} text" for c in COLS)
        nk = "ingestd.name_key(nombre), ingestd.name_key(apellido)"
        self.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigserial PRIMARY KEY, {cols});"
                 f"CREATE INDEX ON {name} (cedula); CREATE INDEX ON {name} (email);"
                 f"CREATE INDEX ON {name} ({nk}, fecha_nacimiento); CREATE INDEX ON {name} ({nk}, telefono);")

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

    def counts(self, url=None):
        q = self.sql("SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM leads), "
                     "(SELECT count(*) FROM students), (SELECT count(*) FROM ingestd.review_queue), "
                     "(SELECT count(*) FROM ingestd.row_errors)", url=url)[0]
        return dict(zip(["persons", "leads", "students", "review", "row_errors"], q))

    def batch_times(self, batch_id):
        r = self.sql("SELECT extract(epoch FROM finished_at - started_at), rows_total, inserted, updated, unchanged, "
                     "rejected, review FROM ingestd.batches WHERE id = %s", (batch_id,))
        return r[0] if r else None

    def ingest_step(self, label, path, rows, truth, base):
        """Publish a file, wait for its result, and check it against `truth` (the generator's
        rules-truth for this load: expected_records, expected_review, expected_merges, and the
        leads it creates) on top of `base` (the counts before)."""
        off = self.log_offset()
        dt, res, hash_s = self.submit(path)
        prof = self.summarize_log(off)
        self.profile[label] = prof
        c = self.counts()
        bid = res.get("batch_id")
        bt = self.batch_times(bid) if bid else None
        rss = self.daemon_rss() if self.daemon.poll() is None else {}
        checks = []

        def check(name, got, want):
            checks.append((name, got == want, f"{name} {got} (expected {want})"))

        counts = res.get("counts") if isinstance(res.get("counts"), dict) else {}
        pc = counts.get("person") or {}
        check("status", res.get("status"), "completed")
        check("persons", c["persons"], base["persons"] + truth["expected_records"])
        check("review queue", c["review"] - base["review"], truth["expected_review"])
        check("row_errors", c["row_errors"] - base["row_errors"], 0)
        check("person inserted", pc.get("inserted"), truth["expected_records"])
        check("person updated+unchanged", pc.get("updated", 0) + pc.get("unchanged", 0), sum(truth["expected_merges"]))
        check("person review", pc.get("review"), truth["expected_review"])
        check("person rejected", pc.get("rejected"), 0)
        tiers = {str(t + 1): n for t, n in enumerate(truth["expected_merges"]) if n}
        check("person matched_by_tier", {k: v for k, v in (pc.get("matched_by_tier") or {}).items() if v}, tiers)
        for ent, ec in counts.items():
            total = sum(ec.get(k, 0) for k in ("inserted", "updated", "unchanged", "rejected", "review", "skipped"))
            check(f"{ent} inserted+updated+unchanged+rejected+review+skipped", total, rows)
        if self.a.dataset == "ice_staging":
            check("leads", c["leads"], base["leads"] + truth["leads"])
        ok = all(k[1] for k in checks)
        failed = [k[2] for k in checks if not k[1]]
        chunks = None
        for _ in range(10 if bid else 0):      # the daemon's log may reach the file a moment later
            chunks = chunk_stats(self.work / "ingestd.log", bid)
            if chunks and chunks["chunks"] * self.a.chunk_rows >= rows:
                break
            time.sleep(0.3)
        self.chunks[label] = chunks
        note = (f"status {res.get('status')}; persons {c['persons']}, review queue {c['review']}, "
                f"row_errors {c['row_errors']}, leads {c['leads']}, students {c['students']}; "
                f"counts {json.dumps(counts)}" +
                (f"; batches.finished_at - started_at {bt[0]:.1f}s (finished_at is now() of the last chunk's "
                 f"transaction: the last chunk is not in it)" if bt else f"; result {json.dumps(res)[:600]}") +
                (f"; {chunks['chunks']} chunks, {sum(chunks['ms']) / 1000:.2f}s in all" if chunks else ""))
        note += f"; sha256 of the file {hash_s:.2f}s (inside the wall time); daemon VmHWM {rss.get('VmHWM')} MiB"
        note = ("OK (" + str(len(checks)) + " checks) " if ok else "CHECK FAILED: " + "; ".join(failed) + " -- ") + note
        self.add(label, rows, dt, note, rss=rss.get("VmHWM"), ok=ok)
        self.checks[label] = [{"check": k[0], "ok": k[1], "detail": k[2]} for k in checks]
        log(label, f"{dt:.1f}s", res.get("status"), c, "OK" if ok else "CHECK FAILED: " + "; ".join(failed))
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
                            "--twin-share", "0", "--common-share", "0", "--family-phone-share", "0",
                            "--placeholder-share", "0", "--first-person", str(base + 10 * i), "--out", str(p)],
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
        print(f"Server settings: {getattr(self, 'settings_kind', '?')}: {getattr(self, 'settings', '?')}")
        for label, t in (("file", getattr(self, "truth", None)), ("step 5 file", getattr(self, "truth_existing", None))):
            if not t:
                continue
            print(f"Truth ({label}, {t['rows']:,} rows): {t['humans_in_file']:,} distinct humans "
                  f"({t['distinct_people']:,} new, {t['existing_people_reused']:,} existing); under ingestd's rules "
                  f"{t['expected_records']:,} new records, {t['expected_review']:,} review rows, merges per tier "
                  f"{t['expected_merges']}" + (f"; loaded again: {t['again']['expected_records']:,} new records, "
                                                f"{t['again']['expected_review']:,} review rows" if t.get("again") else "")
                  + f"; {t['common_name_people']:,} common-name people, "
                  f"{t['people_sharing_an_earlier_name_and_birth_date']:,} sharing an earlier person's name and birth "
                  f"date (twins included), {t['family_phone_people']:,} with a family phone, placeholder rows "
                  f"{t['placeholder_rows']}")
        print()
        rows = []
        for r in self.results:
            s = r["seconds"]
            rows.append([r["step"], f"{r['rows']:,}", f"{s:.2f}", f"{r['rows'] / s:,.0f}", f"{s / cs:.1f}x" if cs else "-",
                         r["rss_mib"] or ""] if s else [r["step"], f"{r['rows']:,}", "-", "-", "-", ""])
        md_table(["step", "rows", "seconds", "rows/s", "time vs \\copy", "peak RSS (MiB)"], "lrrrrr", rows)
        print()
        for r in self.results:
            print(f"- {r['step']}: {r['note']}")
        if any(self.checks.values()):
            print()
            md_table(["step", "check", "result"], "lll",
                     [[label.split(",")[0], c["detail"], "ok" if c["ok"] else "FAILED"]
                      for label, cs_ in self.checks.items() for c in cs_])
        if any(self.chunks.values()):
            print()
            md_table(["step", "chunks", "min ms", "median ms", "max ms", "max/median", ""], "lrrrrrl",
                     [[label.split(",")[0], c["chunks"], c["min_ms"], f"{c['median_ms']:.0f}", c["max_ms"],
                       c["max_over_median"], "FLAG: max > 3x median" if c["flag"] else ""]
                      for label, c in self.chunks.items() if c])
        if getattr(self, "latency", None):
            print()
            md_table(["latency mode", "events", "p50 ms", "p99 ms", "min ms", "max ms", "statuses"], "lrrrrrl",
                     [[mode, l["n"], f"{l['p50_ms']:.0f}", f"{l['p99_ms']:.0f}", f"{l['min_ms']:.0f}",
                       f"{l['max_ms']:.0f}", l["statuses"]] for mode, l in self.latency.items()])
        for label, prof in self.profile.items():
            tot = sum(v["ms"] for v in prof.values())
            print(f"\nServer time per statement kind, {label} (total {tot / 1000:.1f}s):")
            for k, v in list(prof.items())[:14]:
                print(f"  {v['ms'] / 1000:8.2f}s {100 * v['ms'] / tot if tot else 0:5.1f}%  n={v['n']:<5} {k}")
        for n in self.notes:
            print("note:", n)

    # ------------------------------------------------------------------ the run
    def mess(self):
        return {k: getattr(self.a, k) for k in MESS}

    def run(self):
        a = self.a
        if a.dataset == "ice_staging" and "null_values" not in DATASETS[a.dataset].read_text() and \
                a.placeholder_share != 0:
            raise RuntimeError(f"{DATASETS[a.dataset]} has no null_values, so the generator's placeholders "
                               "(N/A, sin correo, 0000000000) would be read as values; run with --placeholder-share 0")
        csv_path = self.state / "inbox" / f"people_{a.rows}.csv"
        log(f"generating {a.rows} rows -> {csv_path}")
        t = time.time()
        truth = generate(csv_path, a.rows, a.seed, a.reappear_share, mess=self.mess(), extra=["--truth-again"])
        log(f"generated in {time.time() - t:.0f}s: {truth['humans_in_file']} humans; under ingestd's rules "
            f"{truth['expected_records']} records, {truth['expected_review']} review rows")
        self.truth = truth
        self.start_pg()
        self.sql((ICE / "schema.sql").read_text())
        self.write_config()
        self.check_indexes(self.url, "steps 1-4")
        self.step_copy(csv_path, a.rows)
        log("copy", f"{self.copy_seconds:.1f}s")
        self.step_pgloader(csv_path, a.rows)
        log("pgloader", self.results[-1]["seconds"], self.results[-1]["note"][:200])
        self.sql("DROP TABLE bench_copy, bench_pgloader" if self.sql(
            "SELECT to_regclass('bench_pgloader')")[0][0] else "DROP TABLE bench_copy")
        self.start_broker()
        self.start_daemon(self.url)
        self.set_statement_log(True)
        base = self.counts()
        self.ingest_step("3. ingestd, new file", csv_path, a.rows, self.expect(truth), base)
        if a.floor:
            self.step_floor()
        again = self.state / "inbox" / f"people_{a.rows}_again.csv"
        again.write_bytes(csv_path.read_bytes() + b"\n")
        base = self.counts()
        self.ingest_step("4. ingestd, same rows again (update path)", again, a.rows, self.expect(truth["again"]), base)
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

    def expect(self, t):
        """The part of a truth a load is checked against."""
        return {"expected_records": t["expected_records"], "expected_review": t["expected_review"],
                "expected_merges": t["expected_merges"],
                "leads": t.get("expected_leads", t.get("expected_leads_created", 0))}

    def step_existing(self, n):
        """n existing people, already normalized, \\copy'd into a fresh target (5a), the tier
        indexes built over them by `ingestd check --create-indexes` (5a'), then a file of --rows
        rows, --existing-share of them existing people, through a fresh daemon and broker (5b):
        compared with step 3 (a file of as many rows into an empty target)."""
        a = self.a
        more = self.state / "inbox" / f"people_{a.rows}_into_{n}.csv"
        persons_csv = self.work / f"existing_{n}.persons.csv"
        log(f"generating {n} existing people and {a.rows} rows")
        t = time.time()
        tn = generate(more, a.rows, a.seed + 1, a.reappear_share, mess=self.mess(),
                      extra=["--existing", str(n), "--existing-out", str(persons_csv),
                             "--existing-share", str(a.existing_share)])
        log(f"generated in {time.time() - t:.0f}s: {tn['existing_rows']} rows of {tn['existing_people_reused']} "
            f"existing people; under ingestd's rules {tn['expected_records']} new records, "
            f"{tn['expected_review']} review rows")
        self.truth_existing = tn
        # A fresh broker and database: the first daemon's topics and offsets stay behind.
        stop_popen(self.daemon)
        stop_popen(self.broker, timeout=10)
        self.bootstrap = None
        self.url = self.pg.url(self.pg.create_db())
        self.sql((ICE / "schema.sql").read_text())
        cols = "cedula, email, phone, first_name, last_name, birth_date, address, data_source"
        t0 = time.time()
        r = self.psql("-c", f"\\copy public.persons ({cols}) FROM '{persons_csv}' WITH (FORMAT csv, HEADER true)")
        dt = time.time() - t0
        if r.returncode:
            raise RuntimeError("\\copy of the existing people failed: " + r.stderr)
        got = self.sql("SELECT count(*) FROM persons")[0][0]
        self.add(f"5a. psql \\copy of {n:,} existing people (normalized persons rows)", n, dt,
                 f"{got:,} persons", ok=got == n)
        self.sql("VACUUM ANALYZE persons")
        dt = self.check_indexes(self.url, "step 5")
        self.add(f"5a'. ingestd check --create-indexes over {n:,} people", n, dt, "the four tier indexes")
        self.start_broker()
        self.start_daemon(self.url)
        self.set_statement_log(True)
        base = self.counts()
        self.ingest_step(f"5b. ingestd, {a.rows:,} rows ({tn['existing_rows']:,} of existing people) into {n:,} "
                         f"existing people", more, a.rows, self.expect(tn), base)
        self.set_statement_log(False)

    def step_floor(self):
        """What PostgreSQL alone needs to write what step 3 wrote: each table the load wrote
        (the targets, identity_keys, lineage, changes, review_queue) copied out, then timed back in with
        `\\copy` into an empty table with the same columns and indexes. No reading, normalizing,
        matching or merging: the floor for this bookkeeping, next to the yardstick's one table."""
        tables = ["public.persons", "public.students", "public.leads", "ingestd.identity_keys",
                  "ingestd.lineage", "ingestd.changes", "ingestd.review_queue"]
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
                    help="step 5: this many existing people (normalized persons rows, \\copy'd into a fresh target), "
                    "then --rows rows through ingestd, --existing-share of them existing people")
    ap.add_argument("--existing-share", type=float, default=0.1,
                    help="step 5: share of the file's rows that are existing people")
    ap.add_argument("--twin-share", type=float, help="generator: share of name + birth-date twins (default 0.03)")
    ap.add_argument("--common-share", type=float, help="generator: share of people with common names (default 0.3)")
    ap.add_argument("--family-phone-share", type=float,
                    help="generator: share of people with another person's phone (default 0.1)")
    ap.add_argument("--placeholder-share", type=float,
                    help="generator: share of rows with a placeholder in cédula, e-mail or phone (default 0.05)")
    ap.add_argument("--no-pgloader", action="store_true")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="people",
                    help="people: persons only, four tiers (the default); ice_staging: persons, students, leads")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip step 3f (\\copy of the rows step 3 wrote)")
    ap.add_argument("--pg-defaults", action="store_true",
                    help="PostgreSQL's default server settings instead of the tuned " + ", ".join(PG_SETTINGS))
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
                                                "truth_existing": getattr(b, "truth_existing", None),
                                                "checks": b.checks, "chunks": b.chunks,
                                                "settings": {"kind": getattr(b, "settings_kind", None),
                                                             "values": getattr(b, "settings", None)},
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
