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
use todo_shared::time::now;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sink::Sink;
use crate::store::outbox::{self, Pending};
use crate::store::{Backend, Db};

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

/// What publishing a batch did.
#[derive(Default)]
struct Attempts {
    published: Vec<i64>,
    failed: Vec<(i64, String)>,
}

impl Attempts {
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
        let tasks = self.settings.batch;
        match self.db.backend() {
            Backend::Postgres => {
                let mut tx = self.db.begin().await?;
                // Marking rows published need not wait for its own disk flush: if a crash loses
                // the mark, the events are published again, which idempotent consumers absorb.
                // Spares every change a second synchronous commit.
                tx.relax_durability().await?;
                let pending = outbox::claim(&mut tx, tasks).await?;
                if pending.is_empty() {
                    return Ok(Round::default());
                }
                let attempts = self.publish(&pending).await;
                outbox::mark(&mut tx, &attempts.published, &attempts.failed, now()).await?;
                tx.commit().await?;
                Ok(attempts.round())
            }
            Backend::Sqlite => {
                let pending = outbox::unpublished(&self.db, tasks).await?;
                if pending.is_empty() {
                    return Ok(Round::default());
                }
                let attempts = self.publish(&pending).await;
                let mut tx = self.db.begin().await?;
                outbox::mark(&mut tx, &attempts.published, &attempts.failed, now()).await?;
                tx.commit().await?;
                Ok(attempts.round())
            }
        }
    }

    /// Publishes in order; after a failure, the rest of that task's events wait for a later round.
    async fn publish(&self, pending: &[Pending]) -> Attempts {
        let mut attempts = Attempts::default();
        let mut blocked: Vec<Uuid> = Vec::new();
        for event in pending {
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
                Ok(()) => attempts.published.push(event.seq),
                Err(e) => {
                    blocked.push(event.subject);
                    tracing::warn!(seq = event.seq, topic = %event.topic, error = %e, "publishing an event failed; will retry");
                    attempts.failed.push((event.seq, e.to_string()));
                }
            }
        }
        attempts
    }

    /// Deletes published rows older than the retention period.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        outbox::prune(&self.db, now - self.settings.retention).await
    }
}
