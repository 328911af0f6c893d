-- pgbench script: one `list_tasks` call with default arguments (pending tasks, newest first,
-- 50 per page), as todo-mcp runs it against PostgreSQL.
--
-- It mirrors TaskService::list (mcp-server/src/tasks/service.rs): the count query
-- (ListQuery::count_query), the page query with limit + 1 = 51 rows (ListQuery::page_query in
-- tasks/list.rs, columns TASK_COLUMNS from tasks/row.rs), then the reminders of the 50 tasks of
-- the page (reminders_query in tasks/row.rs: one placeholder per task id). The server runs them
-- outside a transaction, each on a connection from its pool (the count and the page at the same
-- time, on two connections); this script runs the same statements one after the other on its
-- one connection. The SQL text was copied from PostgreSQL's statement log of a live server
-- (log_statement = 'all'), and scripts/bench.sh checks it against the server again on every run
-- (`todo-bench sql-check`). Run with `-M prepared`, as sqlx prepares every statement.
--
-- Variables (pgbench -D, set by scripts/bench.sh): owner (the benchmark user with its seeded
-- tasks), status ('pending'), limit (51), id1 .. id50: the ids of the first page, which the
-- server passes to the reminders query (the data set does not change while this runs).
SELECT COUNT(*) AS total FROM tasks t WHERE t.owner = :owner AND t.status = :status;
SELECT t.id, t.owner, t.title, t.description, t.status, t.priority, t.tags, t.due_at, t.time_zone, t.recurrence, t.series_id, t.series_start, t.created_at, t.updated_at, t.completed_at, t.title_key FROM tasks t WHERE t.owner = :owner AND t.status = :status ORDER BY t.created_at DESC, t.id DESC LIMIT :limit;
SELECT id, task_id, fire_at, minutes_before FROM reminders WHERE task_id IN (:id1, :id2, :id3, :id4, :id5, :id6, :id7, :id8, :id9, :id10, :id11, :id12, :id13, :id14, :id15, :id16, :id17, :id18, :id19, :id20, :id21, :id22, :id23, :id24, :id25, :id26, :id27, :id28, :id29, :id30, :id31, :id32, :id33, :id34, :id35, :id36, :id37, :id38, :id39, :id40, :id41, :id42, :id43, :id44, :id45, :id46, :id47, :id48, :id49, :id50) ORDER BY fire_at, id;
