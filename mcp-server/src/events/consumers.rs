//! The events the MCP server reacts to, whether they arrive from Dapr (on the app port) or from
//! the in-process bus:
//!
//! - `com.todo.recurring.scheduled` on `tasks`: create the next occurrence of a series;
//! - `com.todo.reminder.triggered` on `notifications`: keep a notification for
//!   `list_notifications` and push it to connected clients;
//! - `com.todo.resync.requested` on `tasks`: replay the schedule to a scheduler that lost its
//!   state.
//!
//! Each handler answers like a Dapr subscriber: success when done or already done, retry when a
//! failure may pass (the database is down), drop when the event can never be processed.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use todo_dapr::telemetry;
use todo_shared::events::{
    EventType, RecurringScheduled, ReminderTriggered, ResyncRequested, TOPIC_NOTIFICATIONS,
    TOPIC_TASKS,
};
use todo_shared::incoming::Incoming;
use todo_shared::time::now;
use tracing::Instrument;

use super::bus::{Disposition, Subscriber};
use crate::app::notifications::NotificationService;
use crate::app::resync::ResyncService;
use crate::app::tasks::TaskService;
use crate::error::AppError;
use crate::store::processed::EventKey;

/// Handles one envelope: events of other types are acknowledged and ignored, malformed ones
/// dropped, and a well-formed one is handed to `effect` with its id (for idempotency).
async fn consume<T, Fut>(
    envelope: &Value,
    expected: EventType,
    effect: impl FnOnce(T, String) -> Fut,
) -> Disposition
where
    T: DeserializeOwned,
    Fut: Future<Output = Result<(), AppError>>,
{
    match Incoming::<T>::parse(envelope, expected.topic(), &[expected]) {
        Ok(Some(event)) => {
            // The work continues the producer's trace; the events it commits carry it on.
            let span = tracing::info_span!(
                "consume",
                otel.name = %format_args!("consume {}", expected.as_str()),
                event_id = %event.id,
            );
            telemetry::continue_trace(&span, event.traceparent.as_deref());
            disposition(effect(event.data, event.id).instrument(span).await)
        }
        Ok(None) => Disposition::Success,
        Err(reason) => Disposition::Drop(reason),
    }
}

fn disposition(result: Result<(), AppError>) -> Disposition {
    match result {
        Ok(()) => Disposition::Success,
        Err(e) if e.is_caller_error() => Disposition::Drop(e.to_string()),
        // A value the database refuses (NUL in text, a date before 4713 BC) fails the same way on
        // every delivery: retrying would loop forever, so it goes to the dead-letter topic.
        Err(AppError::Database(e)) if is_data_exception(&e) => {
            Disposition::Drop(format!("the database refuses a value of this event: {e}"))
        }
        // The cause goes to the log (not to any client), so that a retry loop can be diagnosed.
        Err(AppError::Database(e)) => Disposition::Retry(format!("database: {e}")),
        Err(e) => Disposition::Retry(e.to_string()),
    }
}

/// SQLSTATE class 22 ("data exception"): the statement can never succeed with these values.
fn is_data_exception(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")))
}

/// Creates the next occurrence of a recurring series.
pub struct RecurrenceConsumer {
    pub tasks: TaskService,
}

impl RecurrenceConsumer {
    pub const NAME: &'static str = "mcp-server:recurring";

    pub async fn handle_envelope(&self, envelope: &Value) -> Disposition {
        consume(envelope, EventType::RecurringScheduled, |data: RecurringScheduled, id| async move {
            let key = EventKey {
                consumer: Self::NAME,
                event_id: &id,
            };
            if let Some(task) = self.tasks.create_occurrence(&data, key, now()).await? {
                tracing::info!(task = %task.id, due = ?task.due, "created the next occurrence of a series");
            }
            Ok(())
        })
        .await
    }
}

impl Subscriber for RecurrenceConsumer {
    fn topics(&self) -> &[&'static str] {
        &[TOPIC_TASKS]
    }

    fn handle<'a>(&'a self, _topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition> {
        self.handle_envelope(envelope).boxed()
    }
}

/// Keeps reminder notifications and pushes them to connected clients.
pub struct NotificationConsumer {
    pub notifications: NotificationService,
}

impl NotificationConsumer {
    pub const NAME: &'static str = "mcp-server:notifications";

    pub async fn handle_envelope(&self, envelope: &Value) -> Disposition {
        consume(
            envelope,
            EventType::ReminderTriggered,
            |data: ReminderTriggered, id| async move {
                let key = EventKey {
                    consumer: Self::NAME,
                    event_id: &id,
                };
                self.notifications
                    .record_triggered(&data, key, now())
                    .await
                    .map(drop)
            },
        )
        .await
    }
}

impl Subscriber for NotificationConsumer {
    fn topics(&self) -> &[&'static str] {
        &[TOPIC_NOTIFICATIONS]
    }

    fn handle<'a>(&'a self, _topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition> {
        self.handle_envelope(envelope).boxed()
    }
}

/// Replays the schedule when the scheduler asks.
pub struct ResyncConsumer {
    pub resync: ResyncService,
}

impl ResyncConsumer {
    pub const NAME: &'static str = "mcp-server:resync";

    pub async fn handle_envelope(&self, envelope: &Value) -> Disposition {
        consume(
            envelope,
            EventType::ResyncRequested,
            |data: ResyncRequested, id| async move {
                let key = EventKey {
                    consumer: Self::NAME,
                    event_id: &id,
                };
                self.resync
                    .handle_request(&data, key, now())
                    .await
                    .map(drop)
            },
        )
        .await
    }
}

impl Subscriber for ResyncConsumer {
    fn topics(&self) -> &[&'static str] {
        &[TOPIC_TASKS]
    }

    fn handle<'a>(&'a self, _topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition> {
        self.handle_envelope(envelope).boxed()
    }
}

/// The server's consumers, built once and served by Dapr's app port or the in-process bus.
pub struct Consumers {
    pub recurrence: Arc<RecurrenceConsumer>,
    pub notifications: Arc<NotificationConsumer>,
    pub resync: Arc<ResyncConsumer>,
}

impl Consumers {
    pub fn new(tasks: TaskService, notifications: NotificationService) -> Self {
        let resync = ResyncService::new(tasks.db().clone(), tasks.events_committed());
        Self {
            recurrence: Arc::new(RecurrenceConsumer { tasks }),
            notifications: Arc::new(NotificationConsumer { notifications }),
            resync: Arc::new(ResyncConsumer { resync }),
        }
    }

    /// The consumers as subscribers of the in-process bus.
    pub fn subscribers(&self) -> Vec<Arc<dyn Subscriber>> {
        vec![
            self.recurrence.clone(),
            self.notifications.clone(),
            self.resync.clone(),
        ]
    }
}
