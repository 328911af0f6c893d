//! `http` and `stdio`: tool calls against `todo-mcp`, timed.
//!
//! `http` runs N closed-loop clients, each on its own HTTP/1.1 keep-alive connection, for a
//! duration (the rate is completions per second of the measured window, as with `pgbench -T`;
//! SIGTERM or SIGINT ends the window early) or for a number of calls. A client may pace its
//! calls (`--interval-ms`: a user with think time rather than a loop). An HTTP 429, the server's
//! per-user fair share refusing a request, is an error unless `--on-429` counts it apart as
//! refused, with or without waiting its `Retry-After`. `stdio` spawns the server on stdio,
//! initialises it and times sequential calls. A call's latency runs from sending the request
//! until the whole response is in; reading it comes after, so that the client's parsing is not
//! counted as the server's time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cpu::CpuSample;
use crate::latency::Latencies;
use crate::mcp::{self, CallError, ToolCall};

/// What to call and how often.
#[derive(Args, Clone)]
pub struct CallArgs {
    /// Tool name, e.g. `add_task` or `list_tasks`.
    #[arg(long)]
    tool: String,
    /// Tool arguments as a JSON object; `{n}` in it is replaced by a per-call counter.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Measure for this many seconds (ignored with --calls); over HTTP, SIGTERM or SIGINT ends
    /// the window sooner, and the result covers the window until then.
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

/// `todo-bench http`.
#[derive(Args)]
pub struct HttpArgs {
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
    /// What a client does with an HTTP 429 (the server's fair share refusing a request).
    #[arg(long, value_enum, default_value_t = On429::Error)]
    on_429: On429,
    /// Each client starts its calls at least this many milliseconds apart (a user with think
    /// time); a call that takes longer delays the next, which then starts at once. 0: back to
    /// back.
    #[arg(long, default_value_t = 0.0)]
    interval_ms: f64,
    #[command(flatten)]
    call: CallArgs,
}

/// What an HTTP client does with a 429 answer.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum On429 {
    /// A failed call, as any answer that is not a successful tool result: the run is invalid.
    Error,
    /// Counted as refused, apart from errors; the client sends its next call at once, ignoring
    /// `Retry-After` (a client that does not back off, the hardest on the server).
    Count,
    /// Counted as refused; the client waits the `Retry-After` the server sent before its next
    /// call.
    Wait,
}

/// `todo-bench stdio`.
#[derive(Args)]
pub struct StdioArgs {
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

/// Latencies and counts of one client, or of all.
#[derive(Default)]
struct Stats {
    latency: Latencies,
    /// Successful calls, warm-up included.
    all_ok: u64,
    errors: u64,
    /// Calls answered 429 inside the measured window (with `--on-429 count` or `wait`), and how
    /// long the server took to say no.
    refused: u64,
    refused_latency: Latencies,
    reconnects: u64,
    first_error: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latency.merge(&other.latency);
        self.all_ok += other.all_ok;
        self.errors += other.errors;
        self.refused += other.refused;
        self.refused_latency.merge(&other.refused_latency);
        self.reconnects += other.reconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Counts a finished call; errors count in the warm-up too (any error invalidates a run).
    fn outcome(&mut self, outcome: Result<(), CallError>, took: Duration, measured: bool) {
        match outcome {
            Ok(()) => {
                self.all_ok += 1;
                if measured {
                    self.latency.record_duration(took);
                }
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Counts a call the server refused (HTTP 429), when refusals are not errors.
    fn refusal(&mut self, took: Duration, measured: bool) {
        if measured {
            self.refused += 1;
            self.refused_latency.record_duration(took);
        }
    }

    /// The result line of a measured window: `rate` counts successful calls, `refused_rate`
    /// the calls answered 429 (when they are not errors).
    fn summary(self, transport: &str, call: &CallArgs, clients: usize, elapsed: Duration) -> Value {
        let ok = self.latency.len();
        let secs = elapsed.as_secs_f64();
        let mut out = json!({
            "kind": transport,
            "tool": call.tool,
            "label": call.label,
            "clients": clients,
            "calls": ok + self.errors,
            "ok": ok,
            "all_ok": self.all_ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "reconnects": self.reconnects,
            "seconds": secs,
            "rate": if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            "refused": self.refused,
            "refused_rate": if secs > 0.0 { self.refused as f64 / secs } else { 0.0 },
        });
        if let (Some(out), Value::Object(latency)) = (out.as_object_mut(), self.latency.summary()) {
            out.extend(latency);
        }
        if self.refused > 0 {
            out["refused_latency"] = self.refused_latency.summary();
        }
        out
    }
}

// --- HTTP --------------------------------------------------------------------------------------

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
    protocol_version: String,
    call: ToolCall,
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
            protocol_version: mcp::PROTOCOL_VERSION.to_string(),
            call: ToolCall::new(&call.tool, &call.args)?,
        })
    }

    /// Sends call `n` and reads the whole response: the part that is timed.
    async fn send(&self, conn: &mut Conn, client: u64, n: u64) -> Result<Bytes, CallError> {
        let auth = &self.auths[(client % self.auths.len() as u64) as usize];
        let body = self
            .call
            .request(n)
            .map_err(|e| CallError::Rejected(e.to_string()))?;
        let req = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.protocol_version)
            .body(Full::new(Bytes::from(body)))
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
        let retry_after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Io(format!("reading the body: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let message = format!(
                "HTTP {status}: {}",
                mcp::truncate(&String::from_utf8_lossy(&body), 300)
            );
            return Err(if status == hyper::StatusCode::TOO_MANY_REQUESTS {
                CallError::Refused {
                    retry_after,
                    message,
                }
            } else {
                CallError::Rejected(message)
            });
        }
        Ok(body)
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
    /// Claims the next call; `None` when the run is over, else whether it is a measured one.
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
    /// measured call; in duration mode, whether it completed inside the measured window.
    fn counts(&self, claimed_measured: bool) -> bool {
        if self.remaining.is_some() {
            claimed_measured
        } else {
            self.measuring.load(Ordering::Relaxed) && !self.stop.load(Ordering::Relaxed)
        }
    }
}

/// How each client of a run behaves, apart from what it calls.
#[derive(Clone, Copy)]
struct Manner {
    on_429: On429,
    /// Least time between the starts of two calls of a client.
    interval: Duration,
}

async fn http_client(
    target: Arc<HttpTarget>,
    phase: Arc<Phase>,
    client: u64,
    counter: Arc<AtomicU64>,
    manner: Manner,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Conn> = None;
    let mut next_start = tokio::time::Instant::now();
    loop {
        if !manner.interval.is_zero() {
            tokio::time::sleep_until(next_start).await;
            // No catching up after a slow call: the next one starts an interval after this one.
            next_start = tokio::time::Instant::now() + manner.interval;
        }
        let Some(measured) = phase.next() else { break };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(target.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.outcome(
                        Err(CallError::Io(format!("connect: {e}"))),
                        Duration::ZERO,
                        false,
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let start = Instant::now();
        let sent = target.send(c, client, n).await;
        let took = start.elapsed();
        let outcome = sent.and_then(|body| mcp::tool_succeeded(&body, n));
        if let Err(CallError::Refused { retry_after, .. }) = &outcome
            && manner.on_429 != On429::Error
        {
            stats.refusal(took, phase.counts(measured));
            if let (On429::Wait, Some(wait)) = (manner.on_429, retry_after) {
                tokio::time::sleep(*wait).await;
            }
            continue;
        }
        if let Err(CallError::Io(_)) = outcome {
            conn = None;
            stats.reconnects += 1;
        }
        let outcome = outcome.map_err(|e| match e {
            CallError::Io(m) => CallError::Io(format!("client {client}: {m}")),
            CallError::Rejected(m) => CallError::Rejected(format!("client {client}: {m}")),
            CallError::Refused {
                retry_after,
                message,
            } => CallError::Refused {
                retry_after,
                message: format!("client {client}: {message}"),
            },
        });
        stats.outcome(outcome, took, phase.counts(measured));
    }
    stats
}

/// `todo-bench http`: runs the clients on min(clients, 2) worker threads unless told otherwise.
pub fn http(args: HttpArgs) -> anyhow::Result<Value> {
    let threads = args.threads.unwrap_or(args.clients.clamp(1, 2));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let mut out = rt.block_on(run_http(args))?;
    out["threads"] = json!(threads);
    Ok(out)
}

async fn run_http(args: HttpArgs) -> anyhow::Result<Value> {
    let call = args.call.clone();
    let target = Arc::new(HttpTarget::parse(&args.url, &args.token, &call)?);
    let watch: Vec<(String, u32)> = args
        .server_pid
        .map(|pid| ("server".to_owned(), pid))
        .into_iter()
        .collect();
    let phase = Arc::new(Phase {
        measuring: AtomicBool::new(call.warmup <= 0.0),
        stop: AtomicBool::new(false),
        remaining: call.calls.map(|c| AtomicU64::new(c + call.warmup_calls)),
        warmup_remaining: AtomicU64::new(call.warmup_calls),
    });
    let counter = Arc::new(AtomicU64::new(0));
    let manner = Manner {
        on_429: args.on_429,
        interval: Duration::from_secs_f64(args.interval_ms.max(0.0) / 1e3),
    };
    // Duration runs only (a calls run keeps the default: a signal ends the process). Installed
    // before the clients start, so that a signal from then on ends the window.
    let mut stop_signal = call.calls.is_none().then(StopSignal::new).transpose()?;
    let handles: Vec<_> = (0..args.clients as u64)
        .map(|client| {
            tokio::spawn(http_client(
                target.clone(),
                phase.clone(),
                client,
                counter.clone(),
                manner,
            ))
        })
        .collect();

    let (start, cpu_start, elapsed, cpu_end, stats);
    let mut signalled = false;
    if let Some(stop_signal) = &mut stop_signal {
        if call.warmup > 0.0 {
            signalled = stop_signal
                .or_sleep(Duration::from_secs_f64(call.warmup))
                .await;
            phase.measuring.store(true, Ordering::Relaxed);
        }
        start = Instant::now();
        cpu_start = CpuSample::take(&watch);
        if !signalled {
            signalled = stop_signal
                .or_sleep(Duration::from_secs_f64(call.duration))
                .await;
        }
        phase.stop.store(true, Ordering::Relaxed);
        elapsed = start.elapsed();
        cpu_end = CpuSample::take(&watch);
        stats = join(handles).await?;
    } else {
        // Calls mode: the window runs from when the (short) warm-up's calls have all been
        // claimed to the last measured call.
        while phase.warmup_remaining.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start = Instant::now();
        cpu_start = CpuSample::take(&watch);
        stats = join(handles).await?;
        elapsed = start.elapsed();
        cpu_end = CpuSample::take(&watch);
    }
    let mut out = stats.summary("http", &call, args.clients, elapsed);
    out["cpu"] = cpu_start.until(&cpu_end).split();
    out["on_429"] = json!(
        args.on_429
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
    );
    out["interval_ms"] = json!(args.interval_ms);
    out["ended_by_signal"] = json!(signalled);
    Ok(out)
}

/// SIGTERM or SIGINT: ends a duration run's window early (a script stops a background load
/// when its other measurement is done).
struct StopSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Sleeps for `d`; true if a signal came first.
    async fn or_sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            _ = self.term.recv() => true,
            _ = self.int.recv() => true,
        }
    }
}

async fn join(handles: Vec<tokio::task::JoinHandle<Stats>>) -> anyhow::Result<Stats> {
    let mut all = Stats::default();
    for h in handles {
        all.merge(h.await?);
    }
    Ok(all)
}

// --- stdio -------------------------------------------------------------------------------------

/// `todo-bench stdio`.
pub fn stdio(args: StdioArgs) -> anyhow::Result<Value> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_stdio(args))
}

async fn run_stdio(args: StdioArgs) -> anyhow::Result<Value> {
    let call = args.call.clone();
    let tool = ToolCall::new(&call.tool, &call.args)?;
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

    // The handshake's two lines: the notification goes out before the answer is read, which
    // the server handles in order.
    stdin.write_all(mcp::handshake()?.as_bytes()).await?;
    stdin.flush().await?;
    loop {
        let line = lines
            .next_line()
            .await?
            .context("the server closed stdout before answering initialize")?;
        match mcp::initialize_answer(&line) {
            Some(Ok(())) => break,
            Some(Err(e)) => bail!("initialize failed: {e}"),
            None => {}
        }
    }

    let total = call.calls.unwrap_or(1000) + call.warmup_calls;
    let mut stats = Stats::default();
    let mut start = Instant::now();
    for n in 1..=total {
        if n == call.warmup_calls + 1 {
            start = Instant::now();
        }
        let mut request = tool.request(n)?;
        request.push(b'\n');
        let t0 = Instant::now();
        stdin.write_all(&request).await?;
        stdin.flush().await?;
        let (outcome, took) = loop {
            let line = lines.next_line().await?.with_context(|| {
                format!("the server closed stdout before answering request {n}")
            })?;
            let took = t0.elapsed();
            if let Some(answer) = mcp::stdio_answer(&line, n) {
                break (answer, took);
            }
        };
        stats.outcome(outcome, took, n > call.warmup_calls);
    }
    let elapsed = start.elapsed();
    drop(stdin); // EOF: the server exits
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    Ok(stats.summary("stdio", &call, 1, elapsed))
}
