-- Identity through the target's own rows (DESIGN §5 rule 6).
--
-- name_key: the identity key of a name exactly as the `name` normalizer makes it in C++
-- (handlers/engine/normalize.cpp): white space trimmed and collapsed to one space, lowercased
-- with ICU's root locale, decomposed by compatibility (ﬁ is fi), nonspacing marks removed, ß as
-- ss. An expression index over it lets the target's own rows be found by name whoever wrote
-- them. The two character classes are ICU's own sets, written in by the daemon
-- ({{name_key_space}}, {{name_key_marks}}), so C++ and SQL strip the same characters;
-- tests/integration/test_identity_targets.py compares both on a corpus. Plain ASCII with tidy
-- spacing (most names) takes the short way, and tidy spacing skips the two white-space passes:
-- every insert into an indexed table computes this once per name column and index. Not STRICT,
-- so that PostgreSQL inlines it into index expressions and probes.
CREATE OR REPLACE FUNCTION {{schema}}.name_key(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
  SELECT nullif(CASE
    WHEN $1 ~ '^[!-~]+( [!-~]+)*$' THEN lower($1 COLLATE "und-x-icu")
    WHEN $1 ~ E'^[^{{name_key_space}}]+( [^{{name_key_space}}]+)*$' THEN
      replace(regexp_replace(normalize(lower($1 COLLATE "und-x-icu"), NFKD), E'[{{name_key_marks}}]+', '', 'g'), 'ß', 'ss')
    ELSE
      replace(regexp_replace(normalize(lower(
        regexp_replace(regexp_replace($1, E'^[{{name_key_space}}]+|[{{name_key_space}}]+$', '', 'g'),
                       E'[{{name_key_space}}]+', ' ', 'g') COLLATE "und-x-icu"), NFKD),
        E'[{{name_key_marks}}]+', '', 'g'), 'ß', 'ss')
  END, '')
$fn$;

-- Lineage, stored compactly: one row per entity and chunk, the chunk's rows as arrays
-- (a 1M-row load wrote 1M lineage rows and two btree entries each). The view row_lineage keeps
-- the per-row columns for people's own SQL; action codes: i inserted, u updated, n unchanged,
-- r review.
CREATE TABLE IF NOT EXISTS {{schema}}.lineage (
  batch_id uuid NOT NULL,
  entity text NOT NULL,
  table_name text COLLATE "C" NOT NULL,
  first_row bigint NOT NULL,
  last_row bigint NOT NULL,
  row_numbers bigint[] NOT NULL,
  record_ids text[] COLLATE "C" NOT NULL,
  actions "char"[] NOT NULL,
  tiers smallint[] NOT NULL,
  scores real[]
);
CREATE INDEX IF NOT EXISTS lineage_batch ON {{schema}}.lineage (batch_id, first_row);
INSERT INTO {{schema}}.lineage (batch_id, entity, table_name, first_row, last_row, row_numbers, record_ids, actions,
                                tiers, scores)
SELECT batch_id, entity, table_name, min(row_number), max(row_number), array_agg(row_number ORDER BY row_number),
       array_agg(record_id ORDER BY row_number),
       array_agg((CASE action WHEN 'inserted' THEN 'i' WHEN 'updated' THEN 'u' WHEN 'unchanged' THEN 'n' ELSE 'r' END)::"char"
                 ORDER BY row_number),
       array_agg(tier::smallint ORDER BY row_number), array_agg(score ORDER BY row_number)
FROM {{schema}}.row_lineage GROUP BY batch_id, entity, table_name, row_number / 50000;
DROP TABLE {{schema}}.row_lineage;
CREATE VIEW {{schema}}.row_lineage AS
  SELECT l.batch_id, u.row_number, l.entity, l.table_name, u.record_id,
         CASE u.action WHEN 'i' THEN 'inserted' WHEN 'u' THEN 'updated' WHEN 'n' THEN 'unchanged' ELSE 'review' END
           AS action,
         u.tier::int AS tier, u.score
  FROM {{schema}}.lineage l
  CROSS JOIN LATERAL unnest(l.row_numbers, l.record_ids, l.actions, l.tiers, coalesce(l.scores, '{}'))
    AS u(row_number, record_id, action, tier, score);

-- identity_keys now holds identity memory only: the keys a record does not hold in its own
-- columns. The rows an earlier version wrote for keys the records do hold are removed by the
-- daemon once per table and tier, with the config that says which columns make a tier
-- (identity memory compaction); this table remembers which are done.
CREATE TABLE IF NOT EXISTS {{schema}}.identity_compactions (
  table_name text NOT NULL,
  tier int NOT NULL,
  signature text NOT NULL,
  rows_removed bigint NOT NULL,
  done_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, tier, signature)
);
