-- Who an audit row is for, beyond the name in `actor` (issue 16 item 8): for a command, the OS
-- user it ran as (the effective uid, not $USER); for an event, its Kafka coordinates (topic,
-- partition, offset, event_id), the daemon's own principal, and the uploader's self-declared
-- submitted_by as `claimed_by` — a claim, since Kafka does not pass the producer's principal
-- to consumers.
ALTER TABLE {{schema}}.audit ADD COLUMN IF NOT EXISTS origin jsonb;
