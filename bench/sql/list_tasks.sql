-- pgbench script: one `list_tasks` call with default arguments (pending tasks, newest first,
-- 50 per page), as todo-mcp runs it against PostgreSQL.
--
-- It mirrors TaskService::list (mcp-server/src/tasks/service.rs): the count query
-- (ListQuery::count_query), the page query with limit + 1 = 51 rows (ListQuery::page_query in
-- tasks/list.rs, columns TASK_COLUMNS from tasks/row.rs), then the reminders of the 50 tasks of
-- the page (reminders_query in tasks/row.rs: the ids as one uuid[] parameter). The server runs them
-- outside a transaction, each on a connection from its pool (the count and the page at the same
-- time, on two connections); this script runs the same statements one after the other on its
-- one connection. The SQL text was copied from PostgreSQL's statement log of a live server
-- (log_statement = 'all'), and scripts/bench.sh checks it against the server again on every run
-- (`todo-bench sql-check`). Run with `-M prepared`, as sqlx prepares every statement.
--
-- Variables (pgbench -D, set by scripts/bench.sh): owner (the benchmark user with its seeded
-- tasks), status ('pending'), limit (51), ids: the ids of the first page as an array literal,
-- which the server passes to the reminders query (the data set does not change while this runs).
SELECT COUNT(*) AS total FROM tasks t WHERE t.owner = :owner AND t.status = :status;
SELECT t.id, t.owner, t.title, t.description, t.status, t.priority, t.tags, t.due_at, t.time_zone, t.recurrence, t.series_id, t.series_start, t.created_at, t.updated_at, t.completed_at, t.title_key FROM tasks t WHERE t.owner = :owner AND t.status = :status ORDER BY t.created_at DESC, t.id DESC LIMIT :limit;
SELECT id, task_id, fire_at, minutes_before FROM reminders WHERE task_id = ANY(:ids) ORDER BY fire_at, id;
