-- Bookkeeping schema (DESIGN §4). The schema name is substituted for {{schema}}.
CREATE TABLE IF NOT EXISTS {{schema}}.batches (
  id uuid PRIMARY KEY,
  kind text NOT NULL,
  dataset_or_job text NOT NULL,
  uri text,
  sha256 text,
  size_bytes bigint,
  source_system text,
  program text,
  dry_run boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending','running','completed','completed_with_rejects','failed','rolled_back','dry_run')),
  rows_total bigint,
  rows_done bigint NOT NULL DEFAULT 0,
  inserted bigint NOT NULL DEFAULT 0,
  updated bigint NOT NULL DEFAULT 0,
  unchanged bigint NOT NULL DEFAULT 0,
  rejected bigint NOT NULL DEFAULT 0,
  review bigint NOT NULL DEFAULT 0,
  last_row_committed bigint NOT NULL DEFAULT 0,
  bytes_done bigint NOT NULL DEFAULT 0,
  reject_file text,
  stats jsonb NOT NULL DEFAULT '{}'::jsonb,
  error_summary jsonb,
  submitted_by text,
  event_id text,
  owner text,
  heartbeat_at timestamptz,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS batches_reimport ON {{schema}}.batches (dataset_or_job, sha256)
  WHERE status IN ('completed','completed_with_rejects');

CREATE TABLE IF NOT EXISTS {{schema}}.events (
  event_id text PRIMARY KEY,
  topic text NOT NULL,
  "partition" int NOT NULL,
  "offset" bigint NOT NULL,
  type text,
  payload jsonb,
  status text NOT NULL DEFAULT 'received',
  attempts int NOT NULL DEFAULT 0,
  batch_id uuid REFERENCES {{schema}}.batches(id),
  received_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  last_error text
);

CREATE TABLE IF NOT EXISTS {{schema}}.row_errors (
  batch_id uuid NOT NULL REFERENCES {{schema}}.batches(id) ON DELETE CASCADE,
  row_number bigint NOT NULL,
  field text,
  code text NOT NULL,
  message text NOT NULL,
  raw text
);
CREATE INDEX IF NOT EXISTS row_errors_batch ON {{schema}}.row_errors (batch_id, row_number);

CREATE TABLE IF NOT EXISTS {{schema}}.row_lineage (
  batch_id uuid NOT NULL,
  row_number bigint NOT NULL,
  entity text NOT NULL,
  table_name text NOT NULL,
  record_id text,
  action text NOT NULL CHECK (action IN ('inserted','updated','unchanged','review')),
  tier int,
  score real
);
CREATE INDEX IF NOT EXISTS row_lineage_batch ON {{schema}}.row_lineage (batch_id, row_number);
CREATE INDEX IF NOT EXISTS row_lineage_record ON {{schema}}.row_lineage (table_name, record_id);

CREATE TABLE IF NOT EXISTS {{schema}}.changes (
  batch_id uuid NOT NULL,
  table_name text NOT NULL,
  record_id text NOT NULL,
  column_name text NOT NULL,
  before text,
  after text,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS changes_batch ON {{schema}}.changes (batch_id);
CREATE INDEX IF NOT EXISTS changes_record ON {{schema}}.changes (table_name, record_id, column_name);

CREATE TABLE IF NOT EXISTS {{schema}}.identity_keys (
  table_name text NOT NULL,
  tier int NOT NULL,
  key text NOT NULL,
  record_id text NOT NULL,
  batch_id uuid,
  -- record_id is part of the key: two people may legitimately share a lower-tier key
  -- (one e-mail, two cédulas); a later row carrying only that key then goes to review.
  PRIMARY KEY (table_name, tier, key, record_id)
);
CREATE INDEX IF NOT EXISTS identity_keys_record ON {{schema}}.identity_keys (table_name, record_id);
CREATE INDEX IF NOT EXISTS identity_keys_batch ON {{schema}}.identity_keys (batch_id);

CREATE TABLE IF NOT EXISTS {{schema}}.deferred_refs (
  batch_id uuid NOT NULL,
  table_name text NOT NULL,
  record_id text NOT NULL,
  column_name text NOT NULL,
  lookup_table text NOT NULL,
  lookup_key text NOT NULL,
  value text NOT NULL
);

CREATE TABLE IF NOT EXISTS {{schema}}.consumer_offsets (
  group_id text NOT NULL,
  topic text NOT NULL,
  "partition" int NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, "partition")
);

CREATE TABLE IF NOT EXISTS {{schema}}.watermarks (
  job text PRIMARY KEY,
  value text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {{schema}}.audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text,
  action text NOT NULL,
  batch_id uuid,
  payload jsonb
);

CREATE TABLE IF NOT EXISTS {{schema}}.review_queue (
  id bigserial PRIMARY KEY,
  batch_id uuid,
  table_name text NOT NULL,
  record_id text,
  candidate jsonb NOT NULL,
  score real,
  reasons text,
  status text NOT NULL DEFAULT 'open',
  decided_by text,
  decided_at timestamptz
);
