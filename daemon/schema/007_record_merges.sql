-- `ingestd merge TABLE LOSER --into WINNER` (DESIGN §6): what a merge did that `changes` cannot
-- hold, so `ingestd rollback` of its batch undoes it exactly. The winner's filled columns and
-- every repointed foreign key are ordinary `changes` rows of the batch; this row adds the
-- deleted loser (re-inserted with its id and values), which foreign key columns were repointed
-- (their `changes` rows have before = loser_id) and the loser's identity memory that moved to
-- the winner.
CREATE TABLE IF NOT EXISTS {{schema}}.record_merges (
  id bigserial PRIMARY KEY,
  batch_id uuid NOT NULL,
  table_name text COLLATE "C" NOT NULL,  -- canonical schema.table
  id_column text NOT NULL,
  loser_id text COLLATE "C" NOT NULL,
  winner_id text COLLATE "C" NOT NULL,
  loser_row jsonb NOT NULL,                        -- to_jsonb of the row before the merge touched it
  repointed jsonb NOT NULL DEFAULT '[]'::jsonb,    -- [{"table", "column", "key"}] (key: its primary key)
  identity_keys jsonb NOT NULL DEFAULT '[]'::jsonb,  -- the loser's [{"tier", "key", "batch_id", "moved"}]
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS record_merges_batch ON {{schema}}.record_merges (batch_id);
-- a rollback asks whether a later merge took away a record its batch wrote
CREATE INDEX IF NOT EXISTS record_merges_loser ON {{schema}}.record_merges (table_name, loser_id);
CREATE INDEX IF NOT EXISTS record_merges_winner ON {{schema}}.record_merges (table_name, winner_id);
