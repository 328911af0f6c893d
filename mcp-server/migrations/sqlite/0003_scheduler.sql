-- The SQLite twin of migrations/postgres/0003_scheduler.sql.

CREATE TABLE scheduler_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    expires_at  TEXT
);
CREATE INDEX scheduler_state_expiry ON scheduler_state (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE scheduler_jobs (
    name    TEXT PRIMARY KEY,
    due_at  TEXT NOT NULL
);
CREATE INDEX scheduler_jobs_due ON scheduler_jobs (due_at);
