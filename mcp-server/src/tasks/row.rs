//! Tasks as stored: the row types, the SQL that reads and writes them, and their snapshots.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use todo_shared::recurrence::Recurrence;
use todo_shared::snapshot::{ReminderSnapshot, SeriesSnapshot, TaskSnapshot};
use todo_shared::task::{Priority, Tags, TaskDescription, TaskStatus, TaskTitle};
use todo_shared::time::{Zone, format_in_zone};
use uuid::Uuid;

use crate::db::{Backend, Db, Query, Tx};
use crate::error::{AppError, AppResult};

/// The columns of [`TaskRow`], qualified by the alias `t`.
pub const TASK_COLUMNS: &str = "t.id, t.owner, t.title, t.description, t.status, t.priority, \
    t.tags, t.due_at, t.time_zone, t.recurrence, t.series_id, t.series_start, t.created_at, \
    t.updated_at, t.completed_at, t.title_key";

/// One row of `tasks`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub owner: String,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: i16,
    pub tags: Json<Vec<String>>,
    pub due_at: Option<DateTime<Utc>>,
    pub time_zone: String,
    pub recurrence: Option<Json<Recurrence>>,
    pub series_id: Option<Uuid>,
    pub series_start: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Derived from the title; kept for sorting and for the cursor.
    pub title_key: String,
}

/// One row of `reminders`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReminderRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub fire_at: DateTime<Utc>,
    pub minutes_before: Option<i32>,
}

/// The lower-cased text `list_tasks` searches.
fn search_text(title: &str, description: Option<&str>) -> String {
    let mut s = title.to_lowercase();
    if let Some(d) = description {
        s.push('\n');
        s.push_str(&d.to_lowercase());
    }
    s
}

impl TaskRow {
    pub fn zone(&self) -> AppResult<Zone> {
        Zone::parse("time_zone", &self.time_zone).map_err(|e| {
            AppError::Internal(format!("stored task {} has a bad time zone: {e}", self.id))
        })
    }

    pub fn status(&self) -> AppResult<TaskStatus> {
        TaskStatus::parse_stored(&self.status).ok_or_else(|| {
            AppError::Internal(format!(
                "stored task {} has status {:?}",
                self.id, self.status
            ))
        })
    }

    pub fn set_title(&mut self, title: &TaskTitle) {
        self.title = title.as_str().to_owned();
        self.title_key = title.as_str().to_lowercase();
    }

    pub fn set_description(&mut self, description: Option<&TaskDescription>) {
        self.description = description.map(|d| d.as_str().to_owned());
    }

    pub fn set_tags(&mut self, tags: &Tags) {
        self.tags = Json(tags.to_strings());
    }

    pub fn set_priority(&mut self, priority: Priority) {
        self.priority = priority.rank();
    }

    pub fn set_status(&mut self, status: TaskStatus, now: DateTime<Utc>) {
        self.status = status.as_str().to_owned();
        self.completed_at = (status == TaskStatus::Completed).then_some(now);
    }

    /// Starts (or restarts) a series with its first occurrence at the task's due time.
    pub fn set_recurrence(&mut self, rule: Option<Recurrence>) {
        match rule {
            Some(rule) => {
                self.recurrence = Some(Json(rule));
                self.series_id = Some(self.series_id.unwrap_or(self.id));
                self.series_start = self.due_at;
            }
            None => {
                self.recurrence = None;
                self.series_id = None;
                self.series_start = None;
            }
        }
    }

    /// The outside view of the task with `reminders` (which must be the task's own).
    pub fn snapshot(&self, reminders: &[ReminderRow]) -> AppResult<TaskSnapshot> {
        let tz = self.zone()?.tz();
        let fmt = |t: DateTime<Utc>| format_in_zone(t, tz);
        let recurrence = match (&self.recurrence, self.series_id, self.series_start) {
            (Some(Json(rule)), Some(series_id), Some(start)) => Some(SeriesSnapshot {
                rule: rule.to_input(tz),
                summary: rule.describe(tz),
                series_id,
                series_start: fmt(start),
            }),
            _ => None,
        };
        Ok(TaskSnapshot {
            id: self.id,
            owner: self.owner.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            status: self.status()?,
            priority: Priority::from_rank(self.priority).ok_or_else(|| {
                AppError::Internal(format!(
                    "stored task {} has priority {}",
                    self.id, self.priority
                ))
            })?,
            tags: self.tags.0.clone(),
            due: self.due_at.map(fmt),
            time_zone: self.time_zone.clone(),
            recurrence,
            reminders: reminders
                .iter()
                .map(|r| ReminderSnapshot {
                    id: r.id,
                    at: fmt(r.fire_at),
                    minutes_before: r.minutes_before.and_then(|m| u32::try_from(m).ok()),
                })
                .collect(),
            created_at: fmt(self.created_at),
            updated_at: fmt(self.updated_at),
            completed_at: self.completed_at.map(fmt),
        })
    }

    pub async fn insert(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        let q = Query::new(
            "INSERT INTO tasks (id, owner, title, title_key, description, search_text, status, \
             priority, tags, due_at, time_zone, recurrence, series_id, series_start, created_at, \
             updated_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(self.id)
        .bind(self.owner.clone())
        .bind(self.title.clone())
        .bind(self.title_key.clone())
        .bind(self.description.clone())
        .bind(search_text(&self.title, self.description.as_deref()))
        .bind(self.status.clone())
        .bind(self.priority)
        .bind(serde_json::json!(self.tags.0))
        .bind(self.due_at)
        .bind(self.time_zone.clone())
        .bind(self.recurrence_json())
        .bind(self.series_id)
        .bind(self.series_start)
        .bind(self.created_at)
        .bind(self.updated_at)
        .bind(self.completed_at);
        tx.execute(&q).await.map(drop)
    }

    /// Writes every mutable column back.
    pub async fn update(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        let q = Query::new(
            "UPDATE tasks SET title = $1, title_key = $2, description = $3, search_text = $4, \
             status = $5, priority = $6, tags = $7, due_at = $8, time_zone = $9, recurrence = $10, \
             series_id = $11, series_start = $12, updated_at = $13, completed_at = $14 \
             WHERE id = $15 AND owner = $16",
        )
        .bind(self.title.clone())
        .bind(self.title_key.clone())
        .bind(self.description.clone())
        .bind(search_text(&self.title, self.description.as_deref()))
        .bind(self.status.clone())
        .bind(self.priority)
        .bind(serde_json::json!(self.tags.0))
        .bind(self.due_at)
        .bind(self.time_zone.clone())
        .bind(self.recurrence_json())
        .bind(self.series_id)
        .bind(self.series_start)
        .bind(self.updated_at)
        .bind(self.completed_at)
        .bind(self.id)
        .bind(self.owner.clone());
        tx.execute(&q).await.map(drop)
    }

    fn recurrence_json(&self) -> Option<serde_json::Value> {
        self.recurrence
            .as_ref()
            .and_then(|Json(r)| serde_json::to_value(r).ok())
    }

    /// Replaces the task's rows in `task_tags` with its current tags.
    pub async fn write_tags(&self, tx: &mut Tx, replace: bool) -> Result<(), sqlx::Error> {
        if replace {
            tx.execute(&Query::new("DELETE FROM task_tags WHERE task_id = $1").bind(self.id))
                .await?;
        }
        for tag in &self.tags.0 {
            let q = Query::new("INSERT INTO task_tags (task_id, owner, tag) VALUES ($1, $2, $3)")
                .bind(self.id)
                .bind(self.owner.clone())
                .bind(tag.clone());
            tx.execute(&q).await?;
        }
        Ok(())
    }
}

/// Loads the user's task inside a write transaction, locking its row until commit.
pub async fn load_for_update(
    tx: &mut Tx,
    owner: &str,
    id: Uuid,
) -> AppResult<(TaskRow, Vec<ReminderRow>)> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1 AND t.owner = $2{}",
        tx.row_lock_clause()
    );
    let row: TaskRow = tx
        .fetch_optional(&Query::new(sql).bind(id).bind(owner))
        .await?
        .ok_or(AppError::TaskNotFound(id))?;
    let reminders = tx.fetch_all(&reminders_query(tx.backend(), &[id])).await?;
    Ok((row, reminders))
}

/// Loads the user's task with its reminders.
pub async fn load(db: &Db, owner: &str, id: Uuid) -> AppResult<(TaskRow, Vec<ReminderRow>)> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1 AND t.owner = $2");
    let row: TaskRow = db
        .fetch_optional(&Query::new(sql).bind(id).bind(owner))
        .await?
        .ok_or(AppError::TaskNotFound(id))?;
    let reminders = db.fetch_all(&reminders_query(db.backend(), &[id])).await?;
    Ok((row, reminders))
}

/// The reminders of the given tasks, earliest first.
pub fn reminders_query(backend: Backend, task_ids: &[Uuid]) -> Query {
    let mut q =
        Query::new("SELECT id, task_id, fire_at, minutes_before FROM reminders WHERE task_id");
    q.push_in(backend, task_ids.to_vec())
        .push(" ORDER BY fire_at, id");
    q
}
