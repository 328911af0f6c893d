//! The HTTP app Dapr calls: subscriptions, job callbacks, cron triggers and probes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use todo_dapr::DaprClient;
use todo_dapr::app::{PUBSUB_NAME, bulk_subscribe, deliver, with_app_token};
use todo_shared::events::TOPIC_TASKS;

use crate::engine::Engine;
use crate::intake::Intake;

/// What the routes share.
pub struct AppState {
    pub engine: Engine,
    /// Applies the task events delivered at the same time together.
    pub intake: Intake,
    /// For `/readyz`: ready means the sidecar can reach its components.
    pub sidecar: DaprClient,
}

/// Builds the router; `api_token` ([`todo_dapr::app::required_app_token`]) is required on every
/// Dapr-facing route.
pub fn router(state: Arc<AppState>, api_token: Option<String>) -> Router {
    let dapr = Router::new()
        .route("/dapr/subscribe", get(subscribe))
        .route("/events/tasks", post(task_event))
        .route("/job/{name}", post(job))
        // Dapr probes input binding routes with OPTIONS before it delivers to them.
        .route("/triggers/reminders", post(sweep).options(probe))
        .route("/triggers/recurring", post(sweep).options(probe))
        .with_state(state.clone());
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state);
    with_app_token(dapr, api_token).merge(probes)
}

async fn subscribe() -> Json<Value> {
    Json(json!([{
        "pubsubname": PUBSUB_NAME,
        "topic": TOPIC_TASKS,
        "route": "/events/tasks",
        // What cannot be processed is dead-lettered by `deliver`, not by the sidecar.
        "bulkSubscribe": bulk_subscribe()
    }]))
}

async fn task_event(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    deliver(&body, Some(&state.sidecar), |envelope| {
        state.intake.handle(envelope)
    })
    .await
}

/// A due job. An error status makes the Dapr scheduler service call again a second later.
async fn job(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.engine.fire_job(&name, Utc::now()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(job = %name, error = %e, "a job failed; the Dapr scheduler retries it");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// Both cron bindings run the same sweep: it covers reminders and series alike, and running it
/// twice is harmless.
async fn sweep(State(state): State<Arc<AppState>>) -> Response {
    match state.engine.sweep(Utc::now()).await {
        Ok(report) => {
            tracing::debug!(?report, "sweep done");
            (StatusCode::OK, Json(json!({ "checked": report.checked, "fired": report.fired, "failed": report.failed }))).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "the sweep failed; the next trigger tries again");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

async fn probe() -> StatusCode {
    StatusCode::OK
}

/// Ready: the sidecar can reach its components. The sweep's failing and quarantined entries
/// are reported beside it (they need an operator, not a restart).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if !state.sidecar.ready().await {
        let body = json!({ "status": "unavailable", "sidecar": "not ready" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let sweep = tokio::time::timeout(Duration::from_secs(2), state.engine.failing_report()).await;
    let sweep = match sweep {
        Ok(Ok(report)) => json!(report),
        Ok(Err(e)) => json!({ "error": e.to_string() }),
        Err(_) => json!({ "error": "timed out reading the sweep's state" }),
    };
    let body = json!({ "status": "ready", "sidecar": "ok", "sweep": sweep });
    (StatusCode::OK, Json(body)).into_response()
}
