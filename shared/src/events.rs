//! Lifecycle events and their CloudEvents 1.0 envelopes.
//!
//! Every change to a task produces one event. The envelope is built with `cloudevents-sdk` and
//! serialised in the structured JSON format, which is what the outbox stores and what is published
//! (as `application/cloudevents+json`) so that Dapr passes it through unchanged.
//!
//! `data` of the task events is a [`TaskEventData`]: the full task after the change (before it,
//! for `deleted`; as it is, for `resynced`, the replay a resync asks for) and, for `updated` and
//! `completed`, the fields that changed with their old and new values:
//!
//! ```json
//! {
//!   "task": { "id": "…", "title": "Pay rent", "status": "pending", … },
//!   "changes": { "title": { "from": "Pay rnt", "to": "Pay rent" } }
//! }
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloudevents::{EventBuilder, EventBuilderV10};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::snapshot::TaskSnapshot;

/// `source` of events that the MCP server emits about tasks.
pub const TASKS_SOURCE: &str = "/mcp-server/tasks";
/// `source` of the events the scheduler publishes (embedded or beside Dapr).
pub const SCHEDULER_SOURCE: &str = "/scheduler";
/// The media type of every event's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The pub/sub topic for task lifecycle and recurrence events.
pub const TOPIC_TASKS: &str = "tasks";
/// The pub/sub topic for notification events.
pub const TOPIC_NOTIFICATIONS: &str = "notifications";
/// Where a consumer publishes an event it can never process, unchanged, before dropping it.
pub const DEAD_LETTER_TOPIC: &str = "deadletter";

/// Every event type of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
    ReminderTriggered,
    RecurringScheduled,
    /// The scheduler found its state lost (or new) and asks for the schedule again.
    ResyncRequested,
    /// A task replayed for a resync: its snapshot as it is, with no change.
    TaskResynced,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::TaskCreated,
        EventType::TaskUpdated,
        EventType::TaskCompleted,
        EventType::TaskDeleted,
        EventType::ReminderTriggered,
        EventType::RecurringScheduled,
        EventType::ResyncRequested,
        EventType::TaskResynced,
    ];

    /// The CloudEvents `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TaskCreated => "com.todo.task.created",
            EventType::TaskUpdated => "com.todo.task.updated",
            EventType::TaskCompleted => "com.todo.task.completed",
            EventType::TaskDeleted => "com.todo.task.deleted",
            EventType::ReminderTriggered => "com.todo.reminder.triggered",
            EventType::RecurringScheduled => "com.todo.recurring.scheduled",
            EventType::ResyncRequested => "com.todo.resync.requested",
            EventType::TaskResynced => "com.todo.task.resynced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The topic the event is published on.
    pub fn topic(self) -> &'static str {
        match self {
            EventType::ReminderTriggered => TOPIC_NOTIFICATIONS,
            _ => TOPIC_TASKS,
        }
    }

    /// The version of this type's `data` schema. Additive changes (a new optional field) keep
    /// it; any other change makes a new version, published beside the old one for the
    /// transition window (README, Consuming the events), so that no consumer mid-upgrade gets
    /// an event it cannot read.
    pub fn version(self) -> u32 {
        1
    }

    /// The CloudEvents `dataschema` attribute: names the type and the version of its `data`
    /// schema (the message of that name in `docs/asyncapi.json`).
    pub fn dataschema(self) -> String {
        format!("urn:todo-mcp:events:{}:v{}", self.as_str(), self.version())
    }

    /// What an event of this type says, in a line.
    pub fn summary(self) -> &'static str {
        match self {
            EventType::TaskCreated => "A task was created (also each new occurrence of a series).",
            EventType::TaskUpdated => {
                "A task's fields changed; `changes` names each, with its old and new value."
            }
            EventType::TaskCompleted => {
                "A task was completed (or reopened: `changes.status` says which)."
            }
            EventType::TaskDeleted => "A task was deleted; `task` is the task as it was.",
            EventType::ReminderTriggered => "A reminder's time has come: notify the task's owner.",
            EventType::RecurringScheduled => {
                "The next occurrence of a series is due to exist: create it, with the id given."
            }
            EventType::ResyncRequested => {
                "The scheduler's state was lost (or is new): replay the schedule."
            }
            EventType::TaskResynced => "A task replayed for a resync: as it is, with no change.",
        }
    }

    /// The `source` of every event of this type: the one service that publishes it.
    pub fn source(self) -> &'static str {
        match self {
            EventType::ReminderTriggered
            | EventType::RecurringScheduled
            | EventType::ResyncRequested => SCHEDULER_SOURCE,
            _ => TASKS_SOURCE,
        }
    }
}

/// One field's value before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    pub from: Value,
    pub to: Value,
}

/// `data` of the `com.todo.task.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskEventData {
    /// The task after the change; for `deleted`, the task as it was.
    pub task: TaskSnapshot,
    /// Changed fields by name; empty (and omitted) for `created` and `deleted`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, FieldChange>,
}

/// Fields that change on every write and so say nothing about what the change was.
const BOOKKEEPING_FIELDS: &[&str] = &["updated_at", "version"];

impl TaskEventData {
    pub fn snapshot(task: TaskSnapshot) -> Self {
        Self {
            task,
            changes: BTreeMap::new(),
        }
    }

    /// The event data for a change from `before` to `after`, naming each top-level field that
    /// differs. Works on the serialised form so that a field added to the snapshot is covered
    /// without touching this code.
    pub fn change(before: &TaskSnapshot, after: TaskSnapshot) -> Self {
        let changes = match (serde_json::to_value(before), serde_json::to_value(&after)) {
            (Ok(Value::Object(old)), Ok(Value::Object(mut new))) => old
                .into_iter()
                .filter(|(k, _)| !BOOKKEEPING_FIELDS.contains(&k.as_str()))
                .filter_map(|(k, from)| {
                    let to = new.remove(&k).unwrap_or(Value::Null);
                    (!same(&from, &to)).then_some((k, FieldChange { from, to }))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Self {
            task: after,
            changes,
        }
    }
}

/// `data` of `com.todo.recurring.scheduled`: the next occurrence of a series is due to exist.
///
/// The consumer creates the task `task_id` as a copy of `previous_task_id` due at `due`. The id is
/// derived from the series and the occurrence ([`occurrence_task_id`]), so however often the
/// event is delivered or re-published, at most one task exists per occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecurringScheduled {
    /// The user whose series it is.
    pub owner: String,
    pub series_id: Uuid,
    /// The occurrence before this one: the template for the new task.
    pub previous_task_id: Uuid,
    /// The id the new task must have.
    pub task_id: Uuid,
    /// When the new occurrence is due.
    pub due: DateTime<Utc>,
}

/// The id of the task for the occurrence of `series_id` due at `due`: a UUIDv5, so every
/// producer derives the same id for the same occurrence.
pub fn occurrence_task_id(series_id: Uuid, due: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(&series_id, due.timestamp_micros().to_string().as_bytes())
}

/// `data` of `com.todo.reminder.triggered`: a reminder's time has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReminderTriggered {
    /// The user to notify.
    pub owner: String,
    pub task_id: Uuid,
    pub reminder_id: Uuid,
    /// The task's title when the reminder fired.
    pub title: String,
    /// The time the reminder was set for.
    pub fire_at: DateTime<Utc>,
    /// The task's due time, if it has one.
    pub due: Option<DateTime<Utc>>,
    /// The task's IANA time zone, to show `due` as the user gave it (absent from older events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// The id of the notification for a reminder firing at `fire_at`: one notification per firing,
/// however often the event is delivered.
pub fn notification_id(reminder_id: Uuid, fire_at: DateTime<Utc>) -> Uuid {
    Uuid::new_v5(
        &reminder_id,
        fire_at.timestamp_micros().to_string().as_bytes(),
    )
}

/// Equal, treating two RFC 3339 strings as equal when they name the same instant: a task whose
/// time zone changes shows the same times with other offsets, which is no change of those times.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y
                || matches!(
                    (DateTime::parse_from_rfc3339(x), DateTime::parse_from_rfc3339(y)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// `data` of `com.todo.resync.requested`: the scheduler's state was lost (or is new), and
/// `todo-mcp` is asked to replay the current schedule: every task with something to schedule, as
/// `com.todo.task.resynced`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResyncRequested {
    /// The scheduler state's new epoch, which the request is for (also the event's subject).
    pub epoch: Uuid,
    /// Why, for the logs.
    pub reason: String,
}

/// A lifecycle event ready for the outbox: its identity, where it goes, and its envelope.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub id: Uuid,
    pub event_type: EventType,
    /// The CloudEvents `subject`: the task id. Events of one subject are delivered in order.
    pub subject: Uuid,
    pub time: DateTime<Utc>,
    /// The whole CloudEvent in structured JSON form.
    pub envelope: Value,
    /// The W3C trace context of the work that produced the event, which its consumers continue
    /// (set by [`OutgoingEvent::traced`]; the publisher adds it to the envelope).
    pub traceparent: Option<String>,
}

/// Why an event could not be built; only a bug can cause it, never input.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("building the CloudEvent failed: {0}")]
    Build(#[from] cloudevents::event::EventBuilderError),
    #[error("serialising the event failed: {0}")]
    Json(#[from] serde_json::Error),
}

impl OutgoingEvent {
    /// Builds a task lifecycle event with a fresh time-ordered id.
    pub fn task(
        event_type: EventType,
        data: &TaskEventData,
        time: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        Self::new(
            Uuid::now_v7(),
            event_type,
            data.task.id,
            serde_json::to_value(data)?,
            time,
        )
    }

    /// Builds an event from its own service (its type's `source`).
    pub fn new(
        id: Uuid,
        event_type: EventType,
        subject: Uuid,
        data: Value,
        time: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        let event = EventBuilderV10::new()
            .id(id.to_string())
            .source(event_type.source())
            .ty(event_type.as_str())
            .subject(subject.to_string())
            .time(time)
            .data_with_schema(DATA_CONTENT_TYPE, event_type.dataschema(), data)
            .build()?;
        Ok(Self {
            id,
            event_type,
            subject,
            time,
            envelope: serde_json::to_value(&event)?,
            traceparent: None,
        })
    }

    /// The event, in the trace `traceparent` names.
    pub fn traced(self, traceparent: Option<String>) -> Self {
        Self {
            traceparent,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Priority, TaskStatus};
    use chrono::TimeZone;
    use serde_json::json;

    fn task() -> TaskSnapshot {
        TaskSnapshot {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            owner: "alice".into(),
            title: "Pay rent".into(),
            description: None,
            status: TaskStatus::Pending,
            priority: Priority::High,
            tags: vec!["home".into()],
            due: Some("2026-12-01T23:59:59+01:00".into()),
            time_zone: "Europe/Paris".into(),
            recurrence: None,
            reminders: vec![],
            created_at: "2026-11-26T10:00:00+01:00".into(),
            updated_at: "2026-11-26T10:00:00+01:00".into(),
            completed_at: None,
            version: 1,
        }
    }

    #[test]
    fn event_types_round_trip_and_route() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("com.todo.nope"), None);
        assert_eq!(EventType::TaskCreated.topic(), "tasks");
        assert_eq!(EventType::RecurringScheduled.topic(), "tasks");
        assert_eq!(EventType::ReminderTriggered.topic(), "notifications");
    }

    #[test]
    fn change_lists_only_fields_that_differ() {
        let before = task();
        let mut after = task();
        after.title = "Pay the rent".into();
        after.status = TaskStatus::Completed;
        after.completed_at = Some("2026-11-27T09:00:00+01:00".into());
        after.updated_at = "2026-11-27T09:00:00+01:00".into();
        let data = TaskEventData::change(&before, after);
        let keys: Vec<_> = data.changes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["completed_at", "status", "title"]);
        assert_eq!(
            data.changes["title"],
            FieldChange {
                from: json!("Pay rent"),
                to: json!("Pay the rent")
            }
        );
        assert_eq!(data.changes["completed_at"].from, Value::Null);
    }

    #[test]
    fn a_new_time_zone_changes_only_the_zone() {
        let before = task();
        let mut after = task();
        after.time_zone = "America/New_York".into();
        after.due = Some("2026-12-01T17:59:59-05:00".into());
        after.created_at = "2026-11-26T04:00:00-05:00".into();
        let data = TaskEventData::change(&before, after);
        let keys: Vec<_> = data.changes.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["time_zone"],
            "the same instants in another zone are no change"
        );
    }

    #[test]
    fn created_event_has_the_documented_envelope() {
        let time = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        let event = OutgoingEvent::task(
            EventType::TaskCreated,
            &TaskEventData::snapshot(task()),
            time,
        )
        .unwrap();
        let e = &event.envelope;
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], event.id.to_string());
        assert_eq!(e["source"], "/mcp-server/tasks");
        assert_eq!(e["type"], "com.todo.task.created");
        assert_eq!(e["subject"], task().id.to_string());
        assert_eq!(e["datacontenttype"], "application/json");
        assert_eq!(e["time"], "2026-11-26T09:00:00Z");
        assert_eq!(e["data"]["task"]["title"], "Pay rent");
        assert_eq!(e["data"]["task"]["priority"], "high");
        assert!(
            e["data"].get("changes").is_none(),
            "created carries no changes: {e}"
        );
        let back: TaskEventData = serde_json::from_value(e["data"].clone()).unwrap();
        assert_eq!(back.task, task());
    }

    #[test]
    fn updated_event_carries_changes() {
        let mut after = task();
        after.priority = Priority::Low;
        let data = TaskEventData::change(&task(), after);
        let event = OutgoingEvent::task(EventType::TaskUpdated, &data, Utc::now()).unwrap();
        assert_eq!(event.envelope["type"], "com.todo.task.updated");
        assert_eq!(
            event.envelope["data"]["changes"],
            json!({ "priority": { "from": "high", "to": "low" } })
        );
        assert_eq!(event.event_type.topic(), "tasks");
    }

    #[test]
    fn derived_ids_are_deterministic() {
        let series = Uuid::now_v7();
        let due = Utc.with_ymd_and_hms(2026, 3, 9, 13, 0, 0).unwrap();
        assert_eq!(
            occurrence_task_id(series, due),
            occurrence_task_id(series, due)
        );
        assert_ne!(
            occurrence_task_id(series, due),
            occurrence_task_id(series, due + chrono::Duration::days(1))
        );
        assert_ne!(
            occurrence_task_id(series, due),
            occurrence_task_id(Uuid::now_v7(), due)
        );
        let reminder = Uuid::now_v7();
        assert_eq!(
            notification_id(reminder, due),
            notification_id(reminder, due)
        );
        assert_ne!(
            notification_id(reminder, due),
            notification_id(reminder, due + chrono::Duration::minutes(1))
        );
    }

    #[test]
    fn ids_are_unique() {
        let data = TaskEventData::snapshot(task());
        let a = OutgoingEvent::task(EventType::TaskUpdated, &data, Utc::now()).unwrap();
        let b = OutgoingEvent::task(EventType::TaskUpdated, &data, Utc::now()).unwrap();
        assert_ne!(a.id, b.id);
    }
}
