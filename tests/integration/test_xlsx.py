"""Excel input end to end: the people example's leads as CSV and as workbooks written by two real
writers (openpyxl: inline strings; xlsxwriter: shared strings), loaded with `ingestd load` into
fresh databases, give the same people and the same rejects, numbered by sheet row. One workbook
goes through the daemon as a file event."""

import csv
import datetime
import io
import json
import signal
import subprocess

import openpyxl
import xlsxwriter

from conftest import BIN, EXAMPLES, Daemon
from faults import people_config, slow_trigger, wait_committed

LEADS_1 = (EXAMPLES / "people" / "leads_2025_11.csv").read_text(encoding="utf-8")
PEOPLE_YAML = (EXAMPLES / "people" / "people.yaml").read_text()


def config_for(xlsx_options, base=PEOPLE_YAML):
    """The people example with its dataset read from a workbook."""
    return base.replace('    csv: {delimiter: ",", encoding: utf-8, header: true}\n',
                               f"    format: xlsx\n    xlsx: {xlsx_options}\n")


def typed(header, value):
    """A cell as a person typing the CSV into Excel would leave it: real dates, numeric ids."""
    if header == "Fecha de nacimiento" and value:
        for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
            try:
                return datetime.datetime.strptime(value, fmt)
            except ValueError:
                pass  # 31/02/1990 stays text, as Excel leaves it
    if header == "Cedula" and value.isdigit():
        return int(value)
    return value or None


def leads():
    rows = list(csv.reader(io.StringIO(LEADS_1)))
    return rows[0], [[typed(h, v) for h, v in zip(rows[0], r)] for r in rows[1:]]


def openpyxl_workbook(path):
    header, rows = leads()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "People"
    ws.append(header)
    for r in rows:
        ws.append(r)
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, datetime.datetime):
                cell.number_format = "dd/mm/yyyy"
    wb.save(path)


def xlsxwriter_workbook(path):
    """Shared strings (xlsxwriter's default), the data on a second sheet, a formatted empty row
    below the data (skipped, not a record)."""
    header, rows = leads()
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet("Notes").write(0, 0, "exported by the CRM")
    ws = wb.add_worksheet("Leads")
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, header)
    for i, r in enumerate(rows, start=1):
        for j, v in enumerate(r):
            if isinstance(v, datetime.datetime):
                ws.write_datetime(i, j, v, date)
            elif isinstance(v, int):
                ws.write_number(i, j, v)
            elif v is not None:
                ws.write_string(i, j, v)
    ws.set_row(len(rows) + 5, None, date)  # formatted, no cells: skipped
    wb.close()


def load(d, path, dataset="people"):
    out = subprocess.run([str(BIN), "load", str(path), "--dataset", dataset, "-c", str(d.config)], env=d.env,
                         capture_output=True, text=True, timeout=60)
    r = json.loads(out.stdout)
    # DESIGN §6: 0 completed, 3 completed with rejects
    assert out.returncode == {"completed": 0, "completed_with_rejects": 3}[r["status"]], out.stderr
    return r


def people(d):
    return d.sql("SELECT cedula, email, phone, first_name, last_name, birth_date::text, address, data_source, "
                 "csv_enriched FROM persons ORDER BY first_name, cedula")


def leads_of(d):
    return d.sql("SELECT p.first_name, p.cedula, l.program_type, l.source_system FROM leads l "
                 "JOIN persons p ON p.id = l.person_id ORDER BY 1, 2, 3")


def rejects(result):
    with open(result["reject_file"], encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_csv_and_two_workbook_writers_give_the_same_people_and_rejects(pg, broker, tmp_path):
    csv_db = Daemon(pg, broker, tmp_path / "csv")
    (tmp_path / "leads.csv").write_text(LEADS_1, encoding="utf-8")
    from_csv = load(csv_db, tmp_path / "leads.csv")

    openpyxl_workbook(tmp_path / "openpyxl.xlsx")
    xlsxwriter_workbook(tmp_path / "xlsxwriter.xlsx")
    for path, options in ((tmp_path / "openpyxl.xlsx", "{}"),
                          (tmp_path / "xlsxwriter.xlsx", "{sheet: Leads, header_row: 1}")):
        d = Daemon(pg, broker, tmp_path / path.stem, config_text=config_for(options))
        r = load(d, path)
        assert r["status"] == from_csv["status"] == "completed_with_rejects"
        assert r["counts"] == from_csv["counts"], path.stem
        assert people(d) == people(csv_db), path.stem
        assert leads_of(d) == leads_of(csv_db), path.stem
        assert d.sql("SELECT birth_date::text FROM persons WHERE cedula = '1023456789'") == [("1990-03-15",)]
        # same reject lines; the row is the sheet row (the CSV's record number + the header row)
        want = rejects(from_csv)
        got = rejects(r)
        assert got[0] == want[0]
        assert [g[:-2] + g[-1:] for g in got[1:]] == [w[:-2] + w[-1:] for w in want[1:]], path.stem
        assert [int(g[-2]) for g in got[1:]] == [int(w[-2]) + 1 for w in want[1:]] == [8, 9, 10]
        assert d.sql("SELECT row_number, field, code FROM ingestd.row_errors ORDER BY 1") == [
            (8, "Email", "invalid_value"), (9, "Fecha de nacimiento", "invalid_value"), (10, "Nombre", "required")]
        b = d.sql("SELECT rows_total, last_row_committed FROM ingestd.batches")
        assert b == [(10, 11)]  # ten records read, up to sheet row 11


def test_workbook_through_the_daemon_and_what_is_refused(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, config_text=config_for("{sheet: People}"))
    check = subprocess.run([str(BIN), "check", "--offline", "-c", str(d.config)], env=d.env, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    d.start()
    try:
        openpyxl_workbook(d.state / "inbox" / "leads.xlsx")
        ev = d.publish(d.file_event(d.state / "inbox" / "leads.xlsx"))
        r = d.result(ev["event_id"])
        assert r["status"] == "completed_with_rejects"
        assert r["counts"]["person"]["inserted"] == 5 and r["counts"]["person"]["rejected"] == 3
        assert d.sql("SELECT count(*) FROM leads")[0][0] == 6
        assert [x[-2] for x in rejects(r)[1:]] == ["8", "9", "10"]

        ole = d.inbox_file("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1024)
        r = d.result(d.publish(d.file_event(ole))["event_id"])
        assert r["status"] == "failed"
        assert "encrypted workbook or .xls: save as .xlsx without a password" in r["errors"][0], r

        csv_named_xlsx = d.inbox_file("leads2.xlsx", LEADS_1)
        r = d.result(d.publish(d.file_event(csv_named_xlsx))["event_id"])
        assert r["status"] == "failed" and "not an .xlsx workbook" in r["errors"][0], r

        wb = openpyxl.Workbook()
        wb.active.title = "Sheet1"
        wb.save(d.state / "inbox" / "other.xlsx")
        r = d.result(d.publish(d.file_event(d.state / "inbox" / "other.xlsx"))["event_id"])
        assert r["status"] == "failed" and "no sheet 'People'; its sheets: 1 'Sheet1'" in r["errors"][0], r
        assert d.http("/readyz")[0] == 200
    finally:
        assert d.stop() == 0


def test_kill9_mid_workbook_resumes_after_the_last_committed_sheet_row(pg, broker, tmp_path):
    """Records are sheet rows 3, 5, 7, ... (an empty row between each): the checkpoint is a sheet
    row, rows_total a count of records, and a restart after kill -9 loads each row once."""
    # short Kafka session: the killed member leaves the group in seconds
    d = Daemon(pg, broker, tmp_path, chunk_rows=150, config_text=config_for("{}", people_config()))
    slow_trigger(d)  # each chunk's insert sleeps, so the kill lands mid-file
    d.start()
    n = 1500
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Cedula", "Nombre", "Apellido"])
    for i in range(n):
        ws.cell(row=3 + 2 * i, column=1, value=30000000 + i)
        if i % 250 != 7:  # every 250th row lacks its required name: a reject
            ws.cell(row=3 + 2 * i, column=2, value=f"Nombre{i}")
    wb.save(d.state / "inbox" / "big.xlsx")
    ev = d.publish(d.file_event(d.state / "inbox" / "big.xlsx"))
    wait_committed(d, 400, timeout=60)
    d.stop(sig=signal.SIGKILL)
    done = d.sql("SELECT last_row_committed FROM ingestd.batches")[0][0]
    assert done < 3 + 2 * (n - 1) and done % 2 == 1  # a sheet row of a record, mid-file
    assert d.sql("SELECT count(*) FROM persons")[0][0] < n - 6
    d.start()
    r = d.result(ev["event_id"], timeout=120)
    assert r["status"] == "completed_with_rejects" and r["rows"] == n
    rejected = [3 + 2 * i for i in range(n) if i % 250 == 7]
    assert d.sql("SELECT count(*), count(DISTINCT cedula) FROM persons")[0] == (n - 6, n - 6)
    assert d.sql("SELECT row_number FROM ingestd.row_errors ORDER BY 1") == [(x,) for x in rejected]
    assert [int(x[-2]) for x in rejects(r)[1:]] == rejected
    assert d.sql("SELECT rows_total, last_row_committed FROM ingestd.batches") == [(n, 3 + 2 * (n - 1))]
    assert len(d.results(ev["event_id"])) == 1
    assert d.stop() == 0
