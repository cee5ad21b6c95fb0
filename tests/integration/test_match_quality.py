"""Identity-matching quality on FEBRL dataset1 through the real pipeline (`ingestd load`).

The figures are those of bench/febrl_quality.py (docs/match-quality.md) for the `date`
configuration, bench/febrl/febrl.yaml as is: 1000 rows, 500 true duplicate pairs; ingestd
finds 447 of them and no false one (precision 1.000, recall 0.894). The thresholds sit just
below the measurement, so losing a couple of pairs or merging two people fails the test.
"""

import sys

import psycopg2
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import febrl_quality as fq  # noqa: E402

DATASET1 = fq.DATA / "dataset1.csv"


def test_febrl_dataset1_match_quality(pg, tmp_path):
    if not DATASET1.exists():
        pytest.skip(f"FEBRL data not found: {DATASET1} (expected at ../shared/data/febrl from the repo root, "
                    f"or set FEBRL_DATA)")
    truth = fq.read_truth(DATASET1)
    assert len(truth) == 1000
    # chunk_rows=300: four chunks, so matching runs both inside a chunk and against the database
    try:
        s = fq.load_and_score(pg, DATASET1, tmp_path, chunk_rows=300, kind="date", truth=truth)
    except fq.EngineProblem as e:
        pytest.fail(str(e))

    assert s["true_pairs"] == 500
    assert s["precision"] >= 0.999, s      # no pair of different people merged
    assert s["recall"] >= 0.89, s          # measured 0.894 (447 of 500 pairs)
    assert s["f1"] >= 0.94, s              # measured 0.944

    # Rejected rows are exactly the ones with an impossible date (e.g. 19371233); nothing in review.
    assert s["rejected"] == len(fq.invalid_dates(truth)) == 3
    assert s["review"] == 0
    # The grouping is exactly DESIGN rule 6 applied to the three exact tiers.
    assert s["same_as_rule6_reference"]

    # The person rows created are what the lineage says.
    c = psycopg2.connect(s["database_url"])
    try:
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM public.febrl_persons")
        persons = cur.fetchone()[0]
        cur.execute("SELECT count(DISTINCT record_id), count(*) FILTER (WHERE action = 'inserted'), count(*) "
                    "FROM ingestd.row_lineage WHERE entity = 'person'")
        distinct_ids, inserted, lineage_rows = cur.fetchone()
        cur.execute("SELECT count(*) FROM ingestd.row_errors")
        errors = cur.fetchone()[0]
        cur.execute("SELECT status, inserted, rejected FROM ingestd.batches")
        batches = cur.fetchall()
        cur.execute("SELECT count(*) FROM public.febrl_persons p WHERE NOT EXISTS "
                    "(SELECT 1 FROM ingestd.row_lineage l WHERE l.record_id = p.id::text AND l.entity = 'person')")
        orphans = cur.fetchone()[0]
    finally:
        c.close()
    assert persons == distinct_ids == inserted == s["persons"]
    assert orphans == 0
    assert lineage_rows + errors == 1000
    assert batches == [("completed_with_rejects", persons, 3)]
    assert persons == 1000 - 3 - s["tp"]   # every matched pair (all within clusters of two) saves one row
