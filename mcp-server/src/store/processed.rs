//! The `processed_events` table: each consumer records the ids of the events it has processed in
//! the same transaction as the event's effect, so a redelivered event finds its id and changes
//! nothing.

use chrono::{DateTime, Utc};

use super::{Query, Tx};

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
