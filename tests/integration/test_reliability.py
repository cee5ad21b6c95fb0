"""Faults: prove nothing is lost, nothing doubles. After each fault the target holds exactly the
right people (no row lost, none doubled, no update applied twice), every event has exactly one
terminal result, and the daemon is ready. Helpers are in faults.py; INGESTD_SOAK=1 raises the
iteration counts (INGESTD_FAULT_SEED=N replays a random kill schedule)."""

import json
import signal
import threading
import time

import pytest

from conftest import Broker, Daemon
from faults import (SOAK, PgDown, TcpForwarder, FakeBroker, assert_batch_exact, assert_people_exactly, committed,
                    group_of, healthy, keys_for_partitions, kill9, metric, people_config, people_csv, pg_is_up, pg_start,
                    publish_raw, ready, rng, settle_results, share_inbox, slow_trigger, wait_committed, wait_results,
                    wait_until)


def test_kill9_at_20_points_resumes_exactly(pg, broker, tmp_path):
    """One batch of N rows (chunk 500), killed with SIGKILL at KILLS random moments, restarted
    each time. The first 1000 rows update people loaded before (fill an empty e-mail): an update
    applied twice would show as a second `changes` row."""
    n, kills = (100_000, 100) if SOAK else (25_000, 20)
    seed, r = rng()
    d = Daemon(pg, broker, tmp_path, chunk_rows=500, config_text=people_config())
    d.start()
    pre = d.publish(d.file_event(d.inbox_file("seed.csv", people_csv(range(1000), email=False))))
    assert d.result(pre["event_id"])["status"] == "completed"
    slow_trigger(d, 0.1)
    ev = d.publish(d.file_event(d.inbox_file("big.csv", people_csv(range(n)))))
    eid = ev["event_id"]

    points = []
    last = 0
    for k in range(kills):
        last = wait_committed(d, last, eid, timeout=120)
        if last >= n:
            break
        time.sleep(r.uniform(0, 0.3))  # anywhere inside the next chunk (or between chunks)
        kill9(d)
        at = committed(d, eid)
        points.append(at)
        # invariant at every kill point: exactly the committed rows are in, nothing more
        assert d.sql("SELECT count(*) FROM persons")[0][0] == 1000 + max(0, at - 1000), (seed, at)
        assert d.sql("SELECT count(*) FROM persons WHERE email IS NOT NULL")[0][0] == at, (seed, at)
        assert d.sql("SELECT count(*) FROM ingestd.row_lineage l JOIN ingestd.events e ON e.batch_id = l.batch_id "
                     "WHERE e.event_id = %s", (eid,))[0][0] == at, (seed, at)
        assert not d.results(eid), "a result was published for an unfinished batch"
        last = at
        d.start()
    assert len(points) >= min(kills, 20), f"only {len(points)} kill points (seed {seed}): {points}"
    assert len(set(points)) == len(points), f"kill points repeat (seed {seed}): {points}"

    res = d.result(eid, timeout=240)
    assert res["status"] == "completed", res
    assert res["counts"]["person"]["inserted"] == n - 1000 and res["counts"]["person"]["updated"] == 1000, res
    assert_people_exactly(d, [40000000 + i for i in range(n)])
    assert d.sql("SELECT count(*) FROM persons WHERE email IS NULL")[0][0] == 0
    assert_batch_exact(d, res["batch_id"], n, inserted=n - 1000, updated=1000)
    # every fill of an e-mail recorded once, never twice
    ch = d.sql("SELECT count(*), count(DISTINCT record_id) FROM ingestd.changes WHERE batch_id = %s "
               "AND column_name = 'email'", (res["batch_id"],))[0]
    assert ch == (1000, 1000), ch
    # cédula + e-mail held once each, in the records' own columns: identity memory stays empty
    assert d.sql("SELECT count(*) FROM persons WHERE cedula IS NOT NULL AND email IS NOT NULL")[0][0] == n
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 0
    settled = settle_results(d, [eid, pre["event_id"]], 2)
    assert [x["status"] for x in settled[eid]] == ["completed"]
    assert [x["status"] for x in settled[pre["event_id"]]] == ["completed"]
    assert d.sql("SELECT status FROM ingestd.events WHERE event_id = %s", (eid,)) == [("completed",)]
    assert ready(d)
    print(f"kill9: seed {seed}, {len(points)} kills at rows {points}, {n} rows checked")
    assert d.stop() == 0


def big_load(d, n, name="big.csv", base=40000000):
    return d.publish(d.file_event(d.inbox_file(name, people_csv(range(n), base=base))))["event_id"]


def test_postgres_restart_mid_batch_retries_and_finishes(pg, broker, tmp_path):
    """pg_ctl stop -m fast in the middle of a batch, start again a few seconds later: the daemon
    retries with backoff, /readyz is false meanwhile, the batch finishes exactly."""
    n = 6000
    d = Daemon(pg, broker, tmp_path, chunk_rows=500, config_text=people_config(max_attempts=10, retry_base=0.5))
    d.start()
    slow_trigger(d, 0.2)
    eid = big_load(d, n)
    wait_committed(d, 1000, eid)
    with PgDown(pg):
        wait_until(lambda: not ready(d), 30, "/readyz to turn false while PostgreSQL is down")
        assert d.http("/healthz")[0] == 200
        time.sleep(3)
        assert not ready(d) and d.proc.poll() is None
    res = d.result(eid, timeout=180)
    assert res["status"] == "completed", res
    assert res["counts"]["person"]["inserted"] == n
    assert_people_exactly(d, [40000000 + i for i in range(n)])
    assert_batch_exact(d, res["batch_id"], n, inserted=n)
    assert [x["status"] for x in settle_results(d, [eid], 2)[eid]] == ["completed"]
    wait_until(lambda: ready(d), 30, "/readyz to turn true again")
    text = d.http("/metrics")[1]
    assert metric(text, "ingestd_retries_total", reason="connection") >= 1, text
    assert "attempt" in d.log.read_text()
    assert d.stop() == 0


def test_postgres_down_longer_than_the_retry_budget(pg, broker, tmp_path):
    """PostgreSQL stays down past max_attempts (3, base 0.2 s): the daemon must not crash; once
    PostgreSQL is back the event ends with exactly one terminal result and the target holds
    exactly the rows of the committed chunks."""
    n = 6000
    d = Daemon(pg, broker, tmp_path, chunk_rows=500, config_text=people_config())
    d.start()
    slow_trigger(d, 0.2)
    eid = big_load(d, n)
    wait_committed(d, 1000, eid)
    with PgDown(pg):
        time.sleep(5)  # longer than 0.2 + 0.4 s of backoff
        assert d.proc.poll() is None, "ingestd died while PostgreSQL was down:\n" + d.log.read_text()[-4000:]
    wait_until(lambda: ready(d), 60, "/readyz after PostgreSQL is back")
    res = wait_results(d, [eid], timeout=180)[eid]
    statuses = [x["status"] for x in settle_results(d, [eid], 3)[eid]]
    assert len(statuses) == 1 and statuses[0] in ("completed", "failed"), statuses
    at = committed(d, eid)
    assert d.sql("SELECT count(*), count(DISTINCT cedula) FROM persons")[0] == (at, at)
    if statuses == ["completed"]:
        assert at == n
    assert d.proc.poll() is None
    assert d.stop() == 0


def wait_assigned(daemons, partitions=6, timeout=60):
    """Until the group's members hold every partition of ingest.files and ingest.jobs."""
    def check():
        total = 0
        for d in daemons:
            try:
                total += len(json.loads(d.http("/status")[1])["assignment"])
            except (OSError, ValueError):
                return False
        return total == partitions
    wait_until(check, timeout, "the group to assign all partitions", 0.3)


def owner_of(daemons, eid):
    own = daemons[0].sql("SELECT b.owner FROM ingestd.batches b JOIN ingestd.events e ON e.batch_id = b.id "
                         "WHERE e.event_id = %s", (eid,))[0][0]
    pid = int(own.rsplit(":", 1)[1])
    return [d for d in daemons if d.proc.pid == pid][0]


def test_rebalance_owner_killed_mid_batch(pg, broker, tmp_path):
    """Three instances in one group on one database; the one loading the batch is killed; after the
    group rebalances another resumes the batch from its checkpoint: no row applied twice."""
    n = 8000
    ds = group_of(pg, broker, tmp_path, 3)
    share_inbox(ds)
    for d in ds:
        d.start()
    wait_assigned(ds)
    slow_trigger(ds[0], 0.2)
    eid = big_load(ds[0], n)
    wait_committed(ds[0], 1000, eid, alive=ds)
    victim = owner_of(ds, eid)
    kill9(victim)
    at = committed(ds[0], eid)
    survivors = [d for d in ds if d is not victim]
    res = wait_results(ds[0], [eid], timeout=180, daemons=survivors)[eid]
    assert [x["status"] for x in res] == ["completed"], res
    assert res[0]["counts"]["person"]["inserted"] == n
    assert_people_exactly(ds[0], [40000000 + i for i in range(n)])
    assert_batch_exact(ds[0], res[0]["batch_id"], n, inserted=n)
    resumed = [d for d in survivors if f"resuming after row {at}" in d.log.read_text()]
    assert len(resumed) == 1, [d.log.read_text()[-2000:] for d in survivors]
    assert [x["status"] for x in settle_results(ds[0], [eid], 3)[eid]] == ["completed"]
    for d in survivors:
        assert ready(d)
        assert d.stop() == 0


def three_ready(pg, broker, tmp_path):
    ds = group_of(pg, broker, tmp_path, 3)
    share_inbox(ds)
    for d in ds:
        d.start()
    wait_assigned(ds)
    return ds


def test_same_event_thrice_and_same_file_under_three_ids(pg, broker, tmp_path):
    """Three instances; one event delivered three times (same key: what a Kafka redelivery or an
    uploader's retry looks like), and one file published under three event ids on three
    partitions, so three instances see it at once. Whatever the interleaving: every person once,
    no update twice, one terminal answer per event id (plus a `duplicate` per redelivery)."""
    n = 3000
    ds = three_ready(pg, broker, tmp_path)
    slow_trigger(ds[0], 0.2)
    keys = keys_for_partitions()
    a = ds[0].file_event(ds[0].inbox_file("a.csv", people_csv(range(n))))
    for _ in range(3):
        publish_raw(broker.bootstrap, "ingest.files", json.dumps(a), key=keys[0])
    b_path = ds[0].inbox_file("b.csv", people_csv(range(n), base=50000000))
    bs = [ds[0].file_event(b_path) for _ in keys]
    for ev, k in zip(bs, keys):
        publish_raw(broker.bootstrap, "ingest.files", json.dumps(ev), key=k)
    ids = [a["event_id"]] + [e["event_id"] for e in bs]
    wait_results(ds[0], ids, timeout=240, daemons=ds)
    wait_until(lambda: len(ds[0].results(a["event_id"])) >= 3 or None, 120, "three answers for the thrice-sent event")
    got = settle_results(ds[0], ids, 3)
    sa = sorted(x["status"] for x in got[a["event_id"]])
    assert sa == ["completed", "duplicate", "duplicate"], sa
    sb = [[x["status"] for x in got[e["event_id"]]] for e in bs]
    assert all(len(s) == 1 and s[0] in ("completed", "duplicate") for s in sb), sb
    assert_people_exactly(ds[0], [40000000 + i for i in range(n)] + [50000000 + i for i in range(n)])
    # the thrice-sent event ran once
    ba = [x for x in got[a["event_id"]] if x["status"] == "completed"][0]["batch_id"]
    assert_batch_exact(ds[0], ba, n, inserted=n)
    # the file under three ids: people created once in all; later loads (if any) matched them
    loads = [got[e["event_id"]][0] for e in bs if got[e["event_id"]][0]["status"] == "completed"]
    assert sum(x["counts"]["person"]["inserted"] for x in loads) == n
    assert all(x["counts"]["person"]["updated"] == 0 for x in loads)
    assert ds[0].sql("SELECT count(*) FROM ingestd.changes")[0][0] == 0
    assert ds[0].sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 0  # every key in its record's columns
    for d in ds:
        assert ready(d)
        assert d.stop() == 0


def test_same_file_under_three_ids_at_once_loads_once(pg, broker, tmp_path):
    n = 3000
    ds = three_ready(pg, broker, tmp_path)
    slow_trigger(ds[0], 0.3)
    path = ds[0].inbox_file("b.csv", people_csv(range(n), base=50000000))
    evs = [ds[0].file_event(path) for _ in range(3)]
    for ev, k in zip(evs, keys_for_partitions()):
        publish_raw(broker.bootstrap, "ingest.files", json.dumps(ev), key=k)
    ids = [e["event_id"] for e in evs]
    wait_results(ds[0], ids, timeout=240, daemons=ds)
    got = settle_results(ds[0], ids, 2)
    for d in ds:
        d.stop()
    assert sorted(got[e][0]["status"] for e in ids) == ["completed", "duplicate", "duplicate"], got
    assert ds[0].sql("SELECT count(*) FROM ingestd.row_lineage")[0][0] == n


def partition_holder(daemons, partition):
    for d in daemons:
        if any(a.startswith(f"ingest.files[{partition}]") for a in json.loads(d.http("/status")[1])["assignment"]):
            return d
    return None


def test_redelivery_to_another_instance_while_running(pg, broker, tmp_path):
    n = 6000
    ds = three_ready(pg, broker, tmp_path)
    slow_trigger(ds[0], 0.3)
    keys = keys_for_partitions()
    ev = ds[0].file_event(ds[0].inbox_file("a.csv", people_csv(range(n))))
    publish_raw(broker.bootstrap, "ingest.files", json.dumps(ev), key=keys[0])
    wait_committed(ds[0], 500, ev["event_id"], alive=ds)
    owner = owner_of(ds, ev["event_id"])
    other = [p for p in range(3) if partition_holder(ds, p) not in (owner, None)]
    assert other, "every partition is on the owner"
    publish_raw(broker.bootstrap, "ingest.files", json.dumps(ev), key=keys[other[0]])
    wait_until(lambda: len(ds[0].results(ev["event_id"])) >= 2 or None, 180, "two answers")
    got = settle_results(ds[0], [ev["event_id"]], 2)[ev["event_id"]]
    for d in ds:
        d.stop()
    assert sorted(x["status"] for x in got) == ["completed", "duplicate"], got
    assert ds[0].sql("SELECT status FROM ingestd.events WHERE event_id = %s", (ev["event_id"],)) == [("completed",)]
    assert not broker.consume("ingest.dead-letter")


def test_three_instances_three_overlapping_files(pg, broker, tmp_path):
    """Three instances load three overlapping files at the same time: every person exists once."""
    total, width = 6000, 3000
    ds = three_ready(pg, broker, tmp_path)
    evs = []
    for k, key in enumerate(keys_for_partitions()):
        idx = [(k * 1500 + i) % total for i in range(width)]
        if k == 2:
            idx = idx[::-1]
        ev = ds[0].file_event(ds[0].inbox_file(f"o{k}.csv", people_csv(idx)))
        publish_raw(broker.bootstrap, "ingest.files", json.dumps(ev), key=key)
        evs.append(ev["event_id"])
    wait_results(ds[0], evs, timeout=240, daemons=ds)
    got = settle_results(ds[0], evs, 3)
    assert all([x["status"] for x in got[e]] == ["completed"] for e in evs), got
    everyone = {(k * 1500 + i) % total for k in range(3) for i in range(width)}
    assert_people_exactly(ds[0], [40000000 + i for i in everyone])
    assert sum(got[e][0]["counts"]["person"]["inserted"] for e in evs) == len(everyone)
    assert ds[0].sql("SELECT count(*) FROM ingestd.row_lineage WHERE entity = 'person'")[0][0] == 3 * width
    for d in ds:
        assert ready(d)
        assert d.stop() == 0


def test_daemon_started_before_the_broker_exists(pg, tmp_path):
    """The configured bootstrap address has no broker yet: the daemon stays up, not ready; once a
    broker answers there it consumes and answers."""
    fwd = TcpForwarder()
    d = Daemon(pg, FakeBroker(fwd.address), tmp_path / "d")
    d.start(wait_ready=False)
    broker = None
    try:
        wait_until(lambda: healthy(d), 30, "/healthz")
        time.sleep(4)
        assert d.proc.poll() is None, d.log.read_text()
        assert not ready(d), "ready without any broker"
        broker = Broker(tmp_path)
        fwd.open(broker.bootstrap)
        d.broker = broker
        eid = d.publish(d.file_event(d.inbox_file("a.csv", people_csv(range(100)))))["event_id"]
        res = d.result(eid, timeout=120)
        assert res["status"] == "completed"
        assert_people_exactly(d, [40000000 + i for i in range(100)])
        wait_until(lambda: ready(d), 30, "/readyz once the broker is there")
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        if broker:
            broker.stop()
        fwd.close()


def test_broker_dies_mid_batch(pg, tmp_path):
    """The (mock) broker process is killed while a batch loads. What can be checked: the batch still
    finishes exactly in PostgreSQL, the inbox records its terminal state, the daemon stays up,
    reports not ready, and still stops cleanly. (Its result cannot be delivered: the mock cluster's
    topics die with it.)"""
    broker = Broker(tmp_path)
    n = 3000
    d = Daemon(pg, broker, tmp_path / "d", chunk_rows=500)
    try:
        d.start()
        slow_trigger(d, 0.2)
        eid = big_load(d, n)
        wait_committed(d, 500, eid)
        broker.proc.kill()
        broker.proc.wait()
        wait_until(lambda: d.sql("SELECT status FROM ingestd.events WHERE event_id = %s", (eid,)) == [("completed",)],
                   120, "the batch to complete without a broker")
        assert_people_exactly(d, [40000000 + i for i in range(n)])
        bid = d.sql("SELECT batch_id::text FROM ingestd.events WHERE event_id = %s", (eid,))[0][0]
        assert_batch_exact(d, bid, n, inserted=n)
        wait_until(lambda: not ready(d), 60, "/readyz to turn false without a broker")
        assert d.proc.poll() is None and d.http("/healthz")[0] == 200
        assert d.stop(timeout=60) == 0
    finally:
        d.stop(signal.SIGKILL)
        broker.stop()


def test_broker_replaced_new_events_are_not_skipped(pg, tmp_path):
    """A broker is replaced by an empty one (a mock cluster restart loses its topics; so does a
    real cluster rebuilt from scratch). Events published to the new one must all be processed."""
    (tmp_path / "b1").mkdir()
    b1 = Broker(tmp_path / "b1")
    group = "g-replaced"
    d1 = Daemon(pg, b1, tmp_path / "d1", group=group, config_text=people_config())
    try:
        d1.start()
        first = [d1.publish(d1.file_event(d1.inbox_file(f"old{k}.csv", people_csv(range(k * 10, k * 10 + 10)))))
                 ["event_id"] for k in range(3)]
        for e in first:
            assert d1.result(e)["status"] == "completed"
        assert d1.stop() == 0
    finally:
        d1.stop(signal.SIGKILL)
        b1.stop()
    (tmp_path / "b2").mkdir()
    b2 = Broker(tmp_path / "b2")
    d2 = Daemon(pg, b2, tmp_path / "d2", db=d1.db, group=group, config_text=people_config())
    try:
        d2.start()
        new = [d2.publish(d2.file_event(d2.inbox_file(f"new{k}.csv", people_csv(range(100 + k * 10, 110 + k * 10)))))
               ["event_id"] for k in range(4)]
        got = wait_results(d2, new, timeout=40)
        assert all([x["status"] for x in got[e]] == ["completed"] for e in new), got
        assert d2.sql("SELECT count(*) FROM persons")[0][0] == 70
    finally:
        d2.stop()
        b2.stop()



def test_brokers_down_and_back_mid_batch(pg, tmp_path):
    """Three mock brokers, all taken down while a multi-chunk load runs (two events queued behind
    it), kept down past the group's session timeout (3 s), brought back; two more events published
    afterwards. /readyz is false while the brokers are down (also in the middle of a batch) and
    true again after. Every event exactly one `completed`, every person exactly once."""
    n = 6000
    broker = Broker(tmp_path, brokers=3)
    d = Daemon(pg, broker, tmp_path / "d", chunk_rows=500, config_text=people_config())
    try:
        d.start()
        slow_trigger(d, 0.2)
        big = big_load(d, n)
        queued = [d.publish(d.file_event(d.inbox_file(f"q{k}.csv", people_csv(range(k * 10, k * 10 + 10),
                                                                              base=50000000))))["event_id"]
                  for k in range(2)]
        wait_committed(d, 1000, big)
        broker.control("down all")
        wait_until(lambda: not ready(d), 10, "/readyz to turn false while every broker is down")
        assert d.http("/healthz")[0] == 200
        time.sleep(6)
        assert not ready(d) and d.proc.poll() is None
        broker.control("up all")
        wait_until(lambda: ready(d), 30, "/readyz to turn true once the brokers are back")
        after = [d.publish(d.file_event(d.inbox_file(f"a{k}.csv", people_csv(range(k * 10, k * 10 + 10),
                                                                             base=60000000))))["event_id"]
                 for k in range(2)]
        ids = [big] + queued + after
        wait_results(d, ids, timeout=120)
        got = settle_results(d, ids, 3)
        assert all([x["status"] for x in got[e]] == ["completed"] for e in ids), got
        assert_people_exactly(d, [40000000 + i for i in range(n)] + [50000000 + i for i in range(20)] +
                              [60000000 + i for i in range(20)])
        assert_batch_exact(d, got[big][0]["batch_id"], n, inserted=n)
        assert d.sql("SELECT count(*) FROM ingestd.events WHERE status = 'completed'")[0][0] == len(ids)
        assert ready(d)
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        broker.stop()


# Kafka protocol request types (ApiKey) and error codes for Broker.control("errors ...")
PRODUCE, FETCH, LIST_OFFSETS, OFFSET_COMMIT, FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, SYNC_GROUP = 0, 1, 2, 8, 10, 11, 12, 14
LEADER_NOT_AVAILABLE, NOT_LEADER, REQUEST_TIMED_OUT, COORDINATOR_LOAD_IN_PROGRESS = 5, 6, 7, 14
COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REBALANCE_IN_PROGRESS, DISCONNECT = 15, 16, 27, -195


def test_retriable_request_errors_neither_skip_nor_repeat(pg, broker, tmp_path):
    """Retriable errors pushed onto the mock cluster for every request type the daemon sends
    (its offsets live in PostgreSQL, but the group is Kafka's): Produce (results), Fetch,
    ListOffsets, OffsetCommit, FindCoordinator, JoinGroup, Heartbeat, SyncGroup; a Heartbeat
    answered REBALANCE_IN_PROGRESS in the middle of a multi-chunk load forces a rejoin. Errors
    are cluster-wide, so they are pushed after each publish; kcat reading the results may still
    meet some of them.
    Every event exactly one `completed`, every person exactly once, the daemon ready."""
    n, rounds = 3000, 4
    d = Daemon(pg, broker, tmp_path, chunk_rows=500, config_text=people_config())
    try:
        d.start()
        ids, people = [], []
        faults = [
            [(PRODUCE, 3, NOT_LEADER), (FETCH, 3, NOT_LEADER), (OFFSET_COMMIT, 3, REQUEST_TIMED_OUT)],
            [(HEARTBEAT, 2, REBALANCE_IN_PROGRESS), (JOIN_GROUP, 2, COORDINATOR_LOAD_IN_PROGRESS),
             (SYNC_GROUP, 1, REBALANCE_IN_PROGRESS), (LIST_OFFSETS, 2, LEADER_NOT_AVAILABLE)],
            [(HEARTBEAT, 2, NOT_COORDINATOR), (FIND_COORDINATOR, 3, COORDINATOR_NOT_AVAILABLE),
             (PRODUCE, 2, DISCONNECT)],
            [(FETCH, 2, DISCONNECT), (PRODUCE, 2, REQUEST_TIMED_OUT), (HEARTBEAT, 1, REBALANCE_IN_PROGRESS)],
        ]
        injected = 0
        for k in range(rounds):
            idx = range(k * 100, k * 100 + 100)
            ids.append(d.publish(d.file_event(d.inbox_file(f"r{k}.csv", people_csv(idx, base=50000000))))["event_id"])
            people += [50000000 + i for i in idx]
            # after publishing, so that the next requests of these types are mostly the daemon's
            for api, count, code in faults[k]:
                broker.control(f"errors {api} {count} {code}")
                injected += count
            wait_results(d, ids[-1:], timeout=60)
        # a rejoin forced while a multi-chunk load runs; results produced through errors
        slow_trigger(d, 0.2)
        big = big_load(d, n)
        wait_committed(d, 500, big)
        for api, count, code in [(HEARTBEAT, 1, REBALANCE_IN_PROGRESS), (PRODUCE, 3, NOT_LEADER),
                                 (FETCH, 2, NOT_LEADER)]:
            broker.control(f"errors {api} {count} {code}")
            injected += count
        ids.append(big)
        people += [40000000 + i for i in range(n)]
        wait_results(d, ids, timeout=60)
        got = settle_results(d, ids, 3)
        assert all([x["status"] for x in got[e]] == ["completed"] for e in ids), got
        assert_people_exactly(d, people)
        assert_batch_exact(d, got[big][0]["batch_id"], n, inserted=n)
        assert d.sql("SELECT count(*) FROM ingestd.events WHERE status = 'completed'")[0][0] == len(ids)
        assert not broker.consume("ingest.dead-letter")
        wait_until(lambda: ready(d), 30, "/readyz after the errors")
        rejoins = d.log.read_text().count("partitions revoked")
        print(f"request errors: {injected} injected, {rejoins} rejoins, {len(people)} rows checked")
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)


def outage_daemon(pg, broker, tmp_path, session_timeout_ms):
    """A daemon whose results librdkafka gives up on after 2 s (the daemon waits for that
    verdict), so an outage costs a test seconds, not minutes; the group session outlasts it."""
    text = people_config(session_timeout_ms=session_timeout_ms).replace(
        '    heartbeat.interval.ms: "500"\n', '    heartbeat.interval.ms: "500"\n    message.timeout.ms: "2000"\n')
    return Daemon(pg, broker, tmp_path / "d", chunk_rows=3, config_text=text)


def three_batches_finish_while_brokers_are_down(d, broker, name, base):
    """Three 10-row files (0.3 s per INSERT); every broker down once the first has committed a
    chunk; returns their event ids, once all three are completed with their results unpublished,
    and when the brokers went down."""
    slow_trigger(d, 0.3)
    ids = [d.publish(d.file_event(d.inbox_file(f"{name}{k}.csv", people_csv(range(k * 10, k * 10 + 10),
                                                                         base=base))))["event_id"]
           for k in range(3)]
    wait_committed(d, 0, ids[0])
    broker.control("down all")
    down_at = time.time()
    wait_until(lambda: d.sql("SELECT count(*) FROM ingestd.events WHERE status = 'completed'")[0][0] == 3, 100,
               "the three batches to complete while the brokers are down")
    wait_until(lambda: metric(d.http("/metrics")[1], "ingestd_results_unpublished") == 3, 60,
               "ingestd_results_unpublished to say 3")
    return ids, down_at


def test_results_survive_a_broker_outage_and_a_restart(pg, tmp_path):
    """Issue 16 item 4: three batches finish while every broker is down; their results wait in
    the outbox (ingestd_results_unpublished says how many), the daemon is killed with SIGKILL,
    the brokers come back, and the restarted daemon publishes each result exactly once. The group
    session outlasts the outage, so the events queued behind the first are not revoked."""
    broker = Broker(tmp_path)
    d = outage_daemon(pg, broker, tmp_path, 60000)
    try:
        d.start()
        ids, _ = three_batches_finish_while_brokers_are_down(d, broker, "o", 70000000)
        assert sorted(r[0] for r in d.sql("SELECT event_id FROM ingestd.result_outbox")) == sorted(ids)
        kill9(d)
        broker.control("up all")
        d.start()
        got = wait_results(d, ids, timeout=90)
        got = settle_results(d, ids, 3)
        assert all([x["status"] for x in got[e]] == ["completed"] for e in ids), got
        assert all(got[e][0]["counts"]["person"]["inserted"] == 10 for e in ids), got
        assert d.sql("SELECT count(*) FROM ingestd.result_outbox")[0][0] == 0
        wait_until(lambda: metric(d.http("/metrics")[1], "ingestd_results_unpublished") == 0, 30,
                   "ingestd_results_unpublished back to 0")
        assert_people_exactly(d, [70000000 + i for i in range(30)])
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        broker.stop()


def test_results_published_after_brokers_down_for_two_minutes(pg, tmp_path):
    """Issue 16 item 4, as the issue words it: every broker down for two minutes while three
    batches finish. The same process keeps trying (every 5 s, each try given up by librdkafka
    after message.timeout.ms) and publishes each result exactly once when the brokers are back."""
    broker = Broker(tmp_path)
    d = outage_daemon(pg, broker, tmp_path, 180000)
    try:
        d.start()
        ids, down_at = three_batches_finish_while_brokers_are_down(d, broker, "t", 71000000)
        time.sleep(max(0.0, 120 - (time.time() - down_at)))
        assert d.proc.poll() is None, d.log.read_text()[-3000:]
        failures = metric(d.http("/metrics")[1], "ingestd_publish_failures_total", kind="result")
        broker.control("up all")
        got = wait_results(d, ids, timeout=90)
        got = settle_results(d, ids, 6)
        assert all([x["status"] for x in got[e]] == ["completed"] for e in ids), got
        assert d.sql("SELECT count(*) FROM ingestd.result_outbox")[0][0] == 0
        assert_people_exactly(d, [71000000 + i for i in range(30)])
        assert failures > 0  # it did try, and fail, while the brokers were down
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        broker.stop()


def test_migrate_job_killed_midway_reruns_without_duplicates_or_a_second_after(pg, broker, tmp_path):
    """Issue 16 item 5: a migrate job (customer backfill, not atomic, chunks of 50) is killed with
    SIGKILL after some chunks committed. Its event is delivered again to the restarted daemon: the
    job runs again over what is left (its source skips linked leads), no customer is created twice,
    `after` runs once (in the final transaction only), no batch is left `running`, one answer."""
    from conftest import EXAMPLES
    text = (EXAMPLES / "backfill" / "backfill.yaml").read_text().replace(
        'after: ["UPDATE', 'after: ["INSERT INTO after_runs DEFAULT VALUES", "UPDATE')
    assert "after_runs" in text
    d = Daemon(pg, broker, tmp_path, example="backfill", chunk_rows=50, config_text=text)
    d.sql("CREATE TABLE after_runs (at timestamptz DEFAULT clock_timestamp())")
    assert d.create_indexes().returncode == 0  # the first try planned `after` before its table existed
    # 3 000 more leads, two per PSID: 1 500 more customers
    d.sql("INSERT INTO leads (psid) SELECT 'M-' || (g % 1500) FROM generate_series(1, 3000) g")
    d.sql("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
          "$$BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END$$")
    d.sql("CREATE TRIGGER slow AFTER INSERT ON customers FOR EACH STATEMENT EXECUTE FUNCTION slow()")
    d.start()
    ev = {"event_id": "kill-migrate-1", "type": "job.requested", "job": "backfill_customers", "submitted_by": "ops"}
    d.publish(ev, topic="ingest.jobs", key="backfill_customers")
    deadline = time.time() + 60
    while d.sql("SELECT count(*) FROM leads WHERE customer_id IS NOT NULL")[0][0] < 600:
        if time.time() > deadline:
            d.stop(signal.SIGKILL)  # nothing left running when the test fails
            raise AssertionError(d.log.read_text()[-3000:])
        time.sleep(0.1)
    d.stop(signal.SIGKILL)
    linked_at_kill = d.sql("SELECT count(*) FROM leads WHERE customer_id IS NOT NULL")[0][0]
    assert 600 <= linked_at_kill < 3008, linked_at_kill  # killed mid-way, with chunks committed
    assert d.sql("SELECT count(*) FROM after_runs")[0][0] == 0
    d.start()
    try:
        res = d.result(ev["event_id"], timeout=180)
        assert res["status"] == "completed", res
        assert d.sql("SELECT count(*) FROM customers")[0][0] == 1504
        assert d.sql("SELECT count(*) FROM (SELECT psid FROM customers WHERE psid IS NOT NULL GROUP BY psid "
                     "HAVING count(*) > 1) dup")[0][0] == 0
        assert d.sql("SELECT count(*) FROM leads WHERE customer_id IS NULL")[0][0] == 0
        assert d.sql("SELECT count(*) FROM jobs WHERE customer_id IS NULL")[0][0] == 0
        assert d.sql("SELECT count(*) FROM after_runs")[0][0] == 1
        # the killed run's batch is failed at the start, or, when the killed process's session still
        # held its lock then, by the sweep every 5 s after
        wait_until(lambda: d.sql("SELECT count(*) FROM ingestd.batches WHERE status = 'running'")[0][0] == 0, 30,
                   "no batch left running")
        # the killed run's batch failed (its chunks stay, and a rollback of it can undo them); the rerun's completed
        runs = d.sql("SELECT status FROM ingestd.batches WHERE event_id = %s ORDER BY started_at", (ev["event_id"],))
        assert [s for (s,) in runs] == ["failed", "completed"], runs
        time.sleep(3)  # a late second answer would show by now
        assert len(d.results(ev["event_id"])) == 1
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
