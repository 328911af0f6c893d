//! The scheduler, embedded: with no Dapr sidecar, `todo-mcp` runs the same engine as
//! `todo-scheduler` ([`todo_scheduler::Engine`]) on its own database.
//!
//! - The engine's ports are tables of this database: its state store and durable jobs
//!   (`crate::store::scheduler_state`, `crate::store::scheduler_jobs`), run by an in-process
//!   [`timer`].
//! - The engine's events go into the outbox (so they are as durable as task changes) and the
//!   relay hands them to the in-process subscribers; task events reach the engine through
//!   [`SchedulerSubscriber`] on the same bus.

pub mod timer;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use todo_scheduler::{Engine, Settings};
use todo_shared::events::TOPIC_TASKS;
use todo_shared::time::now;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::bus::{Disposition, Subscriber};
use crate::store::Db;
use crate::store::outbox::OutboxPublisher;
use crate::store::scheduler_jobs::SqlJobs;
use crate::store::scheduler_state::SqlStateStore;

/// How often the embedded sweep runs (its jobs are durable, so it is only a safety net).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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
        background.spawn(timer::run(self.jobs, self.engine.clone(), shutdown.clone()));
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
