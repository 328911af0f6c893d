-- pgbench script: one `list_tasks` call with default arguments (pending tasks, newest first,
-- 50 per page), as todo-mcp runs it against PostgreSQL.
--
-- It mirrors TaskService::list (mcp-server/src/app/tasks.rs): tasks::count, tasks::page with
-- limit + 1 = 51 rows (columns TASK_COLUMNS), both in mcp-server/src/store/tasks.rs, then the
-- reminders of the 50 tasks of the page (reminders::of_tasks in mcp-server/src/store/reminders.rs:
-- the ids as one uuid[] parameter). The SQL text is as PostgreSQL's statement log shows it; a
-- change to those statements must be made here too. The server runs them outside a
-- transaction, each on a connection from its pool (the count and the page at the same time, on
-- two connections); this script runs the same statements one after the other on its one
-- connection. Run with `-M prepared`, as sqlx prepares every statement.
--
-- Variables (pgbench -D, set by scripts/bench.sh): owner (the benchmark user with its seeded
-- tasks), status ('pending'), limit (51), ids: the ids of the first page as an array literal,
-- which the server passes to the reminders query (the data set does not change while this runs).
SELECT COUNT(*) AS total FROM tasks t WHERE t.owner = :owner AND t.status = :status;
SELECT t.id, t.owner, t.title, t.description, t.status, t.priority, t.tags, t.due_at, t.time_zone, t.recurrence, t.series_id, t.series_start, t.created_at, t.updated_at, t.completed_at, t.title_key FROM tasks t WHERE t.owner = :owner AND t.status = :status ORDER BY t.created_at DESC, t.id DESC LIMIT :limit;
SELECT id, task_id, fire_at, minutes_before FROM reminders WHERE task_id = ANY(:ids) ORDER BY fire_at, id;
