//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

/// How MCP clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// One client over standard input/output (Claude Desktop and other local clients).
    Stdio,
    /// Streamable HTTP at /mcp, for many clients; requires bearer tokens.
    Http,
}

/// Where lifecycle events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventMode {
    /// Dapr when a sidecar announces itself (`DAPR_GRPC_PORT`), else embedded.
    Auto,
    /// Dapr pub/sub through the sidecar; waits for it at start-up.
    Dapr,
    /// In-process subscribers only; no sidecar.
    Embedded,
}

/// A task manager for AI assistants, served over the Model Context Protocol.
///
/// With no options it stores tasks in a SQLite file in your data directory and talks MCP over
/// stdio, which is what Claude Desktop expects.
#[derive(Debug, Clone, Parser)]
#[command(name = "todo-mcp", version, about, long_about)]
pub struct Config {
    /// Transport to serve MCP on.
    #[arg(long, env = "TODO_TRANSPORT", value_enum, default_value_t = Transport::Stdio)]
    pub transport: Transport,

    /// Address for the HTTP transport to listen on.
    #[arg(long, env = "TODO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database: `postgres://user:pass@host/db` or `sqlite:///path/to/file.db`.
    /// Default: a SQLite file in the user's data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Tasks one user may hold, in any state.
    #[arg(long, env = "TODO_TASKS_PER_USER", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks_per_user: u32,

    /// Recurring series one user may have going at once.
    #[arg(long, env = "TODO_SERIES_PER_USER", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub series_per_user: u32,

    /// Reminders one user may have, on all their tasks.
    #[arg(long, env = "TODO_REMINDERS_PER_USER", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reminders_per_user: u32,

    /// The shortest interval, in minutes, a cron recurrence may leave between two occurrences
    /// (each occurrence is a new task).
    #[arg(long, env = "TODO_MIN_RECURRENCE_MINUTES", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub min_recurrence_minutes: u32,

    /// Requests per second one user may make to `/mcp`, sustained (0: no limit); past it,
    /// HTTP 429 with Retry-After.
    #[arg(long, env = "TODO_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Requests one user may make at once above the sustained rate.
    #[arg(long, env = "TODO_RATE_LIMIT_BURST", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Requests of one user in progress at once on `/mcp` (each may hold a database
    /// connection); more wait up to a second, then get HTTP 429. Default: half of
    /// --db-max-connections (one user always leaves the other half to the rest), at most the
    /// machine's cores.
    #[arg(long, env = "TODO_REQUESTS_IN_FLIGHT_PER_USER",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_in_flight_per_user: Option<u32>,

    /// Largest number of database connections.
    #[arg(long, env = "TODO_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// The user tasks belong to in stdio mode. Default: the OS user name.
    #[arg(long, env = "TODO_USER")]
    pub user: Option<String>,

    /// HS256 secret (at least 32 bytes) that signs the bearer tokens the HTTP transport accepts
    /// when no identity provider is set (TODO_AUTH_ISSUER). Prefer the environment variable:
    /// command lines are visible to other local users.
    #[arg(long, env = "TODO_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Required `aud` claim of bearer tokens, if any.
    #[arg(long, env = "TODO_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim of bearer tokens, if any.
    #[arg(long, env = "TODO_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The OAuth 2.1 authorization server whose access tokens the HTTP transport accepts: its
    /// issuer identifier, exactly as its metadata names it. Setting it selects this mode instead
    /// of the shared secret (`TODO_JWT_SECRET`); TODO_RESOURCE_URL is then required.
    #[arg(long, env = "TODO_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// The canonical URI of this server's `/mcp` endpoint as clients reach it (e.g.
    /// `https://todo.example.com/mcp`): the audience an access token must name (RFC 8707).
    #[arg(long, env = "TODO_RESOURCE_URL")]
    pub resource_url: Option<String>,

    /// The scope that lets a token use the read-only tools.
    #[arg(long, env = "TODO_AUTH_READ_SCOPE", default_value = "tasks:read")]
    pub auth_read_scope: String,

    /// The scope that lets a token use the tools that change tasks, reminders and settings.
    #[arg(long, env = "TODO_AUTH_WRITE_SCOPE", default_value = "tasks:write")]
    pub auth_write_scope: String,

    /// Seconds the issuer's signing keys are used before they are fetched again: a key the
    /// issuer removes is refused at most this long after. A new key is fetched at once.
    #[arg(long, env = "TODO_AUTH_JWKS_MAX_AGE_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_jwks_max_age_seconds: u32,

    /// The issuer's token introspection endpoint (RFC 7662), for opaque access tokens, when its
    /// metadata names none or another should be used.
    #[arg(long, env = "TODO_AUTH_INTROSPECTION_URL")]
    pub auth_introspection_url: Option<String>,

    /// The client id this server introspects tokens as; its secret is the
    /// `introspection-client-secret` secret (env TODO_AUTH_INTROSPECTION_CLIENT_SECRET).
    #[arg(long, env = "TODO_AUTH_INTROSPECTION_CLIENT_ID")]
    pub auth_introspection_client_id: Option<String>,

    /// The introspection client's secret, when there is no secret store.
    #[arg(
        long,
        env = "TODO_AUTH_INTROSPECTION_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub auth_introspection_client_secret: Option<String>,

    /// Accepts an `http:` issuer on another machine (a private network); tokens and keys then
    /// travel unprotected.
    #[arg(long, env = "TODO_AUTH_ALLOW_HTTP_ISSUER")]
    pub auth_allow_http_issuer: bool,

    /// Host header values the HTTP transport answers (DNS-rebinding protection), comma-separated;
    /// a name without a port matches any port.
    #[arg(
        long,
        env = "TODO_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,

    /// Origin header values accepted from browsers, comma-separated (`*` as the port matches any
    /// port). Requests without an Origin header, as sent by non-browser clients, are accepted.
    #[arg(
        long,
        env = "TODO_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"
    )]
    pub allowed_origins: Vec<String>,

    /// Where events go: `auto`, `dapr` or `embedded`.
    #[arg(long, env = "TODO_EVENTS", value_enum, default_value_t = EventMode::Auto)]
    pub events: EventMode,

    /// Address of the Dapr-facing app port (subscriptions), served only with a sidecar. Its port
    /// is the sidecar's `--app-port`.
    #[arg(long, env = "TODO_APP_LISTEN", default_value = "127.0.0.1:8081")]
    pub app_listen: SocketAddr,

    /// Token the sidecar must present on the app port (`dapr-api-token`). Required with a
    /// sidecar, unless `--insecure-no-app-token`.
    #[arg(long, env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<String>,

    /// Serves the app port without `APP_API_TOKEN`: it then answers anyone who reaches it.
    #[arg(long, env = "TODO_INSECURE_NO_APP_TOKEN")]
    pub insecure_no_app_token: bool,

    /// The Dapr secret store holding `jwt-secret` and `database-url`.
    #[arg(long, env = "TODO_SECRET_STORE", default_value = "secretstore")]
    pub secret_store: String,

    /// A secret in that store holding both `jwt-secret` and `database-url` as keys (as a
    /// Kubernetes Secret does). Unset: each is a secret of its own, named by its key.
    #[arg(long, env = "TODO_SECRET_NAME")]
    pub secret_name: Option<String>,

    /// Hours that published events stay in the outbox before they are pruned.
    #[arg(long, env = "TODO_OUTBOX_RETENTION_HOURS", default_value_t = 24)]
    pub outbox_retention_hours: u32,

    /// Hours that the ids of processed events are kept, against redeliveries.
    #[arg(long, env = "TODO_PROCESSED_RETENTION_HOURS", default_value_t = 24)]
    pub processed_retention_hours: u32,

    /// Days that notifications are kept, read or not.
    #[arg(long, env = "TODO_NOTIFICATION_RETENTION_DAYS", default_value_t = 30)]
    pub notification_retention_days: u32,

    /// Each user's newest notifications kept; older ones beyond this are removed.
    #[arg(long, env = "TODO_NOTIFICATIONS_PER_USER", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub notifications_per_user: u32,

    /// Failed publishing attempts after which an event moves to the dead-letter table
    /// (`todo-mcp dead-letters`); its task's later events then go on.
    #[arg(long, env = "TODO_OUTBOX_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub outbox_max_attempts: u32,

    /// Seconds a relay holds the tasks it claimed: a replica that stops answering loses them to
    /// another after this.
    #[arg(long, env = "TODO_OUTBOX_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub outbox_lease_seconds: u32,

    /// Claims the outbox relay publishes at once, each of up to 512 tasks (PostgreSQL; SQLite's
    /// one writer takes one at a time). More keep the sidecar busier while claims and settles
    /// wait for the database (`scripts/bench-pipeline.sh`: 8 relayed 16 % more than 4).
    #[arg(long, env = "TODO_OUTBOX_WORKERS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub outbox_workers: u32,

    /// Where to serve Prometheus metrics (`GET /metrics`) with the HTTP transport, apart from
    /// `/mcp`. Unset: no metrics endpoint.
    #[arg(long, env = "TODO_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Largest accepted HTTP request body, in bytes.
    #[arg(long, env = "TODO_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// An operator's command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operator commands, run against the database the server uses (same options and secrets).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Events the relay gave up on after every attempt failed: list, retry or drop them.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Replays the schedule to the scheduler: every task with pending reminders or a live series,
    /// as `com.todo.task.resynced` events through the outbox (harmless over intact state). The
    /// scheduler asks for this itself when it finds its state lost.
    Resync,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeadLetterCommand {
    /// Lists dead letters, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead letters back into the outbox, to be published again.
    Retry(Selection),
    /// Deletes dead letters for good.
    Drop(Selection),
}

/// Which dead letters: their event ids, or all of them.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// Event ids, as `list` shows them.
    pub ids: Vec<Uuid>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

impl Config {
    /// The database URL, defaulting to `todo.db` in the platform's data directory.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database_url {
            return url.clone();
        }
        let dir = dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("todo-mcp");
        format!("sqlite://{}", dir.join("todo.db").display())
    }

    /// The stdio user: `--user`, else the OS login name, else `local`.
    pub fn local_user(&self) -> String {
        self.user
            .clone()
            .or_else(|| {
                ["USER", "USERNAME", "LOGNAME"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok())
            })
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "local".to_owned())
    }
}
