//! The `scheduler_jobs` table: the embedded scheduler's durable one-shot jobs, the role the Dapr
//! Jobs API plays for `todo-scheduler`. [`SqlJobs`] is the engine's [`Jobs`] port on it; the
//! timer that runs due jobs is `crate::scheduling::timer`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use todo_scheduler::ports::{Jobs, PortError};
use tokio::sync::Notify;

use super::{Db, Query, port_error};

/// Jobs by name, each with its due time; scheduling a name again replaces its job.
#[derive(Clone)]
pub struct SqlJobs {
    pub db: Db,
    /// Wakes the timer when a job is scheduled or cancelled.
    pub changed: Arc<Notify>,
}

/// A job as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct Job {
    pub name: String,
    pub due_at: DateTime<Utc>,
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
        self.db.execute(&q).await.map_err(port_error)?;
        self.changed.notify_one();
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<(), PortError> {
        let q = Query::new("DELETE FROM scheduler_jobs WHERE name = $1").bind(name);
        self.db.execute(&q).await.map_err(port_error)?;
        self.changed.notify_one();
        Ok(())
    }
}

impl SqlJobs {
    /// The `limit` jobs due soonest, soonest first.
    pub async fn soonest(&self, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let q = Query::new("SELECT name, due_at FROM scheduler_jobs ORDER BY due_at LIMIT $1")
            .bind(limit);
        self.db.fetch_all(&q).await
    }

    /// Removes a job that has run. Only this occurrence of it: one rescheduled meanwhile has
    /// another due time and stays.
    pub async fn done(&self, job: &Job) -> Result<(), sqlx::Error> {
        let q = Query::new("DELETE FROM scheduler_jobs WHERE name = $1 AND due_at = $2")
            .bind(job.name.as_str())
            .bind(job.due_at);
        self.db.execute(&q).await.map(drop)
    }

    /// Moves a job that failed to `retry_at`, unless it was rescheduled meanwhile.
    pub async fn retry(&self, job: &Job, retry_at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let q = Query::new("UPDATE scheduler_jobs SET due_at = $3 WHERE name = $1 AND due_at = $2")
            .bind(job.name.as_str())
            .bind(job.due_at)
            .bind(retry_at);
        self.db.execute(&q).await.map(drop)
    }
}
