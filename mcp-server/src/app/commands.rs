//! The commands the services take, parsed from what a caller sent (see `crate::mcp::args`):
//! after this point nothing is unchecked.

use chrono::{DateTime, Utc};
use todo_shared::ValidationError;
use todo_shared::recurrence::{Recurrence, RecurrenceInput};
use todo_shared::reminder::ReminderTrigger;
use todo_shared::task::{Priority, Tags, TaskDescription, TaskTitle};
use todo_shared::time::{DateOnly, TimeInput, Zone};

/// Default and largest page sizes of the listing tools.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A page size: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub fn parse_limit(limit: Option<u32>) -> Result<u32, ValidationError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ValidationError::new(
            "limit",
            format!("{n} is out of range; use 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: TaskTitle,
    pub description: Option<TaskDescription>,
    pub priority: Priority,
    pub tags: Tags,
    pub due: Option<DateTime<Utc>>,
    pub zone: Zone,
    /// Needs `due`, checked to be the rule's first occurrence.
    pub recurrence: Option<Recurrence>,
    /// Each with its first firing time, already checked to lie in the future.
    pub reminders: Vec<(ReminderTrigger, DateTime<Utc>)>,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
///
/// Local times in `due` and in the recurrence's `until` are read in the task's time zone (the new
/// one when the patch sets `zone`), which only the stored task knows: [`TaskPatch::in_zone`]
/// reads them once it is loaded.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<Option<TaskDescription>>,
    pub priority: Option<Priority>,
    pub tags: Option<Tags>,
    pub zone: Option<Zone>,
    pub due: Option<Option<TimeInput>>,
    pub recurrence: Option<Option<RecurrenceInput>>,
}

/// The parts of a [`TaskPatch`] that depend on the task's time zone, read in it.
#[derive(Debug, Clone)]
pub struct ZonedPatch {
    pub due: Option<Option<DateTime<Utc>>>,
    pub recurrence: Option<Option<Recurrence>>,
}

impl TaskPatch {
    /// Reads the due time and recurrence in the zone of a task whose zone is `current`.
    pub fn in_zone(&self, current: Zone) -> Result<ZonedPatch, ValidationError> {
        let tz = self.zone.unwrap_or(current).tz();
        Ok(ZonedPatch {
            due: self
                .due
                .as_ref()
                .map(|d| {
                    d.as_ref()
                        .map(|d| d.resolve(tz, DateOnly::EndOfDay))
                        .transpose()
                })
                .transpose()?,
            recurrence: self
                .recurrence
                .clone()
                .map(|r| r.map(|r| Recurrence::parse(r, tz)).transpose())
                .transpose()?,
        })
    }
}
