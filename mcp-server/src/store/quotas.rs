//! How much a user holds, for their quotas: the `usage` table, which triggers keep in the
//! transaction of every change to tasks and reminders (migrations `0010_usage.sql`). Reading it
//! costs a few rows, however much the user holds.

use super::{Backend, Db, Query, Tx};

/// What one user holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Held {
    /// Tasks, in any state.
    pub tasks: i64,
    /// Series still going: pending tasks with a recurrence.
    pub live_series: i64,
    /// Reminders, on all the user's tasks.
    pub reminders: i64,
}

/// What `owner` holds, as this transaction sees it.
pub async fn held(tx: &mut Tx, owner: &str) -> Result<Held, sqlx::Error> {
    // On PostgreSQL a user has a row per database session that changed their tasks.
    let q = Query::new(
        "SELECT CAST(COALESCE(SUM(tasks), 0) AS BIGINT) AS tasks, \
                CAST(COALESCE(SUM(live_series), 0) AS BIGINT) AS live_series, \
                CAST(COALESCE(SUM(reminders), 0) AS BIGINT) AS reminders \
         FROM usage WHERE owner = $1",
    )
    .bind(owner);
    tx.fetch_one(&q).await
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

/// Folds the usage rows of PostgreSQL sessions that have ended into each user's row 0, so that
/// a user's rows stay about as many as the sessions writing for them. Rows in use are left for
/// the next pass. Returns for how many users rows were folded.
pub async fn fold_ended_writers(db: &Db) -> Result<u64, sqlx::Error> {
    if db.backend() != Backend::Postgres {
        return Ok(0);
    }
    let q = Query::new(
        "WITH ended AS (\
           DELETE FROM usage WHERE (owner, writer) IN (\
             SELECT owner, writer FROM usage \
             WHERE writer <> 0 AND writer NOT IN (SELECT pid FROM pg_stat_activity) \
             FOR UPDATE SKIP LOCKED) \
           RETURNING owner, tasks, live_series, reminders) \
         INSERT INTO usage AS u (owner, writer, tasks, live_series, reminders) \
         SELECT owner, 0, SUM(tasks), SUM(live_series), SUM(reminders) FROM ended GROUP BY owner \
         ON CONFLICT (owner, writer) DO UPDATE SET tasks = u.tasks + excluded.tasks, \
           live_series = u.live_series + excluded.live_series, \
           reminders = u.reminders + excluded.reminders",
    );
    db.execute(&q).await
}
