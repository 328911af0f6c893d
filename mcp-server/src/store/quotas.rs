//! How much a user holds, for their quotas. Each count stops at its cap, so that checking a
//! quota costs no more than the quota, however much the user holds.

use super::{Backend, Count, Query, Tx};

/// The user's tasks, counted up to `cap`.
pub async fn tasks(tx: &mut Tx, owner: &str, cap: u32) -> Result<i64, sqlx::Error> {
    capped(tx, "tasks WHERE owner = $1", owner, cap).await
}

/// The user's live series (pending tasks with a recurrence), counted up to `cap`.
pub async fn live_series(tx: &mut Tx, owner: &str, cap: u32) -> Result<i64, sqlx::Error> {
    let rows = "tasks WHERE owner = $1 AND status = 'pending' AND recurrence IS NOT NULL";
    capped(tx, rows, owner, cap).await
}

/// The reminders on the user's tasks, counted up to `cap`.
pub async fn reminders(tx: &mut Tx, owner: &str, cap: u32) -> Result<i64, sqlx::Error> {
    capped(tx, "reminders WHERE owner = $1", owner, cap).await
}

/// Holds the owner's quota lock until the transaction ends, so that concurrent batches count
/// one after another (PostgreSQL; SQLite has one writer at a time anyway).
pub async fn lock_owner(tx: &mut Tx, owner: &str) -> Result<(), sqlx::Error> {
    if tx.backend() != Backend::Postgres {
        return Ok(());
    }
    let q = Query::new("SELECT pg_advisory_xact_lock(hashtext($1))").bind(owner);
    tx.execute(&q).await.map(drop)
}

async fn capped(tx: &mut Tx, rows: &str, owner: &str, cap: u32) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) AS total FROM (SELECT 1 FROM {rows} LIMIT $2) AS capped");
    let q = Query::new(sql).bind(owner).bind(i64::from(cap));
    Ok(tx.fetch_one::<Count>(&q).await?.total)
}
