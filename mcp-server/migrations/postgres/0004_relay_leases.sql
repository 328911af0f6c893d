-- The relay at scale: claims that expire, retries per event, and a dead-letter table.

-- A relay claims a task's oldest unpublished event (and so the task) until `locked_until`; the
-- claim's id lets it release only what it still holds. A crashed or stopped relay's claims
-- expire and another relay takes the task over.
ALTER TABLE outbox ADD COLUMN locked_until TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN claim_id UUID;
-- A failed event is retried, with backoff, from this time on; its task waits, others go on.
ALTER TABLE outbox ADD COLUMN next_attempt_at TIMESTAMPTZ;

-- Events that failed every attempt, moved out of the outbox so that their task's later events
-- go on. An operator retries (back into the outbox) or drops them: `todo-mcp dead-letters`.
CREATE TABLE outbox_dead_letters (
    id            UUID PRIMARY KEY,
    -- The event's place in the outbox when it was given up.
    seq           BIGINT NOT NULL,
    topic         TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    subject       UUID NOT NULL,
    envelope      JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    traceparent   TEXT,
    attempts      INTEGER NOT NULL,
    last_error    TEXT,
    dead_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_dead_letters_by_time ON outbox_dead_letters (dead_at, seq);
