//! The scheduler, embedded: with no Dapr sidecar, `todo-mcp` runs the same engine as
//! `todo-scheduler` ([`todo_scheduler::Engine`]) on its own database.
//!
//! - [`state`]: the state store, a table of versioned keys.
//! - [`jobs`]: durable jobs in a table, run by an in-process timer.
//! - The engine's events go into the outbox (so they are as durable as task changes) and the
//!   relay hands them to the in-process subscribers; task events reach the engine through
//!   [`SchedulerSubscriber`] on the same bus.

pub mod jobs;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use todo_scheduler::ports::{PortError, Publisher};
use todo_scheduler::{Engine, Settings};
use todo_shared::events::{OutgoingEvent, TOPIC_TASKS};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, now};
use crate::events::bus::{Disposition, Subscriber};
use crate::outbox;
use jobs::SqlJobs;
use state::SqlStateStore;

/// How often the embedded sweep runs (its jobs are durable, so it is only a safety net).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Publishes the engine's events through the outbox.
struct OutboxPublisher {
    db: Db,
    /// Wakes the relay after a commit.
    wake: Arc<Notify>,
}

#[async_trait]
impl Publisher for OutboxPublisher {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        let unavailable = |e: sqlx::Error| PortError::Unavailable(format!("database: {e}"));
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        let added = outbox::enqueue_once(&mut tx, event)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        if added {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Hands task events from the in-process bus to the engine.
pub struct SchedulerSubscriber {
    pub engine: Engine,
}

impl Subscriber for SchedulerSubscriber {
    fn topics(&self) -> &[&'static str] {
        &[TOPIC_TASKS]
    }

    fn handle<'a>(&'a self, _topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition> {
        self.engine.handle_event(envelope, now()).boxed()
    }
}

/// The engine on this database, with its timer and sweep not yet started.
pub struct EmbeddedScheduler {
    pub engine: Engine,
    jobs: SqlJobs,
    state: SqlStateStore,
}

impl EmbeddedScheduler {
    /// `wake` is the relay's: signalled when the engine adds events to the outbox.
    pub fn new(db: Db, wake: Arc<Notify>) -> Self {
        let state = SqlStateStore { db: db.clone() };
        let jobs = SqlJobs {
            db: db.clone(),
            changed: Arc::new(Notify::new()),
        };
        let publisher = OutboxPublisher { db, wake };
        let engine = Engine::new(
            Arc::new(state.clone()),
            Arc::new(jobs.clone()),
            Arc::new(publisher),
            // The relay hands the bus each task's events in commit order.
            Settings {
                ordered_delivery: true,
                ..Settings::default()
            },
        );
        Self {
            engine,
            jobs,
            state,
        }
    }

    /// Starts the job timer and the periodic sweep (which also expires old state).
    pub fn start(self, background: &mut JoinSet<()>, shutdown: &CancellationToken) {
        background.spawn(self.jobs.run(self.engine.clone(), shutdown.clone()));
        let (engine, state, shutdown) = (self.engine, self.state, shutdown.clone());
        background.spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(e) = engine.sweep(now()).await {
                    tracing::warn!(error = %e, "the scheduler's sweep failed; trying again later");
                }
                if let Err(e) = state.purge_expired().await {
                    tracing::warn!(error = %e, "cannot expire old scheduler state");
                }
            }
        });
    }
}
