//! The outbox relay: publishes committed events and records what became of them.
//!
//! Several workers (and several replicas) each claim a batch of tasks for a while, through the
//! oldest unpublished event of each task ([`outbox::claim`]), publish, and settle the claim
//! ([`outbox::settle`]); no transaction is open while they publish, and a claim that is never
//! settled (a crashed or stopped replica) expires after its lease. A claim's events go out in
//! waves: the first event of every claimed task in one bulk publish per topic, then the second,
//! and so on, so each task's events are published in commit order while tasks go out together.
//!
//! A failed event holds back only its own task: the task's later events wait, the event is
//! retried with a backoff of its own, and after `max_attempts` it moves to the dead-letter table
//! (`todo-mcp dead-letters` lists, retries or drops it), and the task goes on. When the sidecar
//! cannot be reached, or nothing of a round across several tasks could be published (the broker
//! is down), no event is at fault: nothing counts an attempt and the worker backs off.
//! Published rows are pruned once they are older than the retention period.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use todo_shared::time::now;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sink::{Outgoing, Sink};
use crate::store::Db;
use crate::store::outbox::{self, Failed, Failure, Pending};

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Most tasks one claim takes.
    pub batch: i64,
    /// Most events one claim takes (a task's later events beyond it wait for the next claim).
    pub max_events: i64,
    /// Claims in flight at once.
    pub workers: usize,
    /// How long a claim holds its tasks; a replica that stops answering loses them after this.
    pub lease: Duration,
    /// How often to look for events written by other processes when nothing wakes the relay.
    pub poll: Duration,
    /// The wait before an event's first retry; it doubles with each failed attempt.
    pub first_retry: Duration,
    /// The longest wait between retries (of an event, or of a worker while the sidecar is away).
    pub max_backoff: Duration,
    /// Failed attempts after which an event moves to the dead-letter table.
    pub max_attempts: u32,
    /// How long published rows are kept (for inspection) before they are deleted.
    pub retention: chrono::Duration,
    /// How long to wait after a wake-up before a round, to batch the events of a burst.
    pub gather: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 512,
            max_events: 2048,
            workers: 8,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            first_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_attempts: 10,
            retention: chrono::Duration::hours(24),
            gather: Duration::from_millis(5),
        }
    }
}

/// The outcome of one round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Tasks claimed.
    pub tasks: usize,
    pub published: usize,
    /// Events that failed and will be retried.
    pub failed: usize,
    /// Events moved to the dead-letter table.
    pub dead_lettered: usize,
    /// The sidecar or the broker was away: nothing was counted against any event.
    pub outage: bool,
}

/// What publishing a claim did.
#[derive(Default)]
struct Attempts<'a> {
    published: Vec<i64>,
    failed: Vec<(&'a Pending, String)>,
    /// Why the sidecar could not be reached, if it could not.
    unreachable: Option<String>,
}

/// Relays the outbox of one database to one sink.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Db,
    sink: Sink,
    settings: RelaySettings,
    /// Woken after a local commit so that events go out at once rather than at the next poll.
    /// The first worker waits on it; the others join in when a claim comes back full (`more`).
    wake: Arc<Notify>,
    more: Arc<Notify>,
}

impl OutboxRelay {
    /// `wake` is signalled after local commits that wrote events.
    pub fn new(db: Db, sink: Sink, settings: RelaySettings, wake: Arc<Notify>) -> Self {
        Self {
            db,
            sink,
            settings,
            wake,
            more: Arc::new(Notify::new()),
        }
    }

    /// Relays until `shutdown`, then finishes the rounds in progress.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut workers = JoinSet::new();
        for n in 0..self.settings.workers.max(1) {
            workers.spawn(self.clone().work(shutdown.clone(), n == 0));
        }
        while workers.join_next().await.is_some() {}
        tracing::info!("outbox relay stopped");
    }

    /// One worker's loop. The first one is woken by commits (and prunes); the others help
    /// while there is more than one claim's worth to publish, and otherwise only poll.
    async fn work(self, shutdown: CancellationToken, first: bool) {
        let woken_by = if first { &self.wake } else { &self.more };
        let mut backoff = Duration::ZERO;
        let mut last_prune = tokio::time::Instant::now();
        let mut last_analyze: Option<tokio::time::Instant> = None;
        loop {
            let round = self.relay_once().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "outbox relay round failed");
                Round {
                    outage: true,
                    ..Round::default()
                }
            });
            backoff = if round.outage {
                (backoff * 2).clamp(Duration::from_millis(100), self.settings.max_backoff)
            } else {
                Duration::ZERO
            };
            if first && last_prune.elapsed() > Duration::from_secs(600) {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = self.prune(now()).await {
                    tracing::warn!(error = %e, "pruning the outbox failed");
                }
            }
            // A full claim means more is waiting: go again at once, and bring another worker in.
            if !round.outage && round.tasks as i64 >= self.settings.batch {
                // A backlog the planner has not seen yet: let it see it (at most once a minute).
                if first && last_analyze.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    last_analyze = Some(tokio::time::Instant::now());
                    if let Err(e) = outbox::refresh_statistics(&self.db).await {
                        tracing::warn!(error = %e, "refreshing the outbox's statistics failed");
                    }
                }
                if shutdown.is_cancelled() {
                    break;
                }
                self.more.notify_one();
                continue;
            }
            let pause = if round.outage {
                backoff
            } else {
                self.settings.poll
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = woken_by.notified(), if !round.outage => {
                    // Let the commits of a burst gather, so one round carries them all.
                    tokio::time::sleep(self.settings.gather).await;
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims, publishes and settles one batch of events.
    pub async fn relay_once(&self) -> Result<Round, sqlx::Error> {
        let s = &self.settings;
        let claim = outbox::claim(&self.db, s.batch, s.max_events, delta(s.lease), now()).await?;
        if claim.events.is_empty() {
            return Ok(Round::default());
        }
        let tasks = by_task(&claim.events);
        let heads: Vec<i64> = tasks
            .iter()
            .filter_map(|q| q.front())
            .map(|p| p.seq)
            .collect();
        let attempts = self.publish(tasks).await;

        let failing_tasks = attempts.failed.len();
        let outage =
            attempts.unreachable.is_some() || (attempts.published.is_empty() && failing_tasks > 1);
        let now = now();
        let failed: Vec<Failed> = if outage {
            let reason = attempts
                .unreachable
                .as_deref()
                .unwrap_or("every event failed");
            tracing::warn!(%reason, tasks = heads.len(), "cannot publish now; backing off");
            Vec::new()
        } else {
            attempts
                .failed
                .iter()
                .map(|(event, error)| self.failure(event, error, now))
                .collect()
        };
        outbox::settle(
            &self.db,
            claim.id,
            &attempts.published,
            &failed,
            &heads,
            now,
        )
        .await?;
        let dead_lettered = failed
            .iter()
            .filter(|f| matches!(f.then, Failure::Dead))
            .count();
        metrics::histogram!("todo_relay_claim_events").record(claim.events.len() as f64);
        metrics::counter!("todo_relay_published_total").increment(attempts.published.len() as u64);
        metrics::counter!("todo_relay_failed_total")
            .increment((failed.len() - dead_lettered) as u64);
        metrics::counter!("todo_relay_dead_lettered_total").increment(dead_lettered as u64);
        if outage {
            metrics::counter!("todo_relay_outages_total").increment(1);
        }
        Ok(Round {
            tasks: heads.len(),
            published: attempts.published.len(),
            failed: failed.len() - dead_lettered,
            dead_lettered,
            outage,
        })
    }

    /// Publishes the claimed tasks' events in waves, one event per task in each; a task whose
    /// event fails takes no further part.
    async fn publish<'a>(&self, mut tasks: Vec<VecDeque<&'a Pending>>) -> Attempts<'a> {
        let mut attempts = Attempts::default();
        loop {
            let wave: Vec<(usize, &Pending)> = tasks
                .iter_mut()
                .enumerate()
                .filter_map(|(i, queue)| queue.pop_front().map(|event| (i, event)))
                .collect();
            if wave.is_empty() {
                return attempts;
            }
            let outgoing: Vec<Outgoing<'_>> = wave
                .iter()
                .map(|(_, event)| Outgoing {
                    topic: &event.topic,
                    envelope: &event.envelope.0,
                    traceparent: event.traceparent.as_deref(),
                })
                .collect();
            metrics::histogram!("todo_relay_batch_events").record(outgoing.len() as f64);
            let delivered = match self.sink.deliver(&outgoing).await {
                Ok(delivered) => delivered,
                Err(e) => {
                    attempts.unreachable = Some(e.to_string());
                    return attempts;
                }
            };
            for ((task, event), answer) in wave.into_iter().zip(delivered) {
                match answer {
                    Ok(()) => attempts.published.push(event.seq),
                    Err(error) => {
                        tasks[task].clear();
                        attempts.failed.push((event, error));
                    }
                }
            }
        }
    }

    /// What to do with an event that failed: retry it after its backoff, or give it up.
    fn failure(&self, event: &Pending, error: &str, now: DateTime<Utc>) -> Failed {
        let s = &self.settings;
        let attempt = u32::try_from(event.attempts).unwrap_or(0) + 1;
        let then = if attempt >= s.max_attempts {
            tracing::error!(seq = event.seq, topic = %event.topic, %error, attempt, "giving up on an event: moved to the dead-letter table");
            Failure::Dead
        } else {
            let wait = s
                .first_retry
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(s.max_backoff);
            tracing::warn!(seq = event.seq, topic = %event.topic, %error, attempt, retry_in = ?wait, "publishing an event failed; its task waits");
            Failure::Retry {
                at: now + delta(wait),
            }
        };
        Failed {
            seq: event.seq,
            error: error.chars().take(1000).collect(),
            then,
        }
    }

    /// Deletes published rows older than the retention period.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        outbox::prune(&self.db, now - self.settings.retention).await
    }
}

/// Names and explains the relay's metrics, and starts its counters at zero.
pub fn describe_metrics() {
    use metrics::{counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("todo_relay_published_total", "Events the relay published");
    describe_counter!(
        "todo_relay_failed_total",
        "Failed publishes, each retried later"
    );
    describe_counter!(
        "todo_relay_dead_lettered_total",
        "Events moved to the dead-letter table"
    );
    describe_counter!(
        "todo_relay_outages_total",
        "Rounds that found the sidecar or broker away"
    );
    describe_histogram!("todo_relay_claim_events", "Events per claim");
    describe_histogram!(
        "todo_relay_batch_events",
        "Events per wave (one bulk publish per topic)"
    );
    describe_gauge!("todo_outbox_pending", "Events not yet published");
    describe_gauge!(
        "todo_outbox_oldest_age_seconds",
        "Age of the oldest unpublished event"
    );
    describe_gauge!(
        "todo_outbox_dead_letters",
        "Events given up, waiting for an operator"
    );
    for name in [
        "todo_relay_published_total",
        "todo_relay_failed_total",
        "todo_relay_dead_lettered_total",
        "todo_relay_outages_total",
    ] {
        counter!(name).increment(0);
    }
}

/// A setting's duration as a time span; the settings are far below the largest one.
fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::days(1))
}

/// The events of each task, oldest first, tasks in the order of their oldest event.
fn by_task(events: &[Pending]) -> Vec<VecDeque<&Pending>> {
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let mut tasks: Vec<VecDeque<&Pending>> = Vec::new();
    for event in events {
        let i = *index.entry(event.subject).or_insert_with(|| {
            tasks.push(VecDeque::new());
            tasks.len() - 1
        });
        tasks[i].push_back(event);
    }
    tasks
}
