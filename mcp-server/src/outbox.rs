//! The transactional outbox: events are written in the transaction of the change they describe.
//!
//! A committed change therefore always has its event, and a rolled-back one never does. Relaying
//! the rows to Dapr pub/sub is the relay's job; here events only enter the table.

use todo_shared::events::OutgoingEvent;
use uuid::Uuid;

use crate::db::{Query, Tx};

/// A new W3C `traceparent` (version 00, sampled) starting a trace for one event.
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// Adds `event` to the outbox inside `tx`, with a trace context of its own.
pub async fn enqueue(tx: &mut Tx, event: &OutgoingEvent) -> Result<(), sqlx::Error> {
    tx.execute(&insert(event, "")).await.map(drop)
}

/// Adds `event` unless an event with its id is in the outbox already: for producers whose event
/// ids are derived from what they announce (the embedded scheduler), so a repeated firing
/// publishes once. Returns whether it added the event.
pub async fn enqueue_once(tx: &mut Tx, event: &OutgoingEvent) -> Result<bool, sqlx::Error> {
    Ok(tx
        .execute(&insert(event, " ON CONFLICT (id) DO NOTHING"))
        .await?
        == 1)
}

fn insert(event: &OutgoingEvent, on_conflict: &str) -> Query {
    Query::new(format!(
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7){on_conflict}"
    ))
    .bind(event.id)
    .bind(event.event_type.topic())
    .bind(event.event_type.as_str())
    .bind(event.subject)
    .bind(event.envelope.clone())
    .bind(event.time)
    .bind(new_traceparent())
}

#[cfg(test)]
mod tests {
    #[test]
    fn traceparents_are_well_formed_and_fresh() {
        let t = super::new_traceparent();
        let parts: Vec<_> = t.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [2, 32, 16, 2]
        );
        assert!(
            parts
                .iter()
                .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        );
        assert_ne!(t, super::new_traceparent());
    }
}
