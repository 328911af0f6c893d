//! The `outbox` table: lifecycle events, from the transaction that writes them to the relay that
//! publishes them.
//!
//! An event is inserted in the transaction of the change it describes ([`enqueue`]), so a
//! committed change always has its event and a rolled-back one never does. The relay then reads
//! the oldest unpublished event of each task with the events queued behind it ([`claim`],
//! [`unpublished`]), publishes them and records what happened ([`mark`]). Published rows are
//! pruned after a retention period ([`prune`]); [`backlog`] says how much waits. The embedded
//! scheduler publishes through the outbox too ([`OutboxPublisher`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use todo_scheduler::ports::{PortError, Publisher};
use todo_shared::events::OutgoingEvent;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Backend, Db, Query, Tx, port_error};

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

/// The embedded scheduler's [`Publisher`] port: its events go through the outbox, as durable as
/// task changes, once each.
pub struct OutboxPublisher {
    pub db: Db,
    /// Wakes the relay after a commit.
    pub wake: Arc<Notify>,
}

#[async_trait]
impl Publisher for OutboxPublisher {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        let mut tx = self.db.begin().await.map_err(port_error)?;
        let added = enqueue_once(&mut tx, event).await.map_err(port_error)?;
        tx.commit().await.map_err(port_error)?;
        if added {
            self.wake.notify_one();
        }
        Ok(())
    }
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

/// An unpublished event, as the relay publishes it.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    /// Commit order.
    pub seq: i64,
    pub topic: String,
    /// The task the event is about: its events are published in `seq` order.
    pub subject: Uuid,
    pub envelope: Json<Value>,
    pub traceparent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Head {
    subject: Uuid,
}

/// The oldest unpublished event of up to `tasks` tasks, `lock` appended.
fn heads(tasks: i64, lock: &str) -> Query {
    Query::new(format!(
        "SELECT o.subject FROM outbox o WHERE o.published_at IS NULL AND NOT EXISTS \
         (SELECT 1 FROM outbox p WHERE p.subject = o.subject AND p.published_at IS NULL AND p.seq < o.seq) \
         ORDER BY o.seq LIMIT $1{lock}"
    ))
    .bind(tasks)
}

/// The unpublished events of the `heads`' tasks, oldest first.
fn events_of(backend: Backend, heads: &[Head]) -> Query {
    let mut q = Query::new(
        "SELECT seq, topic, subject, envelope, traceparent FROM outbox WHERE published_at IS NULL AND subject",
    );
    q.push_in(backend, heads.iter().map(|h| h.subject).collect())
        .push(" ORDER BY seq");
    q
}

/// Claims the unpublished events of up to `tasks` tasks inside `tx`, oldest first. On PostgreSQL
/// the oldest event of each task (its head) is locked with `SKIP LOCKED` until `tx` ends, so
/// relays sharing the outbox take disjoint sets of tasks, and an event is only ever claimed as or
/// behind its task's head: the events of one task go out in order, through one relay at a time.
pub async fn claim(tx: &mut Tx, tasks: i64) -> Result<Vec<Pending>, sqlx::Error> {
    let heads: Vec<Head> = tx.fetch_all(&heads(tasks, tx.skip_locked_clause())).await?;
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let backend = tx.backend();
    tx.fetch_all(&events_of(backend, &heads)).await
}

/// The same events as [`claim`], read without locking: for SQLite, whose single writer must not
/// be held while in-process subscribers write (one relay per database file).
pub async fn unpublished(db: &Db, tasks: i64) -> Result<Vec<Pending>, sqlx::Error> {
    let heads: Vec<Head> = db.fetch_all(&heads(tasks, "")).await?;
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    db.fetch_all(&events_of(db.backend(), &heads)).await
}

/// Records a round of publishing: `published` events are marked with `now`, each failed one
/// counts an attempt and keeps its error.
pub async fn mark(
    tx: &mut Tx,
    published: &[i64],
    failed: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for (seq, error) in failed {
        let q =
            Query::new("UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2")
                .bind(error.as_str())
                .bind(*seq);
        tx.execute(&q).await?;
    }
    if !published.is_empty() {
        let mut q = Query::new("UPDATE outbox SET published_at = ");
        let backend = tx.backend();
        q.push_bind(now)
            .push(" WHERE seq")
            .push_in(backend, published.to_vec());
        tx.execute(&q).await?;
    }
    Ok(())
}

/// Deletes events published before `cutoff`; returns how many.
pub async fn prune(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    db.execute(
        &Query::new("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
            .bind(cutoff),
    )
    .await
}

/// What `/readyz` reports about the outbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backlog {
    /// Events not yet published.
    pub pending: i64,
    /// Age of the oldest of them, in seconds.
    pub oldest_age_seconds: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct BacklogRow {
    pending: i64,
    oldest: Option<DateTime<Utc>>,
}

/// How many events wait, and for how long the oldest has.
pub async fn backlog(db: &Db, now: DateTime<Utc>) -> Result<Backlog, sqlx::Error> {
    let row: BacklogRow = db
        .fetch_one(&Query::new(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE published_at IS NULL",
        ))
        .await?;
    Ok(Backlog {
        pending: row.pending,
        oldest_age_seconds: row.oldest.map(|t| (now - t).num_seconds().max(0)),
    })
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
