-- Offsets are positions in one Kafka cluster's logs: remember which, so a replaced cluster
-- (new, empty topics) is read from the start instead of from positions that mean nothing there.
ALTER TABLE {{schema}}.consumer_offsets ADD COLUMN IF NOT EXISTS cluster_id text;
