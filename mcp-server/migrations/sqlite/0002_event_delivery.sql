-- The SQLite twin of migrations/postgres/0002_event_delivery.sql.

-- The relay looks for the oldest unpublished event of each task.
CREATE INDEX outbox_unpublished_by_subject ON outbox (subject, seq) WHERE published_at IS NULL;

-- Events each consumer has processed, written in the transaction of the event's effect.
CREATE TABLE processed_events (
    consumer      TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    processed_at  TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_by_time ON processed_events (processed_at);
