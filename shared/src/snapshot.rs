//! The task as the outside world sees it: tool results and event payloads.
//!
//! One shape serves both, so that what a model reads after `add_task` is exactly what a
//! subscriber receives in `com.todo.task.created`. Times are RFC 3339 in the task's own time zone
//! (named in `time_zone`), so that a model can quote them to a person without converting.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::recurrence::RecurrenceInput;
use crate::task::{Priority, TaskStatus};

/// A task with everything that belongs to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSnapshot {
    /// The task's id; pass it to `get_task`, `update_task`, `complete_task`, etc.
    pub id: Uuid,
    /// The user who owns the task.
    pub owner: String,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    /// Lower-case tags.
    pub tags: Vec<String>,
    /// When the task is due (RFC 3339, in `time_zone`), if it has a due time.
    pub due: Option<String>,
    /// The IANA time zone the task's times are given in.
    pub time_zone: String,
    /// How the task repeats, if it does.
    pub recurrence: Option<SeriesSnapshot>,
    /// Pending reminders, earliest first.
    pub reminders: Vec<ReminderSnapshot>,
    pub created_at: String,
    pub updated_at: String,
    /// When the task was completed, if it is.
    pub completed_at: Option<String>,
    /// Counts the task's changes (1 when created): a task's events are in the order of their
    /// versions. 0 in events published before versions were kept.
    #[serde(default)]
    pub version: u64,
}

/// The recurring series a task belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesSnapshot {
    /// The rule, in the form `add_task` and `update_task` accept.
    pub rule: RecurrenceInput,
    /// The rule in words, e.g. "every 2 weeks on Mon, Wed".
    pub summary: String,
    /// Shared by every task of the series: the id of its first task.
    pub series_id: Uuid,
    /// The first occurrence of the series (RFC 3339); `count` counts from it.
    pub series_start: String,
}

/// A reminder on a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReminderSnapshot {
    /// The reminder's id; pass it to `cancel_reminder`.
    pub id: Uuid,
    /// When it fires (RFC 3339, in the task's time zone).
    pub at: String,
    /// Set when the reminder is relative to the due time and moves with it.
    pub minutes_before: Option<u32>,
}
