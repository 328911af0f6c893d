//! The `outbox_dead_letters` table: events the relay gave up on after every attempt failed.
//!
//! The relay moves an event here ([`super::outbox::settle`]) so that its task's later events go
//! on. Nothing is lost: an operator lists them ([`list`]) and either sends them again
//! ([`retry`], back into the outbox as new rows, behind whatever the task published since) or
//! drops them ([`drop`]). `todo-mcp dead-letters` is that operator's command.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, Query};

/// One given-up event, as an operator sees it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetter {
    /// The event's id (its CloudEvents `id`).
    pub id: Uuid,
    /// Its place in the outbox when it was given up.
    pub seq: i64,
    pub topic: String,
    pub event_type: String,
    /// The task it is about.
    pub subject: Uuid,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    Ids(Vec<Uuid>),
}

impl Selection {
    /// Appends the `WHERE` clause that selects.
    fn push_to(&self, db: &Db, q: &mut Query) {
        match self {
            // A `WHERE` either way: SQLite needs one before an upsert clause on `INSERT … SELECT`.
            Selection::All => q.push(" WHERE 1 = 1"),
            Selection::Ids(ids) => q.push(" WHERE id").push_in(db.backend(), ids.clone()),
        };
    }
}

/// Up to `limit` dead letters, oldest first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<DeadLetter>, sqlx::Error> {
    db.fetch_all(
        &Query::new(
            "SELECT id, seq, topic, event_type, subject, created_at, attempts, last_error, dead_at \
             FROM outbox_dead_letters ORDER BY dead_at, seq LIMIT $1",
        )
        .bind(limit),
    )
    .await
}

/// Moves the selected dead letters back into the outbox, in their original order, with fresh
/// attempts; the relay publishes them again. One whose id is in the outbox again already (a
/// producer wrote it anew) is not added twice. Returns how many were selected.
pub async fn retry(db: &Db, selection: &Selection) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut insert = Query::new(
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at, traceparent) \
         SELECT id, topic, event_type, subject, envelope, created_at, traceparent \
         FROM outbox_dead_letters",
    );
    selection.push_to(db, &mut insert);
    insert.push(" ORDER BY seq ON CONFLICT (id) DO NOTHING");
    tx.execute(&insert).await?;
    let mut delete = Query::new("DELETE FROM outbox_dead_letters");
    selection.push_to(db, &mut delete);
    let moved = tx.execute(&delete).await?;
    tx.commit().await?;
    Ok(moved)
}

/// Deletes the selected dead letters for good. Returns how many.
pub async fn drop(db: &Db, selection: &Selection) -> Result<u64, sqlx::Error> {
    let mut delete = Query::new("DELETE FROM outbox_dead_letters");
    selection.push_to(db, &mut delete);
    db.execute(&delete).await
}
