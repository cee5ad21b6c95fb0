-- Results waiting to be published (issue 16: no result is ever lost). An event's result is
-- written here in the transaction that records its terminal state, and deleted once the broker
-- acknowledged it; whatever a broker outage or a restart left here is published again, oldest
-- first. A result can thus reach the results topic twice (never zero times): uploaders
-- correlate by event_id.
CREATE TABLE IF NOT EXISTS {{schema}}.result_outbox (
  id bigserial PRIMARY KEY,
  event_id text NOT NULL,
  topic text NOT NULL,
  payload text NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now(),
  attempts int NOT NULL DEFAULT 0,
  last_error text
);
