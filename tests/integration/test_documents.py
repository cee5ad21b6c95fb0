"""Documents (issue 17, `kind: documents`): a file becomes one row of a documents table, linked to
the person its event's `metadata` names (found through the people dataset's identity tiers),
published as an uploader publishes it and loaded by the real daemon. The same file for the same
person is one row and a `duplicate`; for another person it is a second row; an unknown person
fails the batch with the reason; store_dir keeps a content-addressed copy; rollback deletes the
batch's row."""

import hashlib
import json
import subprocess
import uuid

import pytest

from conftest import BIN, EXAMPLES, Daemon

PEOPLE_YAML = (EXAMPLES / "people" / "people.yaml").read_text()

DOCUMENTS_YAML = """
  person_documents:
    kind: documents
    target:
      table: public.person_documents
      owner_column: person_id
      sha256: sha256
      uri: uri
      path: stored_path
      size_bytes: size_bytes
      media_type: media_type
      original_name: original_name
      batch_id: batch_id
    owner:
      dataset: people
      entity: person
      match: {cedula: cedula, email: correo}
    store_dir: ${INGESTD_STATE}/store
"""

DOCUMENTS_SQL = """
CREATE TABLE public.person_documents (
  id bigserial PRIMARY KEY,
  person_id bigint NOT NULL REFERENCES public.persons(id),
  sha256 text NOT NULL,
  uri text,
  stored_path text,
  size_bytes bigint,
  media_type text,
  original_name text,
  batch_id uuid
);
"""

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def docs(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, config_text=PEOPLE_YAML.replace("\ndatasets:\n", "\ndatasets:\n" + DOCUMENTS_YAML))
    d.sql(DOCUMENTS_SQL)
    made = d.create_indexes()  # what an operator runs once: it makes the unique (owner, sha256) index
    assert made.returncode == 0, made.stderr
    d.sql("INSERT INTO persons (cedula, email, first_name) VALUES ('1020304050', 'ana@example.com', 'Ana'), "
          "('5060708090', 'luis@example.com', 'Luis')")
    d.start()
    yield d
    assert d.stop() == 0, d.log.read_text()[-5000:]


def person_id(d, cedula):
    return d.sql("SELECT id FROM persons WHERE cedula = %s", (cedula,))[0][0]


def send(d, path, **extra):
    ev = d.file_event(path, dataset="person_documents", **extra)
    d.publish(ev, key="person_documents")
    return d.result(ev["event_id"])


def documents(d):
    return d.sql("SELECT person_id, sha256, size_bytes, media_type, original_name, uri FROM person_documents ORDER BY id")


def test_same_file_same_owner_is_one_row_and_a_duplicate_another_owner_a_second_row(docs):
    path = docs.inbox_file("upload-7f3a.pdf", PDF)
    sha = hashlib.sha256(PDF).hexdigest()
    first = send(docs, path, metadata={"cedula": "1.020.304.050"}, original_name="diploma.pdf")
    assert first["status"] == "completed", first
    assert first["counts"]["document"]["inserted"] == 1
    ana = person_id(docs, "1020304050")
    assert documents(docs) == [(ana, sha, len(PDF), "application/pdf", "diploma.pdf", f"file://{path}")]

    # the same file for the same person, found this time by her e-mail (another tier)
    again = send(docs, path, metadata={"correo": "ANA@example.com"})
    assert again["status"] == "duplicate", again
    assert str(again["document_id"]) == str(first["document_id"])
    assert len(documents(docs)) == 1

    # the same file for another person is their own document
    other = send(docs, path, metadata={"cedula": "5060708090"})
    assert other["status"] == "completed", other
    rows = documents(docs)
    assert [r[0] for r in rows] == [ana, person_id(docs, "5060708090")]
    assert {r[1] for r in rows} == {sha}
    batches = docs.sql("SELECT status FROM ingestd.batches WHERE dataset_or_job = 'person_documents' ORDER BY started_at")
    assert [b[0] for b in batches] == ["completed", "completed", "completed"]


def test_owner_not_found_fails_with_the_reason(docs):
    path = docs.inbox_file("stranger.pdf", PDF)
    r = send(docs, path, metadata={"cedula": "99999999"})
    assert r["status"] == "failed"
    assert "owner not found" in r["errors"][0] and "cedula=99999999" in r["errors"][0]
    assert documents(docs) == []
    status = docs.sql("SELECT status FROM ingestd.batches WHERE id = %s", (r["batch_id"],))
    assert status == [("failed",)]


def test_metadata_without_an_owner_key_is_dead_lettered(docs):
    path = docs.inbox_file("nokey.pdf", PDF)
    r = send(docs, path, metadata={"nombre": "Ana"})
    assert r["status"] == "failed"
    assert "metadata gives no key" in r["errors"][0] and "cedula" in r["errors"][0]
    dead = [json.loads(m["payload"]) for m in docs.broker.consume("ingest.dead-letter") if m.get("payload")]
    assert any(m.get("dataset") == "person_documents" for m in dead)
    assert documents(docs) == []


def test_store_dir_keeps_a_content_addressed_copy(docs):
    content = PDF + uuid.uuid4().hex.encode()
    sha = hashlib.sha256(content).hexdigest()
    r = send(docs, docs.inbox_file("scan.pdf", content), metadata={"cedula": "1020304050"})
    assert r["status"] == "completed", r
    stored = docs.state / "store" / sha[:2] / sha[2:4] / sha
    assert stored.read_bytes() == content
    assert docs.sql("SELECT stored_path FROM person_documents")[0][0] == str(stored)
    assert [p.name for p in stored.parent.iterdir()] == [sha]  # no temporary file left beside it


def test_rollback_deletes_the_batchs_document(docs):
    r = send(docs, docs.inbox_file("id.pdf", PDF), metadata={"cedula": "5060708090"})
    assert r["status"] == "completed", r
    out = subprocess.run([str(BIN), "rollback", r["batch_id"], "--json", "-c", str(docs.config)], env=docs.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert documents(docs) == []
    assert docs.sql("SELECT status FROM ingestd.batches WHERE id = %s", (r["batch_id"],)) == [("rolled_back",)]
    # the person may send it again: a rolled-back document is no duplicate
    again = send(docs, docs.inbox_file("id-again.pdf", PDF), metadata={"cedula": "5060708090"})
    assert again["status"] == "completed", again


def test_check_asks_for_the_unique_index(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, config_text=PEOPLE_YAML.replace("\ndatasets:\n", "\ndatasets:\n" + DOCUMENTS_YAML))
    d.sql(DOCUMENTS_SQL)
    out = subprocess.run([str(BIN), "check", "-c", str(d.config)], env=d.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "datasets.person_documents.target: no unique index on public.person_documents" in out.stderr
    assert "CREATE UNIQUE INDEX" in out.stderr


def test_load_a_document_from_the_command_line(docs, tmp_path):
    path = tmp_path / "carta.pdf"
    path.write_bytes(PDF)
    out = subprocess.run([str(BIN), "load", str(path), "--dataset", "person_documents", "--meta", "correo=luis@example.com",
                          "--json", "-c", str(docs.config)], env=docs.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "completed" and res["owner"]["id"] == str(person_id(docs, "5060708090"))
    assert documents(docs)[0][4] == "carta.pdf"
    bad = subprocess.run([str(BIN), "load", str(path), "--dataset", "person_documents", "--meta", "=x",
                          "-c", str(docs.config)], env=docs.env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--meta needs KEY=VALUE" in bad.stderr


def test_dry_run_says_what_would_happen_and_stores_nothing(docs):
    content = PDF + b"dry"
    sha = hashlib.sha256(content).hexdigest()
    r = send(docs, docs.inbox_file("maybe.pdf", content), metadata={"cedula": "1020304050"}, dry_run=True)
    assert r["status"] == "dry_run", r
    assert r["counts"]["document"]["inserted"] == 1
    assert r["stored_path"] == str(docs.state / "store" / sha[:2] / sha[2:4] / sha)
    assert documents(docs) == []
    assert not (docs.state / "store" / sha[:2]).exists()


def test_two_records_claiming_the_owner_keys_fail_as_ambiguous(docs):
    docs.sql("INSERT INTO persons (email, first_name) VALUES ('ana.other@example.com', 'Ana B')")
    r = send(docs, docs.inbox_file("both.pdf", PDF), metadata={"cedula": "1020304050", "correo": "ana.other@example.com"})
    assert r["status"] == "failed"
    assert "owner ambiguous" in r["errors"][0]
    assert documents(docs) == []
