"""Term frequencies of the fuzzy tier end to end: `ingestd train` lists the values common
enough that agreeing on one is weak evidence, and a load weighs an exact agreement by how common
its value is (a common surname less, a rare one more), saying so in explain and the review."""

import json

import pytest
import yaml

from conftest import Daemon
from test_fuzzy import CONFIG, HEAD, SCHEMA, cli, load, weighted_clinic


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
