"""Memory is bounded by bytes, not rows (issue 16 item 7): a 60 MB header line, a 60 MB line of
commas, 500 rows of 1 MB and a 5 MB invalid e-mail, each through the daemon with chunks of 50 000
rows (so only the byte budget, `processing.chunk_bytes`, can end a chunk early). Each case asserts
the daemon's peak RSS (VmHWM of /proc/PID/status, reset before the case), the row errors, the rest
of the file loaded and a result under 1 MiB. The inputs are generated in tmp_path."""

import json
import uuid
from pathlib import Path

import pytest

from conftest import Broker, Daemon
from faults import consume_raw, publish_raw

MIB = 1024 * 1024
PEAK_LIMIT_MIB = 512
PEAKS = {}  # case -> MiB, printed at the end (docs/reliability.md records them)


def reset_peak(pid):
    """Sets VmHWM back to the current RSS (Linux clear_refs 5), so each case measures its own peak.
    Where that is not allowed the peak only accumulates, which the bound still holds."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.fixture(scope="module")
def big(pg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memory")
    b = Broker(tmp)
    d = Daemon(pg, b, tmp, chunk_rows=50000)
    d.start()
    yield d
    rc = d.stop()
    b.stop()
    print("peak RSS per case (MiB):", {k: round(v) for k, v in PEAKS.items()})
    assert rc == 0, "ingestd did not exit 0 on SIGTERM:\n" + d.log.read_text()[-5000:]


def load_measured(d, case, name, write):
    """Writes the input with `write(file)`, publishes it, waits for its result; returns the result
    and its size as published, after asserting the peak RSS of the daemon during the load."""
    path = d.state / "inbox" / name
    with open(path, "wb") as f:
        write(f)
    reset_peak(d.proc.pid)
    ev = d.publish(d.file_event(path))
    res = d.result(ev["event_id"], timeout=600)
    PEAKS[case] = peak_mib(d.proc.pid)
    path.unlink()
    assert PEAKS[case] < PEAK_LIMIT_MIB, f"{case}: peak RSS {PEAKS[case]:.0f} MiB"
    raw = [m["payload"] for m in d.broker.consume("ingest.results") if ev["event_id"] in (m.get("payload") or "")]
    assert raw and max(len(p.encode()) for p in raw) < MIB, f"{case}: result over 1 MiB"
    return res


def row_errors(d, batch_id):
    return d.sql("SELECT row_number, code, message, length(raw) FROM ingestd.row_errors WHERE batch_id = %s "
                 "ORDER BY row_number", (batch_id,))


def test_a_60_mb_header_line_fails_the_batch_with_its_reason(big):
    def write(f):
        f.write(b"Cedula,Nombre," + b"x" * (60 * MIB) + b"\n12345678,Ana\n")
    res = load_measured(big, "60 MB header line", "header.csv", write)
    assert res["status"] == "failed", res
    assert "header line 1:" in res["errors"][0] and "longer than the limit of 16777216 (csv.max_row_bytes)" in \
        res["errors"][0], res
    assert big.sql("SELECT count(*) FROM persons WHERE cedula = '12345678'") == [(0,)]


def test_a_60_mb_line_of_commas_and_a_1_mb_one_are_row_errors(big):
    def write(f):
        f.write(b"Cedula,Nombre,Apellido\n51000001,Ana,Ruiz\n")
        f.write(b"," * (60 * MIB) + b"\n")  # row 2: over csv.max_row_bytes
        f.write(b"," * MIB + b"\n")  # row 3: under it, but 1M fields
        f.write(b"51000002,Bea,Gil\n")
    res = load_measured(big, "60 MB line of commas", "commas.csv", write)
    assert res["status"] == "completed_with_rejects", res
    assert res["counts"]["person"]["inserted"] == 2 and res["counts"]["person"]["rejected"] == 2, res
    errs = row_errors(big, res["batch_id"])
    assert [(r[0], r[1]) for r in errs] == [(2, "row_too_long"), (3, "too_many_fields")], errs
    assert errs[0][2] == f"line 3: {60 * MIB} bytes, longer than the limit of 16777216 (csv.max_row_bytes)", errs
    assert errs[1][2] == f"line 4: {MIB + 1} fields, more than the limit of 16384", errs
    assert all(r[3] <= 64 * 1024 + 100 for r in errs), errs  # row_errors keeps at most 64 KiB of a row
    assert any(e.startswith("row 2") and "row_too_long" in e for e in res["errors"]), res  # codes, not values
    assert big.sql("SELECT count(*) FROM persons WHERE cedula IN ('51000001', '51000002')") == [(2,)]


def test_500_rows_of_1_mb_load_in_byte_bounded_chunks(big):
    value = b"y" * MIB

    def write(f):
        f.write(b"Cedula,Nombre,Direccion\n")
        for i in range(500):
            f.write(b"52%06d,Ana,%s\n" % (i, value))
    res = load_measured(big, "500 rows of 1 MB", "wide_rows.csv", write)
    assert res["status"] == "completed", res
    assert res["counts"]["person"]["inserted"] == 500, res
    assert big.sql("SELECT count(*), min(length(address)), max(length(address)) FROM persons WHERE cedula LIKE '52%'") \
        == [(500, MIB, MIB)]


def test_a_5_mb_invalid_email_is_one_short_row_error(big):
    email = b"x" * (5 * MIB)

    def write(f):
        f.write(b"Cedula,Nombre,Email\n53000001,Ana," + email + b"\n53000002,Bea,bea@example.com\n")
    res = load_measured(big, "5 MB invalid e-mail", "email.csv", write)
    assert res["status"] == "completed_with_rejects", res
    errs = row_errors(big, res["batch_id"])
    assert len(errs) == 1 and errs[0][:2] == (1, "invalid_value"), errs
    assert errs[0][2].startswith('invalid email: "xxx') and f"({5 * MIB} bytes)" in errs[0][2], errs
    assert len(errs[0][2]) < 1000 and errs[0][3] <= 64 * 1024 + 100, errs
    assert all(len(e) < 1000 for e in res["errors"]), res
    # the reject file keeps the row itself: it is the user's data to fix
    rejects = Path(res["reject_file"]).read_bytes().splitlines()
    assert rejects[1].startswith(b"53000001,Ana," + email + b",1,"), rejects[1][:100]
    assert big.sql("SELECT email FROM persons WHERE cedula = '53000002'") == [("bea@example.com",)]
    longest = max(len(line) for line in big.log.read_bytes().splitlines())
    assert longest < 64 * 1024, f"a log line of {longest} bytes"


def test_an_oversized_event_is_answered_without_being_parsed(big):
    # 3 MB that only begin like an event: a tree parse of it fails (unterminated, a million
    # levels deep), so only a reader of its head can answer its uploader.
    event_id = str(uuid.uuid4())
    head = json.dumps({"event_id": event_id, "type": "file.arrived", "dataset": "people"})[:-1]
    payload = head + ', "pad": ' + "[" * MIB + "0," * MIB
    reset_peak(big.proc.pid)
    publish_raw(big.broker.bootstrap, "ingest.files", payload, key="people", max_bytes=4 * MIB)
    res = big.result(event_id, timeout=60)
    assert res["status"] == "failed" and f"event is {len(payload)} bytes; the limit is 1 MiB" in res["errors"][0], res
    PEAKS["3 MB event"] = peak_mib(big.proc.pid)
    assert PEAKS["3 MB event"] < PEAK_LIMIT_MIB
    letters = [m for m in consume_raw(big.broker.bootstrap, "ingest.dead-letter")
               if event_id in (m.get("payload") or "")[:200]]
    assert len(letters) == 1 and len(letters[0]["payload"]) == 256 * 1024, len(letters)
