//! The transactional outbox: events are written in the transaction of the change they describe.
//!
//! A committed change therefore always has its event, and a rolled-back one never does. Relaying
//! the rows to Dapr pub/sub is the relay's job; here events only enter the table.

use todo_shared::events::OutgoingEvent;

use crate::db::{Query, Tx};

/// Adds `event` to the outbox inside `tx`.
pub async fn enqueue(tx: &mut Tx, event: &OutgoingEvent) -> Result<(), sqlx::Error> {
    let q = Query::new(
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(event.event_type.topic())
    .bind(event.event_type.as_str())
    .bind(event.subject)
    .bind(event.envelope.clone())
    .bind(event.time);
    tx.execute(&q).await.map(drop)
}
