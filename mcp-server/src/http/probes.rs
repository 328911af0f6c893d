//! The probes: `/healthz` (alive) and `/readyz` (the database answers).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use serde_json::json;
use todo_shared::time::now;

use crate::store::{Db, outbox};

/// Alive: the process serves HTTP.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready: the database answers. The outbox backlog is reported beside it: a growing backlog
/// means events are not getting out, which the relay's logs explain.
pub async fn readyz(State(db): State<Db>) -> impl IntoResponse {
    let check = async {
        db.ping().await?;
        outbox::backlog(&db, now()).await
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(outbox)) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok", "outbox": outbox })),
        ),
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::warn!(%reason, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
