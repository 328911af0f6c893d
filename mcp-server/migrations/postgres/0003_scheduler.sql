-- The embedded scheduler (todo-mcp without a Dapr sidecar) keeps what todo-scheduler keeps in
-- the Dapr state store and the Dapr scheduler service, in this database.

-- Key-value state with a version per key, for ETag-style conditional writes.
CREATE TABLE scheduler_state (
    key         TEXT PRIMARY KEY,
    value       JSONB NOT NULL,
    version     BIGINT NOT NULL,
    -- Entries with a time to live (processed event ids, tombstones) expire then.
    expires_at  TIMESTAMPTZ
);
CREATE INDEX scheduler_state_expiry ON scheduler_state (expires_at) WHERE expires_at IS NOT NULL;

-- Durable one-shot timers by name (the Dapr Jobs API's role).
CREATE TABLE scheduler_jobs (
    name    TEXT PRIMARY KEY,
    due_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX scheduler_jobs_due ON scheduler_jobs (due_at);
