"""Secrets and personal data stay put; the audit names who (issue 16 items 6 and 8).

Found by trying as a user would, before the fixes: `ingestd check` printed the password of a
malformed postgres.url (libpq quoted it back: `invalid percent-encoded token: "pa%zz…"`), a
`file:` secret put into a wrongly typed key was echoed (`expected an integer, got '<secret>'`),
results and /status quoted refused values (`row 2, Email: invalid e-mail …: "juan@@x"`), reject
files were whatever the umask made them, and the audit's actor was the uploader's own word
(`submitted_by`) or $USER."""

import grp
import json
import os
import pwd
import stat
import subprocess
import uuid

import pytest

from conftest import BIN, EXAMPLES, Daemon


def run(args, env, timeout=60):
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# Passwords of malformed connection strings, each as libpq would quote it (or a piece of it) back.
MALFORMED = {
    "percent": ("postgresql://bob:pa%zzSECRETa1@127.0.0.1:1/db", "SECRETa1"),
    "ipv6": ("postgresql://bob:SECRETb2@[::1/db", "SECRETb2"),
    "slash": ("postgresql://bob:SEC/RETc3@127.0.0.1:1/db", "SEC"),
    "keyword": ("host=127.0.0.1 port=1 password=SECRETd4 x", "SECRETd4"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_check_and_load_never_print_the_password_of_a_malformed_url(tmp_path, case):
    url, secret = MALFORMED[case]
    cfg = write_config(tmp_path, f'postgres:\n  url: "{url}"\n')
    env = dict(os.environ)
    outs = [run(["check", "-c", str(cfg)], env), run(["check", "--json", "-c", str(cfg)], env),
            run(["load", str(cfg), "--dataset", "x", "-c", str(cfg)], env)]
    for i, out in enumerate(outs):
        text = out.stdout + out.stderr
        if i < 2:  # check: a config problem (2), named by its key
            assert out.returncode == 2 and "postgres.url" in text, out
        else:  # load: a config error (2), or a failed connection (1)
            assert out.returncode in (1, 2), out
        # "SEC" is libpq's quote of the piece before '/', read as a port: masked as a quote
        assert secret not in text.replace('"***"', ""), text
    if case == "slash":  # libpq reads it; connecting fails: --json reports it as a problem
        report = json.loads(outs[1].stdout)
        assert report["ok"] is False and any("postgres.url: cannot connect" in p for p in report["problems"]), report
    else:  # refused when the config is loaded, by key path
        assert "postgres.url: not a connection string libpq can read" in outs[0].stderr


def test_a_file_secret_in_a_wrongly_typed_key_is_named_not_shown(tmp_path):
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://app:FileSecretZ9@db/app\n")
    cfg = write_config(tmp_path, "postgres:\n  url: postgresql://127.0.0.1:1/db\n"
                                 f"  pool_size: file:{secret}\nprocessing:\n  chunk_rows: ${{SECRET_ENV_Q}}\n")
    out = run(["check", "--offline", "-c", str(cfg)], dict(os.environ, SECRET_ENV_Q="EnvSecretQ7"))
    assert out.returncode == 2
    assert f"postgres.pool_size: expected an integer, got the value of file:{secret} (not shown)" in out.stderr, out
    assert "processing.chunk_rows: expected an integer, got the value of ${SECRET_ENV_Q} (not shown)" in out.stderr
    assert "FileSecretZ9" not in out.stdout + out.stderr and "EnvSecretQ7" not in out.stdout + out.stderr


def test_a_kafka_secret_property_is_masked_in_errors(pg, tmp_path):
    db = pg.create_db()
    cfg = write_config(tmp_path, f"postgres:\n  url: {pg.url(db)}\nkafka:\n  brokers: 127.0.0.1:1\n"
                                 "  properties: {sasl.password: KafkaSecretP5, security.protocol: KafkaSecretP5}\n")
    out = run(["dlq", "replay", "--dry-run", "-c", str(cfg)], dict(os.environ), timeout=90)
    assert out.returncode != 0
    assert "security.protocol" in out.stderr, out.stderr
    assert "KafkaSecretP5" not in out.stdout + out.stderr, out.stderr


VALUES = ["juan.perez@@example.com", "Calle Secreta 123"]


def test_results_and_status_carry_codes_and_columns_not_values(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.start()
    try:
        p = d.inbox_file("pii.csv", "Cedula,Nombre,Apellido,Email\n"
                                    "51000001,Juan,Perez,juan.perez@@example.com\n"
                                    "51000002,Ana,Ruiz,ana@example.com\n")
        r = d.result(d.publish(d.file_event(p))["event_id"])
        status = d.http("/status")[1]
    finally:
        assert d.stop() == 0
    assert r["status"] == "completed_with_rejects", r
    assert r["errors"] == ["row 1, Email: invalid_value"], r
    assert not any(v in json.dumps(r) or v in status for v in VALUES[:1]), (r, status)
    assert "row 1, Email: invalid_value" in status
    # the value stays where the operator looks: row_errors and the reject file
    assert "juan.perez@@example.com" in d.sql("SELECT message FROM ingestd.row_errors")[0][0]
    assert "juan.perez@@example.com" in open(r["reject_file"]).read()
    # the reject file: group-readable, never world-readable
    mode = stat.S_IMODE(os.stat(r["reject_file"]).st_mode)
    assert mode == 0o640, oct(mode)


@pytest.fixture
def reject_group():
    """A group made for the test (as root), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a group")
    name = "ingrej" + uuid.uuid4().hex[:6]
    subprocess.run(["groupadd", name], check=True)
    yield name
    subprocess.run(["groupdel", name], check=False)


def test_reject_files_belong_to_files_rejects_group(pg, broker, tmp_path, reject_group):
    cfg_text = (EXAMPLES / "people" / "people.yaml").read_text()
    d = Daemon(pg, broker, tmp_path, config_text=cfg_text.replace(
        "  rejects_dir: ${INGESTD_STATE}/rejects\n",
        f"  rejects_dir: ${{INGESTD_STATE}}/rejects\n  rejects_group: {reject_group}\n"))
    d.start()
    try:
        p = d.inbox_file("g.csv", "Cedula,Nombre,Apellido,Email\n52000001,Eva,Diaz,eva@@x\n")
        r = d.result(d.publish(d.file_event(p))["event_id"])
    finally:
        assert d.stop() == 0
    assert r["status"] == "completed_with_rejects", r
    st = os.stat(r["reject_file"])
    assert st.st_gid == grp.getgrnam(reject_group).gr_gid and stat.S_IMODE(st.st_mode) == 0o640
    assert os.stat(os.path.dirname(r["reject_file"])).st_gid == grp.getgrnam(reject_group).gr_gid

    # a group that does not exist: refused at start, by key path
    bad = d.config.read_text().replace(f"rejects_group: {reject_group}", "rejects_group: no-such-group-zz")
    d.config.write_text(bad)
    for args in (["check", "--offline"], ["run"]):
        out = run([*args, "-c", str(d.config)], d.env, timeout=60)
        assert out.returncode == 2, out
        assert "files.rejects_group: no group 'no-such-group-zz' on this system" in out.stderr, out.stderr


def test_audit_names_the_os_user_and_the_kafka_coordinates(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    d.start()
    try:
        batches = []
        for i in range(2):
            p = d.inbox_file(f"a{i}.csv", f"Cedula,Nombre,Apellido,Email\n5300000{i},Luz,Mar,l{i}@example.com\n")
            batches.append(d.result(d.publish(d.file_event(p))["event_id"])["batch_id"])
        # an event job: rollback of batch 0, claiming to be someone
        ev = {"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "rollback",
              "params": {"batch_id": batches[0]}, "submitted_by": "the-boss"}
        d.publish(ev, topic="ingest.jobs", key="rollback")
        assert d.result(ev["event_id"])["status"] == "completed"
        # the CLI, with $USER set to someone else
        cli = run(["rollback", batches[1], "-c", str(d.config)], dict(d.env, USER="mallory", LOGNAME="mallory"))
        assert cli.returncode == 0, cli
        offset = d.sql("SELECT \"offset\", \"partition\" FROM ingestd.events WHERE event_id = %s", (ev["event_id"],))[0]
    finally:
        assert d.stop() == 0
    rows = dict(((b, (a, o)) for b, a, o in d.sql(
        "SELECT batch_id::text, actor, origin FROM ingestd.audit WHERE action = 'rollback'")))
    actor, origin = rows[batches[0]]
    assert actor == f"kafka:ingest.jobs/{offset[1]}@{offset[0]}", rows
    assert origin["via"] == "kafka" and origin["topic"] == "ingest.jobs" and origin["offset"] == offset[0]
    assert origin["event_id"] == ev["event_id"] and origin["claimed_by"] == "the-boss"
    assert origin["consumer_principal"] is None  # no sasl.username configured
    me = pwd.getpwuid(os.geteuid()).pw_name
    actor, origin = rows[batches[1]]
    assert actor == f"cli:{me}" and origin == {"via": "cli", "os_user": me, "uid": os.geteuid()}, rows


def test_status_socket_given_to_its_group(pg, broker, tmp_path, reject_group):
    """`http.status_socket_group`: the socket is 0660 and belongs to that group (a group made for
    the test), so its members read /status without the ingestd user's rights."""
    sock = tmp_path / "status.sock"
    d = Daemon(pg, broker, tmp_path)
    d.config.write_text(d.config.read_text().replace(
        'http: {listen: "${INGESTD_HTTP}"}',
        f'http: {{listen: "${{INGESTD_HTTP}}", status_socket: "{sock}", status_socket_group: {reject_group}}}'))
    d.start()
    try:
        st = sock.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == grp.getgrnam(reject_group).gr_gid
        out = subprocess.run(["curl", "-s", "--unix-socket", str(sock), "http://ingestd/status"], capture_output=True,
                             text=True, timeout=10)
        assert json.loads(out.stdout)["ready"] is True, out
    finally:
        assert d.stop() == 0
