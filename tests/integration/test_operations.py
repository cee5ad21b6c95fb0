"""Operations: what an operator installs next to the binary. The alert rules pass promtool, the
dashboard and the rules only name metrics the daemon exports, a real Prometheus scrapes the
daemon and loads the rules, the systemd unit verifies and keeps its hardening, and the daemon
speaks systemd's notify protocol (READY, STATUS, WATCHDOG, STOPPING) the way Type=notify and
WatchdogSec= expect."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import BIN, EXAMPLES, ROOT, Daemon, free_port

DASHBOARD = ROOT / "dashboards" / "ingestd.json"
ALERTS = ROOT / "dashboards" / "alerts.yml"
ALERTS_TEST = ROOT / "dashboards" / "alerts_test.yml"
UNIT = ROOT / "systemd" / "ingestd.service"
SYSUSERS = ROOT / "systemd" / "ingestd.sysusers"
TMPFILES = ROOT / "systemd" / "ingestd.tmpfiles"

LEADS_1 = (EXAMPLES / "people" / "leads_2025_11.csv").read_bytes()
LEADS_2 = (EXAMPLES / "people" / "leads_2025_12.csv").read_bytes()

# Exported per dataset and field that defers lookups; the people example used here has none
# (test_jobs.py's ICE example does).
PENDING_METRICS = {"ingestd_deferred_refs_open"}

# Not ingestd's metrics: `up` is Prometheus' own per-target series.
PROMETHEUS_METRICS = {"up"}

# A measured exposure of 1.1 (systemd 252); fail when hardening is lost, not on rounding.
MAX_EXPOSURE = 2.0


def need(tool):
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/setup installs it)")
    return path


# ---------------------------------------------------------------- PromQL in the dashboard/rules

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names a PromQL expression selects (histogram suffixes stripped). Grafana
    variables ($x, ${x}) and label names are not metric names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    e = re.sub(r"\{[^{}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$.{])[A-Za-z_:][\w:]*", e):
        word = m.group(0)
        if word.lower() in PROMQL_WORDS or e[m.end():].lstrip().startswith("("):
            continue  # keyword or function call
        names.add(re.sub(r"_(bucket|sum|count)$", "", word))
    return names


def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else None
        if q and v["type"] == "query":
            # label_values(METRIC{…}, label): the selector is PromQL
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q)
            exprs.append(m.group(1) if m else q)
    return exprs


def alert_exprs():
    rules = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def grafana_to_promql(expr):
    """Grafana's variables replaced by what they expand to with "All" selected."""
    return (expr.replace("$__rate_interval", "1m").replace("$window", "1h")
            .replace("${datasource}", "").replace('"$job"', '".*"').replace('"$instance"', '".*"')
            .replace('"$dataset"', '".*"'))


def exported_metrics(text):
    """Metric family names in a Prometheus text exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.sub(r"_(bucket|sum|count)$", "", re.match(r"[A-Za-z_:][\w:]*", line).group(0)))
    return names


def wait_metrics(daemon, wanted, timeout=30):
    deadline = time.time() + timeout
    while True:
        text = daemon.http("/metrics")[1]
        missing = wanted - exported_metrics(text)
        if not missing or time.time() > deadline:
            return text, missing
        time.sleep(0.5)


def test_metric_name_parser_finds_selectors_not_functions_or_labels():
    expr = ('sum by (job, reason) (increase(ingestd_dead_letters_total{job=~"$job", reason!="x"}[10m])) > 0 '
            'or histogram_quantile(0.95, sum by (le) (rate(ingestd_batch_duration_seconds_bucket[$window]))) '
            'and on (job) up == 0 unless ingestd_events_total offset 1h5m > 6 * 3600 and time() - 1e3')
    assert metric_names(expr) == {"ingestd_dead_letters_total", "ingestd_batch_duration_seconds",
                                  "ingestd_events_total", "up"}


# ---------------------------------------------------------------- (a) promtool


def test_alert_rules_pass_promtool_check_and_unit_tests():
    promtool = need("promtool")
    check = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_exprs())} rules found" in check.stdout
    unit = subprocess.run([promtool, "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True,
                          cwd=ALERTS_TEST.parent)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    tested = set(re.findall(r"alertname:\s*(\w+)", ALERTS_TEST.read_text()))
    assert tested == set(alert_exprs()), "every alert has a promtool unit test"


def markdown_anchors(text):
    """The anchors GitHub makes of a Markdown file's headings (lowercase, punctuation dropped,
    spaces to hyphens)."""
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def test_every_alert_waits_and_links_a_runbook_that_exists():
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    anchors = markdown_anchors((ROOT / "docs" / "operations.md").read_text())
    for r in rules:
        url = r["annotations"].get("runbook_url", "")
        assert url.startswith("docs/operations.md#"), (r["alert"], url)
        assert url.split("#", 1)[1] in anchors, f"{r['alert']}: no heading for {url} in docs/operations.md"
        # IngestdDeadLetters and IngestdBatchFailures fire on a counter step: nothing to wait for
        if r["alert"] not in ("IngestdDeadLetters", "IngestdBatchFailures"):
            assert "for" in r, f"{r['alert']} has no for:"
    dead = next(r for r in rules if r["alert"] == "IngestdDeadLetters")
    assert "not implemented" not in dead["annotations"]["description"]
    assert "ingestd dlq replay" in dead["annotations"]["description"]


# ---------------------------------------------------------------- (b) names against /metrics


def test_dashboard_and_alerts_use_only_exported_metrics(daemon):
    """Every metric the dashboard and the alert rules query is on /metrics once the daemon has
    loaded a file, dead-lettered an event, retried after losing PostgreSQL and read its lag."""
    used = set()
    for expr in dashboard_exprs() + list(alert_exprs().values()):
        used |= metric_names(expr)
    assert len(used) >= 12, f"the parser found too little in the dashboard: {sorted(used)}"

    r = daemon.result(daemon.publish(daemon.file_event(daemon.inbox_file("a.csv", LEADS_1)))["event_id"])
    assert r["status"] == "completed_with_rejects"
    daemon.publish("{not json", key="broken")  # → ingestd_dead_letters_total{reason="malformed"}
    # PostgreSQL restarts or fails over: the daemon's connection dies under it. The next event is
    # retried on a new connection and counted in ingestd_retries_total.
    daemon.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    r = daemon.result(daemon.publish(daemon.file_event(daemon.inbox_file("b.csv", LEADS_2)))["event_id"])
    assert r["status"] == "completed"

    # consumer lag comes from librdkafka's statistics, every 5 s
    wanted = used - PENDING_METRICS - PROMETHEUS_METRICS
    text, missing = wait_metrics(daemon, wanted, timeout=20)
    assert not missing, (f"queried but not exported: {sorted(missing)}\n/metrics:\n" + text +
                         "\nlog:\n" + daemon.log.read_text()[-3000:])
    assert "ingestd_retries_total{" in text


# ---------------------------------------------------------------- (c) a real Prometheus


class Prometheus:
    """/usr/bin/prometheus on a free port with its own storage, scraping one target every second."""

    def __init__(self, tmp, target, rule_files=()):
        self.dir = tmp / "prometheus"
        self.dir.mkdir()
        self.port = free_port()
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "rule_files": [str(f) for f in rule_files],
               "scrape_configs": [{"job_name": "ingestd", "scrape_interval": "1s",
                                   "static_configs": [{"targets": [target]}]}]}
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.log = self.dir / "prometheus.log"
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [need("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            assert self.proc.poll() is None, "prometheus exited:\n" + self.log.read_text()
            try:
                if self.get("/-/ready", raw=True) == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "prometheus not ready in 30s:\n" + self.log.read_text()
            time.sleep(0.2)

    def get(self, path, raw=False, **params):
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status if raw else json.loads(r.read())
        except urllib.error.HTTPError as e:
            if raw:
                return e.code
            return json.loads(e.read())

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def wait_for(self, expr, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.query(expr)
            assert r["status"] == "success", r
            if r["data"]["result"]:
                return r["data"]["result"]
            time.sleep(0.5)
        raise AssertionError(f"prometheus: no value for {expr} in {timeout}s:\n" + self.log.read_text()[-3000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def test_prometheus_scrapes_the_daemon_and_loads_the_rules(daemon, tmp_path):
    r = daemon.result(daemon.publish(daemon.file_event(daemon.inbox_file("a.csv", LEADS_1)))["event_id"])
    assert r["status"] == "completed_with_rejects"
    prom = Prometheus(tmp_path, f"127.0.0.1:{daemon.http_port}", rule_files=[ALERTS])
    try:
        build = prom.wait_for("ingestd_build_info")
        assert build[0]["metric"]["job"] == "ingestd" and build[0]["metric"]["version"]
        assert build[0]["value"][1] == "1"
        events = prom.wait_for('ingestd_events_total{outcome="completed_with_rejects"}')
        assert events[0]["metric"]["topic"] == "ingest.files" and events[0]["value"][1] == "1"
        assert prom.wait_for('up{job="ingestd"}')[0]["value"][1] == "1"

        # The rules load and evaluate without errors against real data.
        deadline = time.time() + 30
        while True:
            groups = prom.get("/api/v1/rules")["data"]["groups"]
            rules = {r["name"]: r for g in groups for r in g["rules"]}
            if set(rules) == set(alert_exprs()) and all(r["health"] == "ok" for r in rules.values()):
                break
            assert time.time() < deadline, f"rules not healthy: {json.dumps(groups, indent=1)}"
            time.sleep(0.5)
        # Nothing is wrong with this daemon: no alert fires (IngestdDeadLetters needs a dead letter).
        firing = [a for a in prom.get("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]
        assert firing == []

        # Every dashboard query parses and evaluates.
        for expr in dashboard_exprs():
            q = prom.query(grafana_to_promql(expr))
            assert q["status"] == "success", (expr, q)
    finally:
        prom.stop()


# ---------------------------------------------------------------- (d) systemd unit


def unit_with_built_binary(tmp_path):
    """The unit with ExecStart pointing at the build: verify insists the binary exists."""
    unit = tmp_path / "ingestd.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/ingestd", str(BIN)))
    return unit


def test_systemd_unit_verifies(tmp_path):
    analyze = need("systemd-analyze")
    unit = unit_with_built_binary(tmp_path)
    out = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    # verify also reports other units on the host; only ours must be clean.
    ours = [l for l in (out.stdout + out.stderr).splitlines() if "ingestd" in l]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr

    text = UNIT.read_text()
    for line in ["Type=notify", "NotifyAccess=main", "ExecStart=/usr/bin/ingestd run -c /etc/ingestd/ingestd.yaml",
                 "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30", "TimeoutStopSec=300",
                 "User=ingestd", "StateDirectory=ingestd",
                 "LoadCredential=database_url:/etc/ingestd/credentials/database_url"]:
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line


def test_systemd_unit_hardening_exposure(tmp_path):
    analyze = need("systemd-analyze")
    helptext = subprocess.run([analyze, "security", "--help"], capture_output=True, text=True).stdout
    if "--offline" not in helptext:
        pytest.skip("this systemd-analyze has no `security --offline` (systemd >= 250)")
    unit = unit_with_built_binary(tmp_path)
    out = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit)], capture_output=True,
                         text=True)
    m = re.search(r"Overall exposure level for ingestd\.service: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    exposure = float(m.group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, out.stdout


def test_sysusers_and_tmpfiles_make_the_state_directories(tmp_path):
    sysusers, tmpfiles = need("systemd-sysusers"), need("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to chown")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([sysusers, f"--root={root}", "-"], input=SYSUSERS.read_text(), text=True, check=True,
                   capture_output=True)
    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc" / "passwd").read_text().splitlines()}
    assert passwd["ingestd"][5] == "/var/lib/ingestd" and passwd["ingestd"][6].endswith("nologin")
    uid = int(passwd["ingestd"][2])
    subprocess.run([tmpfiles, f"--root={root}", "--create", "-"], input=TMPFILES.read_text(), text=True, check=True,
                   capture_output=True)
    for d, mode in [("", 0o750), ("inbox", 0o3770), ("rejects", 0o750)]:
        st = (root / "var/lib/ingestd" / d).stat()
        assert (st.st_uid, oct(st.st_mode & 0o7777)) == (uid, oct(mode)), d


# ---------------------------------------------------------------- (e) sd_notify


class NotifySocket:
    """What systemd listens on for Type=notify: an AF_UNIX datagram socket. A thread receives,
    so every line carries the time it arrived."""

    def __init__(self, directory):
        path = os.path.join(directory, "notify.sock")
        self.tmpdir = None
        if len(path) >= 100:  # sun_path is 108 bytes
            self.tmpdir = tempfile.mkdtemp(prefix="ingestd-n-")
            path = os.path.join(self.tmpdir, "notify.sock")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, line)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self.lock:
                self.messages.extend((now, line) for line in data.decode().splitlines() if line)

    def lines(self, prefix=""):
        with self.lock:
            return [(t, l) for t, l in self.messages if l.startswith(prefix)]

    def wait_for(self, prefix, timeout, after=None):
        """The lines with `prefix`, once there is one (that arrived after `after`, when given)."""
        deadline = time.monotonic() + timeout
        while not any(after is None or t > after for t, _ in self.lines(prefix)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.lines(prefix)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        os.unlink(self.path)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def test_notify_protocol_ready_status_watchdog_stopping(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    notify = NotifySocket(str(tmp_path))
    d.env["NOTIFY_SOCKET"] = notify.path
    d.env["WATCHDOG_USEC"] = "2000000"  # WatchdogSec=2
    d.env.pop("WATCHDOG_PID", None)  # systemd sets it to the main pid; unset means "this process"
    try:
        d.start()
        assert notify.wait_for("READY=1", 10), f"no READY=1; got {notify.lines()}"
        lines = [l for _, l in notify.lines()]
        assert "STATUS=starting" in lines and lines.index("STATUS=starting") < lines.index("READY=1")
        assert any(l.startswith("STATUS=") and l != "STATUS=starting" for l in lines)

        # Watchdog pings keep coming at well under half the interval, also while a batch loads.
        ready_at = notify.lines("READY=1")[0][0]
        ev = d.publish(d.file_event(d.inbox_file("a.csv", LEADS_1)))
        d.result(ev["event_id"])
        time.sleep(3)
        pings = [t for t, l in notify.lines("WATCHDOG=1") if t >= ready_at]
        assert len(pings) >= 3, f"watchdog pings: {notify.lines()}"
        gaps = [b - a for a, b in zip([ready_at] + pings, pings)]
        assert max(gaps) < 1.0, f"longest gap between WATCHDOG=1 pings: {max(gaps):.2f}s"

        rc = d.stop(signal.SIGTERM)
        assert rc == 0, d.log.read_text()[-3000:]
        assert notify.wait_for("STOPPING=1", 2), notify.lines()
        lines = [l for _, l in notify.lines()]
        assert lines.index("STOPPING=1") > lines.index("READY=1")
        assert "running under systemd" in d.log.read_text()
    finally:
        d.stop(signal.SIGKILL)
        if d.proc and not d.logf.closed:
            d.logf.close()
        notify.close()


def test_watchdog_fed_through_a_long_statement_until_the_stall_limit(pg, broker, tmp_path):
    """Issue 16 item 2: the watchdog is fed from its own thread while the main loop shows signs of
    life, so one 2 s statement (WatchdogSec=2) does not get the process killed; past
    processing.stall_limit_seconds (4 s here) without one, the pings stop and the log says why."""
    text = (EXAMPLES / "people" / "people.yaml").read_text().replace(
        "  retry_base_seconds: 0.2\n", "  retry_base_seconds: 0.2\n  stall_limit_seconds: 4\n")
    d = Daemon(pg, broker, tmp_path, config_text=text)
    notify = NotifySocket(str(tmp_path))
    d.env["NOTIFY_SOCKET"] = notify.path
    d.env["WATCHDOG_USEC"] = "2000000"
    d.env.pop("WATCHDOG_PID", None)
    try:
        d.start()
        assert notify.wait_for("READY=1", 10)
        for seconds, name in ((2, "long"), (8, "stalled")):
            d.sql("CREATE OR REPLACE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
                  f"$$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;"
                  "DROP TRIGGER IF EXISTS slow ON persons;"
                  "CREATE TRIGGER slow AFTER INSERT ON persons FOR EACH STATEMENT EXECUTE FUNCTION slow();")
            t0 = time.monotonic()
            ev = d.publish(d.file_event(d.inbox_file(f"{name}.csv", "Cedula,Nombre,Apellido\n"
                                                     f"{70000000 + int(seconds)},Ana,Ruiz\n")))
            assert d.result(ev["event_id"])["status"] == "completed"
            # the result can come before the next ping (every 0.67 s once the loop shows life
            # again): wait for one after it, so a stall's gap is closed before it is measured
            pings = [t for t, l in notify.wait_for("WATCHDOG=1", 3, after=time.monotonic()) if t >= t0]
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            if name == "long":  # one statement of 2 s (one insert per chunk here), fed throughout
                assert max(gaps) < 1.0, f"longest gap between WATCHDOG=1 pings: {max(gaps):.2f}s"
            else:  # 8 s without a sign of life: past the 4 s limit the pings stop
                assert max(gaps) > 3, f"pings never stopped during an 8 s stall: {gaps}"
        assert "no sign of life from the main loop" in d.log.read_text()
        assert d.stop() == 0
    finally:
        d.stop(signal.SIGKILL)
        notify.close()


# ---------------------------------------------------------------- reload (ExecReload=kill -HUP)


def test_sighup_reloads_datasets_and_keeps_old_ones_on_error(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path).start()
    try:
        original = d.config.read_text()
        # a valid new dataset, written to the same config file, is picked up on SIGHUP
        d.config.write_text(original.replace("datasets:\n  people:", "datasets:\n  people_v2:\n    entities:\n"
                                             "      person:\n        table: public.persons\n        identity: [[cedula]]\n"
                                             "        fields:\n          cedula: {from: Cedula, normalize: digits}\n"
                                             "          first_name: {from: Nombre, required: true}\n  people:", 1))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and 'ingestd_reloads_total{outcome="success"} 1' not in d.http("/metrics")[1]:
            time.sleep(0.2)
        assert 'ingestd_reloads_total{outcome="success"} 1' in d.http("/metrics")[1]
        p = d.inbox_file("v2.csv", "Cedula,Nombre\n123456,Ana\n")
        r = d.result(d.publish(d.file_event(p, dataset="people_v2"), key="people_v2")["event_id"])
        assert r["status"] == "completed"
        # a broken config is refused; the running datasets stay
        d.config.write_text(original + "\nbogus_key: 1\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and 'ingestd_reloads_total{outcome="failure"} 1' not in d.http("/metrics")[1]:
            time.sleep(0.2)
        assert 'ingestd_reloads_total{outcome="failure"} 1' in d.http("/metrics")[1]
        assert d.proc.poll() is None and d.http("/readyz")[0] == 200
        assert "bogus_key" in d.log.read_text()
        p2 = d.inbox_file("v2b.csv", "Cedula,Nombre\n654321,Luis\n")
        r2 = d.result(d.publish(d.file_event(p2, dataset="people_v2"), key="people_v2")["event_id"])
        assert r2["status"] == "completed"
    finally:
        assert d.stop(signal.SIGTERM) == 0
        if not d.logf.closed:
            d.logf.close()


def host_address():
    """A non-loopback IPv4 address of this host, or None (a sandbox with loopback only)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the route's source
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_http_listen_port_alone_binds_loopback_only(pg, broker, tmp_path):
    addr = host_address()
    if addr is None:
        pytest.skip("this host has no address but loopback")
    d = Daemon(pg, broker, tmp_path)
    d.env["INGESTD_HTTP"] = str(d.http_port)  # `listen: PORT`, no address
    d.start()
    try:
        assert d.http("/healthz")[0] == 200
        with pytest.raises(OSError):
            socket.create_connection((addr, d.http_port), timeout=3).close()
    finally:
        assert d.stop() == 0


def unix_get(path, uri):
    """GET over a unix socket, as `curl --unix-socket` does: (status, body)."""
    out = subprocess.run(["curl", "-s", "--max-time", "5", "--unix-socket", str(path), "-w", "\n%{http_code}",
                          f"http://ingestd{uri}"], capture_output=True, text=True)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def test_status_served_on_a_unix_socket_only(pg, broker, tmp_path):
    """Issue 16 item 6: `http.status_socket` serves /status (and the other endpoints) on a unix
    socket, mode 0600 (0660 to `status_socket_group`), and /status is no longer on the TCP port
    every local user can reach. The socket goes away with the process; a stale one is replaced,
    a regular file in its place is refused at start."""
    sock = tmp_path / "status.sock"
    d = Daemon(pg, broker, tmp_path)
    d.config.write_text(d.config.read_text().replace(
        'http: {listen: "${INGESTD_HTTP}"}', 'http: {listen: "${INGESTD_HTTP}", status_socket: "' + str(sock) + '"}'))
    assert "status_socket" in d.config.read_text()
    d.start()
    try:
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
        code, body = unix_get(sock, "/status")
        assert code == 200 and "running" in json.loads(body) and json.loads(body)["ready"] is True, body
        assert unix_get(sock, "/readyz") == (200, "ready\n")
        assert "ingestd_events_total" in unix_get(sock, "/metrics")[1]
        code, body = d.http("/status")
        assert code == 404 and "unix socket" in body
        assert d.http("/metrics")[0] == 200 and d.http("/readyz")[0] == 200
    finally:
        assert d.stop() == 0
    assert not sock.exists()
    sock.write_text("not a socket")
    bad = subprocess.run([str(BIN), "run", "-c", str(d.config)], env=d.env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and f"http.status_socket: {sock}: exists and is not a socket" in bad.stderr, bad
    assert sock.read_text() == "not a socket"
