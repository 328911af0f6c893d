//! `todo-bench`: the load generator and report builder behind `scripts/bench.sh`.
//!
//! Subcommands (each prints one JSON object on stdout, diagnostics on stderr):
//!
//! * `token`   mint an HS256 bearer token for the HTTP transport.
//! * `http`    N concurrent clients calling one tool over streamable HTTP, back to back, each on
//!   its own keep-alive connection (`--duration` or `--calls`); latency percentiles and rate.
//! * `stdio`   spawn `todo-mcp` on stdio, initialise, and time sequential calls.
//! * `pgbench` run `pgbench` (warm-up run, then the measured run) and parse its rate.
//! * `report`  turn the JSON lines of a run into the results table (stdout and Markdown).
//! * `sql-check` compare the pgbench scripts with the statements the server logged.
//!
//! `http` and `pgbench` also sample CPU time (from `/proc`) over the measured window: the server
//! process, every `postgres` process, the load generator itself, and the machine total, so that a
//! run says where the cores went.

mod cpu;
mod json;
mod pipeline;
mod report;
mod sqlcheck;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cpu::CpuSnapshot;

/// The MCP protocol version the load generator speaks.
const PROTOCOL_VERSION: &str = "2025-11-25";

#[derive(Parser)]
#[command(
    name = "todo-bench",
    about = "Load generator for todo-mcp (see scripts/bench.sh)"
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
    Http(HttpArgs),
    /// Sequential tool calls over stdio.
    Stdio(StdioArgs),
    /// Run pgbench with a warm-up and report its rate and the CPU split.
    Pgbench(PgbenchArgs),
    /// Print the results table from the JSON lines of a run.
    Report(report::ReportArgs),
    /// Check the pgbench scripts against the statements the server logged.
    SqlCheck(sqlcheck::SqlCheckArgs),
    /// Event pipeline benchmarks through Dapr (scripts/bench-pipeline.sh).
    Pipeline(pipeline::PipelineArgs),
}

/// What to call and how often.
#[derive(Args, Clone)]
struct CallArgs {
    /// Tool name, e.g. `add_task` or `list_tasks`.
    #[arg(long)]
    tool: String,
    /// Tool arguments as a JSON object; `{n}` in it is replaced by a per-call counter.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Measure for this many seconds (ignored with --calls).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Measure exactly this many calls instead of a duration.
    #[arg(long)]
    calls: Option<u64>,
    /// Unmeasured seconds before measuring (duration mode).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Unmeasured calls before measuring (calls mode).
    #[arg(long, default_value_t = 0)]
    warmup_calls: u64,
    /// Free-form label copied into the result.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
struct HttpArgs {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp.
    #[arg(long)]
    url: String,
    /// Bearer token (see `token`); defaults to $BENCH_TOKEN. Several, separated by commas, are
    /// handed out to the clients in turn (client i calls as token i mod n: one user each).
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Concurrent clients, each with one keep-alive connection.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Runtime worker threads; default min(clients, 2), like `pgbench -j`.
    #[arg(long)]
    threads: Option<usize>,
    /// PID of the server, for the CPU split.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    call: CallArgs,
}

#[derive(Args)]
struct StdioArgs {
    /// The `todo-mcp` binary.
    #[arg(long)]
    bin: PathBuf,
    #[arg(long)]
    database_url: String,
    /// `--user` for the server: whose tasks the calls see.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Where the server's stderr (its log) goes; default: discarded.
    #[arg(long)]
    log: Option<PathBuf>,
    #[command(flatten)]
    call: CallArgs,
    /// Further server arguments, after `--`.
    #[arg(last = true)]
    server_args: Vec<String>,
}

#[derive(Args)]
struct PgbenchArgs {
    /// The pgbench binary.
    #[arg(long, default_value = "pgbench")]
    pgbench: PathBuf,
    /// The tool the script mirrors (for the report).
    #[arg(long)]
    tool: String,
    /// The script file.
    #[arg(long)]
    script: PathBuf,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// PID of the (idle) server, so that the CPU split accounts for it.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Further pgbench arguments (connection options, -D variables), after `--`.
    #[arg(last = true)]
    extra: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Token { secret, sub, ttl } => {
            println!("{}", mint_token(&secret, &sub, ttl)?);
            Ok(())
        }
        Cmd::Http(args) => {
            let threads = args.threads.unwrap_or(args.clients.clamp(1, 2));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?;
            let out = rt.block_on(run_http(args, threads))?;
            println!("{out}");
            Ok(())
        }
        Cmd::Stdio(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let out = rt.block_on(run_stdio(args))?;
            println!("{out}");
            Ok(())
        }
        Cmd::Pgbench(args) => {
            println!("{}", run_pgbench(args)?);
            Ok(())
        }
        Cmd::Report(args) => report::run(args),
        Cmd::SqlCheck(args) => sqlcheck::run(args),
        Cmd::Pipeline(args) => pipeline::run(args),
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

/// A tool-call body template: the JSON-RPC request with `{n}` spots for the counter.
struct BodyTemplate {
    parts: Vec<String>,
}

impl BodyTemplate {
    fn new(tool: &str, args: &str) -> anyhow::Result<Self> {
        // Validate the arguments with a sample counter value; keep the raw text so that `{n}`
        // can sit inside strings.
        let sample: Value = serde_json::from_str(&args.replace("{n}", "0"))
            .context("--args must be a JSON object")?;
        if !sample.is_object() {
            bail!("--args must be a JSON object");
        }
        let tool = serde_json::to_string(tool)?;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{{id}},"method":"tools/call","params":{{"name":{tool},"arguments":{args}}}}}"#
        );
        // `{id}` and `{n}` both take the counter: one split on either marker.
        let body = body.replace("{id}", "{n}");
        Ok(Self {
            parts: body.split("{n}").map(str::to_owned).collect(),
        })
    }

    fn render(&self, n: u64) -> String {
        let n = n.to_string();
        self.parts.join(&n)
    }
}

/// The parts of a JSON-RPC response the benchmark checks.
#[derive(Deserialize)]
struct RpcResponse {
    id: Option<Value>,
    result: Option<CallResult>,
    error: Option<Value>,
    #[serde(default)]
    method: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct CallResult {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    content: IgnoredAny,
}

/// Why a call did not count as a success.
#[derive(Debug)]
enum CallError {
    /// Transport problem: the connection is reset before the next call.
    Io(String),
    /// The server answered, but not with `isError: false`.
    Rejected(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "transport: {e}"),
            CallError::Rejected(e) => write!(f, "rejected: {e}"),
        }
    }
}

/// Checks a response body, which is either plain JSON or SSE with `data:` lines.
fn check_body(body: &[u8], want_id: u64) -> Result<(), CallError> {
    let text =
        std::str::from_utf8(body).map_err(|_| CallError::Rejected("non-UTF-8 body".into()))?;
    let trimmed = text.trim_start();
    let candidates: Vec<&str> = if trimmed.starts_with('{') {
        vec![trimmed]
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect()
    };
    for data in candidates {
        let Ok(msg) = serde_json::from_str::<RpcResponse>(data) else {
            continue;
        };
        if msg.method.is_some() {
            continue; // a notification or request from the server
        }
        if msg.id.as_ref().and_then(Value::as_u64) != Some(want_id) {
            continue;
        }
        if let Some(e) = msg.error {
            return Err(CallError::Rejected(format!("JSON-RPC error {e}")));
        }
        return match msg.result {
            Some(CallResult {
                is_error: Some(false),
                ..
            }) => Ok(()),
            Some(_) => Err(CallError::Rejected(format!(
                "tool result is not isError:false: {}",
                truncate(data, 400)
            ))),
            None => Err(CallError::Rejected("response without result".into())),
        };
    }
    Err(CallError::Rejected(format!(
        "no response with id {want_id} in body: {}",
        truncate(text, 400)
    )))
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_owned()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// Latency samples in nanoseconds and the counts of one client.
#[derive(Default)]
struct Stats {
    lat_ns: Vec<u64>,
    /// Successful calls, warm-up included.
    all_ok: u64,
    errors: u64,
    reconnects: u64,
    first_error: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.lat_ns.extend(other.lat_ns);
        self.all_ok += other.all_ok;
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1e6
}

/// The JSON summary of a measured window.
fn summary(
    transport: &str,
    call: &CallArgs,
    clients: usize,
    mut stats: Stats,
    elapsed: Duration,
) -> Value {
    stats.lat_ns.sort_unstable();
    let ok = stats.lat_ns.len() as u64;
    let secs = elapsed.as_secs_f64();
    let mean = if ok == 0 {
        0.0
    } else {
        stats.lat_ns.iter().sum::<u64>() as f64 / ok as f64 / 1e6
    };
    json!({
        "kind": transport,
        "tool": call.tool,
        "label": call.label,
        "clients": clients,
        "calls": ok + stats.errors,
        "ok": ok,
        "all_ok": stats.all_ok,
        "errors": stats.errors,
        "first_error": stats.first_error,
        "reconnects": stats.reconnects,
        "seconds": secs,
        "rate": if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        "mean_ms": mean,
        "p50_ms": percentile(&stats.lat_ns, 50.0),
        "p90_ms": percentile(&stats.lat_ns, 90.0),
        "p99_ms": percentile(&stats.lat_ns, 99.0),
        "max_ms": stats.lat_ns.last().map_or(0.0, |&v| v as f64 / 1e6),
    })
}

/// One HTTP/1.1 keep-alive connection to the server.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("todo-bench: connection ended: {e}");
        }
    });
    Ok(Conn { sender })
}

/// What every client of an HTTP run shares.
struct HttpTarget {
    addr: SocketAddr,
    authority: String,
    path: String,
    /// `Bearer <token>` for each token given; client i uses entry i mod n.
    auths: Vec<String>,
    body: BodyTemplate,
}

impl HttpTarget {
    fn parse(url: &str, token: &str, call: &CallArgs) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().context("--url")?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must be http://host:port/path");
        }
        let authority = uri.authority().context("--url has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let host = uri.host().context("--url has no host")?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
            .next()
            .context("cannot resolve --url host")?;
        Ok(Self {
            addr,
            authority,
            path: uri.path().to_owned(),
            auths: token
                .split(',')
                .map(|t| format!("Bearer {}", t.trim()))
                .collect(),
            body: BodyTemplate::new(&call.tool, &call.args)?,
        })
    }

    async fn call(&self, conn: &mut Conn, client: u64, n: u64) -> Result<(), CallError> {
        let auth = &self.auths[(client % self.auths.len() as u64) as usize];
        let req = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(Full::new(Bytes::from(self.body.render(n))))
            .map_err(|e| CallError::Io(e.to_string()))?;
        conn.sender
            .ready()
            .await
            .map_err(|e| CallError::Io(format!("connection not ready: {e}")))?;
        let resp = conn
            .sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Io(format!("request failed: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Io(format!("reading the body: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(CallError::Rejected(format!(
                "HTTP {status}: {}",
                truncate(&String::from_utf8_lossy(&body), 300)
            )));
        }
        check_body(&body, n)
    }
}

/// When clients stop, and whether a call is measured.
struct Phase {
    /// Set once the warm-up is over; calls that start after it are measured.
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Calls mode: calls still to start (warm-up plus measured).
    remaining: Option<AtomicU64>,
    /// Calls mode: warm-up calls still to start.
    warmup_remaining: AtomicU64,
}

impl Phase {
    /// Claims the next call; `None` when the run is over. `Some(measured)` otherwise.
    fn next(&self) -> Option<bool> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(rem) = &self.remaining {
            rem.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .ok()?;
            let warm = self
                .warmup_remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .is_ok();
            return Some(!warm);
        }
        Some(self.measuring.load(Ordering::Relaxed))
    }

    /// Whether a call that just completed counts: in calls mode, whether it was claimed as a
    /// measured call; in duration mode, whether it completed inside the measured window (the
    /// rate is completions per second of the window, as with `pgbench -T`).
    fn counts(&self, claimed_measured: bool) -> bool {
        if self.remaining.is_some() {
            claimed_measured
        } else {
            self.measuring.load(Ordering::Relaxed) && !self.stop.load(Ordering::Relaxed)
        }
    }
}

async fn http_client(
    target: Arc<HttpTarget>,
    phase: Arc<Phase>,
    client: u64,
    counter: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    while let Some(measured) = phase.next() {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(target.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.error(format!("client {client}: connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let start = Instant::now();
        let outcome = target.call(c, client, n).await;
        let took = start.elapsed();
        if outcome.is_ok() {
            stats.all_ok += 1;
        }
        match outcome {
            Ok(()) if phase.counts(measured) => stats.lat_ns.push(took.as_nanos() as u64),
            Ok(()) => {}
            Err(e) => {
                // Errors count in warm-up too: any error invalidates the run.
                if let CallError::Io(_) = e {
                    conn = None;
                    stats.reconnects += 1;
                }
                stats.error(format!("client {client}: {e}"));
            }
        }
    }
    stats
}

async fn run_http(args: HttpArgs, threads: usize) -> anyhow::Result<Value> {
    let call = args.call.clone();
    let target = Arc::new(HttpTarget::parse(&args.url, &args.token, &call)?);
    let phase = Arc::new(Phase {
        measuring: AtomicBool::new(call.warmup <= 0.0),
        stop: AtomicBool::new(false),
        remaining: call.calls.map(|c| AtomicU64::new(c + call.warmup_calls)),
        warmup_remaining: AtomicU64::new(call.warmup_calls),
    });
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for client in 0..args.clients {
        handles.push(tokio::spawn(http_client(
            target.clone(),
            phase.clone(),
            client as u64,
            counter.clone(),
        )));
    }

    let (start, cpu_start, elapsed, cpu_end, stats);
    if call.calls.is_none() {
        if call.warmup > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(call.warmup)).await;
            phase.measuring.store(true, Ordering::Relaxed);
        }
        start = Instant::now();
        cpu_start = CpuSnapshot::take(args.server_pid);
        tokio::time::sleep(Duration::from_secs_f64(call.duration)).await;
        phase.stop.store(true, Ordering::Relaxed);
        elapsed = start.elapsed();
        cpu_end = CpuSnapshot::take(args.server_pid);
        let mut all = Stats::default();
        for h in handles {
            all.merge(h.await?);
        }
        stats = all;
    } else {
        // Calls mode: the window is from the first measured call to the last; the warm-up is
        // short, so the window starts when the warm-up calls have all been claimed.
        while phase.warmup_remaining.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start = Instant::now();
        cpu_start = CpuSnapshot::take(args.server_pid);
        let mut all = Stats::default();
        for h in handles {
            all.merge(h.await?);
        }
        elapsed = start.elapsed();
        cpu_end = CpuSnapshot::take(args.server_pid);
        stats = all;
    }
    let mut out = summary("http", &call, args.clients, stats, elapsed);
    out["threads"] = json!(threads);
    out["cpu"] = cpu::split(&cpu_start, &cpu_end);
    Ok(out)
}

async fn run_stdio(args: StdioArgs) -> anyhow::Result<Value> {
    let call = args.call.clone();
    let template = BodyTemplate::new(&call.tool, &call.args)?;
    let mut child = tokio::process::Command::new(&args.bin)
        .arg("--transport")
        .arg("stdio")
        .arg("--database-url")
        .arg(&args.database_url)
        .arg("--user")
        .arg(&args.user)
        .args(&args.server_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(match &args.log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Stdio::null(),
        })
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", args.bin.display()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();

    // Handshake (id 0).
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "todo-bench", "version": env!("CARGO_PKG_VERSION") }
        }
    });
    stdin.write_all(format!("{init}\n").as_bytes()).await?;
    stdin.flush().await?;
    let reply = read_response(&mut lines, 0)
        .await
        .context("no initialize response")?;
    let v: Value = serde_json::from_str(&reply)?;
    if v.get("result").is_none() {
        bail!("initialize failed: {reply}");
    }
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    stdin
        .write_all(format!("{initialized}\n").as_bytes())
        .await?;
    stdin.flush().await?;

    let total = call.calls.unwrap_or(1000) + call.warmup_calls;
    let mut stats = Stats::default();
    let mut start = Instant::now();
    for n in 1..=total {
        if n == call.warmup_calls + 1 {
            start = Instant::now();
        }
        let mut line = template.render(n);
        line.push('\n');
        let t0 = Instant::now();
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await?;
        let reply = read_response(&mut lines, n).await?;
        let took = t0.elapsed();
        let checked = check_body(reply.as_bytes(), n);
        if checked.is_ok() {
            stats.all_ok += 1;
        }
        match checked {
            Ok(()) if n > call.warmup_calls => stats.lat_ns.push(took.as_nanos() as u64),
            Ok(()) => {}
            Err(e) => stats.error(e.to_string()),
        }
    }
    let elapsed = start.elapsed();
    drop(stdin); // EOF: the server exits
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    Ok(summary("stdio", &call, 1, stats, elapsed))
}

/// Reads lines until the response to `id` (skipping server notifications and requests).
async fn read_response(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    id: u64,
) -> anyhow::Result<String> {
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(msg) = serde_json::from_str::<RpcResponse>(&line) else {
            bail!("not JSON-RPC on stdout: {}", truncate(&line, 300));
        };
        if msg.method.is_none() && msg.id.as_ref().and_then(Value::as_u64) == Some(id) {
            return Ok(line);
        }
    }
    bail!("the server closed stdout before answering request {id}")
}

fn run_pgbench(args: PgbenchArgs) -> anyhow::Result<Value> {
    let jobs = args.clients.clamp(1, 2);
    let run = |seconds: u64| -> anyhow::Result<String> {
        let out = std::process::Command::new(&args.pgbench)
            .args(["-n", "-M", "prepared"])
            .arg("-c")
            .arg(args.clients.to_string())
            .arg("-j")
            .arg(jobs.to_string())
            .arg("-T")
            .arg(seconds.to_string())
            .arg("-f")
            .arg(&args.script)
            .args(&args.extra)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", args.pgbench.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() || stdout.contains("aborted") {
            bail!("pgbench failed ({}):\n{stdout}\n{stderr}", out.status);
        }
        Ok(stdout)
    };
    if args.warmup > 0 {
        run(args.warmup)?;
    }
    let cpu_start = CpuSnapshot::take(args.server_pid);
    let t0 = Instant::now();
    let stdout = run(args.duration)?;
    let elapsed = t0.elapsed();
    let cpu_end = CpuSnapshot::take(args.server_pid);

    let field = |prefix: &str| -> Option<String> {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let tps: f64 = field("tps = ")
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .context("no `tps = ` line in pgbench output")?
        .parse()?;
    let latency: Option<f64> = field("latency average = ")
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .and_then(|s| s.parse().ok());
    let processed: Option<u64> = field("number of transactions actually processed:")
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .and_then(|s| s.parse().ok());
    let failed: u64 = field("number of failed transactions:")
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let _ = elapsed;
    Ok(json!({
        "kind": "pgbench",
        "tool": args.tool,
        "clients": args.clients,
        "jobs": jobs,
        "seconds": args.duration,
        "tps": tps,
        "transactions": processed,
        "errors": failed,
        "latency_avg_ms": latency,
        // pgbench's CPU time is ours once it has been reaped (children's times).
        "cpu": cpu::split(&cpu_start, &cpu_end),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitutes_counter() {
        let t = BodyTemplate::new("add_task", r#"{"title":"t {n}"}"#).unwrap();
        let v: Value = serde_json::from_str(&t.render(7)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["params"]["arguments"]["title"], "t 7");
        assert_eq!(v["params"]["name"], "add_task");
    }

    #[test]
    fn parses_sse_and_json() {
        let ok = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"isError":false}}"#;
        assert!(check_body(ok.as_bytes(), 3).is_ok());
        let sse = format!("data: \n\ndata: {ok}\n\n");
        assert!(check_body(sse.as_bytes(), 3).is_ok());
        assert!(check_body(sse.as_bytes(), 4).is_err());
        let bad = r#"data: {"jsonrpc":"2.0","id":3,"result":{"content":[],"isError":true}}"#;
        assert!(check_body(bad.as_bytes(), 3).is_err());
        let err = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"x"}}"#;
        assert!(check_body(err.as_bytes(), 3).is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..1], 99.0), 1.0);
    }
}
