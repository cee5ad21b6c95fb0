"""Fixtures for the end-to-end tests: a real PostgreSQL made with initdb, librdkafka's mock
cluster over TCP (started by `ingestd embedded-broker`), and the ingestd binary itself.
Every server is started in a temporary directory on an OS-chosen port and stopped afterwards."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("INGESTD_BIN", ROOT / "build" / "ingestd"))
EXAMPLES = ROOT / "config" / "examples"


def pg_bindir():
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    if out.returncode == 0 and Path(out.stdout.strip(), "initdb").exists():
        return Path(out.stdout.strip())
    for v in ("17", "16", "15"):
        p = Path(f"/usr/lib/postgresql/{v}/bin")
        if (p / "initdb").exists():
            return p
    raise RuntimeError("PostgreSQL server binaries (initdb) not found; run scripts/setup")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throwaway cluster. As root, the server runs as the postgres user."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ingestd-pg-"))
        self.port = free_port()
        self.bindir = pg_bindir()
        self.as_user = None
        if os.geteuid() == 0:
            self.as_user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C.UTF-8"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\nmax_connections = 100\n")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"])
        self.dbs = 0

    def _run(self, cmd):
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def url(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self):
        self.dbs += 1
        name = f"t{self.dbs}_{uuid.uuid4().hex[:6]}"
        c = psycopg2.connect(self.url())
        c.autocommit = True
        c.cursor().execute(f"CREATE DATABASE {name}")
        c.close()
        return name

    def stop(self):
        try:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    p = Postgres()
    yield p
    p.stop()


class Broker:
    """librdkafka's mock cluster in its own process, reachable over TCP on loopback. `control()`
    injects faults through the broker's stdin: `down 1`, `up all`, `errors <ApiKey> <n> <code>`,
    `rtt 1 500` (broker ids are 1..brokers)."""

    def __init__(self, tmp, brokers=1):
        self.addr_file = Path(tmp) / "broker.address"
        self.log = Path(tmp) / "broker.log"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([str(BIN), "embedded-broker", "--address-file", str(self.addr_file)] +
                                         (["--brokers", str(brokers)] if brokers != 1 else []),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert self.bootstrap, "embedded broker did not start:\n" + self.log.read_text()

    def control(self, cmd):
        """Sends one command and asserts the broker answered `ok`."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", f"embedded broker: {cmd!r}: {answer or 'no answer'}"

    def publish(self, topic, payload, key="k", headers=None):
        data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        if isinstance(data, str):
            data = data.encode()
        hdrs = [a for k, v in (headers or {}).items() for a in ("-H", f"{k}={v}")]
        # kcat is the independent client: what an uploader would use
        subprocess.run(["kcat", "-b", self.bootstrap, "-P", "-t", topic, "-k", key, "-X", "api.version.request=true",
                        *hdrs], input=data, check=True, timeout=30)

    def consume(self, topic):
        out = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                              "-J"], capture_output=True, text=True, timeout=30)
        msgs = []
        for line in out.stdout.splitlines():
            line = line.strip()
            if line:
                msgs.append(json.loads(line))
        return msgs

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


_STARTED = []  # every Daemon a test started, stopped or not


@pytest.fixture(autouse=True)
def _no_daemon_left_running():
    """Nothing is left running after a test, even one that failed before it stopped its
    daemons: those the test or its function-scoped fixtures started (fixtures that stop theirs
    and check the exit code do so first). A module-scoped fixture's daemon was started before
    this fixture and outlives the test."""
    mark = len(_STARTED)
    yield
    while len(_STARTED) > mark:
        d = _STARTED.pop()
        if d.proc and d.proc.poll() is None:
            d.stop(signal.SIGKILL, timeout=10)


class Daemon:
    """One `ingestd run` with the people example config, its own database, inbox and broker."""

    def __init__(self, pg, broker, tmp, db=None, chunk_rows=3, group="ingestd-test", config_text=None,
                 example="people", indexes=True):
        self.pg, self.broker, self.tmp = pg, broker, Path(tmp)
        self.db = db or pg.create_db()
        self.url = pg.url(self.db)
        self.state = self.tmp / "state"
        (self.state / "inbox").mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.env = dict(os.environ,
                        INGESTD_BROKERS=broker.bootstrap, INGESTD_GROUP=group, INGESTD_STATE=str(self.state),
                        INGESTD_DATABASE_URL=self.url, INGESTD_HTTP=f"127.0.0.1:{self.http_port}",
                        INGESTD_CHUNK_ROWS=str(chunk_rows))
        self.config = self.tmp / "ingestd.yaml"
        self.config.write_text(config_text or (EXAMPLES / example / f"{example}.yaml").read_text())
        if db is None:
            self.sql((EXAMPLES / example / "schema.sql").read_text())
        if indexes:
            self.create_indexes()  # idempotent: daemons sharing a database each ask
        self.proc = None
        self.log = self.tmp / "ingestd.log"
        self.args = []  # more command-line arguments for `ingestd run`

    def create_indexes(self):
        """What an operator does once for a target table: the indexes its identity tiers need
        (`ingestd check --create-indexes`). A config a test made broken on purpose may fail it."""
        return subprocess.run([str(BIN), "check", "--create-indexes", "-c", str(self.config)], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def start(self, wait_ready=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(BIN), "run", "-c", str(self.config), *self.args], env=self.env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        _STARTED.append(self)
        if wait_ready:
            deadline = time.time() + 30
            while time.time() < deadline:
                assert self.proc.poll() is None, "ingestd exited:\n" + self.log.read_text()
                try:
                    if self.http("/readyz")[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.2)
            raise AssertionError("ingestd not ready in 30s:\n" + self.log.read_text())
        return self

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            self.logf.close()
            return rc
        return self.proc.returncode if self.proc else None

    def sql(self, query, args=None):
        c = psycopg2.connect(self.url)
        c.autocommit = True
        cur = c.cursor()
        cur.execute(query, args)
        rows = cur.fetchall() if cur.description else None
        c.close()
        return rows

    def inbox_file(self, name, content):
        p = self.state / "inbox" / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    def file_event(self, path, dataset="people", **extra):
        ev = {"event_id": str(uuid.uuid4()), "type": "file.arrived", "dataset": dataset,
              "uri": f"file://{path}", "source_system": "tests", "submitted_by": "pytest"}
        ev.update(extra)
        return ev

    def publish(self, ev, topic="ingest.files", key="people"):
        self.broker.publish(topic, ev, key=key)
        return ev

    def result(self, event_id, timeout=60, status=None):
        """The result messages for event_id (waits for at least one)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [json.loads(m["payload"]) for m in self.broker.consume("ingest.results")
                     if m.get("payload") and json.loads(m["payload"]).get("event_id") == event_id]
            if found and (status is None or any(f["status"] == status for f in found)):
                res = found[-1] if status is None else [f for f in found if f["status"] == status][-1]
                check_counts_add_up(res)
                return res
            if self.proc and self.proc.poll() is not None:
                raise AssertionError("ingestd died:\n" + self.log.read_text())
            time.sleep(0.3)
        raise AssertionError(f"no result for {event_id} in {timeout}s; log:\n" + self.log.read_text()[-5000:])

    def results(self, event_id):
        return [json.loads(m["payload"]) for m in self.broker.consume("ingest.results")
                if m.get("payload") and json.loads(m["payload"]).get("event_id") == event_id]


def check_counts_add_up(res):
    """Every row read is exactly one of inserted, updated, unchanged, rejected, review (or, for an
    entity that depends on another, skipped): asserted on every result that reports rows."""
    if "rows" not in res or not isinstance(res.get("counts"), dict):
        return
    for entity, c in res["counts"].items():
        total = sum(c.get(k, 0) for k in ("inserted", "updated", "unchanged", "rejected", "review", "skipped"))
        assert total == res["rows"], f"{entity}: counts {c} add up to {total}, not to rows {res['rows']}: {res}"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def daemon(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.start()
    yield d
    rc = d.stop()
    assert rc == 0, "ingestd did not exit 0 on SIGTERM:\n" + d.log.read_text()[-5000:]
