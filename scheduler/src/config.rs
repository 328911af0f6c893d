//! Command-line and environment configuration of `todo-scheduler`.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "todo-scheduler", version, about, long_about = None)]
pub struct Config {
    /// Where the app listens for its Dapr sidecar (the sidecar's `--app-port`) and for probes.
    #[arg(long, env = "TODO_SCHEDULER_LISTEN", default_value = "127.0.0.1:8082")]
    pub listen: SocketAddr,

    /// The token the sidecar presents as `dapr-api-token`; other callers are refused. Required,
    /// unless `--insecure-no-app-token`.
    #[arg(long, env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<String>,

    /// Runs without `APP_API_TOKEN`: the app port then answers anyone who reaches it.
    #[arg(long, env = "TODO_INSECURE_NO_APP_TOKEN")]
    pub insecure_no_app_token: bool,

    /// The Dapr state store component holding reminders, series and processed event ids.
    #[arg(long, env = "TODO_STATE_STORE", default_value = "statestore")]
    pub state_store: String,

    /// How long after its time the reconciliation sweep fires an item whose job has not (jobs
    /// normally fire within milliseconds; the margin keeps the sweep from racing them).
    #[arg(long, env = "TODO_SWEEP_GRACE_SECONDS", default_value_t = 30)]
    pub sweep_grace_seconds: u32,

    /// Failed attempts after which the sweep reports an index entry as quarantined (on
    /// `/readyz` and in the metrics); it is then tried hourly until it settles.
    #[arg(long, env = "TODO_SWEEP_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sweep_max_attempts: u32,

    /// How long, in hours, the scheduler keeps what has settled: a fired reminder's record, the
    /// record of a task with nothing left to fire (deleted, completed, or past its reminders).
    /// Longer than any event can be late; a reminder more than this late is taken as fired.
    #[arg(long, env = "TODO_SETTLED_RETENTION_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub settled_retention_hours: u32,

    /// Where to serve Prometheus metrics (`GET /metrics`). Unset: no metrics endpoint.
    #[arg(long, env = "TODO_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}
