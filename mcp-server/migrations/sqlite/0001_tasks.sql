-- The SQLite twin of migrations/postgres/0001_tasks.sql: the same tables, columns and indexes.
-- UUIDs are 16-byte BLOBs and instants fixed-width RFC 3339 TEXT (see src/db/query.rs), so
-- comparisons and sorting behave as in PostgreSQL.

CREATE TABLE tasks (
    id            BLOB PRIMARY KEY,
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    title_key     TEXT NOT NULL,
    description   TEXT,
    search_text   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    priority      INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 3),
    tags          TEXT NOT NULL DEFAULT '[]',
    due_at        TEXT,
    time_zone     TEXT NOT NULL,
    recurrence    TEXT,
    series_id     BLOB,
    series_start  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    completed_at  TEXT,
    CHECK ((recurrence IS NULL) = (series_id IS NULL))
);

CREATE INDEX tasks_by_created  ON tasks (owner, status, created_at, id);
CREATE INDEX tasks_by_due      ON tasks (owner, status, due_at, id);
CREATE INDEX tasks_by_priority ON tasks (owner, status, priority, id);
CREATE INDEX tasks_by_title    ON tasks (owner, status, title_key, id);

CREATE TABLE task_tags (
    task_id  BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner    TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_by_tag ON task_tags (owner, tag, task_id);

CREATE TABLE reminders (
    id              BLOB PRIMARY KEY,
    task_id         BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner           TEXT NOT NULL,
    fire_at         TEXT NOT NULL,
    minutes_before  INTEGER CHECK (minutes_before >= 0),
    created_at      TEXT NOT NULL
);
CREATE INDEX reminders_by_task ON reminders (task_id, fire_at);
CREATE INDEX reminders_by_time ON reminders (fire_at);

CREATE TABLE notifications (
    id           BLOB PRIMARY KEY,
    owner        TEXT NOT NULL,
    task_id      BLOB NOT NULL,
    reminder_id  BLOB,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL,
    fire_at      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    read_at      TEXT
);
CREATE INDEX notifications_by_owner ON notifications (owner, created_at DESC, id DESC);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            BLOB NOT NULL UNIQUE,
    topic         TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    subject       BLOB NOT NULL,
    envelope      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    published_at  TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
