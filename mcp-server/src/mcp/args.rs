//! Tool arguments as a model sends them, and their parsing into the application's commands.
//!
//! The doc comments of the argument types become the JSON Schema descriptions the model reads,
//! so they say what is accepted and what each value means. Each `parse` checks everything that
//! does not depend on stored state; a failure names the argument and says what would be accepted.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use todo_shared::ValidationError;
use todo_shared::error::{MAX_MESSAGE_CHARS, elide_middle};
use todo_shared::listing::{Sort, SortKey, SortOrder, TaskFilter, parse_search};
use todo_shared::recurrence::{Recurrence, RecurrenceInput};
use todo_shared::reminder::{ReminderInput, ReminderSpec, parse_reminders};
use todo_shared::task::{Priority, Tag, Tags, TaskDescription, TaskStatus, TaskTitle};
use todo_shared::time::{DateOnly, TimeInput, Zone, parse_datetime};
use uuid::Uuid;

use crate::app::commands::{NewTask, TaskPatch, parse_limit};
use crate::app::listing::ListQuery;
use crate::error::{AppError, AppResult};

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
    /// IANA time zone for `due`, reminders and recurrence, e.g. `Europe/Paris`. Default: the
    /// user's time zone (get_settings).
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
    /// IANA time zone for local times in `due_before`/`due_after`. Default: the user's time
    /// zone (get_settings).
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

/// The most items one call takes in a batch.
pub const MAX_BATCH: usize = 50;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTasksArgs {
    /// 1 to 50 tasks, each with the arguments of `add_task`. Each is checked on its own: one
    /// that does not fit gets its own error, and the others are created.
    #[schemars(with = "Vec<AddTaskArgs>", length(min = 1, max = 50))]
    pub tasks: Vec<serde_json::Value>,
}

impl AddTasksArgs {
    /// Each task parsed on its own, in the order given (with `user_zone` as in `add_task`).
    pub fn parse(self, now: DateTime<Utc>, user_zone: Zone) -> AppResult<Vec<AppResult<NewTask>>> {
        check_batch("tasks", self.tasks.len())?;
        let parse = |(i, item): (usize, serde_json::Value)| {
            let args: AddTaskArgs = parse_at(item, &format!("tasks[{i}]"))?;
            args.parse(now, user_zone)
                .map_err(|e| at_item(e, &format!("tasks[{i}]")))
        };
        Ok(self.tasks.into_iter().enumerate().map(parse).collect())
    }

    /// Whether some task names no zone of its own.
    pub fn needs_user_zone(&self) -> bool {
        self.tasks
            .iter()
            .any(|t| t.get("time_zone").is_none_or(serde_json::Value::is_null))
    }
}

/// One task by `task_id`, or several by `task_ids`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdsArgs {
    /// The task's id, as returned by `add_task` or `list_tasks`.
    pub task_id: Option<Uuid>,
    /// Instead of `task_id`: 1 to 50 task ids, each handled on its own; the result gives each
    /// one's outcome.
    #[schemars(with = "Option<Vec<Uuid>>", length(min = 1, max = 50))]
    pub task_ids: Option<Vec<serde_json::Value>>,
}

/// The tasks a call names.
#[derive(Debug)]
pub enum Targets {
    One(Uuid),
    /// Each id, or why it is not one.
    Many(Vec<AppResult<Uuid>>),
}

impl TaskIdsArgs {
    pub fn parse(self) -> AppResult<Targets> {
        match (self.task_id, self.task_ids) {
            (Some(id), None) => Ok(Targets::One(id)),
            (None, Some(ids)) => {
                check_batch("task_ids", ids.len())?;
                let parse = |(i, id)| parse_at(id, &format!("task_ids[{i}]"));
                Ok(Targets::Many(
                    ids.into_iter().enumerate().map(parse).collect(),
                ))
            }
            (Some(_), Some(_)) => Err(ValidationError::new(
                "task_ids",
                "give `task_id` for one task or `task_ids` for several, not both",
            )
            .into()),
            (None, None) => Err(ValidationError::new(
                "task_id",
                "is required: the task's id, or `task_ids` for several tasks",
            )
            .into()),
        }
    }
}

fn check_batch(field: &'static str, len: usize) -> Result<(), ValidationError> {
    if (1..=MAX_BATCH).contains(&len) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("takes 1 to {MAX_BATCH} items, not {len}: split the work into several calls"),
    ))
}

/// A validation error of a batch item, named by its place (`tasks[3].due`).
fn at_item(e: ValidationError, at: &str) -> AppError {
    AppError::Arguments(format!("invalid `{at}.{}`: {}", e.field, e.message))
}

/// Parses `value` (the arguments, or the batch item at `at`, e.g. `tasks[3]`), naming the
/// argument at fault when it does not fit.
pub fn parse_at<T: DeserializeOwned>(value: serde_json::Value, at: &str) -> AppResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // serde repeats an unexpected value whole; the path too can be as long as the input.
        let inner = e.path().to_string();
        let message = elide_middle(e.into_inner().to_string(), MAX_MESSAGE_CHARS);
        let path = match (at, inner.as_str()) {
            ("", ".") => return AppError::Arguments(format!("invalid arguments: {message}")),
            (at, ".") => at.to_owned(),
            ("", inner) => inner.to_owned(),
            (at, inner) => format!("{at}.{inner}"),
        };
        let path = elide_middle(path, 120);
        AppError::Arguments(format!("invalid `{path}`: {message}"))
    })
}

/// No arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Only the settings given change.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsArgs {
    /// The IANA time zone (e.g. `Europe/Paris`) to read local times in when a call names none;
    /// `null` forgets it, leaving the zone of the user's machine or sign-in, else UTC.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub time_zone: Option<Option<String>>,
}

impl UpdateSettingsArgs {
    /// The new zone preference: `None` leaves it, `Some(None)` forgets it.
    pub fn parse(&self) -> Result<Option<Option<Zone>>, ValidationError> {
        self.time_zone
            .as_ref()
            .map(|zone| {
                zone.as_deref()
                    .map(|z| Zone::parse("time_zone", z))
                    .transpose()
            })
            .transpose()
    }
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

/// The call's `time_zone`, else the user's.
fn parse_zone(raw: Option<&str>, user_zone: Zone) -> Result<Zone, ValidationError> {
    raw.map_or(Ok(user_zone), |s| Zone::parse("time_zone", s))
}

/// A description as given: blank means none.
fn parse_description(raw: Option<&str>) -> Result<Option<TaskDescription>, ValidationError> {
    Ok(raw.map(TaskDescription::parse).transpose()?.flatten())
}

fn parse_recurrence(
    input: RecurrenceInput,
    due: Option<DateTime<Utc>>,
    zone: Tz,
) -> Result<Recurrence, ValidationError> {
    let Some(due) = due else {
        return Err(ValidationError::new(
            "recurrence",
            "a recurring task needs a `due` time, which is its first occurrence; give `due` too",
        ));
    };
    let rule = Recurrence::parse(input, zone)?;
    rule.check_start(due, zone)?;
    Ok(rule)
}

impl AddTaskArgs {
    /// The task to create, in `user_zone` unless it names its own; reminders must lie ahead
    /// of `now`.
    pub fn parse(self, now: DateTime<Utc>, user_zone: Zone) -> Result<NewTask, ValidationError> {
        let zone = parse_zone(self.time_zone.as_deref(), user_zone)?;
        let due = self
            .due
            .as_deref()
            .map(|d| parse_datetime("due", d, zone.tz(), DateOnly::EndOfDay))
            .transpose()?;
        let recurrence = self
            .recurrence
            .map(|r| parse_recurrence(r, due, zone.tz()))
            .transpose()?;
        let reminders = parse_reminders(
            self.reminders.as_deref().unwrap_or_default(),
            due,
            zone.tz(),
            now,
        )?;
        Ok(NewTask {
            title: TaskTitle::parse(&self.title)?,
            description: parse_description(self.description.as_deref())?,
            priority: self.priority.unwrap_or_default(),
            tags: Tags::parse(self.tags.as_deref().unwrap_or_default())?,
            due,
            zone,
            recurrence,
            reminders,
        })
    }
}

impl ListTasksArgs {
    /// Whether the query has local times to read in the user's zone.
    pub fn needs_user_zone(&self) -> bool {
        self.time_zone.is_none() && (self.due_before.is_some() || self.due_after.is_some())
    }

    /// The query, its local times read in `user_zone` unless it names its own zone.
    pub fn parse(self, user_zone: Zone) -> Result<ListQuery, ValidationError> {
        let zone = parse_zone(self.time_zone.as_deref(), user_zone)?.tz();
        // Normalised like a task's tags: trimmed, lower-cased, de-duplicated, at most ten.
        let tags: Vec<Tag> = Tags::parse(self.tags.as_deref().unwrap_or_default())?
            .iter()
            .cloned()
            .collect();
        let filter = TaskFilter {
            status: match self.status.unwrap_or_default() {
                StatusFilter::Pending => Some(TaskStatus::Pending),
                StatusFilter::Completed => Some(TaskStatus::Completed),
                StatusFilter::All => None,
            },
            priority: self.priority,
            tags,
            search: self
                .search
                .as_deref()
                .map(parse_search)
                .transpose()?
                .flatten(),
            due_before: self
                .due_before
                .as_deref()
                .map(|s| parse_datetime("due_before", s, zone, DateOnly::StartOfDay))
                .transpose()?,
            due_after: self
                .due_after
                .as_deref()
                .map(|s| parse_datetime("due_after", s, zone, DateOnly::EndOfDay))
                .transpose()?,
            overdue: self.overdue.unwrap_or(false),
        };
        ListQuery::new(
            filter,
            Sort::new(self.sort.unwrap_or(SortKey::Created), self.order),
            parse_limit(self.limit)?,
            self.cursor.as_deref(),
        )
    }
}

impl UpdateTaskArgs {
    /// The changes this update asks for. Local times in it are read in the task's zone when the
    /// task is loaded ([`TaskPatch::in_zone`]).
    pub fn parse(&self) -> Result<TaskPatch, ValidationError> {
        Ok(TaskPatch {
            zone: self
                .time_zone
                .as_deref()
                .map(|z| Zone::parse("time_zone", z))
                .transpose()?,
            title: self.title.as_deref().map(TaskTitle::parse).transpose()?,
            description: self
                .description
                .as_ref()
                .map(|d| parse_description(d.as_deref()))
                .transpose()?,
            priority: self.priority,
            tags: self.tags.as_deref().map(Tags::parse).transpose()?,
            due: self
                .due
                .as_ref()
                .map(|d| d.as_deref().map(|d| TimeInput::parse("due", d)).transpose())
                .transpose()?,
            recurrence: self.recurrence.clone(),
        })
    }
}

impl SetReminderArgs {
    /// The reminder, read in the task's zone when the task is loaded.
    pub fn parse(&self) -> Result<ReminderSpec, ValidationError> {
        let input = ReminderInput {
            at: self.at.clone(),
            minutes_before: self.minutes_before,
        };
        ReminderSpec::parse("reminder", &input)
    }
}
