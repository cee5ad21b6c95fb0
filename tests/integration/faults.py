"""Helpers for the fault-injection and hostile-input tests (test_reliability.py, test_hostile.py).

Everything here drives the real binary, the real PostgreSQL cluster and the mock Kafka cluster
from conftest.py; nothing reaches into the daemon's internals. The helpers inject faults
(kill -9, a PostgreSQL restart, a broker that is not there yet) and check the invariants the
issue asks for: exactly the right people, no row lost or doubled, no update applied twice,
one terminal result per event, the daemon ready afterwards."""

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
import zlib
from pathlib import Path

import psycopg2

from conftest import BIN, EXAMPLES, Daemon

SOAK = os.environ.get("INGESTD_SOAK") == "1"
TERMINAL = {"completed", "completed_with_rejects", "failed", "duplicate", "dry_run"}
HEADER = "Cedula,Nombre,Apellido,Email"


# ---------------------------------------------------------------------------------------------
# Data


def person_line(i, base=40000000, email=True):
    return f"{base + i},Nombre{i},Apellido{i}," + (f"p{base + i}@example.com" if email else "")


def people_csv(indices, base=40000000, email=True, header=HEADER):
    """A CSV of distinct people: one per index, cédula base+i, deterministic names and e-mails."""
    return "\n".join([header] + [person_line(i, base, email) for i in indices]) + "\n"


# ---------------------------------------------------------------------------------------------
# Config and daemons


def people_config(max_attempts=None, retry_base=None, session_timeout_ms=3000, example="people"):
    """The example config with shorter Kafka group timeouts (a killed member leaves the group in
    seconds, not librdkafka's default 45 s) and, optionally, another retry budget. 3000 ms is the
    lowest session timeout the mock cluster keeps a member with (its first join takes ~3 s)."""
    text = (EXAMPLES / example / f"{example}.yaml").read_text()
    props = (f"  properties:\n    session.timeout.ms: \"{session_timeout_ms}\"\n"
             f"    heartbeat.interval.ms: \"500\"\n")
    assert "  embedded_address_file:" in text
    lines = text.splitlines(keepends=True)
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("  embedded_address_file:"):
            out.append(props)
    text = "".join(out)
    if max_attempts is not None:
        assert "max_attempts: 3" in text
        text = text.replace("max_attempts: 3", f"max_attempts: {max_attempts}")
    if retry_base is not None:
        assert "retry_base_seconds: 0.2" in text
        text = text.replace("retry_base_seconds: 0.2", f"retry_base_seconds: {retry_base}")
    return text


def shared_db(pg, example="people"):
    """A fresh database with the example's target schema applied once (for daemons that share it)."""
    name = pg.create_db()
    c = psycopg2.connect(pg.url(name))
    c.autocommit = True
    c.cursor().execute((EXAMPLES / example / "schema.sql").read_text())
    c.close()
    return name


def group_of(pg, broker, tmp_path, n, chunk_rows=500, group=None, config_text=None, db=None):
    """n daemons in one consumer group sharing one database (not started)."""
    db = db or shared_db(pg)
    group = group or f"g-{uuid.uuid4().hex[:8]}"
    cfg = config_text or people_config()
    return [Daemon(pg, broker, Path(tmp_path) / f"d{k}", db=db, chunk_rows=chunk_rows, group=group, config_text=cfg)
            for k in range(n)]


def share_inbox(daemons):
    """Every daemon's allowed root is its own state/inbox; make them one directory so any
    instance can read any file (as on a shared volume)."""
    first = daemons[0].state / "inbox"
    for d in daemons[1:]:
        inbox = d.state / "inbox"
        inbox.rmdir()
        os.symlink(first, inbox)
    return first


def slow_trigger(d, seconds=0.3):
    """Each INSERT statement on persons sleeps: loads take long enough to be interrupted."""
    d.sql("CREATE OR REPLACE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
          f"$$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;"
          "DROP TRIGGER IF EXISTS slow ON persons;"
          "CREATE TRIGGER slow AFTER INSERT ON persons FOR EACH STATEMENT EXECUTE FUNCTION slow();")


def drop_slow_trigger(d):
    d.sql("DROP TRIGGER IF EXISTS slow ON persons")


def committed(d, event_id=None):
    """last_row_committed of the event's batch (or the largest of any batch)."""
    if event_id:
        r = d.sql("SELECT coalesce(max(b.last_row_committed), 0) FROM ingestd.batches b "
                  "JOIN ingestd.events e ON e.batch_id = b.id WHERE e.event_id = %s", (event_id,))
    else:
        r = d.sql("SELECT coalesce(max(last_row_committed), 0) FROM ingestd.batches")
    return r[0][0]


def wait_until(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_committed(d, above, event_id=None, timeout=120, alive=None):
    """Wait until the batch has committed more than `above` rows; returns the new value."""
    def check():
        for p in alive or [d]:
            if p.proc and p.proc.poll() is not None:
                raise AssertionError("ingestd died:\n" + p.log.read_text()[-4000:])
        v = committed(d, event_id)
        return v if v > above else None
    return wait_until(check, timeout, f"last_row_committed > {above}")


def kill9(d):
    """SIGKILL the daemon and reap it."""
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    d.logf.close()


def result_statuses(d, event_id):
    return [r["status"] for r in d.results(event_id)]


def wait_results(d, event_ids, timeout=180, daemons=None):
    """Wait until every event has at least one result; returns {event_id: [results]}."""
    deadline = time.time() + timeout
    while True:
        msgs = [json.loads(m["payload"]) for m in d.broker.consume("ingest.results") if m.get("payload")]
        by = {e: [m for m in msgs if m.get("event_id") == e] for e in event_ids}
        if all(by.values()):
            return by
        for p in daemons or [d]:
            if p.proc and p.proc.poll() is not None and p.proc.returncode not in (-9,):
                raise AssertionError("ingestd died:\n" + p.log.read_text()[-4000:])
        if time.time() > deadline:
            missing = [e for e, v in by.items() if not v]
            logs = "\n".join(p.log.read_text()[-3000:] for p in daemons or [d] if p.log.exists())
            raise AssertionError(f"no result for {missing} in {timeout}s; logs:\n{logs}")
        time.sleep(0.5)


def settle_results(d, event_ids, seconds=3.0):
    """Results after a short quiet period, so a late second result would show."""
    time.sleep(seconds)
    msgs = [json.loads(m["payload"]) for m in d.broker.consume("ingest.results") if m.get("payload")]
    return {e: [m for m in msgs if m.get("event_id") == e] for e in event_ids}


def assert_people_exactly(d, cedulas):
    """persons holds exactly these cédulas, each once."""
    rows = d.sql("SELECT cedula, count(*) FROM persons GROUP BY cedula")
    doubled = [c for c, n in rows if n > 1]
    have = {c for c, _ in rows}
    want = {str(c) for c in cedulas}
    lost = want - have
    extra = have - want
    assert not doubled, f"doubled people: {doubled[:10]} ({len(doubled)})"
    assert not lost, f"lost people: {sorted(lost)[:10]} ({len(lost)})"
    assert not extra, f"unexpected people: {sorted(extra)[:10]} ({len(extra)})"
    return len(rows)


def assert_batch_exact(d, batch_id, rows, inserted=None, updated=None):
    """One lineage row per input row, none twice; the batch completed with all rows."""
    lin = d.sql("SELECT count(*), count(DISTINCT row_number) FROM ingestd.row_lineage "
                "WHERE batch_id = %s AND entity = 'person'", (batch_id,))[0]
    assert lin == (rows, rows), f"lineage rows {lin}, want {rows} distinct"
    b = d.sql("SELECT status, last_row_committed, rows_total FROM ingestd.batches WHERE id = %s", (batch_id,))
    assert b == [("completed", rows, rows)], b
    if inserted is not None:
        n = d.sql("SELECT count(*) FROM ingestd.row_lineage WHERE batch_id = %s AND entity = 'person' "
                  "AND action = 'inserted'", (batch_id,))[0][0]
        assert n == inserted, (n, inserted)
    if updated is not None:
        n = d.sql("SELECT count(*) FROM ingestd.row_lineage WHERE batch_id = %s AND entity = 'person' "
                  "AND action = 'updated'", (batch_id,))[0][0]
        assert n == updated, (n, updated)


def ready(d):
    try:
        return d.http("/readyz")[0] == 200
    except OSError:
        return False


def healthy(d):
    try:
        return d.http("/healthz")[0] == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# PostgreSQL faults


def pg_ctl(pg, *args):
    cmd = [str(pg.bindir / "pg_ctl"), "-D", str(pg.data), "-l", str(pg.log)] + list(args)
    if pg.as_user:
        cmd = ["runuser", "-u", pg.as_user, "--"] + cmd
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)


def pg_is_up(pg):
    try:
        psycopg2.connect(pg.url(), connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def pg_stop(pg):
    r = pg_ctl(pg, "-m", "fast", "-w", "stop")
    assert r.returncode == 0, r.stderr


def pg_start(pg):
    """Start the session's cluster again (idempotent) and wait until it accepts connections."""
    if not pg_is_up(pg):
        r = pg_ctl(pg, "-w", "-t", "60", "start")
        assert r.returncode == 0 or pg_is_up(pg), r.stderr
    wait_until(lambda: pg_is_up(pg), 60, "PostgreSQL to accept connections", 0.2)


class PgDown:
    """`with PgDown(pg): ...` stops the cluster (-m fast) and always starts it again, so the
    session-scoped cluster other tests share is up after the test whatever happens."""

    def __init__(self, pg):
        self.pg = pg

    def __enter__(self):
        pg_stop(self.pg)
        return self

    def __exit__(self, *exc):
        pg_start(self.pg)
        return False


def make_password_role(pg, password, db):
    """A login role with a password that owns db (trust auth accepts it unchecked); returns the
    URL with the password in it."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    c = psycopg2.connect(pg.url())
    c.autocommit = True
    cur = c.cursor()
    cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
    cur.execute(f"ALTER DATABASE {db} OWNER TO {role}")
    c.close()
    c = psycopg2.connect(pg.url(db))
    c.autocommit = True
    c.cursor().execute(f"ALTER SCHEMA public OWNER TO {role}; "
                       f"ALTER TABLE persons OWNER TO {role}; ALTER TABLE leads OWNER TO {role}; "
                       f"ALTER SEQUENCE persons_id_seq OWNER TO {role}; ALTER SEQUENCE leads_id_seq OWNER TO {role}")
    c.close()
    from urllib.parse import quote
    return role, f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{pg.port}/{db}"


# ---------------------------------------------------------------------------------------------
# Kafka


def partition_for(key, partitions=3):
    """librdkafka's default partitioner (consistent_random): crc32(key) % partitions."""
    return zlib.crc32(key.encode()) % partitions


def keys_for_partitions(partitions=3):
    """One message key per partition, so events land on different instances of a group."""
    keys = {}
    i = 0
    while len(keys) < partitions:
        k = f"key{i}"
        keys.setdefault(partition_for(k, partitions), k)
        i += 1
    return [keys[p] for p in range(partitions)]


def publish_raw(bootstrap, topic, data, key="k", partition=None, max_bytes=None):
    """kcat as the uploader, with an explicit partition or a larger message limit if asked."""
    if isinstance(data, str):
        data = data.encode()
    cmd = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-k", key]
    if partition is not None:
        cmd += ["-p", str(partition)]
    if max_bytes:
        cmd += ["-X", f"message.max.bytes={max_bytes}"]
    subprocess.run(cmd, input=data, check=True, timeout=60)


class TcpForwarder:
    """A loopback TCP port that forwards to target once target is set: lets a daemon be started
    against a bootstrap address where no broker exists yet."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = None
        self.listening = False
        self._stop = False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def open(self, target):
        """Start accepting and forwarding to target ("host:port")."""
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock.listen(16)
        self.listening = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.5)
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self.sock.close()


class FakeBroker:
    """Stands in for conftest.Broker where a Daemon needs only .bootstrap (and publish/consume
    once the real broker is there)."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap


def metric(text, name, **labels):
    """The value of one sample in a Prometheus text exposition (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def rng(seed=None):
    seed = seed if seed is not None else int(os.environ.get("INGESTD_FAULT_SEED", time.time()))
    return seed, random.Random(seed)


def consume_raw(bootstrap, topic):
    """Like conftest.Broker.consume, but tolerates payloads that are not UTF-8 (a dead letter
    repeats the refused bytes verbatim): they are decoded with replacement characters."""
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J"],
                         capture_output=True, timeout=30)
    return [json.loads(line) for line in out.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
