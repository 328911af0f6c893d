//! Tool arguments parsed into validated commands. After this point nothing is unchecked.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use todo_shared::ValidationError;
use todo_shared::recurrence::{Recurrence, RecurrenceInput};
use todo_shared::reminder::{MAX_REMINDERS_PER_TASK, ReminderInput, ReminderTrigger};
use todo_shared::task::{Priority, Tag, Tags, TaskDescription, TaskStatus, TaskTitle};
use todo_shared::time::{DateOnly, Zone, parse_datetime};

use super::list::{ListQuery, parse_limit, parse_search};
use crate::tools::args::{AddTaskArgs, ListTasksArgs, StatusFilter, UpdateTaskArgs};

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: TaskTitle,
    pub description: Option<TaskDescription>,
    pub priority: Priority,
    pub tags: Tags,
    pub due: Option<DateTime<Utc>>,
    pub zone: Zone,
    pub recurrence: Option<Recurrence>,
    /// Each with its first firing time, already checked to lie in the future.
    pub reminders: Vec<(ReminderTrigger, DateTime<Utc>)>,
}

fn parse_zone(raw: Option<&str>) -> Result<Zone, ValidationError> {
    raw.map_or(Ok(Zone::default()), |s| Zone::parse("time_zone", s))
}

fn parse_due(raw: &str, zone: Tz) -> Result<DateTime<Utc>, ValidationError> {
    parse_datetime("due", raw, zone, DateOnly::EndOfDay)
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

/// Parses reminders for a task due at `due`, checking the count and that each lies ahead.
pub fn parse_reminders(
    inputs: &[ReminderInput],
    due: Option<DateTime<Utc>>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<(ReminderTrigger, DateTime<Utc>)>, ValidationError> {
    if inputs.len() > MAX_REMINDERS_PER_TASK {
        return Err(ValidationError::new(
            "reminders",
            format!(
                "{} reminders given; a task has at most {MAX_REMINDERS_PER_TASK}",
                inputs.len()
            ),
        ));
    }
    inputs
        .iter()
        .map(|input| {
            let trigger = ReminderTrigger::parse("reminders", input, zone)?;
            let at = trigger.check_future("reminders", due, now)?;
            Ok((trigger, at))
        })
        .collect()
}

impl NewTask {
    pub fn parse(args: AddTaskArgs, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        let zone = parse_zone(args.time_zone.as_deref())?;
        let due = args
            .due
            .as_deref()
            .map(|d| parse_due(d, zone.tz()))
            .transpose()?;
        let recurrence = args
            .recurrence
            .map(|r| parse_recurrence(r, due, zone.tz()))
            .transpose()?;
        let reminders = parse_reminders(
            args.reminders.as_deref().unwrap_or_default(),
            due,
            zone.tz(),
            now,
        )?;
        Ok(Self {
            title: TaskTitle::parse(&args.title)?,
            description: args
                .description
                .as_deref()
                .map(TaskDescription::parse)
                .transpose()?
                .flatten(),
            priority: args.priority.unwrap_or_default(),
            tags: Tags::parse(args.tags.as_deref().unwrap_or_default())?,
            due,
            zone,
            recurrence,
            reminders,
        })
    }
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<Option<TaskDescription>>,
    pub priority: Option<Priority>,
    pub tags: Option<Tags>,
    pub due: Option<Option<DateTime<Utc>>>,
    pub zone: Option<Zone>,
    pub recurrence: Option<Option<Recurrence>>,
}

impl TaskPatch {
    /// Parses an update for a task whose time zone is `current_zone`. Local times in the update
    /// are read in the new zone when the update changes it.
    pub fn parse(args: UpdateTaskArgs, current_zone: Zone) -> Result<Self, ValidationError> {
        let zone = args
            .time_zone
            .as_deref()
            .map(|z| Zone::parse("time_zone", z))
            .transpose()?;
        let tz = zone.unwrap_or(current_zone).tz();
        Ok(Self {
            title: args.title.as_deref().map(TaskTitle::parse).transpose()?,
            description: args
                .description
                .map(|d| {
                    d.as_deref()
                        .map(TaskDescription::parse)
                        .transpose()
                        .map(Option::flatten)
                })
                .transpose()?,
            priority: args.priority,
            tags: args.tags.as_deref().map(Tags::parse).transpose()?,
            due: args
                .due
                .map(|d| d.as_deref().map(|d| parse_due(d, tz)).transpose())
                .transpose()?,
            zone,
            recurrence: args
                .recurrence
                .map(|r| r.map(|r| Recurrence::parse(r, tz)).transpose())
                .transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.tags.is_none()
            && self.due.is_none()
            && self.zone.is_none()
            && self.recurrence.is_none()
    }
}

impl ListQuery {
    pub fn parse(args: ListTasksArgs) -> Result<Self, ValidationError> {
        let zone = parse_zone(args.time_zone.as_deref())?.tz();
        let sort = args.sort.unwrap_or(super::list::SortKey::Created);
        // Normalised like a task's tags: trimmed, lower-cased, de-duplicated, at most ten.
        let tags: Vec<Tag> = Tags::parse(args.tags.as_deref().unwrap_or_default())?
            .iter()
            .cloned()
            .collect();
        let mut query = Self {
            status: match args.status.unwrap_or_default() {
                StatusFilter::Pending => Some(TaskStatus::Pending),
                StatusFilter::Completed => Some(TaskStatus::Completed),
                StatusFilter::All => None,
            },
            priority: args.priority,
            tags,
            search: args
                .search
                .as_deref()
                .map(parse_search)
                .transpose()?
                .flatten(),
            due_before: args
                .due_before
                .as_deref()
                .map(|s| parse_datetime("due_before", s, zone, DateOnly::StartOfDay))
                .transpose()?,
            due_after: args
                .due_after
                .as_deref()
                .map(|s| parse_datetime("due_after", s, zone, DateOnly::EndOfDay))
                .transpose()?,
            overdue: args.overdue.unwrap_or(false),
            sort,
            order: args.order.unwrap_or(sort.default_order()),
            limit: parse_limit(args.limit)?,
            after: None,
        };
        if let Some(raw) = args.cursor.as_deref() {
            query.after = Some(query.decode_cursor(raw)?);
        }
        Ok(query)
    }
}
