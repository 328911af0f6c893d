//! The `outbox` table: lifecycle events, from the transaction that writes them to the relay that
//! publishes them.
//!
//! An event is inserted in the transaction of the change it describes ([`enqueue`]), so a
//! committed change always has its event and a rolled-back one never does. A relay then claims
//! tasks for a while through their oldest unpublished event, with the events queued behind it
//! ([`claim`]), publishes them with no transaction open, and records what happened ([`settle`]):
//! published, to be retried later, or moved to the dead-letter table
//! ([`super::dead_letters`]). Published rows are pruned after a retention period ([`prune`]);
//! [`backlog`] says how much waits. The embedded scheduler publishes through the outbox too
//! ([`OutboxPublisher`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use todo_dapr::telemetry;
use todo_scheduler::ports::{PortError, Publisher};
use todo_shared::events::OutgoingEvent;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Db, Query, Tx, port_error};

/// A new W3C `traceparent` (version 00, sampled) starting a trace for one event.
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// Adds `event` to the outbox inside `tx`, in its trace: the one the event names, else the
/// current span's (a tool call, a consumer), else a new one.
pub async fn enqueue(tx: &mut Tx, event: &OutgoingEvent) -> Result<(), sqlx::Error> {
    enqueue_all(tx, std::slice::from_ref(event)).await
}

/// Adds `event` unless an event with its id is in the outbox already: for producers whose event
/// ids are derived from what they announce (the embedded scheduler), so a repeated firing
/// publishes once. Returns whether it added the event.
pub async fn enqueue_once(tx: &mut Tx, event: &OutgoingEvent) -> Result<bool, sqlx::Error> {
    Ok(tx
        .execute(&insert(
            std::slice::from_ref(event),
            " ON CONFLICT (id) DO NOTHING",
        ))
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

    /// All in one transaction.
    async fn publish_all(&self, events: &[OutgoingEvent]) -> Result<(), PortError> {
        let mut tx = self.db.begin().await.map_err(port_error)?;
        let mut added = false;
        for event in events {
            added |= enqueue_once(&mut tx, event).await.map_err(port_error)?;
        }
        tx.commit().await.map_err(port_error)?;
        if added {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Adds `events` to the outbox inside `tx`, in one statement however many, in their order.
pub async fn enqueue_all(tx: &mut Tx, events: &[OutgoingEvent]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    tx.execute(&insert(events, "")).await.map(drop)
}

fn insert(events: &[OutgoingEvent], on_conflict: &str) -> Query {
    let mut q = Query::new(
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at, traceparent)",
    );
    q.push_values(events.iter().map(|event| {
        let trace = event
            .traceparent
            .clone()
            .or_else(|| telemetry::traceparent(&tracing::Span::current()))
            .unwrap_or_else(new_traceparent);
        vec![
            event.id.into(),
            event.event_type.topic().into(),
            event.event_type.as_str().into(),
            event.subject.into(),
            event.envelope.clone().into(),
            event.time.into(),
            trace.into(),
        ]
    }));
    q.push(on_conflict);
    q
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
    /// Failed attempts so far.
    pub attempts: i32,
}

/// Events a relay holds for a while: no other relay publishes their tasks' events until the
/// claim is settled or expires.
#[derive(Debug)]
pub struct Claim {
    pub id: Uuid,
    /// The claimed tasks' unpublished events, oldest first.
    pub events: Vec<Pending>,
}

#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    subject: Uuid,
}

/// Claims the events of up to `tasks` tasks (at most `max_events` of them) until `now + lease`.
///
/// A task is claimed through its oldest unpublished event, its head, when no live claim holds
/// it and no retry is pending; the events queued behind the head come with it. The transaction
/// is short, and on PostgreSQL `SKIP LOCKED` keeps concurrent claims from waiting on each other;
/// either way a head claimed once is passed over until its claim ends, so relays (and the
/// workers of one relay) take disjoint tasks, and a task's events go out in order. (A task's
/// events commit in `seq` order: its writers serialize on the task's row.)
pub async fn claim(
    db: &Db,
    tasks: i64,
    max_events: i64,
    lease: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> Result<Claim, sqlx::Error> {
    let id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    // A lost claim only delays its tasks until it expires: no need to wait for the disk.
    tx.relax_durability().await?;
    tx.plan_for_values().await?;
    // Candidates first, read without locks; then those still free are claimed, skipping any
    // another claim holds. Locking in the first query would have PostgreSQL recheck its join for
    // every row a concurrent claim changed, which turns quadratic under load.
    //
    // The unpublished events are walked in commit order (`outbox_free_walk`, which only a query
    // that says `seq > 0` can use) and the walk stops at the limit; each one met is a head if it
    // is its task's first unpublished event, which a subquery per row finds through the
    // (subject, seq) index. Right after a burst the planner's statistics still say no event is
    // unpublished; were the walk's index usable for that subquery, it could be chosen there
    // too, walking the backlog from its start for every row: a claim quadratic in the backlog.
    tx.walk_indexes_in_order(true).await?;
    let candidates: Vec<Head> = tx
        .fetch_all(
            &Query::new(
                "SELECT o.seq, o.subject FROM outbox o WHERE o.published_at IS NULL AND o.seq > 0 \
                 AND (o.locked_until IS NULL OR o.locked_until <= $1) \
                 AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= $1) \
                 AND o.seq = (SELECT min(p.seq) FROM outbox p \
                 WHERE p.subject = o.subject AND p.published_at IS NULL) \
                 ORDER BY o.seq LIMIT $2",
            )
            .bind(now)
            // Room for what concurrent claims take meanwhile.
            .bind(tasks.saturating_mul(2)),
        )
        .await?;
    // The claim's other queries read few rows by key, and sort them.
    tx.walk_indexes_in_order(false).await?;
    if candidates.is_empty() {
        return Ok(Claim {
            id,
            events: Vec::new(),
        });
    }
    let backend = tx.backend();
    let candidates: Vec<i64> = candidates.iter().map(|c| c.seq).collect();
    let mut lock = Query::new("UPDATE outbox SET locked_until = ");
    lock.push_bind(now + lease)
        .push(", claim_id = ")
        .push_bind(id)
        .push(
            " WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL \
             AND (locked_until IS NULL OR locked_until <= ",
        )
        .push_bind(now)
        .push(") AND seq")
        .push_in(backend, candidates)
        .push(" ORDER BY seq LIMIT ")
        .push_bind(tasks)
        .push(tx.skip_locked_clause())
        .push(") RETURNING seq, subject");
    let heads: Vec<Head> = tx.fetch_all(&lock).await?;
    if heads.is_empty() {
        return Ok(Claim {
            id,
            events: Vec::new(),
        });
    }
    let mut events = Query::new(
        "SELECT seq, topic, subject, envelope, traceparent, attempts FROM outbox \
         WHERE published_at IS NULL AND subject",
    );
    events
        .push_in(backend, heads.iter().map(|h| h.subject).collect())
        .push(" ORDER BY seq LIMIT ")
        .push_bind(max_events.max(tasks));
    let events = tx.fetch_all(&events).await?;
    tx.commit().await?;
    Ok(Claim { id, events })
}

/// What became of a claimed event that was not published.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Try again from `at`.
    Retry { at: DateTime<Utc> },
    /// Give up: move it to the dead-letter table.
    Dead,
}

/// A claimed event that failed, and what to do about it.
#[derive(Debug, Clone)]
pub struct Failed {
    pub seq: i64,
    pub error: String,
    pub then: Failure,
}

/// Settles a claim in one short transaction: `published` events are marked with `now`; each
/// failed one counts an attempt and waits for its retry or moves to the dead-letter table; the
/// rest of `heads` (the claim's, untried) are released. Failures and releases apply only while
/// the claim still holds the event: after it expired, another relay owns it.
pub async fn settle(
    db: &Db,
    claim: Uuid,
    published: &[i64],
    failed: &[Failed],
    heads: &[i64],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    // A lost mark publishes the events again, which idempotent consumers absorb.
    tx.relax_durability().await?;
    let backend = tx.backend();
    if !published.is_empty() {
        let mut q = Query::new("UPDATE outbox SET published_at = ");
        q.push_bind(now)
            .push(", locked_until = NULL, claim_id = NULL WHERE seq")
            .push_in(backend, published.to_vec());
        tx.execute(&q).await?;
    }
    for failure in failed {
        match failure.then {
            Failure::Retry { at } => {
                let q = Query::new(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
                     next_attempt_at = $2, locked_until = NULL, claim_id = NULL \
                     WHERE seq = $3 AND claim_id = $4",
                )
                .bind(failure.error.as_str())
                .bind(at)
                .bind(failure.seq)
                .bind(claim);
                tx.execute(&q).await?;
            }
            Failure::Dead => {
                let q = Query::new(
                    "INSERT INTO outbox_dead_letters (id, seq, topic, event_type, subject, \
                     envelope, created_at, traceparent, attempts, last_error, dead_at) \
                     SELECT id, seq, topic, event_type, subject, envelope, created_at, \
                     traceparent, attempts + 1, $1, $2 FROM outbox WHERE seq = $3 AND claim_id = $4",
                )
                .bind(failure.error.as_str())
                .bind(now)
                .bind(failure.seq)
                .bind(claim);
                if tx.execute(&q).await? == 1 {
                    let q = Query::new("DELETE FROM outbox WHERE seq = $1").bind(failure.seq);
                    tx.execute(&q).await?;
                }
            }
        }
    }
    if !heads.is_empty() {
        let mut q =
            Query::new("UPDATE outbox SET locked_until = NULL, claim_id = NULL WHERE claim_id = ");
        q.push_bind(claim)
            .push(" AND seq")
            .push_in(backend, heads.to_vec());
        tx.execute(&q).await?;
    }
    tx.commit().await
}

/// Deletes events published before `cutoff`; returns how many.
pub async fn prune(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    db.execute(
        &Query::new("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
            .bind(cutoff),
    )
    .await
}

/// Refreshes the planner's statistics of the outbox (PostgreSQL; SQLite's planner needs none).
/// After a burst they still say that no event waits, every index over unpublished events looks
/// empty, and the claim's queries can be planned as scans of the whole backlog; autovacuum
/// catches up only at its next round, a minute or more later. Only the columns the claim's
/// queries filter on: the envelopes' statistics would cost more than all the others.
pub async fn refresh_statistics(db: &Db) -> Result<(), sqlx::Error> {
    if db.backend() == super::Backend::Postgres {
        db.execute(&Query::new(
            "ANALYZE outbox (seq, subject, published_at, locked_until, next_attempt_at)",
        ))
        .await?;
    }
    Ok(())
}

/// What `/readyz` reports about the outbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backlog {
    /// Events not yet published.
    pub pending: i64,
    /// Age of the oldest of them, in seconds.
    pub oldest_age_seconds: Option<i64>,
    /// Events given up after every attempt failed, waiting for an operator.
    pub dead_letters: i64,
}

#[derive(sqlx::FromRow)]
struct BacklogRow {
    pending: i64,
    oldest: Option<DateTime<Utc>>,
    dead_letters: i64,
}

/// How many events wait, for how long the oldest has, and how many were given up.
pub async fn backlog(db: &Db, now: DateTime<Utc>) -> Result<Backlog, sqlx::Error> {
    let row: BacklogRow = db
        .fetch_one(&Query::new(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest, \
             (SELECT COUNT(*) FROM outbox_dead_letters) AS dead_letters \
             FROM outbox WHERE published_at IS NULL",
        ))
        .await?;
    Ok(Backlog {
        pending: row.pending,
        oldest_age_seconds: row.oldest.map(|t| (now - t).num_seconds().max(0)),
        dead_letters: row.dead_letters,
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
