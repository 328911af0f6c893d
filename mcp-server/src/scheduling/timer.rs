//! The timer of the embedded scheduler: runs due jobs through the engine, the role the Dapr
//! scheduler service plays for `todo-scheduler`. Jobs survive restarts; those that fell due while
//! the process was down run as soon as it starts.

use std::time::Duration;

use futures::StreamExt;
use todo_scheduler::Engine;
use todo_shared::time::now;
use tokio_util::sync::CancellationToken;

use crate::store::scheduler_jobs::{Job, SqlJobs};

/// Jobs taken per round; a full round is followed at once by another.
const BATCH: i64 = 512;
/// Jobs run at the same time.
const CONCURRENCY: usize = 16;
/// When a job fails, it runs again this much later.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// The longest sleep: also picks up jobs written by another process on the same database.
const IDLE: Duration = Duration::from_secs(30);

/// Runs due jobs through `engine` until `shutdown`.
pub async fn run(jobs: SqlJobs, engine: Engine, shutdown: CancellationToken) {
    loop {
        let wait = match round(&jobs, &engine).await {
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
            () = jobs.changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Runs the jobs due now; returns how long until the next one.
async fn round(jobs: &SqlJobs, engine: &Engine) -> Result<Duration, sqlx::Error> {
    let soonest = jobs.soonest(BATCH).await?;
    let start = now();
    let (due, later): (Vec<Job>, Vec<Job>) = soonest.into_iter().partition(|j| j.due_at <= start);
    if due.is_empty() {
        return Ok(later.first().map_or(IDLE, |next| {
            (next.due_at - start).to_std().unwrap_or_default().min(IDLE)
        }));
    }
    let full = due.len() as i64 == BATCH;
    futures::stream::iter(due)
        .for_each_concurrent(CONCURRENCY, |job| run_one(jobs, engine, job))
        .await;
    Ok(if full {
        Duration::ZERO
    } else {
        Duration::from_millis(1)
    })
}

async fn run_one(jobs: &SqlJobs, engine: &Engine, job: Job) {
    let settled = match engine.fire_job(&job.name, now()).await {
        Ok(()) => jobs.done(&job).await,
        Err(e) => {
            tracing::warn!(job = %job.name, error = %e, "a job failed; it runs again shortly");
            jobs.retry(&job, now() + RETRY_AFTER).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(job = %job.name, error = %e, "cannot settle a job; it runs again");
    }
}
