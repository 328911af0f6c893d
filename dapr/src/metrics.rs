//! The Prometheus endpoint both services serve when an operator asks for one
//! (`--metrics-listen`): the process's `metrics` recorder, rendered at `GET /metrics`.
//!
//! Code anywhere records through the `metrics` macros; until [`recorder`] installs the recorder
//! they cost nothing, which is what the embedded, stdio-only server wants. Every histogram named
//! `…_seconds` gets the latency buckets below, every `…_events` one the size buckets.

use std::future::Future;
use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// From a millisecond to half a minute: tool calls, sidecar calls, lateness.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Batch sizes, up to a relay claim's largest.
const EVENTS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];

/// The process's recorder, installed on first use (a process has one).
pub fn recorder() -> Result<PrometheusHandle, BuildError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Suffix("_events".into()), EVENTS)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Serves `GET /metrics` on `listener` until `shutdown`. `refresh` runs before each scrape, for
/// gauges read from the source then (an outbox's backlog) rather than kept up to date.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handle: PrometheusHandle,
    refresh: F,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let scrape = move || {
        let (handle, refresh) = (handle.clone(), refresh.clone());
        async move {
            refresh().await;
            handle.run_upkeep();
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
    };
    let app = Router::new().route("/metrics", get(scrape));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
