//! `todo-bench`: the load generator and report builder behind `scripts/bench.sh` (todo-mcp
//! against pgbench), `scripts/bench-fairness.sh` (one user's calls while another floods the
//! server, with the per-user fair share on and off) and `scripts/bench-pipeline.sh` (the event
//! pipeline through Dapr).
//!
//! Subcommands (each measuring one prints one JSON object on stdout, diagnostics on stderr):
//!
//! * `token`    mint an HS256 bearer token for the HTTP transport.
//! * `http`     N concurrent clients calling one tool over streamable HTTP, back to back or paced,
//!   HTTP 429 an error or counted apart as refused ([`load`]).
//! * `stdio`    spawn `todo-mcp` on stdio and time sequential calls ([`load`]).
//! * `pgbench`  run `pgbench` on the SQL a tool runs: the baseline of `http` ([`pgbench`]).
//! * `pipeline` the event pipeline's measurements: relay, scheduler, sidecar calls, memory
//!   ([`pipeline`]).
//! * `report`   turn the JSON lines of a script's run into its Markdown report ([`report`]).
//!
//! Shared by them: the MCP messages ([`mcp`], rmcp's model types), latency summaries
//! ([`latency`], an HDR histogram) and the CPU split of a measured window ([`cpu`], from
//! `/proc`).

mod cpu;
mod latency;
mod load;
mod mcp;
mod pgbench;
mod pipeline;
mod report;

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "todo-bench",
    about = "Load generator and reports for scripts/bench.sh, bench-fairness.sh and bench-pipeline.sh"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print an HS256 JWT (`sub`, `iat`, `exp`) signed with the secret.
    Token {
        /// The HS256 secret; defaults to $TODO_JWT_SECRET.
        #[arg(long, env = "TODO_JWT_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Concurrent tool calls over streamable HTTP.
    Http(load::HttpArgs),
    /// Sequential tool calls over stdio.
    Stdio(load::StdioArgs),
    /// Run pgbench with a warm-up and report its rate and the CPU split.
    Pgbench(pgbench::PgbenchArgs),
    /// Event pipeline benchmarks through Dapr (scripts/bench-pipeline.sh).
    Pipeline(pipeline::PipelineArgs),
    /// Print the report of a run from its JSON lines; fails if the run is invalid.
    Report(report::ReportArgs),
}

fn main() -> anyhow::Result<()> {
    todo_dapr::tls::install_crypto_provider();
    let print = |v: Value| println!("{v}");
    match Cli::parse().cmd {
        Cmd::Token { secret, sub, ttl } => {
            println!("{}", mint_token(&secret, &sub, ttl)?);
            Ok(())
        }
        Cmd::Http(args) => load::http(args).map(print),
        Cmd::Stdio(args) => load::stdio(args).map(print),
        Cmd::Pgbench(args) => pgbench::run(args).map(print),
        Cmd::Pipeline(args) => pipeline::run(args),
        Cmd::Report(args) => report::run(args),
    }
}

fn mint_token(secret: &str, sub: &str, ttl: u64) -> anyhow::Result<String> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({ "sub": sub, "iat": now, "exp": now + ttl });
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
