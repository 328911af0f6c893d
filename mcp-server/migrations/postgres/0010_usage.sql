-- What each user holds, for their quotas (src/app/quotas.rs). Triggers keep it in the
-- transaction of every change, so a quota check reads a few rows however much the user holds,
-- and no way of writing tasks or reminders can leave it behind.
--
-- Each database session adds to a row of its own (`writer` is its backend pid), so concurrent
-- changes of one user never wait for one another here, and a user's usage is the sum of their
-- rows. The retention pass folds the rows of sessions that have ended into `writer` 0
-- (src/store/quotas.rs, `fold_ended_writers`).

-- Replicas still running the previous version wait until the triggers count their writes.
LOCK TABLE tasks, reminders IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE usage (
    owner        TEXT NOT NULL,
    writer       INTEGER NOT NULL,
    tasks        BIGINT NOT NULL DEFAULT 0,
    -- Pending tasks with a recurrence: the series still going.
    live_series  BIGINT NOT NULL DEFAULT 0,
    reminders    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, writer)
);

-- Tasks added or removed, once per statement: a batch of new tasks is one update here.
CREATE FUNCTION usage_count_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign BIGINT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO usage AS u (owner, writer, tasks, live_series)
    SELECT owner, pg_backend_pid(), sign * count(*),
           sign * count(*) FILTER (WHERE status = 'pending' AND recurrence IS NOT NULL)
    FROM changed GROUP BY owner
    ON CONFLICT (owner, writer) DO UPDATE
    SET tasks = u.tasks + excluded.tasks, live_series = u.live_series + excluded.live_series;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_tasks_added AFTER INSERT ON tasks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION usage_count_tasks();
CREATE TRIGGER usage_tasks_removed AFTER DELETE ON tasks REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION usage_count_tasks();

-- A task that starts or stops being a live series (completed, reopened, its recurrence set or
-- removed). Row by row, but only rows whose answer changes reach the function.
CREATE FUNCTION usage_count_series() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage AS u (owner, writer, live_series)
    VALUES (NEW.owner, pg_backend_pid(),
            CASE WHEN NEW.status = 'pending' AND NEW.recurrence IS NOT NULL THEN 1 ELSE -1 END)
    ON CONFLICT (owner, writer) DO UPDATE SET live_series = u.live_series + excluded.live_series;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_series_changed AFTER UPDATE OF status, recurrence ON tasks FOR EACH ROW
    WHEN ((OLD.status = 'pending' AND OLD.recurrence IS NOT NULL)
          <> (NEW.status = 'pending' AND NEW.recurrence IS NOT NULL))
    EXECUTE FUNCTION usage_count_series();

-- Reminders added or removed, including those removed with their task.
CREATE FUNCTION usage_count_reminders() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign BIGINT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO usage AS u (owner, writer, reminders)
    SELECT owner, pg_backend_pid(), sign * count(*) FROM changed GROUP BY owner
    ON CONFLICT (owner, writer) DO UPDATE SET reminders = u.reminders + excluded.reminders;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_reminders_added AFTER INSERT ON reminders REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION usage_count_reminders();
CREATE TRIGGER usage_reminders_removed AFTER DELETE ON reminders REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION usage_count_reminders();

-- What users hold already.
INSERT INTO usage (owner, writer, tasks, live_series)
SELECT owner, 0, count(*), count(*) FILTER (WHERE status = 'pending' AND recurrence IS NOT NULL)
FROM tasks GROUP BY owner;
INSERT INTO usage AS u (owner, writer, reminders)
SELECT owner, 0, count(*) FROM reminders GROUP BY owner
ON CONFLICT (owner, writer) DO UPDATE SET reminders = excluded.reminders;

-- Counted here now; it was only used by the quota's COUNT.
DROP INDEX reminders_by_owner;
