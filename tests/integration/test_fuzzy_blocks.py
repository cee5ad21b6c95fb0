"""Open blocks and blocks over max_candidates of the fuzzy tier: a row holding every never_across
value is blocked among the records holding none (partial indexes), and a block holding more
than max_candidates records gives no candidates. Either way one chunk gives what one row per
chunk gives: records that leave a block or join it in the chunk count as the target's index
would count them for a later chunk."""

import pytest

from conftest import Daemon
from test_fuzzy import CONFIG, HEAD, SCHEMA, load


def small_blocks(pg, broker, tmp_path, chunk_rows, field, stored, max_candidates=1):
    """A started daemon whose fuzzy tier blocks on `field` alone, a block giving candidates while it
    holds `max_candidates` records or fewer, over a table holding `stored` (VALUES of national_id,
    given_name, surname, birth_date, postcode; none: empty)."""
    config = CONFIG.replace("review_at: 10", f"review_at: 10\n              max_candidates: {max_candidates}") \
        .replace('blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]', f"blocking: [[{field}]]")
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=chunk_rows, indexes=False, config_text=config)
    d.sql(SCHEMA)
    if stored:
        d.sql("INSERT INTO patients (national_id, given_name, surname, birth_date, postcode) VALUES " + stored)
    assert d.create_indexes().returncode == 0
    d.start()
    return d


def load_rows(d, name, rows):
    """Loads the rows (under HEAD) as file `name`; returns the result, which must be completed."""
    r = load(d, name, HEAD + "\n" + "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    return r


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_record_that_gets_a_national_id_in_the_chunk_leaves_the_open_blocks(pg, broker, tmp_path, chunk_rows):
    """A record the chunk gives a national ID leaves the open blocks at once, as the partial
    index leaves it out once it is stored. Zed and Wanda (no ID) share a postcode; a row with
    Zed's name and birth date gives him 777 (exact tier), so the open block of 7000 holds Wanda
    alone, within its one place, and Wandah (with an ID) merges into her, whether the rows come
    in one chunk or one by one. Had Zed stayed, the block would hold two: no candidates."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, "postcode", None)
    try:
        r = load_rows(d, "zw.csv", [",Zed,Quux,01/01/1950,7000,",        # new
                                    ",Wanda,Mole,02/02/1960,7000,",      # scored against Zed only: new
                                    "777,Zed,Quux,01/01/1950,7000,",     # Zed by name and birth date
                                    "888,Wandah,Mole,02/02/1960,7000,"])  # the open block: Wanda alone
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 2}, r
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == [("777", "Zed"), ("888", "Wanda")]
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_stored_record_given_a_national_id_brings_its_open_block_within_max_candidates(pg, broker, tmp_path,
                                                                                       chunk_rows):
    """The same with Zed and Wanda already in the table: their open block holds two, over its one
    place, until a row gives Zed an ID; then it holds Wanda alone and the next row meets her. One
    row per chunk, the next chunk's probe finds her; in one chunk, the block was over when the
    chunk began (its members never fetched), and is asked for again once a member leaves."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, "postcode",
                     "(NULL, 'Zed', 'Quux', '1950-01-01', '7000'), (NULL, 'Wanda', 'Mole', '1960-02-02', '7000')")
    try:
        r = load_rows(d, "zw.csv", ["777,Zed,Quux,01/01/1950,7000,", "888,Wandah,Mole,02/02/1960,7000,"])
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == [("777", "Zed"), ("888", "Wanda")]
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_an_open_block_that_loses_members_and_gains_one_counts_as_its_index(pg, broker, tmp_path, chunk_rows):
    """One place per postcode block, no record with an ID. Zed and Wanda hold 7000 (over); Yola has
    no postcode. Zed gets an ID and leaves; Yola gets the postcode and joins (over again); Yola
    gets an ID and leaves: Wanda alone, so Wandah meets her and merges. One row per chunk, each
    probe of the index counts these; in one chunk, the block is counted again as rows change it."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, "postcode",
                     "(NULL, 'Zed', 'Quux', '1950-01-01', '7000'), (NULL, 'Yola', 'Yule', '1960-02-02', NULL), "
                     "(NULL, 'Wanda', 'Mole', '1970-03-03', '7000')")
    try:
        r = load_rows(d, "zyw.csv", ["777,Zed,Quux,01/01/1950,7000,", ",Yola,Yule,02/02/1960,7000,",
                                     "888,Yola,Yule,02/02/1960,7000,", "999,Wandah,Mole,03/03/1970,7000,"])
        assert d.sql("SELECT national_id, given_name, postcode FROM patients ORDER BY id") == \
            [("777", "Zed", "7000"), ("888", "Yola", "7000"), ("999", "Wanda", "7000")]
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("max_candidates", [1, 2])
@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_stored_record_completed_into_a_block_counts_in_it(pg, broker, tmp_path, chunk_rows, max_candidates):
    """Yvonne (ID 111) has no birth date, Xavier has one. A row with Yvonne's ID fills in her birth
    date, so that block holds two: the next row (Yvonn, no ID) meets both and merges into Yvonne
    where a block may hold two, and meets nobody where it may hold one (a new record, and the
    chunk's log says a block was left out)."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, "birth_date",
                     "('111', 'Yvonne', 'Yule', NULL, '7000'), ('222', 'Xavier', 'Xu', '1970-03-03', '8000')",
                     max_candidates)
    try:
        r = load_rows(d, "yx.csv", ["111,Yvonne,Yule,03/03/1970,7000,", ",Yvonn,Yule,03/03/1970,7000,"])
        stored = [("111", "Yvonne", "1970-03-03"), ("222", "Xavier", "1970-03-03")]
        if max_candidates == 2:
            assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, r
        else:
            assert r["counts"]["patient"]["fuzzy"] == {"merged": 0, "review": 0, "new": 1}, r
            stored.append((None, "Yvonn", "1970-03-03"))
            assert "1 blocks over max_candidates left out" in d.log.read_text()
        assert d.sql("SELECT national_id, given_name, birth_date::text FROM patients ORDER BY id") == stored
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("max_candidates", [1, 2])
@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_records_the_chunk_makes_count_in_their_blocks(pg, broker, tmp_path, chunk_rows, max_candidates):
    """Records a file makes count in their blocks as they come to hold a key: Yvonne (made without a
    birth date, given one by a later row with her ID) and Xavier share a birth date, so the last
    row (Yvonn, no ID) merges into Yvonne where a block may hold two, and is new where it may hold
    one, one row per chunk or one chunk."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, "birth_date", "('999', 'Zoe', 'Zed', '1999-09-09', '9000')",
                     max_candidates)
    try:
        r = load_rows(d, "yx2.csv", ["111,Yvonne,Yule,,7000,", ",Xavier,Xu,03/03/1970,8000,",
                                     "111,Yvonne,Yule,03/03/1970,7000,", ",Yvonn,Yule,03/03/1970,7000,"])
        records = [("999", "Zoe"), ("111", "Yvonne"), (None, "Xavier")] + ([(None, "Yvonn")] if max_candidates == 1 else [])
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == records
        assert r["counts"]["patient"]["fuzzy"]["merged"] == (1 if max_candidates == 2 else 0), r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("max_candidates", [1, 2])
@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_trigram_block_counts_the_similar_records_of_the_table_and_of_the_chunk(pg, broker, tmp_path, chunk_rows,
                                                                                 max_candidates):
    """A trigram rule's block is every record whose surname is similar to the row's: Yvonne Yule in
    the table, and Xavier Yules, whom the file makes (0.57 similar to Yule). The last row (Yvonn
    Yule, no ID) meets both and merges into Yvonne where a block may hold two; where it may hold
    one, the block is over and she is new, whether Xavier was made in her chunk or stored before."""
    d = small_blocks(pg, broker, tmp_path, chunk_rows, '"trigram(surname)"',
                     "('111', 'Yvonne', 'Yule', '1970-03-03', '7000')", max_candidates)
    try:
        r = load_rows(d, "yy.csv", [",Xavier,Yules,05/05/1980,8000,", ",Yvonn,Yule,03/03/1970,7000,"])
        records = [("111", "Yvonne"), (None, "Xavier")] + ([(None, "Yvonn")] if max_candidates == 1 else [])
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == records
        merged = 1 if max_candidates == 2 else 0
        assert r["counts"]["patient"]["fuzzy"] == {"merged": merged, "review": 0, "new": 2 - merged}, r
        if max_candidates == 1:
            assert "1 blocks over max_candidates left out" in d.log.read_text()
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
