//! Tool arguments as a model sends them. Their doc comments become the JSON Schema descriptions
//! the model reads, so they say what is accepted and what each value means.
//!
//! These types only describe the wire shape; `crate::tasks::commands` parses them into validated
//! domain values.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use todo_shared::recurrence::RecurrenceInput;
use todo_shared::reminder::ReminderInput;
use todo_shared::task::Priority;
use uuid::Uuid;

use crate::tasks::list::{SortKey, SortOrder};

/// Distinguishes a field that is absent (`None`) from one set to null (`Some(None)`), which is
/// how `update_task` tells "leave as is" from "clear".
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTaskArgs {
    /// What needs doing, 1 to 200 characters.
    pub title: String,
    /// Details, up to 2000 characters.
    pub description: Option<String>,
    /// `high`, `medium` (default) or `low`.
    pub priority: Option<Priority>,
    /// Up to 10 tags of 1 to 50 characters; they are lower-cased and de-duplicated.
    pub tags: Option<Vec<String>>,
    /// When the task is due: RFC 3339 (`2026-03-08T17:00:00-05:00`), a local date-time in
    /// `time_zone` (`2026-03-08T17:00`), or a date (`2026-03-08`, meaning the end of that day).
    pub due: Option<String>,
    /// IANA time zone for `due`, reminders and recurrence, e.g. `Europe/Paris`. Default `UTC`.
    pub time_zone: Option<String>,
    /// Makes the task repeat; needs `due`, which is the first occurrence.
    pub recurrence: Option<RecurrenceInput>,
    /// Up to 10 reminders, each in the future.
    pub reminders: Option<Vec<ReminderInput>>,
}

/// Which tasks `list_tasks` shows by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    #[default]
    Pending,
    Completed,
    All,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// `pending` (default), `completed` or `all`.
    pub status: Option<StatusFilter>,
    /// Only tasks of this priority.
    pub priority: Option<Priority>,
    /// Only tasks that carry all of these tags.
    pub tags: Option<Vec<String>>,
    /// Case-insensitive text to find in the title or description; `%` and `_` match literally.
    pub search: Option<String>,
    /// Only tasks due strictly before this time (same formats as `due`; a date means its start).
    pub due_before: Option<String>,
    /// Only tasks due strictly after this time (a date means its end).
    pub due_after: Option<String>,
    /// Only pending tasks whose due time has passed.
    pub overdue: Option<bool>,
    /// IANA time zone for local times in `due_before`/`due_after`. Default `UTC`.
    pub time_zone: Option<String>,
    /// `created` (default), `due`, `priority` or `title`.
    pub sort: Option<SortKey>,
    /// `asc` or `desc`. Default: newest, most urgent first; soonest due, A to Z first.
    pub order: Option<SortOrder>,
    /// Page size, 1 to 200; default 50.
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page, with the same filters, to get the next page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    /// The task's id, as returned by `add_task` or `list_tasks`.
    pub task_id: Uuid,
}

/// Only the fields given change. `null` clears `description`, `due` or `recurrence`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskArgs {
    /// The task's id.
    pub task_id: Uuid,
    /// New title, 1 to 200 characters.
    pub title: Option<String>,
    /// New description; `null` or "" removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub description: Option<Option<String>>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Replaces all tags; `[]` removes them.
    pub tags: Option<Vec<String>>,
    /// New due time (formats as in `add_task`); `null` removes it. Reminders given in
    /// `minutes_before` move with it; a recurring series continues from the new time.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub due: Option<Option<String>>,
    /// New IANA time zone. The due instant stays; local times given in this call use the new zone.
    pub time_zone: Option<String>,
    /// New recurrence rule; `null` stops the task repeating.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<RecurrenceInput>")]
    pub recurrence: Option<Option<RecurrenceInput>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReminderArgs {
    /// The task's id.
    pub task_id: Uuid,
    /// Fire at this time: RFC 3339, a local date-time in the task's time zone, or a date
    /// (09:00 that day). Give this or `minutes_before`.
    pub at: Option<String>,
    /// Fire this many minutes before the task's due time; moves with it.
    pub minutes_before: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelReminderArgs {
    /// The task's id.
    pub task_id: Uuid,
    /// The reminder's id, from the task's `reminders`.
    pub reminder_id: Uuid,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNotificationsArgs {
    /// Only notifications not yet marked read.
    pub unread_only: Option<bool>,
    /// Mark the returned notifications as read.
    pub mark_read: Option<bool>,
    /// At most this many, newest first: 1 to 200, default 50.
    pub limit: Option<u32>,
}
