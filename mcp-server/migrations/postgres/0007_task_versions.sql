-- Every change to a task increments its version in the change's own transaction. Events carry
-- it, and consumers order a task's events by it rather than by the replicas' clocks.
ALTER TABLE tasks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- Series whose newest occurrence was deleted or made one-off: nothing follows them, not even
-- after a resync replays the schedule (a series lives only in the tasks of its occurrences).
CREATE TABLE ended_series (
    series_id  UUID PRIMARY KEY,
    owner      TEXT NOT NULL,
    ended_at   TIMESTAMPTZ NOT NULL
);

-- A series' newest occurrence, which a resync replays.
CREATE INDEX tasks_by_series ON tasks (series_id, due_at) WHERE series_id IS NOT NULL;

-- A user's reminders, counted against their quota.
CREATE INDEX reminders_by_owner ON reminders (owner);
