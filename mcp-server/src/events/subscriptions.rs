//! The Dapr-facing app port: the subscription list and the event routes.
//!
//! It listens apart from the public `/mcp` listener (Dapr reaches it on localhost inside the pod)
//! and, when `APP_API_TOKEN` is set, only answers requests carrying it in `dapr-api-token`, which
//! is how the sidecar authenticates itself to the app.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use todo_shared::events::{EventType, TOPIC_NOTIFICATIONS, TOPIC_TASKS};

use super::bus::Disposition;
use super::consumers::{NotificationConsumer, RecurrenceConsumer};
use super::sink::PUBSUB_NAME;

/// Where Dapr sends events that no subscriber can process.
pub const DEAD_LETTER_TOPIC: &str = "deadletter";

/// The consumers the app port serves.
pub struct Consumers {
    pub recurrence: RecurrenceConsumer,
    pub notifications: NotificationConsumer,
}

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
    match api_token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_app_token,
        )),
        None => routes,
    }
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

/// Dapr's subscriber protocol: 200 with a status of SUCCESS, RETRY or DROP.
fn answer(disposition: Disposition) -> Response {
    let status = match &disposition {
        Disposition::Success => "SUCCESS",
        Disposition::Retry(reason) => {
            tracing::warn!(%reason, "event processing failed; asking Dapr to retry");
            "RETRY"
        }
        Disposition::Drop(reason) => {
            tracing::error!(%reason, "dropping an event that cannot be processed");
            "DROP"
        }
    };
    (StatusCode::OK, Json(json!({ "status": status }))).into_response()
}

async fn recurring(State(c): State<Arc<Consumers>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(envelope) => answer(c.recurrence.handle_envelope(&envelope).await),
        Err(e) => answer(Disposition::Drop(format!("the body is not JSON: {e}"))),
    }
}

async fn notifications(State(c): State<Arc<Consumers>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(envelope) => answer(c.notifications.handle_envelope(&envelope).await),
        Err(e) => answer(Disposition::Drop(format!("the body is not JSON: {e}"))),
    }
}

/// Admits only the sidecar: requests must carry `APP_API_TOKEN` as `dapr-api-token`.
async fn require_app_token(
    State(token): State<Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get("dapr-api-token")
        .map(|v| v.as_bytes());
    if given.is_some_and(|g| constant_time_eq(g, token.as_bytes())) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong dapr-api-token").into_response()
    }
}

/// Compares without an early exit, so response timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
