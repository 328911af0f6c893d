//! Wires the engine to the sidecar and serves the app until a shutdown signal.

use std::sync::Arc;

use anyhow::Context;
use todo_dapr::DaprClient;
use todo_dapr::app::required_app_token;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, router};
use crate::config::Config;
use crate::dapr::Sidecar;
use crate::engine::{Engine, Settings};
use crate::intake::Intake;

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let token = required_app_token(config.app_api_token.clone(), config.insecure_no_app_token)?;
    let client = DaprClient::from_env()?.context(
        "DAPR_GRPC_PORT is not set: todo-scheduler runs beside a Dapr sidecar (`dapr run`, or \
         the Helm chart); without Dapr, todo-mcp runs the same scheduling in-process",
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "todo-scheduler listening for its sidecar");

    let sidecar = Sidecar {
        client: client.clone(),
        state_store: config.state_store.clone(),
    };
    let port = Arc::new(sidecar);
    let settings = Settings {
        sweep_grace: chrono::TimeDelta::seconds(i64::from(config.sweep_grace_seconds)),
        sweep_max_attempts: config.sweep_max_attempts,
        settled_ttl: std::time::Duration::from_secs(
            u64::from(config.settled_retention_hours) * 3600,
        ),
        ..Settings::default()
    };
    let engine = Engine::new(port.clone(), port.clone(), port, settings);
    let state = Arc::new(AppState {
        intake: Intake::start(engine.clone()),
        engine,
        sidecar: client,
    });
    if let Some(addr) = config.metrics_listen {
        let handle = todo_dapr::metrics::recorder()?;
        crate::engine::describe_metrics();
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on the metrics address {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = todo_dapr::metrics::serve(metrics, handle, || async {}, stop).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics endpoint failed");
            }
        });
    }
    // A state lost while the service was down is asked for at once, not at the first sweep:
    // the replay then comes before the work of the new replica.
    let (checking, sidecar_up, stop) = (
        state.engine.clone(),
        state.sidecar.clone(),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        if sidecar_up.wait_ready(&stop).await
            && let Err(e) = checking.check_epoch(chrono::Utc::now()).await
        {
            tracing::warn!(error = %e, "could not check the state's epoch at start; the sweep tries again");
        }
    });
    axum::serve(listener, router(state, token))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("the HTTP server failed")
}
