"""What the load benchmarks share: a throwaway PostgreSQL (the tests' initdb cluster; tuned or
on PostgreSQL's defaults), a fresh database per run, the indexes `ingestd check --create-indexes`
makes (timed apart), and a timed `ingestd load` with the peak RSS of its process.

    from harness import Bench, log
    b = Bench(work_dir, chunk_rows=25000, pg_defaults=False)
    url = b.database(schema_sql_text)
    run = b.load("csv", config_path, url, data_path, "people")   # {"seconds", "rss_mib", "result", ...}
    b.stop()

BENCH_PG_SETTINGS="log_min_duration_statement=0 …" adds server settings (a statement profile);
BENCH_PG_LOG=PATH keeps the server's log there when the run stops.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import psycopg2  # noqa: E402
from conftest import BIN, Postgres  # noqa: E402,F401  (the tests' throwaway cluster)

TUNED = ["shared_buffers=2GB", "max_wal_size=8GB"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def sql(url, q):
    c = psycopg2.connect(url)
    c.autocommit = True
    c.cursor().execute(q)
    c.close()


def watch_hwm(pid, peak):
    """Reads the VmHWM (KiB) of the ingestd process `pid` into peak[0] every 50 ms until it ends."""
    while True:
        try:
            if os.readlink(f"/proc/{pid}/exe") != os.path.realpath(BIN):
                time.sleep(0.01)  # not exec'd yet: still a copy of this Python process
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (OSError, IndexError, ValueError):
            return
        time.sleep(0.05)


class Bench:
    """One throwaway PostgreSQL for a benchmark run; every load gets a database of its own."""

    def __init__(self, work, chunk_rows, pg_defaults=False):
        self.work, self.chunk_rows = Path(work), chunk_rows
        self.pg = Postgres()
        for kv in ([] if pg_defaults else TUNED) + os.environ.get("BENCH_PG_SETTINGS", "").split():
            k, v = kv.split("=", 1)
            sql(self.pg.url(), f"ALTER SYSTEM SET {k} = '{v}'")
        self.pg._run([str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), "-l", str(self.pg.log), "-w", "restart"])
        self.settings = "PostgreSQL defaults" if pg_defaults else "tuned (" + ", ".join(TUNED) + ")"

    def stop(self):
        if os.environ.get("BENCH_PG_LOG"):
            shutil.copyfile(self.pg.log, os.environ["BENCH_PG_LOG"])
        self.pg.stop()

    def database(self, schema_sql):
        url = self.pg.url(self.pg.create_db())
        sql(url, schema_sql)
        return url

    def env(self, url):
        return dict(os.environ, INGESTD_BROKERS="127.0.0.1:9", INGESTD_GROUP="bench", INGESTD_STATE=str(self.work),
                    INGESTD_DATABASE_URL=url, INGESTD_HTTP="127.0.0.1:0", INGESTD_CHUNK_ROWS=str(self.chunk_rows))

    def create_indexes(self, cfg, url):
        """`ingestd check --create-indexes`: the indexes the config's tiers need; exits on failure."""
        chk = subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(cfg)], env=self.env(url),
                             capture_output=True, text=True)
        if chk.returncode:
            raise SystemExit(f"check --create-indexes failed: {chk.stdout}{chk.stderr}")

    def load(self, label, cfg, url, data, dataset):
        """Makes the indexes the config's tiers need, then times `ingestd load DATA`; exits on failure."""
        t = time.monotonic()
        self.create_indexes(cfg, url)
        idx = time.monotonic() - t
        t = time.monotonic()
        with open(self.work / f"{label.replace(' ', '_')}.stderr", "w+") as errf:
            p = subprocess.Popen([str(BIN), "load", str(data), "--dataset", dataset, "-c", str(cfg)],
                                 env=self.env(url), stdout=subprocess.PIPE, stderr=errf, text=True)
            peak = [0]
            watcher = threading.Thread(target=watch_hwm, args=(p.pid, peak), daemon=True)
            watcher.start()
            out = p.stdout.read()  # stderr goes to a file: neither pipe can fill and stall the load
            _, status, usage = os.wait4(p.pid, 0)
            watcher.join()
            wall = time.monotonic() - t
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, 3):
                errf.seek(0)
                raise SystemExit(f"{label}: load exited {code}: {errf.read()[-2000:]}")
        result = json.loads(out)
        # VmHWM of the ingestd image, last read before it ended. Not ru_maxrss: Linux carries the
        # high-water mark across exec, so it counts this Python process as forked (a 1M-row
        # workbook held by xlsxwriter read as a 1341 MiB load).
        rss = peak[0] // 1024
        cpu = usage.ru_utime + usage.ru_stime  # the daemon's own CPU: steadier than wall time on a noisy machine
        log(f"{label}: {wall:.1f}s ({idx:.1f}s indexes), ingestd CPU {cpu:.1f}s, RSS {rss} MiB, {json.dumps(result['counts'])}")
        return {"label": label, "seconds": wall, "cpu_seconds": cpu, "index_seconds": idx, "rss_mib": rss, "result": result,
                "counts": result["counts"], "bytes": Path(data).stat().st_size}

