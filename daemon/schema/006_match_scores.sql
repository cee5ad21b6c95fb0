-- Fuzzy matching's explanations (DESIGN §5 rule 6): for every row a fuzzy tier merged or sent
-- to review, the candidate record, its match weight and each field's comparison level and
-- weight ([{"field", "level", "weight"}]), so `ingestd explain` and `review list` can show why.
-- One row per (row, candidate): a merged row has one, a row in review one per candidate.
CREATE TABLE IF NOT EXISTS {{schema}}.match_scores (
  batch_id uuid NOT NULL,
  entity text NOT NULL,
  table_name text COLLATE "C" NOT NULL,
  row_number bigint NOT NULL,
  record_id text COLLATE "C" NOT NULL,
  decision text NOT NULL,  -- merged | review
  score real NOT NULL,
  fields jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS match_scores_batch ON {{schema}}.match_scores (batch_id, row_number);
CREATE INDEX IF NOT EXISTS match_scores_record ON {{schema}}.match_scores (table_name, record_id);
