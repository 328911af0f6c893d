-- Tasks and what belongs to them. Every row carries its owner, and every query filters on it.

CREATE TABLE tasks (
    id            UUID PRIMARY KEY,
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- Lower-cased title in bytewise order, so sorting by title is the same on both backends.
    title_key     TEXT COLLATE "C" NOT NULL,
    description   TEXT,
    -- Lower-cased title and description for case-insensitive search with LIKE.
    search_text   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    -- 1 low, 2 medium, 3 high: sorting by the number sorts by urgency.
    priority      SMALLINT NOT NULL CHECK (priority BETWEEN 1 AND 3),
    tags          JSONB NOT NULL DEFAULT '[]',
    due_at        TIMESTAMPTZ,
    time_zone     TEXT NOT NULL,
    recurrence    JSONB,
    series_id     UUID,
    series_start  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    CHECK ((recurrence IS NULL) = (series_id IS NULL))
);

-- One index per sort order of list_tasks, each led by the filters every list applies.
CREATE INDEX tasks_by_created  ON tasks (owner, status, created_at, id);
CREATE INDEX tasks_by_due      ON tasks (owner, status, due_at, id);
CREATE INDEX tasks_by_priority ON tasks (owner, status, priority, id);
CREATE INDEX tasks_by_title    ON tasks (owner, status, title_key, id);

-- Tags again, one row each, so that "has all of these tags" is an index lookup.
CREATE TABLE task_tags (
    task_id  UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner    TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_by_tag ON task_tags (owner, tag, task_id);

CREATE TABLE reminders (
    id              UUID PRIMARY KEY,
    task_id         UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner           TEXT NOT NULL,
    fire_at         TIMESTAMPTZ NOT NULL,
    -- Set for reminders relative to the due time; they move when it does.
    minutes_before  INTEGER CHECK (minutes_before >= 0),
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX reminders_by_task ON reminders (task_id, fire_at);
CREATE INDEX reminders_by_time ON reminders (fire_at);

-- Reminder notifications shown by list_notifications. No foreign key: a notification outlives
-- the task it was about.
CREATE TABLE notifications (
    id           UUID PRIMARY KEY,
    owner        TEXT NOT NULL,
    task_id      UUID NOT NULL,
    reminder_id  UUID,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL,
    fire_at      TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    read_at      TIMESTAMPTZ
);
CREATE INDEX notifications_by_owner ON notifications (owner, created_at DESC, id DESC);

-- Transactional outbox: each event is written in the transaction of the change it describes.
-- `seq` orders events as they committed their inserts; the relay publishes in that order.
CREATE TABLE outbox (
    seq           BIGSERIAL PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    topic         TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    subject       UUID NOT NULL,
    envelope      JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
