//! The `processed_events` table: each consumer records the ids of the events it has processed in
//! the same transaction as the event's effect, so a redelivered event finds its id and changes
//! nothing.

use chrono::{DateTime, Utc};

use super::{Count, Db, Query, Tx};

/// One consumer's view of one event.
#[derive(Debug, Clone, Copy)]
pub struct EventKey<'a> {
    /// The consuming service and handler, e.g. `mcp-server:recurring`.
    pub consumer: &'static str,
    /// The CloudEvent `id`.
    pub event_id: &'a str,
}

/// Records the event as processed inside `tx`; false when it already was, in which case the
/// caller must not apply the effect again.
pub async fn claim(
    tx: &mut Tx,
    key: EventKey<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let q = Query::new(
        "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(key.consumer)
    .bind(key.event_id)
    .bind(now);
    Ok(tx.execute(&q).await? == 1)
}

/// Whether the consumer has processed the event: for an effect that is harmless to repeat and
/// too large for one transaction, checked before and claimed after.
pub async fn was_processed(db: &Db, key: EventKey<'_>) -> Result<bool, sqlx::Error> {
    let q = Query::new(
        "SELECT COUNT(*) AS total FROM processed_events WHERE consumer = $1 AND event_id = $2",
    )
    .bind(key.consumer)
    .bind(key.event_id);
    Ok(db.fetch_one::<Count>(&q).await?.total > 0)
}
