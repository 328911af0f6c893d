//! The `tasks` table with its `task_tags`: the row type, its snapshot, and every statement that
//! reads or writes tasks, `list_tasks`' queries included.
//!
//! `list_tasks` pages with a keyset (the last row's sort value and id) rather than an offset, so
//! a page boundary stays put while tasks are added or removed before it.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use todo_shared::listing::{Sort, SortKey, SortOrder, TaskFilter};
use todo_shared::recurrence::Recurrence;
use todo_shared::snapshot::{ReminderSnapshot, SeriesSnapshot, TaskSnapshot};
use todo_shared::task::{Priority, Tags, TaskDescription, TaskStatus, TaskTitle};
use todo_shared::time::{Zone, format_in_zone};
use uuid::Uuid;

use super::reminders::{self, ReminderRow};
use super::{Arg, Backend, Count, Db, Query, Tx};
use crate::error::{AppError, AppResult};

/// The columns of [`TaskRow`], qualified by the alias `t`.
pub const TASK_COLUMNS: &str = "t.id, t.owner, t.title, t.description, t.status, t.priority, \
    t.tags, t.due_at, t.time_zone, t.recurrence, t.series_id, t.series_start, t.created_at, \
    t.updated_at, t.completed_at, t.title_key, t.version";

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
    /// Counts the task's changes: 1 when created, incremented by every change ([`TaskRow::touch`]).
    pub version: i64,
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

    /// Marks a change made at `now`, to be written by [`TaskRow::update`] under the row's lock.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.version += 1;
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
            version: u64::try_from(self.version).unwrap_or_default(),
        })
    }

    /// The task's values in the column order of [`insert_all`].
    fn values(&self) -> Vec<Arg> {
        vec![
            self.id.into(),
            self.owner.clone().into(),
            self.title.clone().into(),
            self.title_key.clone().into(),
            self.description.clone().into(),
            search_text(&self.title, self.description.as_deref()).into(),
            self.status.clone().into(),
            self.priority.into(),
            serde_json::json!(self.tags.0).into(),
            self.due_at.into(),
            self.time_zone.clone().into(),
            self.recurrence_json().into(),
            self.series_id.into(),
            self.series_start.into(),
            self.created_at.into(),
            self.updated_at.into(),
            self.completed_at.into(),
            self.version.into(),
        ]
    }

    /// Writes every mutable column back.
    pub async fn update(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        let q = Query::new(
            "UPDATE tasks SET title = $1, title_key = $2, description = $3, search_text = $4, \
             status = $5, priority = $6, tags = $7, due_at = $8, time_zone = $9, recurrence = $10, \
             series_id = $11, series_start = $12, updated_at = $13, completed_at = $14, \
             version = $15 WHERE id = $16 AND owner = $17",
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
        .bind(self.version)
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
    pub async fn write_tags(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        tx.execute(&Query::new("DELETE FROM task_tags WHERE task_id = $1").bind(self.id))
            .await?;
        insert_tags(tx, &[self]).await
    }
}

/// Inserts new tasks with their tags, in one statement per table however many.
pub async fn insert_all(tx: &mut Tx, rows: &[&TaskRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = Query::new(
        "INSERT INTO tasks (id, owner, title, title_key, description, search_text, status, \
         priority, tags, due_at, time_zone, recurrence, series_id, series_start, created_at, \
         updated_at, completed_at, version)",
    );
    q.push_values(rows.iter().map(|r| r.values()));
    tx.execute(&q).await?;
    insert_tags(tx, rows).await
}

async fn insert_tags(tx: &mut Tx, rows: &[&TaskRow]) -> Result<(), sqlx::Error> {
    let tags: Vec<Vec<Arg>> = rows
        .iter()
        .flat_map(|r| {
            r.tags
                .0
                .iter()
                .map(|tag| vec![r.id.into(), r.owner.clone().into(), tag.clone().into()])
        })
        .collect();
    if tags.is_empty() {
        return Ok(());
    }
    let mut q = Query::new("INSERT INTO task_tags (task_id, owner, tag)");
    q.push_values(tags);
    tx.execute(&q).await.map(drop)
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
    let reminders = tx
        .fetch_all(&reminders::of_tasks_query(tx.backend(), &[id]))
        .await?;
    Ok((row, reminders))
}

/// Loads the user's task with its reminders.
pub async fn load(db: &Db, owner: &str, id: Uuid) -> AppResult<(TaskRow, Vec<ReminderRow>)> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1 AND t.owner = $2");
    let row: TaskRow = db
        .fetch_optional(&Query::new(sql).bind(id).bind(owner))
        .await?
        .ok_or(AppError::TaskNotFound(id))?;
    let reminders = reminders::of_tasks(db, &[id]).await?;
    Ok((row, reminders))
}

/// Whether a task with this id exists, whoever owns it.
pub async fn exists(tx: &mut Tx, id: Uuid) -> Result<bool, sqlx::Error> {
    let q = Query::new("SELECT COUNT(*) AS total FROM tasks WHERE id = $1").bind(id);
    Ok(tx.fetch_one::<Count>(&q).await?.total > 0)
}

/// Deletes the user's task with its reminders and tags.
pub async fn delete(tx: &mut Tx, owner: &str, id: Uuid) -> Result<(), sqlx::Error> {
    // Children first: SQLite enforces the foreign keys only when its pragma is on.
    for table in ["reminders", "task_tags"] {
        tx.execute(&Query::new(format!("DELETE FROM {table} WHERE task_id = $1")).bind(id))
            .await?;
    }
    tx.execute(
        &Query::new("DELETE FROM tasks WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner),
    )
    .await
    .map(drop)
}

/// A sort value of a page's last row, where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// A creation or due time.
    Time(DateTime<Utc>),
    /// A priority rank.
    Rank(i16),
    /// A title key.
    Text(String),
    /// No due time: such tasks come last.
    Null,
}

/// Where a page starts: strictly after the row with this sort value and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyset {
    pub value: SortValue,
    pub id: Uuid,
}

/// How many of the user's tasks the filter selects.
pub async fn count(
    db: &Db,
    owner: &str,
    filter: &TaskFilter,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let mut q = Query::new("SELECT COUNT(*) AS total FROM tasks t");
    push_filter(&mut q, db.backend(), filter, owner, now);
    db.fetch_one::<Count>(&q).await.map(|c| c.total)
}

/// One page of the user's tasks the filter selects: up to `limit + 1` rows (an extra row says
/// there is more) after `after`, in the given order.
pub async fn page(
    db: &Db,
    owner: &str,
    filter: &TaskFilter,
    sort: Sort,
    limit: u32,
    after: Option<&Keyset>,
    now: DateTime<Utc>,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let mut q = Query::new(format!("SELECT {TASK_COLUMNS} FROM tasks t"));
    push_filter(&mut q, db.backend(), filter, owner, now);
    let col = column(sort.key);
    let (dir, cmp) = match sort.order {
        SortOrder::Asc => ("ASC", ">"),
        SortOrder::Desc => ("DESC", "<"),
    };
    if let Some(after) = after {
        // Rows strictly after the keyset in this order, with NULL keys last.
        let value = match &after.value {
            SortValue::Time(t) => Some(Arg::from(*t)),
            SortValue::Rank(r) => Some(Arg::from(*r)),
            SortValue::Text(t) => Some(Arg::from(t.as_str())),
            SortValue::Null => None,
        };
        match value {
            Some(value) => {
                q.push(&format!(" AND (({col}, t.id) {cmp} ("))
                    .push_bind(value)
                    .push(", ")
                    .push_bind(after.id)
                    .push(&format!(") OR {col} IS NULL)"));
            }
            None => {
                q.push(&format!(" AND {col} IS NULL AND t.id {cmp} "))
                    .push_bind(after.id);
            }
        }
    }
    // Tasks without a due time come last in both directions. Only `due` can be NULL, and the
    // clause is left off the other keys so that their ORDER BY matches an index exactly.
    let nulls = if sort.key == SortKey::Due {
        " NULLS LAST"
    } else {
        ""
    };
    q.push(&format!(" ORDER BY {col} {dir}{nulls}, t.id {dir} LIMIT "))
        .push_bind(i64::from(limit) + 1);
    db.fetch_all(&q).await
}

fn column(sort: SortKey) -> &'static str {
    match sort {
        SortKey::Created => "t.created_at",
        SortKey::Due => "t.due_at",
        SortKey::Priority => "t.priority",
        SortKey::Title => "t.title_key",
    }
}

/// Appends the `WHERE` conditions shared by the page query and the count.
fn push_filter(
    q: &mut Query,
    backend: Backend,
    filter: &TaskFilter,
    owner: &str,
    now: DateTime<Utc>,
) {
    q.push(" WHERE t.owner = ").push_bind(owner);
    if let Some(status) = filter.status {
        q.push(" AND t.status = ").push_bind(status.as_str());
    }
    if let Some(priority) = filter.priority {
        q.push(" AND t.priority = ").push_bind(priority.rank());
    }
    if let Some(search) = &filter.search {
        q.push(" AND t.search_text LIKE ")
            .push_bind(like_pattern(search))
            .push(" ESCAPE '\\'");
    }
    if let Some(t) = filter.due_before {
        q.push(" AND t.due_at < ").push_bind(t);
    }
    if let Some(t) = filter.due_after {
        q.push(" AND t.due_at > ").push_bind(t);
    }
    if filter.overdue {
        q.push(" AND t.status = 'pending' AND t.due_at < ")
            .push_bind(now);
    }
    if !filter.tags.is_empty() {
        q.push(" AND t.id IN (SELECT tt.task_id FROM task_tags tt WHERE tt.owner = ")
            .push_bind(owner)
            .push(" AND tt.tag")
            .push_in(
                backend,
                filter.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            )
            .push(" GROUP BY tt.task_id HAVING COUNT(*) = ")
            .push_bind(filter.tags.len() as i64)
            .push(")");
    }
}

/// Escapes `%`, `_` and the escape character itself so that search text matches literally.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
