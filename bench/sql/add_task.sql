-- pgbench script: one `add_task` call, as todo-mcp runs it against PostgreSQL.
--
-- It mirrors the server statement for statement: TaskService::create_many
-- (mcp-server/src/app/tasks.rs) runs, in one transaction, the quota read (Quotas::room,
-- store::quotas::held), tasks::insert_all, the tags in one multi-row INSERT and
-- outbox::enqueue_all, for the arguments
--   add_task {"title": "...", "priority": "high", "tags": ["work", "bench"],
--             "due": "2030-06-01T17:00", "time_zone": "Europe/Paris"}
-- which is what the load generator sends (scripts/bench.sh). The triggers that keep `usage`
-- (migrations 0010_usage.sql) fire here as they do for the server. The SQL text is as
-- PostgreSQL's statement log (log_statement = 'all') shows it; a change to those statements must
-- be made here too. The server's in-process outbox relay later publishes the outbox row in
-- transactions of its own; they are not part of the call and not in this script. Like the
-- server (sqlx), run it with `-M prepared`: one round trip per statement, values sent as
-- parameters.
--
-- Variables (pgbench -D, set by scripts/bench.sh): owner, title, title_key, status, priority,
-- tags (JSON array text), due, tz, topic, event_type, envelope (a CloudEvent of ~700 bytes taken from
-- the server's own outbox rows), traceparent (a W3C trace context; the server makes a fresh one
-- per event, the same size).
--
-- Differences, all small: the server generates UUIDv7 ids in Rust; here a time-ordered id
-- (milliseconds, then random hex, like UUIDv7) is computed in SQL, so both sides insert into
-- the primary-key and unique indexes in the same order. The task id comes back with RETURNING
-- (into :task_id) because pgbench cannot make one itself; the server binds created_at/updated_at and
-- the NULL columns as parameters, here they are now() and NULL literals.
BEGIN;
SELECT CAST(COALESCE(SUM(tasks), 0) AS BIGINT) AS tasks, CAST(COALESCE(SUM(live_series), 0) AS BIGINT) AS live_series, CAST(COALESCE(SUM(reminders), 0) AS BIGINT) AS reminders FROM usage WHERE owner = :owner;
INSERT INTO tasks (id, owner, title, title_key, description, search_text, status, priority, tags, due_at, time_zone, recurrence, series_id, series_start, created_at, updated_at, completed_at, version)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid,
        :owner, :title, :title_key, NULL, :title_key, :status, :priority, :tags, :due, :tz, NULL, NULL, NULL, now(), now(), NULL, 1)
RETURNING id AS task_id \gset
INSERT INTO task_tags (task_id, owner, tag) VALUES (:task_id, :owner, :tag1), (:task_id, :owner, :tag2);
INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at, traceparent)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid,
        :topic, :event_type, :task_id, :envelope, now(), :traceparent);
COMMIT;
