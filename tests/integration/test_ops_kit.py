"""What an operator reads and scrapes (issue 18): JSON log lines that carry the batch they are
about, the start and end line of every batch, the log level from the config and changed by a
reload (and the command line winning over both), journald priorities, global flags after the
subcommand, and the process, input and progress metrics on /metrics."""

import json
import os
import re
import signal
import subprocess
import time

from conftest import BIN, EXAMPLES, Daemon

LEADS_1 = (EXAMPLES / "people" / "leads_2025_11.csv").read_bytes()
LEADS_2 = (EXAMPLES / "people" / "leads_2025_12.csv").read_bytes()


def with_logging(daemon, section):
    """The daemon's config with a `logging:` section (the people example has none)."""
    text = daemon.config.read_text()
    daemon.config.write_text(re.sub(r"^logging:.*\n", "", text, flags=re.M) + f"logging: {section}\n")


def json_lines(daemon):
    """Every line of the daemon's stderr, each parsed as JSON (fails on one that is not)."""
    lines = [l for l in daemon.log.read_text().splitlines() if l.strip()]
    parsed = []
    for l in lines:
        try:
            parsed.append(json.loads(l))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {l!r}\nlog:\n" + daemon.log.read_text()[-3000:])
    return parsed


def wait_for(predicate, what, timeout=15):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def reload(daemon, outcome, count=1):
    daemon.proc.send_signal(signal.SIGHUP)
    needle = f'ingestd_reloads_total{{outcome="{outcome}"}} {count}'
    wait_for(lambda: needle in daemon.http("/metrics")[1], needle)


def test_json_lines_carry_the_batch_and_its_start_and_end(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.args = ["--log-format", "json"]  # a global flag after the subcommand
    d.start()
    try:
        path = d.inbox_file("a.csv", LEADS_1)
        ev = d.publish(d.file_event(path))
        r = d.result(ev["event_id"])
        assert r["status"] == "completed_with_rejects"
    finally:
        assert d.stop() == 0
    lines = json_lines(d)
    assert len(lines) > 5
    for l in lines:
        assert {"time", "level", "component", "message"} <= set(l), l
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", l["time"]), l
    ours = [l for l in lines if l.get("batch_id") == r["batch_id"]]
    start = [l for l in ours if l["message"].startswith(f"batch {r['batch_id']} started")]
    end = [l for l in ours if l["message"].startswith(f"batch {r['batch_id']} ended")]
    assert len(start) == 1 and len(end) == 1, json.dumps(ours, indent=1)
    for l in start + end:
        assert l["event_id"] == ev["event_id"] and l["dataset"] == "people" and l["uri"] == ev["uri"], l
        assert l["level"] == "info" and l["component"] == "engine"
    assert ev["uri"] in start[0]["message"]
    person = r["counts"]["person"]
    assert (f"completed_with_rejects, {r['rows']} rows read; person: {person['inserted']} inserted, "
            f"{person['updated']} updated") in end[0]["message"], end[0]
    assert re.search(r"ended after \d+\.\d\ds", end[0]["message"])
    assert lines.index(start[0]) < lines.index(end[0])
    # the chunk lines in between carry the batch too
    assert any("chunk of rows" in l["message"] for l in ours)


def test_log_level_from_config_changes_on_reload(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    with_logging(d, "{level: warn, format: json}")
    d.start()
    try:
        r = d.result(d.publish(d.file_event(d.inbox_file("a.csv", LEADS_1)))["event_id"])
        assert {l["level"] for l in json_lines(d)} <= {"warning", "error", "critical"}, d.log.read_text()[-2000:]
        with_logging(d, "{level: debug, format: json}")
        reload(d, "success")
        assert "ingestd_config_last_reload_successful 1" in d.http("/metrics")[1]
        r = d.result(d.publish(d.file_event(d.inbox_file("b.csv", LEADS_2)))["event_id"])
        after = [l for l in json_lines(d) if l.get("batch_id") == r["batch_id"]]
        assert any(l["level"] == "info" and "ended" in l["message"] for l in after), after
        # a refused reload keeps the level it had, and says so on /metrics
        d.config.write_text(d.config.read_text() + "bogus_key: 1\n")
        reload(d, "failure")
        assert "ingestd_config_last_reload_successful 0" in d.http("/metrics")[1]
    finally:
        assert d.stop() == 0
    assert any("bogus_key" in l["message"] and l["level"] == "error" for l in json_lines(d))


def test_command_line_level_wins_over_the_config(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    with_logging(d, "{level: error}")
    d.args = ["--log-level", "info"]
    d.start()
    assert d.stop() == 0
    log = d.log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+ info \[runtime\] ingestd \S+ ready", log, re.M), log[-2000:]


def test_journal_lines_carry_their_priority_and_no_timestamp(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.log.touch()
    st = os.stat(d.log)
    d.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # what systemd sets when stderr is the journal
    d.start()
    try:
        d.publish("{not json", key="broken")  # a warning: dead-lettered
        wait_for(lambda: "<4>[runtime] dead-lettering" in d.log.read_text(), "the dead-letter warning")
    finally:
        assert d.stop() == 0
    lines = d.log.read_text().splitlines()
    assert any(l.startswith("<6>[runtime] ingestd ") and " ready" in l for l in lines), lines
    assert all(re.match(r"<[0-7]>\[\w+\] ", l) for l in lines if l.strip()), lines


def test_global_flags_are_accepted_after_the_subcommand(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("postgres: {url: postgresql://nobody@127.0.0.1:1/x}\nlogging: {level: info}\n")
    ok = subprocess.run([str(BIN), "check", "--offline", "-c", str(cfg), "--log-level", "debug", "--log-format",
                         "json"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    before = subprocess.run([str(BIN), "--log-level", "warn", "-c", str(cfg), "check", "--offline"],
                            capture_output=True, text=True, timeout=60)
    assert before.returncode == 0, before.stdout + before.stderr
    bad = subprocess.run([str(BIN), "check", "--offline", "-c", str(cfg), "--log-level", "loud"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--log-level" in bad.stderr, bad.stderr
    cfg.write_text("postgres: {url: postgresql://nobody@127.0.0.1:1/x}\nlogging: {level: loud}\n")
    badcfg = subprocess.run([str(BIN), "check", "--offline", "-c", str(cfg)], capture_output=True, text=True,
                            timeout=60)
    assert badcfg.returncode == 2
    assert "c.yaml:2: logging.level: expected one of trace, debug, info, warn, error, critical, off, got 'loud'" \
        in badcfg.stderr + badcfg.stdout


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not on /metrics:\n{text}"
    return float(m.group(1))


def test_metrics_show_the_process_the_bytes_read_and_progress(daemon):
    t0 = time.time()
    text = daemon.http("/metrics")[1]
    started = metric(text, "process_start_time_seconds")
    assert t0 - 120 < started <= t0 + 1
    assert metric(text, "process_resident_memory_bytes") > 1 << 20
    assert metric(text, "process_open_fds") >= 3
    assert metric(text, "process_cpu_seconds_total") > 0
    assert metric(text, "ingestd_config_last_reload_successful") == 1
    assert metric(text, 'ingestd_publish_failures_total{kind="result"}') == 0

    path = daemon.inbox_file("a.csv", LEADS_1)
    r = daemon.result(daemon.publish(daemon.file_event(path))["event_id"])
    text = daemon.http("/metrics")[1]
    assert metric(text, 'ingestd_input_bytes_total{dataset="people"}') == len(LEADS_1)
    assert metric(text, "ingestd_batch_rows_read") == 0  # between batches
    assert metric(text, "ingestd_batch_last_progress_timestamp_seconds") >= t0 - 1
    assert r["rows"] > 0
    assert metric(text, "process_start_time_seconds") == started  # the same process
