//! The app side of the Dapr protocol, for the axum routers both services serve to their sidecar:
//! the `dapr-api-token` check and the pub/sub subscriber's answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use todo_shared::incoming::Disposition;

/// Where Dapr sends events that no subscriber can process.
pub const DEAD_LETTER_TOPIC: &str = "deadletter";

/// The Dapr pub/sub component both services use (see `components/pubsub.yaml`).
pub const PUBSUB_NAME: &str = "pubsub";

/// Dapr's subscriber protocol: 200 with a status of SUCCESS, RETRY or DROP. Failures are logged
/// here, with their cause, so that a retry loop or a dead letter can be diagnosed.
pub fn answer(disposition: Disposition) -> Response {
    metrics::counter!("todo_events_consumed_total", "status" => disposition.status()).increment(1);
    match &disposition {
        Disposition::Success => {}
        Disposition::Retry(reason) => {
            tracing::warn!(%reason, "event processing failed; asking Dapr to retry");
        }
        Disposition::Drop(reason) => {
            tracing::error!(%reason, "dropping an event that cannot be processed");
        }
    }
    (
        StatusCode::OK,
        Json(json!({ "status": disposition.status() })),
    )
        .into_response()
}

/// Parses a delivered event body; a body that is not JSON can never be processed.
pub fn parse_body(body: &[u8]) -> Result<Value, Disposition> {
    serde_json::from_slice(body)
        .map_err(|e| Disposition::Drop(format!("the body is not JSON: {e}")))
}

/// Wraps `routes` so that, when `APP_API_TOKEN` is set, only the sidecar (which sends it as
/// `dapr-api-token`) is answered.
pub fn with_app_token(routes: Router, api_token: Option<String>) -> Router {
    match api_token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_app_token,
        )),
        None => routes,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
