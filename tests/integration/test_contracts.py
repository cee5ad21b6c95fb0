"""The uploader's contract (issue 18): the JSON Schemas in schemas/ and the examples in
docs/uploaders.md agree, the daemon vets events with the same schemas, `ingestd submit` needs only
the kafka section and waits from the end of the results topic, exit codes, --json output, and the
Python example of docs/examples runs."""

import json
import re
import subprocess
import sys
import uuid

import jsonschema
import pytest

from conftest import BIN, ROOT, Daemon
from faults import consume_raw, healthy, metric

SCHEMAS = {name: json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
           for name in ("file.arrived", "job.requested", "result")}
UPLOADERS = (ROOT / "docs" / "uploaders.md").read_text()
CSV_OK = "Cedula,Nombre,Apellido,Email\n40000001,Ana,Ruiz,ana@example.com\n"
CSV_ONE_REJECT = CSV_OK + ",Carlos,Ruiz,carlos@example\n"


def valid(schema, doc):
    return jsonschema.Draft7Validator(SCHEMAS[schema]).is_valid(doc)


def assert_valid(schema, doc):
    jsonschema.Draft7Validator(SCHEMAS[schema]).validate(doc)


def doc_examples():
    """Every ```json block of docs/uploaders.md, parsed."""
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", UPLOADERS, re.S)]


def kafka_only_config(tmp_path, broker, results="ingest.results"):
    cfg = tmp_path / "kafka.yaml"
    cfg.write_text(f"kafka:\n  brokers: {broker.bootstrap}\n  topics: {{results: {results}}}\n")
    return cfg


def ingestd(*args, env=None, timeout=120):
    return subprocess.run([str(BIN), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def test_schemas_are_draft7_and_accept_the_documented_examples():
    for schema in SCHEMAS.values():
        jsonschema.Draft7Validator.check_schema(schema)
    examples = doc_examples()
    by_type = {"file.arrived": 0, "job.requested": 0, "result": 0}
    for ex in examples:
        kind = "result" if "status" in ex else ex["type"]
        assert_valid(kind, ex)
        by_type[kind] += 1
    assert by_type == {"file.arrived": 2, "job.requested": 1, "result": 1}, by_type  # a file and a document


@pytest.mark.parametrize("schema,field,value", [
    ("file.arrived", "size_bytes", "51200"),
    ("file.arrived", "size_bytes", -1),
    ("file.arrived", "dry_run", "no"),
    ("file.arrived", "dataset", 5),
    ("file.arrived", "options", {"delimiter": ";;"}),
    ("file.arrived", "metadata", {"cedula": {"nested": 1}}),
    ("file.arrived", "metadata", ["cedula"]),
    ("job.requested", "params", ["batch_id"]),
    ("job.requested", "job", ""),
    ("result", "status", "done"),
    ("result", "duration_ms", "842"),
])
def test_schemas_refuse_a_wrong_type(schema, field, value):
    ex = next(e for e in doc_examples() if ("result" if "status" in e else e["type"]) == schema)
    assert valid(schema, ex)
    assert not valid(schema, dict(ex, **{field: value}))
    assert not valid(schema, {k: v for k, v in ex.items() if k != "event_id"})


def test_daemon_dead_letters_what_the_schema_refuses_with_its_path_and_keeps_running(daemon):
    d = daemon
    path = d.inbox_file("ok.csv", CSV_OK)
    wrong = d.publish(d.file_event(path, size_bytes="51200"))
    nested = d.publish(d.file_event(path, options={"encoding": 8}))
    job = d.publish({"event_id": str(uuid.uuid4()), "type": "job.requested", "job": "checks", "params": [1]},
                    topic="ingest.jobs", key="checks")
    good = d.publish(d.file_event(path, size_bytes=len(CSV_OK)))
    res = d.result(good["event_id"])
    assert res["status"] == "completed"
    assert_valid("result", res)

    errors = {json.loads(m["payload"])["event_id"]: dict(zip(m["headers"][0::2], m["headers"][1::2]))["error"]
              for m in consume_raw(d.broker.bootstrap, "ingest.dead-letter")}
    assert errors == {
        wrong["event_id"]: "schema: /properties/size_bytes: expected integer or null, got string",
        nested["event_id"]: "schema: /properties/options/properties/encoding: expected string, got number",
        job["event_id"]: "schema: /properties/params: expected object or null, got array",
    }
    for ev in (wrong, nested, job):  # the uploader hears it too, in a result the schema describes
        failed = d.result(ev["event_id"])
        assert failed["status"] == "failed" and failed["errors"] == [errors[ev["event_id"]]]
        assert_valid("result", failed)
    assert metric(d.http("/metrics")[1], "ingestd_dead_letters_total", reason="wrong_type") == 3
    assert healthy(d) and d.proc.poll() is None


def test_submit_with_a_config_of_only_kafka_publishes(broker, tmp_path):
    cfg = kafka_only_config(tmp_path, broker)
    data = tmp_path / "leads.csv"
    data.write_text(CSV_OK)
    out = ingestd("submit", "file", data, "--dataset", "people", "--json", "-c", cfg)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 1  # --json: one object on one line
    ev = json.loads(out.stdout)
    assert_valid("file.arrived", ev)
    published = [json.loads(m["payload"]) for m in broker.consume("ingest.files")]
    assert published == [ev] and ev["size_bytes"] == len(CSV_OK) and ev["uri"] == f"file://{data}"
    job = ingestd("submit", "job", "checks", "-c", cfg)
    assert job.returncode == 0, job.stderr
    assert_valid("job.requested", json.loads(job.stdout))


def test_submit_kafka_only_config_keeps_key_path_errors(broker, tmp_path):
    cfg = tmp_path / "kafka.yaml"
    cfg.write_text(f"kafka:\n  brokers: {broker.bootstrap}\n  topicz: {{}}\n")
    out = ingestd("submit", "job", "checks", "-c", cfg)
    assert out.returncode == 2
    assert "kafka.topicz" in out.stderr and "topics" in out.stderr


def test_submit_wait_times_out_with_exit_4(broker, tmp_path):
    cfg = kafka_only_config(tmp_path, broker)
    out = ingestd("submit", "job", "checks", "--wait", "--timeout", "3", "-c", cfg)
    assert out.returncode == 4, (out.returncode, out.stderr)
    assert "no result for event" in out.stderr and out.stdout == ""


def test_submit_wait_reads_from_the_end_and_exits_by_status(daemon, tmp_path):
    """The same event_id twice: the second --wait must print the second result (`duplicate`),
    not the first one that is still on the topic -- it reads from where the topic ended."""
    d = daemon
    event_id = str(uuid.uuid4())
    path = d.inbox_file("rejects.csv", CSV_ONE_REJECT)
    args = ("submit", "file", path, "--dataset", "people", "--event-id", event_id, "--wait", "--timeout", "60",
            "--json", "-c", d.config)
    first = ingestd(*args, env=d.env)
    assert first.returncode == 3, first.stderr  # completed with rejects
    assert json.loads(first.stdout)["status"] == "completed_with_rejects"
    second = ingestd(*args, env=d.env)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "duplicate" and result["event_id"] == event_id
    assert_valid("result", result)
    failed = ingestd("submit", "file", d.inbox_file("x.csv", CSV_OK), "--dataset", "people", "--wait", "--timeout",
                     "60", "--delimiter", "é", "-c", d.config, env=d.env)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["status"] == "failed"


def test_python_example_from_docs_publishes_and_gets_its_result(daemon):
    d = daemon
    path = d.inbox_file("python.csv", CSV_OK)
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "publish.py"), "--brokers",
                          d.broker.bootstrap, "--dataset", "people", "--timeout", "60", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "completed" and result["counts"]["person"]["inserted"] == 1
    assert_valid("result", result)
    assert d.sql("SELECT first_name FROM persons") == [("Ana",)]
    event = [json.loads(m["payload"]) for m in d.broker.consume("ingest.files")]
    assert [e["event_id"] for e in event] == [result["event_id"]]
    assert_valid("file.arrived", event[0])


def test_json_output_of_commands_parses(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path)
    check = ingestd("check", "--json", "-c", d.config, env=d.env)
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["datasets"] == 1
    offline = json.loads(ingestd("check", "--offline", "--json", "-c", d.config, env=d.env).stdout)
    assert offline["ok"] is True and offline["offline"] is True
    data = d.inbox_file("load.csv", CSV_ONE_REJECT)
    load = ingestd("load", data, "--dataset", "people", "--json", "-c", d.config, env=d.env)
    assert load.returncode == 3, load.stderr
    result = json.loads(load.stdout)
    assert result["status"] == "completed_with_rejects" and len(load.stdout.strip().splitlines()) == 1
    assert_valid("result", result)
    rollback = ingestd("rollback", result["batch_id"], "--json", "-c", d.config, env=d.env)
    assert rollback.returncode == 0, rollback.stderr
    assert json.loads(rollback.stdout)["batch_id"] == result["batch_id"]
    job = ingestd("run-job", "checks", "--json", "-c", d.config, env=d.env)
    job_result = json.loads(job.stdout)
    assert_valid("result", job_result)
    assert job.returncode == (1 if job_result["status"] == "failed" else 0), job.stderr
    dlq = ingestd("dlq", "replay", "--dry-run", "--json", "-c", d.config, env=d.env)
    assert dlq.returncode == 0, dlq.stderr
    assert json.loads(dlq.stdout)["replayed"] == 0


@pytest.mark.parametrize("command", [[], ["check"], ["load"], ["run-job"], ["submit", "file"], ["submit", "job"],
                                     ["status"], ["rollback"], ["review", "merge"], ["dlq", "replay"]])
def test_help_lists_the_exit_codes(command):
    out = ingestd(*command, "--help")
    assert out.returncode == 0
    assert ("Exit codes: 0 completed, 1 failed, 2 usage or config error, 3 completed with rejects, "
            "4 timed out waiting") in " ".join(out.stdout.split())
