//! The `reminders` table: the reminders of tasks, each at a time or relative to its task's due
//! time.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Db, Query, Tx};

/// One row of `reminders`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReminderRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub fire_at: DateTime<Utc>,
    /// Set when the reminder moves with the task's due time.
    pub minutes_before: Option<i32>,
}

/// The reminders of the given tasks, earliest first.
pub async fn of_tasks(db: &Db, task_ids: &[Uuid]) -> Result<Vec<ReminderRow>, sqlx::Error> {
    db.fetch_all(&of_tasks_query(db.backend(), task_ids)).await
}

/// [`of_tasks`] inside a transaction.
pub async fn of_tasks_in(tx: &mut Tx, task_ids: &[Uuid]) -> Result<Vec<ReminderRow>, sqlx::Error> {
    let q = of_tasks_query(tx.backend(), task_ids);
    tx.fetch_all(&q).await
}

/// The statement of [`of_tasks`], to run in a transaction.
pub(super) fn of_tasks_query(backend: Backend, task_ids: &[Uuid]) -> Query {
    let mut q =
        Query::new("SELECT id, task_id, fire_at, minutes_before FROM reminders WHERE task_id");
    q.push_in(backend, task_ids.to_vec())
        .push(" ORDER BY fire_at, id");
    q
}

/// Adds a reminder to a task of `owner`.
pub async fn insert(
    tx: &mut Tx,
    owner: &str,
    r: &ReminderRow,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    insert_all(tx, owner, &[r], now).await
}

/// Adds reminders to tasks of `owner`, in one statement however many.
pub async fn insert_all(
    tx: &mut Tx,
    owner: &str,
    reminders: &[&ReminderRow],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if reminders.is_empty() {
        return Ok(());
    }
    let mut q = Query::new(
        "INSERT INTO reminders (id, task_id, owner, fire_at, minutes_before, created_at)",
    );
    q.push_values(reminders.iter().map(|r| {
        vec![
            r.id.into(),
            r.task_id.into(),
            owner.into(),
            r.fire_at.into(),
            r.minutes_before.map(i64::from).into(),
            now.into(),
        ]
    }));
    tx.execute(&q).await.map(drop)
}

/// Moves a reminder to fire at `fire_at`.
pub async fn reschedule(tx: &mut Tx, id: Uuid, fire_at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let q = Query::new("UPDATE reminders SET fire_at = $1 WHERE id = $2")
        .bind(fire_at)
        .bind(id);
    tx.execute(&q).await.map(drop)
}

/// Deletes the reminder of the task; false when the task has no such reminder.
pub async fn delete(tx: &mut Tx, task_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let q = Query::new("DELETE FROM reminders WHERE id = $1 AND task_id = $2")
        .bind(id)
        .bind(task_id);
    Ok(tx.execute(&q).await? > 0)
}
