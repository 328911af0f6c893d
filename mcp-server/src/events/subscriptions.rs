//! The Dapr-facing app port: the subscription list and the event routes.
//!
//! It listens apart from the public `/mcp` listener (Dapr reaches it on localhost inside the pod)
//! and, when `APP_API_TOKEN` is set, only answers requests carrying it in `dapr-api-token`, which
//! is how the sidecar authenticates itself to the app.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use todo_dapr::DaprClient;
use todo_dapr::app::{PUBSUB_NAME, bulk_subscribe, deliver, with_app_token};
use todo_shared::events::{EventType, TOPIC_NOTIFICATIONS, TOPIC_TASKS};
use todo_shared::incoming::Disposition;

use super::consumers::Consumers;

/// What the event routes share.
struct App {
    consumers: Consumers,
    /// Where the events that can never be processed are dead-lettered.
    sidecar: DaprClient,
}

/// Builds the app-port router; `api_token` ([`todo_dapr::app::required_app_token`]) is
/// required on every route.
pub fn router(consumers: Consumers, sidecar: DaprClient, api_token: Option<String>) -> Router {
    let routes = Router::new()
        .route("/dapr/subscribe", get(subscribe))
        .route("/events/recurring", post(recurring))
        .route("/events/notifications", post(notifications))
        .route("/events/resync", post(resync))
        .route("/events/ignored", post(ignored))
        .with_state(Arc::new(App { consumers, sidecar }));
    with_app_token(routes, api_token)
}

/// The programmatic subscriptions: only the event types the server acts on are routed to it.
/// What cannot be processed is dead-lettered by `deliver`, not by the sidecar (see
/// `todo_dapr::app`).
async fn subscribe() -> Json<Value> {
    Json(json!([
        {
            "pubsubname": PUBSUB_NAME,
            "topic": TOPIC_TASKS,
            "routes": {
                "rules": [
                    {
                        "match": format!("event.type == \"{}\"", EventType::RecurringScheduled.as_str()),
                        "path": "/events/recurring"
                    },
                    {
                        "match": format!("event.type == \"{}\"", EventType::ResyncRequested.as_str()),
                        "path": "/events/resync"
                    }
                ],
                // Without a default, Dapr treats every event that matches no rule as one that
                // cannot be delivered.
                "default": "/events/ignored"
            },
            "bulkSubscribe": bulk_subscribe()
        },
        {
            "pubsubname": PUBSUB_NAME,
            "topic": TOPIC_NOTIFICATIONS,
            "routes": {
                "rules": [{
                    "match": format!("event.type == \"{}\"", EventType::ReminderTriggered.as_str()),
                    "path": "/events/notifications"
                }],
                "default": "/events/ignored"
            },
            "bulkSubscribe": bulk_subscribe()
        }
    ]))
}

async fn recurring(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let recurrence = &app.consumers.recurrence;
    deliver(&body, Some(&app.sidecar), |envelope| async move {
        recurrence.handle_envelope(&envelope).await
    })
    .await
}

async fn notifications(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let notifications = &app.consumers.notifications;
    deliver(&body, Some(&app.sidecar), |envelope| async move {
        notifications.handle_envelope(&envelope).await
    })
    .await
}

async fn resync(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let resync = &app.consumers.resync;
    deliver(&body, Some(&app.sidecar), |envelope| async move {
        resync.handle_envelope(&envelope).await
    })
    .await
}

/// Events of the subscribed topics that the server has no use for.
async fn ignored(body: Bytes) -> Response {
    deliver(&body, None, |_| async { Disposition::Success }).await
}
