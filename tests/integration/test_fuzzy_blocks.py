"""Open blocks and full blocks of the fuzzy tier: a row holding every never_across value is
blocked among the records holding none (partial indexes), and where a block is cut at
max_candidates, one chunk gives what one row per chunk gives: records that leave a block or join
it in the chunk are placed as the target's index would place them for a later chunk."""

import pytest

from conftest import Daemon
from test_fuzzy import CONFIG, HEAD, SCHEMA, load


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_record_that_gets_a_national_id_in_the_chunk_leaves_the_open_blocks(pg, broker, tmp_path, chunk_rows):
    """A record the chunk gives a national ID leaves the open blocks at once, as the partial
    index leaves it out once it is stored: Wanda, second in her postcode's block, is still met
    by a row with an ID after Zed (first) got one, whether the rows come in one chunk or one by
    one."""
    config = CONFIG.replace("review_at: 10", "review_at: 10\n              max_candidates: 1") \
        .replace('blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]', "blocking: [[postcode]]")
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=chunk_rows, indexes=False, config_text=config)
    d.sql(SCHEMA)
    assert d.create_indexes().returncode == 0
    d.start()
    rows = [HEAD,
            ",Zed,Quux,01/01/1950,7000,",      # new: Zed, no ID
            ",Wanda,Mole,02/02/1960,7000,",    # scored against Zed only (the block's one place): new
            "777,Zedd,Quux,01/01/1950,7000,",  # the first record without an ID is Zed: merges, gives him 777
            "888,Wandah,Mole,02/02/1960,7000,"]  # Zed holds an ID now: the place is Wanda's, merges
    r = load(d, "zw.csv", "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    c = r["counts"]["patient"]
    assert c["fuzzy"] == {"merged": 2, "review": 0, "new": 2}, c
    assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == [("777", "Zed"), ("888", "Wanda")]
    assert d.stop() == 0, d.log.read_text()[-3000:]


def load_rows(d, name, rows):
    """Loads the rows (under HEAD) as file `name`; returns the result, which must be completed."""
    r = load(d, name, HEAD + "\n" + "\n".join(rows) + "\n")
    assert r["status"] == "completed", r
    return r


def one_place_blocks(pg, broker, tmp_path, chunk_rows, field, stored):
    """A started daemon whose fuzzy tier blocks on `field` alone with one place a block, over a table
    already holding `stored` (VALUES of national_id, given_name, surname, birth_date, postcode)."""
    config = CONFIG.replace("review_at: 10", "review_at: 10\n              max_candidates: 1") \
        .replace('blocking: [[postcode], [birth_date], ["dmetaphone(surname)"]]', f"blocking: [[{field}]]")
    d = Daemon(pg, broker, tmp_path, db=pg.create_db(), chunk_rows=chunk_rows, indexes=False, config_text=config)
    d.sql(SCHEMA)
    d.sql("INSERT INTO patients (national_id, given_name, surname, birth_date, postcode) VALUES " + stored)
    assert d.create_indexes().returncode == 0
    d.start()
    return d


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_stored_record_given_a_national_id_makes_room_in_its_full_open_block(pg, broker, tmp_path, chunk_rows):
    """The same as above with Zed and Wanda already in the table: once a row gives Zed an ID, the
    partial index leaves him out and Wanda takes the block's one place, so the next row meets her.
    One row per chunk, the next chunk's probe finds her; in one chunk, the block was cut at Zed
    when the chunk began, and the record past the cut is fetched once he leaves."""
    d = one_place_blocks(pg, broker, tmp_path, chunk_rows, "postcode",
                         "(NULL, 'Zed', 'Quux', '1950-01-01', '7000'), (NULL, 'Wanda', 'Mole', '1960-02-02', '7000')")
    try:
        r = load(d, "zw.csv", HEAD + "\n777,Zedd,Quux,01/01/1950,7000,\n888,Wandah,Mole,02/02/1960,7000,\n")
        assert r["status"] == "completed", r
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == [("777", "Zed"), ("888", "Wanda")]
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 2, "review": 0, "new": 0}, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_stored_record_completed_into_a_full_block_takes_its_place_by_id(pg, broker, tmp_path, chunk_rows):
    """Yvonne (id 1) has no birth date, Xavier (id 2) has one; the birth-date block holds one place.
    A row with Yvonne's national ID fills in her birth date, and the index then holds her first in
    that block, so the next row (Yvonn, no ID) meets her and merges. One row per chunk, the next
    chunk's probe finds her; in one chunk, she is placed by id among the block's stored members,
    and Xavier falls past the cut."""
    d = one_place_blocks(pg, broker, tmp_path, chunk_rows, "birth_date",
                         "('111', 'Yvonne', 'Yule', NULL, '7000'), ('222', 'Xavier', 'Xu', '1970-03-03', '8000')")
    try:
        r = load(d, "yx.csv", HEAD + "\n111,Yvonne,Yule,03/03/1970,7000,\n,Yvonn,Yule,03/03/1970,7000,\n")
        assert r["status"] == "completed", r
        assert d.sql("SELECT national_id, given_name, birth_date::text FROM patients ORDER BY id") == \
            [("111", "Yvonne", "1970-03-03"), ("222", "Xavier", "1970-03-03")]
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 1, "review": 0, "new": 0}, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_full_open_block_that_loses_members_and_gains_one_is_ordered_as_its_index(pg, broker, tmp_path, chunk_rows):
    """One place per postcode block, every record without an ID. Zed (id 1) holds it; Yola (id 2)
    has no postcode; Wanda (id 3) lies past the cut. Zedd (with an ID) merges into Zed, who leaves
    the open block; a row without an ID finds Yola by name and birth date and fills in her
    postcode, so she joins it, before Wanda by id. Yolla (with an ID) then meets Yola and merges,
    so she leaves too, and Wandah meets Wanda, fetched from past the cut. One row per chunk, each
    probe of the index gives these; in one chunk, the block is ordered again as rows change it."""
    d = one_place_blocks(pg, broker, tmp_path, chunk_rows, "postcode",
                         "(NULL, 'Zed', 'Quux', '1950-01-01', '7000'), (NULL, 'Yola', 'Yule', '1960-02-02', NULL), "
                         "(NULL, 'Wanda', 'Mole', '1970-03-03', '7000')")
    try:
        r = load_rows(d, "zyw.csv", ["777,Zedd,Quux,01/01/1950,7000,", ",Yola,Yule,02/02/1960,7000,",
                                     "888,Yolla,Yule,02/02/1960,7000,", "999,Wandah,Mole,03/03/1970,7000,"])
        assert d.sql("SELECT national_id, given_name, postcode FROM patients ORDER BY id") == \
            [("777", "Zed", "7000"), ("888", "Yola", "7000"), ("999", "Wanda", "7000")]
        assert r["counts"]["patient"]["fuzzy"] == {"merged": 3, "review": 0, "new": 0}, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


@pytest.mark.parametrize("chunk_rows", [50, 1])
def test_a_new_record_completed_into_a_full_block_comes_before_later_new_ones(pg, broker, tmp_path, chunk_rows):
    """Records a file makes hold ids in the order they were made: Yvonne (made first, without a birth
    date, given one by a later row with her ID) comes before Xavier in the one-place birth-date
    block, so the last row (Yvonn, no ID) meets her and merges, one row per chunk or one chunk."""
    d = one_place_blocks(pg, broker, tmp_path, chunk_rows, "birth_date", "('999', 'Zoe', 'Zed', '1999-09-09', '9000')")
    try:
        r = load_rows(d, "yx2.csv", ["111,Yvonne,Yule,,7000,", ",Xavier,Xu,03/03/1970,8000,",
                                     "111,Yvonne,Yule,03/03/1970,7000,", ",Yvonn,Yule,03/03/1970,7000,"])
        assert d.sql("SELECT national_id, given_name FROM patients ORDER BY id") == \
            [("999", "Zoe"), ("111", "Yvonne"), (None, "Xavier")]
        assert r["counts"]["patient"]["fuzzy"]["merged"] == 1, r
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
