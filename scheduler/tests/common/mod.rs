//! What the engine's tests on the in-memory ports share.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// A new task's event as `todo-mcp` publishes it, written at `written`, with one reminder
/// (`reminder`) due at `fire_at`.
pub fn task_created(reminder: Uuid, fire_at: DateTime<Utc>, written: DateTime<Utc>) -> Value {
    json!({
        "type": "com.todo.task.created", "id": Uuid::now_v7(), "specversion": "1.0",
        "source": "/mcp-server/tasks",
        "data": {"task": {
            "id": Uuid::now_v7(), "owner": "alice", "title": "x", "description": null,
            "status": "pending", "priority": "medium", "tags": [], "due": null,
            "time_zone": "UTC", "recurrence": null,
            "reminders": [{"id": reminder, "at": fire_at.to_rfc3339(), "minutes_before": null}],
            "created_at": written, "updated_at": written, "completed_at": null,
        }},
    })
}
