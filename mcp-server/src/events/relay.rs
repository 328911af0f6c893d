//! The outbox relay: publishes committed events and marks them published.
//!
//! Each round claims the oldest unpublished event of each task ("the heads"), together with the
//! events queued behind them, in one transaction. On PostgreSQL the heads are locked with
//! `FOR UPDATE SKIP LOCKED`, so replicas relaying the same outbox take disjoint sets of tasks and
//! never publish an event twice; an event is only ever claimed as or behind its task's head, so
//! the events of one task are published in commit order by one replica at a time. On SQLite,
//! with one process per database file, the single relay reads, publishes, then marks.
//!
//! A failed publish leaves that event and everything behind it for the next round (order per
//! task is kept; other tasks go on), and the relay backs off exponentially while failures last.
//! Published rows are pruned once they are older than the retention period.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sink::Sink;
use crate::db::{Backend, Db, Query, now};

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Most tasks whose events one round claims.
    pub batch: i64,
    /// How often to look for events written by other processes when nothing wakes the relay.
    pub poll: Duration,
    /// The longest wait between retries while publishing fails.
    pub max_backoff: Duration,
    /// How long published rows are kept (for inspection) before they are deleted.
    pub retention: chrono::Duration,
    /// How long to wait after a wake-up before a round, to batch the events of a burst.
    pub gather: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 256,
            poll: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            retention: chrono::Duration::hours(24),
            gather: Duration::from_millis(5),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    seq: i64,
    topic: String,
    subject: Uuid,
    envelope: Json<Value>,
    traceparent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Head {
    subject: Uuid,
}

/// The unpublished events of the `heads`' tasks, oldest first.
fn claimed_query(backend: Backend, heads: &[Head]) -> Query {
    let mut q = Query::new(
        "SELECT seq, topic, subject, envelope, traceparent FROM outbox WHERE published_at IS NULL AND subject",
    );
    q.push_in(backend, heads.iter().map(|h| h.subject).collect())
        .push(" ORDER BY seq");
    q
}

/// What publishing a batch did.
#[derive(Default)]
struct Outcome {
    published: Vec<i64>,
    failed: Vec<(i64, String)>,
}

impl Outcome {
    /// The statements that record it.
    fn updates(&self, backend: Backend) -> Vec<Query> {
        let mut updates: Vec<Query> = self
            .failed
            .iter()
            .map(|(seq, error)| {
                Query::new(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
                )
                .bind(error.clone())
                .bind(*seq)
            })
            .collect();
        if !self.published.is_empty() {
            let mut q = Query::new("UPDATE outbox SET published_at = ");
            q.push_bind(now())
                .push(" WHERE seq")
                .push_in(backend, self.published.clone());
            updates.push(q);
        }
        updates
    }

    fn round(&self) -> Round {
        Round {
            published: self.published.len(),
            failed: self.failed.len(),
        }
    }
}

/// The outcome of one round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub published: usize,
    pub failed: usize,
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

/// Relays the outbox of one database to one sink.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Db,
    sink: Sink,
    settings: RelaySettings,
    /// Woken after a local commit so that events go out at once rather than at the next poll.
    wake: Arc<Notify>,
}

impl OutboxRelay {
    /// `wake` is signalled after local commits that wrote events.
    pub fn new(db: Db, sink: Sink, settings: RelaySettings, wake: Arc<Notify>) -> Self {
        Self {
            db,
            sink,
            settings,
            wake,
        }
    }

    /// Relays until `shutdown`, then finishes the round in progress.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::ZERO;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            let round = match self.relay_once().await {
                Ok(round) => round,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay round failed");
                    Round {
                        published: 0,
                        failed: 1,
                    }
                }
            };
            backoff = if round.failed > 0 {
                (backoff * 2).clamp(Duration::from_millis(100), self.settings.max_backoff)
            } else {
                Duration::ZERO
            };
            if last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = self.prune(now()).await {
                    tracing::warn!(error = %e, "pruning the outbox failed");
                }
            }
            // A full batch means more is waiting: go again at once, without gathering.
            if round.failed == 0 && round.published as i64 >= self.settings.batch {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            let pause = if round.failed > 0 {
                backoff
            } else {
                self.settings.poll
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified(), if round.failed == 0 => {
                    // Let the commits of a burst gather, so one round carries them all.
                    tokio::time::sleep(self.settings.gather).await;
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// Claims, publishes and marks one batch of events.
    ///
    /// On PostgreSQL the claim is a transaction that holds the row locks while publishing, which
    /// is what keeps replicas apart. SQLite has a single writer: holding its write lock while an
    /// in-process subscriber writes would deadlock, so there the batch is read, published, and
    /// then marked in a short transaction (one relay per database file is assumed; a second one
    /// could publish an event twice, which idempotent consumers absorb).
    pub async fn relay_once(&self) -> Result<Round, sqlx::Error> {
        match self.db.backend() {
            Backend::Postgres => {
                let mut tx = self.db.begin().await?;
                // Marking rows published need not wait for its own disk flush: if a crash loses
                // the mark, the events are published again, which idempotent consumers absorb.
                // Spares every change a second synchronous commit.
                if let Some(sql) = tx.relaxed_durability_statement() {
                    tx.execute(&Query::new(sql)).await?;
                }
                let heads: Vec<Head> = tx
                    .fetch_all(&self.heads_query(tx.skip_locked_clause()))
                    .await?;
                if heads.is_empty() {
                    return Ok(Round::default());
                }
                let claimed: Vec<Claimed> = tx
                    .fetch_all(&claimed_query(Backend::Postgres, &heads))
                    .await?;
                let outcome = self.publish(&claimed).await;
                for q in outcome.updates(Backend::Postgres) {
                    tx.execute(&q).await?;
                }
                tx.commit().await?;
                Ok(outcome.round())
            }
            Backend::Sqlite => {
                let heads: Vec<Head> = self.db.fetch_all(&self.heads_query("")).await?;
                if heads.is_empty() {
                    return Ok(Round::default());
                }
                let claimed: Vec<Claimed> = self
                    .db
                    .fetch_all(&claimed_query(Backend::Sqlite, &heads))
                    .await?;
                let outcome = self.publish(&claimed).await;
                let mut tx = self.db.begin().await?;
                for q in outcome.updates(Backend::Sqlite) {
                    tx.execute(&q).await?;
                }
                tx.commit().await?;
                Ok(outcome.round())
            }
        }
    }

    /// The oldest unpublished event of each task, `lock` appended.
    fn heads_query(&self, lock: &str) -> Query {
        Query::new(format!(
            "SELECT o.subject FROM outbox o WHERE o.published_at IS NULL AND NOT EXISTS \
             (SELECT 1 FROM outbox p WHERE p.subject = o.subject AND p.published_at IS NULL AND p.seq < o.seq) \
             ORDER BY o.seq LIMIT $1{lock}"
        ))
        .bind(self.settings.batch)
    }

    /// Publishes in order; after a failure, the rest of that task's events wait for a later round.
    async fn publish(&self, claimed: &[Claimed]) -> Outcome {
        let mut outcome = Outcome::default();
        let mut blocked: Vec<Uuid> = Vec::new();
        for event in claimed {
            if blocked.contains(&event.subject) {
                continue;
            }
            let sent = self
                .sink
                .publish(
                    &event.topic,
                    &event.envelope.0,
                    event.traceparent.as_deref(),
                )
                .await;
            match sent {
                Ok(()) => outcome.published.push(event.seq),
                Err(e) => {
                    blocked.push(event.subject);
                    tracing::warn!(seq = event.seq, topic = %event.topic, error = %e, "publishing an event failed; will retry");
                    outcome.failed.push((event.seq, e.to_string()));
                }
            }
        }
        outcome
    }

    /// Deletes published rows older than the retention period.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let cutoff = now - self.settings.retention;
        self.db
            .execute(
                &Query::new(
                    "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1",
                )
                .bind(cutoff),
            )
            .await
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
}
