//! Task lifecycle events as the scheduler reads them: parsed and validated once, so that the
//! engine works on times and rules, never on strings.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use todo_shared::events::{EventType, TOPIC_TASKS, TaskEventData};
use todo_shared::incoming::Incoming;
use todo_shared::recurrence::Recurrence;
use todo_shared::task::TaskStatus;
use uuid::Uuid;

/// The events the scheduler acts on.
const TASK_EVENTS: [EventType; 5] = [
    EventType::TaskCreated,
    EventType::TaskUpdated,
    EventType::TaskCompleted,
    EventType::TaskDeleted,
    EventType::TaskResynced,
];

/// One `com.todo.task.*` event.
#[derive(Debug, Clone)]
pub struct TaskChange {
    /// The CloudEvent id, for idempotency.
    pub event_id: String,
    pub kind: EventType,
    pub task_id: Uuid,
    pub owner: String,
    pub title: String,
    pub status: TaskStatus,
    /// Where the event stands in its task's history.
    pub version: TaskVersion,
    pub due: Option<DateTime<Utc>>,
    /// The task's zone, in which its times are shown.
    pub time_zone: Tz,
    pub reminders: Vec<(Uuid, DateTime<Utc>)>,
    pub series: Option<SeriesSpec>,
    /// The trace the event belongs to (W3C `traceparent`), which arming continues.
    pub traceparent: Option<String>,
}

/// The series a task belongs to, with its rule resolved in the task's zone.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub series_id: Uuid,
    pub rule: Recurrence,
    pub time_zone: Tz,
    pub series_start: DateTime<Utc>,
}

/// Where an event stands in its task's history: what orders the events of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskVersion {
    /// The task's version, incremented in the transaction of each change; 0 where the publisher
    /// (or the record) is older than versions.
    pub number: u64,
    /// The task's `updated_at`, which orders only where a number is missing: it is the clock
    /// of whichever replica made the change.
    pub updated_at: DateTime<Utc>,
}

impl TaskVersion {
    /// Whether an event at `other` has nothing to add over this version: an earlier one, or
    /// the same numbered version again (a replay under another event id).
    pub fn supersedes(&self, other: &TaskVersion) -> bool {
        match self.compare(other) {
            (Ordering::Greater, _) => true,
            (Ordering::Equal, numbered) => numbered,
            (Ordering::Less, _) => false,
        }
    }

    /// Whether this version comes after `other`.
    pub fn is_after(&self, other: &TaskVersion) -> bool {
        self.compare(other).0 == Ordering::Greater
    }

    /// The two by number where both have one (and so `true`), otherwise by clock.
    fn compare(&self, other: &TaskVersion) -> (Ordering, bool) {
        if self.number > 0 && other.number > 0 {
            (self.number.cmp(&other.number), true)
        } else {
            (self.updated_at.cmp(&other.updated_at), false)
        }
    }
}

impl TaskChange {
    /// Whether the scheduler should keep the task's reminders armed.
    pub fn is_active(&self) -> bool {
        self.kind != EventType::TaskDeleted && self.status == TaskStatus::Pending
    }

    /// Reads an envelope: `Ok(None)` for event types the scheduler does not act on, `Err` with
    /// the reason for one that can never be processed.
    pub fn parse(envelope: &Value) -> Result<Option<TaskChange>, String> {
        let Some(event) = Incoming::<TaskEventData>::parse(envelope, TOPIC_TASKS, &TASK_EVENTS)?
        else {
            return Ok(None);
        };
        let traceparent = event.traceparent;
        let task = event.data.task;
        let time_zone: Tz = task
            .time_zone
            .parse()
            .map_err(|_| format!("unknown time zone `{}`", task.time_zone))?;
        let reminders = task
            .reminders
            .iter()
            .map(|r| Ok((r.id, instant("reminders.at", &r.at)?)))
            .collect::<Result<_, String>>()?;
        let series = task
            .recurrence
            .map(|s| {
                Ok::<_, String>(SeriesSpec {
                    series_id: s.series_id,
                    rule: Recurrence::parse(s.rule, time_zone)
                        .map_err(|e| format!("the recurrence is invalid: {e}"))?,
                    time_zone,
                    series_start: instant("recurrence.series_start", &s.series_start)?,
                })
            })
            .transpose()?;
        Ok(Some(TaskChange {
            event_id: event.id,
            kind: event.event_type,
            task_id: task.id,
            owner: task.owner,
            title: task.title,
            status: task.status,
            version: TaskVersion {
                number: task.version,
                updated_at: instant("updated_at", &task.updated_at)?,
            },
            due: task.due.as_deref().map(|d| instant("due", d)).transpose()?,
            time_zone,
            reminders,
            series,
            traceparent,
        }))
    }
}

fn instant(field: &str, s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{field}` is not an RFC 3339 time ({s:?}): {e}"))
}
