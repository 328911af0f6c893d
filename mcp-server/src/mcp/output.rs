//! Tool results: the structured output of each tool (its `outputSchema`) and the one-line
//! summaries placed beside it for clients that show only text.

use schemars::JsonSchema;
use serde::Serialize;
use todo_shared::snapshot::TaskSnapshot;
use todo_shared::task::TaskStatus;
use uuid::Uuid;

use crate::app::notifications::NotificationView;
use crate::app::settings::ZoneSource;
use crate::app::tasks::Applied;

/// The result of `add_task` and `get_task`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskOutput {
    pub task: TaskSnapshot,
}

/// The result of a tool that changes a task.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeOutput {
    /// The task after the call.
    pub task: TaskSnapshot,
    /// The fields that changed; empty when the task already was as asked.
    pub changed: Vec<String>,
}

impl From<Applied> for ChangeOutput {
    fn from(applied: Applied) -> Self {
        Self {
            task: applied.task,
            changed: applied.changed,
        }
    }
}

/// The result of `complete_task`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CompleteOutput {
    #[serde(flatten)]
    pub change: ChangeOutput,
    /// The recurring task's next occurrence, made as this one was completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_occurrence: Option<TaskSnapshot>,
}

impl From<Applied> for CompleteOutput {
    fn from(mut applied: Applied) -> Self {
        Self {
            next_occurrence: applied.next_occurrence.take(),
            change: applied.into(),
        }
    }
}

/// The result of `list_tasks`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub tasks: Vec<TaskSnapshot>,
    /// How many tasks match the filters across all pages.
    pub total: i64,
    /// Pass as `cursor`, with the same filters, for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The result of `delete_task`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOutput {
    /// The task as it was before it was deleted.
    pub deleted: TaskSnapshot,
}

/// The result of `set_reminder`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReminderOutput {
    /// The new reminder's id.
    pub reminder_id: Uuid,
    pub task: TaskSnapshot,
}

/// The result of `list_notifications`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NotificationsOutput {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
    /// Unread notifications in total.
    pub unread: i64,
}

/// The result of `get_settings` and `update_settings`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingsOutput {
    /// The IANA zone local times are read in when a call names none.
    pub time_zone: String,
    /// Where it comes from: the user's `preference`, their `token`, this `machine`, or the
    /// `default` (UTC).
    pub time_zone_source: ZoneSource,
    /// The current time in that zone (RFC 3339).
    pub now: String,
}

/// `"Buy milk" [high] due 2026-03-08T17:00:00-05:00 #home (id …)`
pub fn describe_task(t: &TaskSnapshot) -> String {
    let mut s = format!("\"{}\" [{}]", t.title, t.priority.as_str());
    if t.status == TaskStatus::Completed {
        s.push_str(" (completed)");
    }
    if let Some(due) = &t.due {
        s.push_str(&format!(" due {due}"));
    }
    if let Some(series) = &t.recurrence {
        s.push_str(&format!(", repeats {}", series.summary));
    }
    for tag in &t.tags {
        s.push_str(&format!(" #{tag}"));
    }
    if !t.reminders.is_empty() {
        s.push_str(&format!(", {} reminder(s)", t.reminders.len()));
    }
    s.push_str(&format!(" (id {})", t.id));
    s
}

pub fn describe_change(verb: &str, out: &ChangeOutput) -> String {
    if out.changed.is_empty() {
        format!("Nothing to change: {}", describe_task(&out.task))
    } else {
        format!(
            "{verb} {} (changed: {})",
            describe_task(&out.task),
            out.changed.join(", ")
        )
    }
}

pub fn describe_completion(out: &CompleteOutput) -> String {
    let mut s = describe_change("Completed", &out.change);
    if let Some(next) = &out.next_occurrence {
        s.push_str(&format!("; next occurrence: {}", describe_task(next)));
    }
    s
}

pub fn describe_list(out: &ListOutput) -> String {
    let mut s = format!("{} of {} matching task(s)", out.tasks.len(), out.total);
    if out.next_cursor.is_some() {
        s.push_str("; more with next_cursor");
    }
    s.push(':');
    for t in &out.tasks {
        s.push_str("\n- ");
        s.push_str(&describe_task(t));
    }
    s
}

pub fn describe_notifications(out: &NotificationsOutput) -> String {
    let mut s = format!(
        "{} notification(s), {} unread in total",
        out.notifications.len(),
        out.unread
    );
    for n in &out.notifications {
        let mark = if n.read { "" } else { " (unread)" };
        s.push_str(&format!("\n- {}: {}{mark}", n.fire_at, n.message));
    }
    s
}

pub fn describe_settings(out: &SettingsOutput) -> String {
    let source = match out.time_zone_source {
        ZoneSource::Preference => "the user's setting",
        ZoneSource::Token => "the user's sign-in",
        ZoneSource::Machine => "this machine",
        ZoneSource::Default => "the default",
    };
    format!(
        "Time zone {} (from {source}); it is now {}",
        out.time_zone, out.now
    )
}
