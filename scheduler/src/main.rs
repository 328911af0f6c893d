use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let telemetry = todo_dapr::telemetry::init("todo-scheduler", "info");
    let config = todo_scheduler::config::Config::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            todo_dapr::shutdown::shutdown_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });
    let outcome = todo_scheduler::startup::run(config, shutdown).await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
