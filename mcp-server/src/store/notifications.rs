//! The `notifications` table: fired reminders, kept for `list_notifications`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use sqlx::postgres::PgListener;

use super::{Backend, Db, Query, Tx};

/// A notification to record.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Derived from the reminder and its firing time: one notification per firing.
    pub id: Uuid,
    pub owner: todo_shared::task::UserId,
    pub task_id: Uuid,
    pub reminder_id: Option<Uuid>,
    /// The task's title when the reminder fired.
    pub title: String,
    pub message: String,
    /// When the reminder was due to fire.
    pub fire_at: DateTime<Utc>,
}

/// One row of `notifications`, as listed.
#[derive(Debug, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub reminder_id: Option<Uuid>,
    pub title: String,
    pub message: String,
    pub fire_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Records a notification unless one with its id exists; returns whether it did.
pub async fn insert(
    tx: &mut Tx,
    n: &NewNotification,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let q = Query::new(
        "INSERT INTO notifications (id, owner, task_id, reminder_id, title, message, fire_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(n.id)
    .bind(n.owner.as_str())
    .bind(n.task_id)
    .bind(n.reminder_id)
    .bind(n.title.clone())
    .bind(n.message.clone())
    .bind(n.fire_at)
    .bind(now);
    Ok(tx.execute(&q).await? == 1)
}

/// The user's `limit` newest notifications, only unread ones when `unread_only`.
pub async fn newest(
    db: &Db,
    owner: &str,
    unread_only: bool,
    limit: u32,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let mut q = Query::new(
        "SELECT id, task_id, reminder_id, title, message, fire_at, created_at, read_at \
         FROM notifications WHERE owner = ",
    );
    q.push_bind(owner);
    if unread_only {
        q.push(" AND read_at IS NULL");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
    db.fetch_all(&q).await
}

/// Marks the user's notifications `ids` read at `now`.
pub async fn mark_read(
    db: &Db,
    owner: &str,
    ids: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = Query::new("UPDATE notifications SET read_at = ");
    q.push_bind(now)
        .push(" WHERE owner = ")
        .push_bind(owner)
        .push(" AND id")
        .push_in(db.backend(), ids);
    db.execute(&q).await.map(drop)
}

#[derive(sqlx::FromRow)]
struct Unread {
    unread: i64,
}

/// How many of the user's notifications are unread.
pub async fn unread(db: &Db, owner: &str) -> Result<i64, sqlx::Error> {
    let q = Query::new(
        "SELECT COUNT(*) AS unread FROM notifications WHERE owner = $1 AND read_at IS NULL",
    )
    .bind(owner);
    db.fetch_one::<Unread>(&q).await.map(|u| u.unread)
}

/// The PostgreSQL channel on which every replica hears of new notifications.
const CHANNEL: &str = "todo_notifications";

/// Tells every replica listening on this database of `payload` once `tx` commits (PostgreSQL's
/// NOTIFY, delivered only on commit); false on SQLite, whose single process announces itself.
pub async fn announce(tx: &mut Tx, payload: &str) -> Result<bool, sqlx::Error> {
    if tx.backend() != Backend::Postgres {
        return Ok(false);
    }
    let q = Query::new(format!("SELECT pg_notify('{CHANNEL}', $1)")).bind(payload);
    tx.execute(&q).await?;
    Ok(true)
}

/// What [`announce`] sends, as every replica hears it; `None` on SQLite.
pub async fn listen(db: &Db) -> Result<Option<PgListener>, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(None);
    };
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(Some(listener))
}
