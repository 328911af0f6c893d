-- The SQLite twin of migrations/postgres/0010_usage.sql: what each user holds, for their
-- quotas, kept by triggers. SQLite has one writer at a time, so every change adds to the one
-- row of its user (`writer` 0), row by row.

CREATE TABLE usage (
    owner        TEXT NOT NULL,
    writer       INTEGER NOT NULL,
    tasks        INTEGER NOT NULL DEFAULT 0,
    live_series  INTEGER NOT NULL DEFAULT 0,
    reminders    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, writer)
);

CREATE TRIGGER usage_task_added AFTER INSERT ON tasks BEGIN
    INSERT INTO usage (owner, writer, tasks, live_series)
    VALUES (NEW.owner, 0, 1, NEW.status = 'pending' AND NEW.recurrence IS NOT NULL)
    ON CONFLICT (owner, writer) DO UPDATE
    SET tasks = tasks + excluded.tasks, live_series = live_series + excluded.live_series;
END;

CREATE TRIGGER usage_task_removed AFTER DELETE ON tasks BEGIN
    INSERT INTO usage (owner, writer, tasks, live_series)
    VALUES (OLD.owner, 0, -1, -(OLD.status = 'pending' AND OLD.recurrence IS NOT NULL))
    ON CONFLICT (owner, writer) DO UPDATE
    SET tasks = tasks + excluded.tasks, live_series = live_series + excluded.live_series;
END;

CREATE TRIGGER usage_series_changed AFTER UPDATE OF status, recurrence ON tasks
    WHEN (OLD.status = 'pending' AND OLD.recurrence IS NOT NULL)
         <> (NEW.status = 'pending' AND NEW.recurrence IS NOT NULL)
BEGIN
    INSERT INTO usage (owner, writer, live_series)
    VALUES (NEW.owner, 0, CASE WHEN NEW.status = 'pending' AND NEW.recurrence IS NOT NULL THEN 1 ELSE -1 END)
    ON CONFLICT (owner, writer) DO UPDATE SET live_series = live_series + excluded.live_series;
END;

CREATE TRIGGER usage_reminder_added AFTER INSERT ON reminders BEGIN
    INSERT INTO usage (owner, writer, reminders) VALUES (NEW.owner, 0, 1)
    ON CONFLICT (owner, writer) DO UPDATE SET reminders = reminders + excluded.reminders;
END;

CREATE TRIGGER usage_reminder_removed AFTER DELETE ON reminders BEGIN
    INSERT INTO usage (owner, writer, reminders) VALUES (OLD.owner, 0, -1)
    ON CONFLICT (owner, writer) DO UPDATE SET reminders = reminders + excluded.reminders;
END;

INSERT INTO usage (owner, writer, tasks, live_series)
SELECT owner, 0, count(*), sum(status = 'pending' AND recurrence IS NOT NULL)
FROM tasks GROUP BY owner;
INSERT INTO usage (owner, writer, reminders)
SELECT owner, 0, count(*) FROM reminders WHERE true GROUP BY owner
ON CONFLICT (owner, writer) DO UPDATE SET reminders = excluded.reminders;

DROP INDEX reminders_by_owner;
