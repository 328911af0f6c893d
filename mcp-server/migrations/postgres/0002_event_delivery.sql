-- Event delivery: relaying the outbox in order per task, and idempotent consumers.

-- The W3C trace context each event is published with, fixed when the event is written so that a
-- retried publish continues the same trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;

-- The relay looks for the oldest unpublished event of each task.
CREATE INDEX outbox_unpublished_by_subject ON outbox (subject, seq) WHERE published_at IS NULL;

-- Events each consumer has processed, written in the transaction of the event's effect.
CREATE TABLE processed_events (
    consumer      TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_by_time ON processed_events (processed_at);
