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
                    group_of, keys_for_partitions, kill9, metric, people_config, people_csv, pg_is_up, pg_start,
                    publish_raw, ready, rng, settle_results, share_inbox, slow_trigger, wait_committed, wait_results,
                    wait_until)


def test_kill9_at_20_points_resumes_exactly(pg, broker, tmp_path):
    """One batch of N rows (chunk 500), killed with SIGKILL at KILLS random moments, restarted
    each time. The first 1000 rows update people loaded before (fill an empty e-mail): an update
    applied twice would show as a second `changes` row."""
    n, kills = (100_000, 100) if SOAK else (20_000, 20)
    seed, r = rng()
    d = Daemon(pg, broker, tmp_path, chunk_rows=500, config_text=people_config(session_timeout_ms=2000))
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
        time.sleep(r.uniform(0, 0.4))  # anywhere inside the next chunk (or between chunks)
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
    assert d.sql("SELECT count(*) FROM ingestd.identity_keys")[0][0] == 2 * n  # cédula + e-mail, once each
    settled = settle_results(d, [eid, pre["event_id"]], 2)
    assert [x["status"] for x in settled[eid]] == ["completed"]
    assert [x["status"] for x in settled[pre["event_id"]]] == ["completed"]
    assert d.sql("SELECT status FROM ingestd.events WHERE event_id = %s", (eid,)) == [("completed",)]
    assert ready(d)
    print(f"kill9: seed {seed}, {len(points)} kills at rows {points}, {n} rows checked")
    assert d.stop() == 0
