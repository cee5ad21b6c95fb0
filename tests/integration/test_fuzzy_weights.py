"""What a weights file adds to a fuzzy tier's scores, end to end: the rows it was trained on
(a bigger table asks more of a pair), fields that agree together (counted once), and term
frequencies (`ingestd train` lists the values common enough that agreeing on one is weak
evidence; an exact agreement weighs by how common its value is, a common surname less, a rare
one more). Each says so in explain and the review."""

import json

import pytest
import yaml

from conftest import Daemon
from test_fuzzy import CONFIG, HEAD, SCHEMA, cli, load


def test_train_lists_the_common_values_of_a_field(pg, broker, tmp_path):
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=2, config_text=CONFIG, indexes=False)
    d.sql(SCHEMA)
    assert d.create_indexes().returncode == 0  # train takes dmetaphone() from the database
    given = ["Katherine", "John", "Maria", "Peter", "Lucas", "Ana", "Tomas", "Irene", "Paul", "Rosa"]
    rows = [HEAD] + [f",{given[i % 10]},{'Smith' if i % 2 else f'Zed{i}'},{1 + i % 28:02d}/{1 + i % 12:02d}/"
                     f"{1950 + i % 40},{2000 + i % 50}," for i in range(400)]
    data = d.inbox_file("train.csv", "\n".join(rows) + "\n")
    weights = tmp_path / "trained.weights.yaml"
    r = cli(d, "train", "patients", str(data), "--output", str(weights))
    assert r.returncode == 0, r.stderr
    text = weights.read_text()
    # half the surnames are Smith; the others, each held once, count as any other value
    assert "frequent:\n  surname:\n    rest: 0.0025\n    values:\n      \"smith\": 0.5\n" in text, text
    assert "surname: 1 common values (smith 50%)" in r.stdout, r.stdout
    assert list(yaml.safe_load(text)["frequent"]) == ["surname"], text  # ten given names, each as common: none


def test_an_exact_agreement_on_a_common_surname_weighs_less_and_on_a_rare_one_more(pg, broker, tmp_path):
    """Weights (test_fuzzy.CONFIG's) give an exact surname +7.41 (u 0.005). With term
    frequencies, Smith (a fifth of the rows) gives log2(0.85 / 0.2) = +2.09 and any other surname
    log2(0.85 / 0.0005) = +10.73. A typo'd given name with another postcode scores 17.15 without
    them (review); with them Smith's row scores 11.83 (review) and Zabala's 20.47 (merged)."""
    d = weighted_clinic(pg, broker, tmp_path,
                        "frequent:\n  surname:\n    rest: 0.0005\n    values:\n      \"smith\": 0.2\n")
    try:
        first = load(d, "first.csv", HEAD + "\n111,Katherine,Smith,17/05/1980,2000,\n333,Katherine,Zabala,17/05/1980,2000,\n")
        assert first["counts"]["patient"]["inserted"] == 2, first
        r = load(d, "typos.csv", HEAD + "\n,Katharine,Smith,17/05/1980,3000,\n,Katharine,Zabala,17/05/1980,3000,\n")
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 1, "new": 0}, r
        zabala = d.sql("SELECT id FROM patients WHERE surname = 'Zabala'")[0][0]
        assert d.sql(f"SELECT record_id::bigint, tier FROM ingestd.row_lineage WHERE batch_id = '{r['batch_id']}' "
                     "AND row_number = 2")[0] == (zabala, 3)  # the fuzzy tier, after two exact ones
        score, reasons = d.sql("SELECT score, reasons FROM ingestd.review_queue WHERE status = 'open'")[0]
        assert score == pytest.approx(11.83, abs=0.02)
        assert "surname exact (common: 20% of rows) +2.09" in reasons, reasons
        merged = json.loads(cli(d, "explain", r["batch_id"], "2", "--json").stdout)
        fields = {f["field"]: f for f in merged["entities"][0]["fuzzy"][0]["fields"]}
        assert fields["surname"] == {"field": "surname", "level": "exact", "weight": 10.73}, fields
        assert merged["entities"][0]["fuzzy"][0]["score"] == pytest.approx(20.47, abs=0.02)
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


def weighted_clinic(pg, broker, tmp_path, weights_text):
    """A started clinic whose fuzzy tier names a weights file of this text; the config's own m/u
    stand for whatever the file leaves out."""
    weights = tmp_path / "clinic.weights.yaml"
    weights.write_text(weights_text)
    config = CONFIG.replace("review_at: 10", f"review_at: 10\n              weights: {weights}")
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=2, config_text=config, indexes=False)
    d.sql(SCHEMA)
    assert d.create_indexes().returncode == 0
    d.start()
    return d


def test_a_table_bigger_than_the_weights_were_trained_on_asks_more_of_a_pair(pg, broker, tmp_path):
    """Weights trained on 50 rows: against a table of 8,001 records a pair's match weight is
    lowered by log2(8001 / 50) = 7.32 (a pair agrees by chance with more people there), so the
    typo that merges into a small table (26.95) goes to review in the big one, saying why."""
    d = weighted_clinic(pg, broker, tmp_path, "rows: 50\n")  # what the config's own m/u were trained on
    try:
        assert load(d, "first.csv", HEAD + "\n111,Katherine,Smith,17/05/1980,2000,\n")["counts"]["patient"]["inserted"] == 1
        typo = HEAD + "\n,Katharine,Smith,17/05/1980,2000,0299990000\n"
        small = load(d, "small.csv", typo, dry_run=True)
        assert small["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, small
        # 8,000 other people, none in the row's blocks, counted by ANALYZE (pg_class.reltuples)
        d.sql("INSERT INTO patients (given_name, surname, birth_date, postcode) SELECT 'P' || g, 'Q' || g, "
              "date '1900-01-01' + g, '9999' FROM generate_series(1, 8000) g; ANALYZE patients")
        big = load(d, "big.csv", typo)
        assert big["counts"]["patient"]["fuzzy"] == {"merged": 0, "review": 1, "new": 0}, big
        score, reasons = d.sql("SELECT score, reasons FROM ingestd.review_queue WHERE status = 'open'")[0]
        assert score == pytest.approx(26.95 - 7.32, abs=0.03)
        assert "table size -7.32" in reasons, reasons
        ex = json.loads(cli(d, "explain", big["batch_id"], "1", "--json").stdout)
        fields = {f["field"]: f for f in ex["entities"][0]["fuzzy"][0]["fields"]}
        assert fields["(table size)"]["weight"] == pytest.approx(-7.32, abs=0.01), fields
        assert fields["surname"]["weight"] == 7.41  # the fields' own weights are as they were
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


def test_a_field_that_agrees_together_with_another_counts_given_it(pg, broker, tmp_path):
    """The file says birth date and postcode agree together (u of both 0.0005, where each alone
    has u 0.001 and 0.01): once the birth date agrees, the postcode's agreement weighs
    log2(0.9 * 0.001 / 0.0005) = +0.85 instead of +6.49, so the typo's 26.95 becomes 21.31."""
    d = weighted_clinic(pg, broker, tmp_path, "together:\n  - {fields: [birth_date, postcode], u: 0.0005}\n")
    try:
        load(d, "first.csv", HEAD + "\n111,Katherine,Smith,17/05/1980,2000,\n")
        r = load(d, "typo.csv", HEAD + "\n,Katharine,Smith,17/05/1980,2000,0299990000\n")
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, r
        ex = json.loads(cli(d, "explain", r["batch_id"], "1", "--json").stdout)["entities"][0]["fuzzy"][0]
        fields = {f["field"]: f for f in ex["fields"]}
        assert fields["postcode"] == {"field": "postcode", "level": "exact (with birth_date)", "weight": 0.85}, fields
        assert fields["birth_date"]["weight"] == 9.73  # the first keeps its own weight
        assert ex["score"] == pytest.approx(21.31, abs=0.02)
        # a postcode agreeing without the birth date counts on its own
        other = load(d, "other.csv", HEAD + "\n,Katharine,Smith,18/05/1980,2000,\n")
        ex = json.loads(cli(d, "explain", other["batch_id"], "1", "--json").stdout)["entities"][0]["fuzzy"][0]
        fields = {f["field"]: f for f in ex["fields"]}
        assert fields["postcode"] == {"field": "postcode", "level": "exact", "weight": 6.49}, fields
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
