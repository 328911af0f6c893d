//! Durable one-shot jobs on this server's database, and the timer that runs them: the role the
//! Dapr scheduler service plays for `todo-scheduler`. Jobs survive restarts; those that fell due
//! while the process was down run as soon as it starts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use todo_scheduler::Engine;
use todo_scheduler::ports::{Jobs, PortError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, Query, now};

/// Jobs taken per round; a full round is followed at once by another.
const BATCH: i64 = 512;
/// Jobs run at the same time.
const CONCURRENCY: usize = 16;
/// When a job fails, it runs again this much later.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// The longest sleep: also picks up jobs written by another process on the same database.
const IDLE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SqlJobs {
    pub db: Db,
    /// Wakes the timer when a job is scheduled or cancelled.
    pub changed: Arc<Notify>,
}

#[derive(sqlx::FromRow)]
struct Job {
    name: String,
    due_at: DateTime<Utc>,
}

fn unavailable(e: sqlx::Error) -> PortError {
    PortError::Unavailable(format!("database: {e}"))
}

#[async_trait]
impl Jobs for SqlJobs {
    async fn schedule(&self, name: &str, due: DateTime<Utc>) -> Result<(), PortError> {
        let q = Query::new(
            "INSERT INTO scheduler_jobs (name, due_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at",
        )
        .bind(name)
        .bind(due);
        self.db.execute(&q).await.map_err(unavailable)?;
        self.changed.notify_one();
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<(), PortError> {
        let q = Query::new("DELETE FROM scheduler_jobs WHERE name = $1").bind(name);
        self.db.execute(&q).await.map_err(unavailable)?;
        self.changed.notify_one();
        Ok(())
    }
}

impl SqlJobs {
    /// Runs due jobs through `engine` until `shutdown`.
    pub async fn run(self, engine: Engine, shutdown: CancellationToken) {
        loop {
            let wait = match self.round(&engine).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "the job timer cannot read its jobs; retrying");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs the jobs due now; returns how long until the next one.
    async fn round(&self, engine: &Engine) -> Result<Duration, sqlx::Error> {
        let q = Query::new("SELECT name, due_at FROM scheduler_jobs ORDER BY due_at LIMIT $1")
            .bind(BATCH);
        let jobs: Vec<Job> = self.db.fetch_all(&q).await?;
        let start = now();
        let (due, later): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.due_at <= start);
        if due.is_empty() {
            return Ok(later.first().map_or(IDLE, |next| {
                (next.due_at - start).to_std().unwrap_or_default().min(IDLE)
            }));
        }
        let full = due.len() as i64 == BATCH;
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |job| self.run_one(engine, job))
            .await;
        Ok(if full {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        })
    }

    async fn run_one(&self, engine: &Engine, job: Job) {
        let outcome = engine.fire_job(&job.name, now()).await;
        // Only this occurrence of the job is settled: one rescheduled meanwhile has another time.
        let q = match &outcome {
            Ok(()) => Query::new("DELETE FROM scheduler_jobs WHERE name = $1 AND due_at = $2")
                .bind(job.name.as_str())
                .bind(job.due_at),
            Err(e) => {
                tracing::warn!(job = %job.name, error = %e, "a job failed; it runs again shortly");
                Query::new("UPDATE scheduler_jobs SET due_at = $3 WHERE name = $1 AND due_at = $2")
                    .bind(job.name.as_str())
                    .bind(job.due_at)
                    .bind(now() + RETRY_AFTER)
            }
        };
        if let Err(e) = self.db.execute(&q).await {
            tracing::warn!(job = %job.name, error = %e, "cannot settle a job; it runs again");
        }
    }
}
