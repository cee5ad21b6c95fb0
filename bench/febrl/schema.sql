-- Target table for the FEBRL match-quality benchmark (bench/febrl_quality.py and
-- tests/integration/test_match_quality.py). The truth column rec_id is deliberately not
-- loaded: ingestd must group the rows without seeing it.
CREATE TABLE public.febrl_persons (
    id            bigserial PRIMARY KEY,
    soc_sec_id    text,
    given_name    text,
    surname       text,
    street_number text,
    address_1     text,
    address_2     text,
    suburb        text,
    postcode      text,
    state         text,
    date_of_birth date
);
