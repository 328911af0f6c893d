//! The schedule as the database holds it: the tasks a resync replays to the scheduler, and the
//! `ended_series` whose newest occurrence went, so that nothing follows them.
//!
//! A series has no row of its own: it lives in its occurrences' `series_id`. It goes on from its
//! newest occurrence unless that one was deleted or made one-off (`ended_series`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tasks::{TASK_COLUMNS, TaskRow};
use super::{Count, Query, Tx};

/// Up to `limit` tasks with something to schedule, in id order after `after`: every pending
/// task with reminders, and every series' newest occurrence unless the series ended.
pub async fn scheduled_page(
    tx: &mut Tx,
    after: Uuid,
    limit: i64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id > $1 AND ( \
           (t.status = 'pending' AND EXISTS (SELECT 1 FROM reminders r WHERE r.task_id = t.id)) \
           OR (t.recurrence IS NOT NULL AND t.series_id IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM tasks n \
                               WHERE n.series_id = t.series_id AND n.due_at > t.due_at) \
               AND NOT EXISTS (SELECT 1 FROM ended_series e WHERE e.series_id = t.series_id))) \
         ORDER BY t.id LIMIT $2"
    );
    tx.fetch_all(&Query::new(sql).bind(after).bind(limit)).await
}

/// Whether the task due at `due` is its series' newest occurrence.
pub async fn is_newest(
    tx: &mut Tx,
    series_id: Uuid,
    task_id: Uuid,
    due: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let Some(due) = due else { return Ok(true) };
    let q = Query::new(
        "SELECT COUNT(*) AS total FROM tasks WHERE series_id = $1 AND id <> $2 AND due_at > $3",
    )
    .bind(series_id)
    .bind(task_id)
    .bind(due);
    Ok(tx.fetch_one::<Count>(&q).await?.total == 0)
}

/// Records that nothing follows the series any more.
pub async fn end_series(
    tx: &mut Tx,
    series_id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let q = Query::new(
        "INSERT INTO ended_series (series_id, owner, ended_at) VALUES ($1, $2, $3) \
         ON CONFLICT (series_id) DO NOTHING",
    )
    .bind(series_id)
    .bind(owner)
    .bind(now);
    tx.execute(&q).await.map(drop)
}

/// The series goes on again (a task that began it was given a recurrence again).
pub async fn resume_series(tx: &mut Tx, series_id: Uuid) -> Result<(), sqlx::Error> {
    let q = Query::new("DELETE FROM ended_series WHERE series_id = $1").bind(series_id);
    tx.execute(&q).await.map(drop)
}

/// Whether the series has ended.
pub async fn has_ended(tx: &mut Tx, series_id: Uuid) -> Result<bool, sqlx::Error> {
    let q = Query::new("SELECT COUNT(*) AS total FROM ended_series WHERE series_id = $1")
        .bind(series_id);
    Ok(tx.fetch_one::<Count>(&q).await?.total > 0)
}
