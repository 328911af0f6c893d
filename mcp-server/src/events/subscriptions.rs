//! The Dapr-facing app port: the subscription list and the event routes.
//!
//! It listens apart from the public `/mcp` listener (Dapr reaches it on localhost inside the pod)
//! and, when `APP_API_TOKEN` is set, only answers requests carrying it in `dapr-api-token`, which
//! is how the sidecar authenticates itself to the app.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use todo_dapr::app::{DEAD_LETTER_TOPIC, PUBSUB_NAME, answer, parse_body, with_app_token};
use todo_shared::events::{EventType, TOPIC_NOTIFICATIONS, TOPIC_TASKS};
use todo_shared::incoming::Disposition;

use super::consumers::Consumers;

/// Builds the app-port router; `api_token` is `APP_API_TOKEN`.
pub fn router(consumers: Arc<Consumers>, api_token: Option<String>) -> Router {
    let routes = Router::new()
        .route("/dapr/subscribe", get(subscribe))
        .route("/events/recurring", post(recurring))
        .route("/events/notifications", post(notifications))
        // Events of the subscribed topics that the server has no use for.
        .route(
            "/events/ignored",
            post(|| async { answer(Disposition::Success) }),
        )
        .with_state(consumers);
    with_app_token(routes, api_token)
}

/// The programmatic subscriptions: only the event types the server acts on are routed to it.
async fn subscribe() -> Json<Value> {
    Json(json!([
        {
            "pubsubname": PUBSUB_NAME,
            "topic": TOPIC_TASKS,
            "routes": {
                "rules": [{
                    "match": format!("event.type == \"{}\"", EventType::RecurringScheduled.as_str()),
                    "path": "/events/recurring"
                }],
                // Without a default, Dapr dead-letters every event that matches no rule.
                "default": "/events/ignored"
            },
            "deadLetterTopic": DEAD_LETTER_TOPIC
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
            "deadLetterTopic": DEAD_LETTER_TOPIC
        }
    ]))
}

async fn recurring(State(c): State<Arc<Consumers>>, body: axum::body::Bytes) -> Response {
    match parse_body(&body) {
        Ok(envelope) => answer(c.recurrence.handle_envelope(&envelope).await),
        Err(drop) => answer(drop),
    }
}

async fn notifications(State(c): State<Arc<Consumers>>, body: axum::body::Bytes) -> Response {
    match parse_body(&body) {
        Ok(envelope) => answer(c.notifications.handle_envelope(&envelope).await),
        Err(drop) => answer(drop),
    }
}
