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
use crate::error::{AppError, AppResult};

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

/// The outcome of one item of a batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ItemOutcome<T> {
    /// The item's place in the call's list, from 0.
    pub index: usize,
    /// What the item did, when it succeeded.
    #[serde(flatten)]
    pub done: Option<T>,
    /// Why the item failed, when it did; the other items are not affected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a batch: each item's outcome, in the order given.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchOutput<T> {
    pub results: Vec<ItemOutcome<T>>,
    /// How many items succeeded.
    pub succeeded: usize,
    /// How many items failed.
    pub failed: usize,
}

impl<T> BatchOutput<T> {
    /// The outcomes of a batch's items, `what` naming them (`tasks`, `task_ids`); an error
    /// when none succeeded, giving each one's reason.
    pub fn gather(outcomes: Vec<AppResult<T>>, what: &str) -> AppResult<Self> {
        let total = outcomes.len();
        let results: Vec<ItemOutcome<T>> = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                Ok(done) => ItemOutcome {
                    index,
                    done: Some(done),
                    error: None,
                },
                Err(e) => ItemOutcome {
                    index,
                    done: None,
                    error: Some(e.public_message()),
                },
            })
            .collect();
        let failed = results.iter().filter(|r| r.error.is_some()).count();
        if failed == total {
            let reasons: Vec<String> = results
                .iter()
                .filter_map(|r| Some(format!("{what}[{}]: {}", r.index, r.error.as_ref()?)))
                .collect();
            return Err(AppError::NothingApplied(format!(
                "none of the {total} {what} was applied: {}",
                reasons.join("; ")
            )));
        }
        Ok(Self {
            results,
            succeeded: total - failed,
            failed,
        })
    }
}

/// The result of a tool that takes `task_id` or `task_ids`: the one task's result, or each
/// one's.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OneOrMany<T> {
    #[serde(flatten)]
    pub one: Option<T>,
    #[serde(flatten)]
    pub many: Option<BatchOutput<T>>,
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

/// `verb` and the summary of each item (`describe` for those that succeeded).
pub fn describe_batch<T>(
    verb: &str,
    out: &BatchOutput<T>,
    describe: impl Fn(&T) -> String,
) -> String {
    let total = out.succeeded + out.failed;
    let mut s = format!("{verb} {} of {total}", out.succeeded);
    if out.failed > 0 {
        s.push_str(&format!("; {} failed", out.failed));
    }
    s.push(':');
    for r in &out.results {
        match (&r.done, &r.error) {
            (Some(done), _) => s.push_str(&format!("\n- [{}] {}", r.index, describe(done))),
            (None, Some(e)) => s.push_str(&format!("\n- [{}] failed: {e}", r.index)),
            (None, None) => {}
        }
    }
    s
}

/// The summary of one result, or of each of a batch's.
pub fn describe_one_or_many<T>(
    verb: &str,
    out: &OneOrMany<T>,
    describe: impl Fn(&T) -> String,
) -> String {
    match (&out.one, &out.many) {
        (Some(one), _) => describe(one),
        (None, Some(many)) => describe_batch(verb, many, describe),
        (None, None) => String::new(),
    }
}
