//! `todo-bench pipeline …`: the measurements behind `scripts/bench-pipeline.sh`, which benchmarks
//! the event pipeline end to end through real Dapr sidecars (issues 3 and 4).
//!
//! The script starts every process (PostgreSQL, Redis, daprd sidecars, the Dapr scheduler
//! service, `todo-mcp`, `todo-scheduler`, and the sink below); these subcommands drive the load
//! and measure. Each measuring subcommand prints one JSON object on stdout (diagnostics go to
//! stderr), and `report` turns the JSON lines of a run into the Markdown report.
//!
//! * `sink`          a Dapr subscriber app ([`sink`]): records the wall-clock receive time of
//!   every event its sidecar delivers, and answers `SUCCESS`. It serves the recorded deliveries
//!   to the other subcommands on `/bench/…`.
//! * `relay-latency` commits events at a fixed rate and measures commit-to-delivery latency at
//!   the sink, with loss and duplicates ([`relay`]).
//! * `relay-drain`   commits a large batch of events at once and measures how fast the relay
//!   publishes and the sink receives them ([`relay`]).
//! * `reminders`     publishes `com.todo.task.created` events carrying reminders to topic
//!   `tasks`, measures how long `todo-scheduler` takes to arm them and, for reminders due soon,
//!   how late their notifications reach the sink ([`reminders`]).
//! * `xadd`          runs `redis-benchmark` with the XADD that daprd issues per published event,
//!   for the relay's ceiling.
//! * `memory`        resident memory of the given processes, and Redis' memory.
//! * `dapr-calls`    latency and CPU per call of each kind of sidecar call the scheduler makes
//!   ([`calls`]): what its arming and firing rates are made of.
//! * `report`        the Markdown report ([`report`]).
//!
//! All processes run on one machine, so the wall clocks of producer, relay, scheduler and sink
//! are the same clock: latencies are differences of `SystemTime` readings (nanoseconds since the
//! Unix epoch) taken in different processes.
//!
//! The measuring subcommands also sample, from `/proc`, the CPU time of processes named with
//! `--watch name=pid` (plus every `postgres` process, and the machine total) over their measured
//! window, so that a run says which process the cores went to.

mod calls;
mod relay;
mod reminders;
mod report;
mod sink;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use todo_shared::events::{EventType, OutgoingEvent, TaskEventData};
use todo_shared::snapshot::{ReminderSnapshot, TaskSnapshot};
use todo_shared::task::{Priority, TaskStatus};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

pub use sink::Delivery;

#[derive(Args)]
pub struct PipelineArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A Dapr subscriber app that records when each event arrives.
    Sink(sink::SinkArgs),
    /// Commit-to-delivery latency of the outbox relay at a fixed event rate.
    RelayLatency(relay::LatencyArgs),
    /// The relay's throughput on a large backlog committed at once.
    RelayDrain(relay::DrainArgs),
    /// Publish tasks with reminders; time the arming and, optionally, the notifications.
    Reminders(reminders::RemindersArgs),
    /// `redis-benchmark` XADD throughput on the pipeline's Redis.
    Xadd(XaddArgs),
    /// Resident memory of processes (VmRSS) and of Redis.
    Memory(MemoryArgs),
    /// Latency and CPU per call of the sidecar calls the scheduler makes.
    DaprCalls(calls::CallsArgs),
    /// Print the pipeline report from the JSON lines of a run.
    Report(report::ReportArgs),
}

pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let print = |v: Value| println!("{v}");
    match args.cmd {
        Cmd::Sink(a) => runtime(a.threads)?.block_on(sink::run(a)),
        Cmd::RelayLatency(a) => runtime(2)?.block_on(relay::latency(a)).map(print),
        Cmd::RelayDrain(a) => runtime(2)?.block_on(relay::drain(a)).map(print),
        Cmd::Reminders(a) => runtime(2)?.block_on(reminders::run(a)).map(print),
        Cmd::Xadd(a) => runtime(1)?.block_on(xadd(a)).map(print),
        Cmd::Memory(a) => runtime(1)?.block_on(memory(a)).map(print),
        Cmd::DaprCalls(a) => runtime(1)?.block_on(calls::run(a)).map(print),
        Cmd::Report(a) => report::run(a),
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

// --- time and statistics ---------------------------------------------------------------------

/// The wall clock in nanoseconds since the Unix epoch: comparable across the processes of a run.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// An RFC 3339 time as nanoseconds since the Unix epoch.
pub fn rfc3339_ns(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.with_timezone(&Utc).timestamp_nanos_opt())
}

pub fn ns_to_time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Summary of durations in nanoseconds (which may be negative), in milliseconds.
pub fn distribution(mut ns: Vec<i64>) -> Value {
    ns.sort_unstable();
    let ms = |v: i64| round(v as f64 / 1e6, 3);
    if ns.is_empty() {
        return json!({ "n": 0 });
    }
    let mean = ns.iter().map(|&v| v as f64).sum::<f64>() / ns.len() as f64;
    json!({
        "n": ns.len(),
        "min_ms": ms(ns[0]),
        "p50_ms": ms(percentile(&ns, 50.0)),
        "p90_ms": ms(percentile(&ns, 90.0)),
        "p99_ms": ms(percentile(&ns, 99.0)),
        "max_ms": ms(*ns.last().unwrap_or(&0)),
        "mean_ms": round(mean / 1e6, 3),
    })
}

// --- events ------------------------------------------------------------------------------------

/// A `com.todo.task.created` event exactly as `todo-mcp` writes it to its outbox: a pending task
/// of `owner` in UTC with the given reminders, enveloped by the shared event code.
pub fn task_created(
    task_id: Uuid,
    owner: &str,
    title: &str,
    reminders: &[(Uuid, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> anyhow::Result<OutgoingEvent> {
    let stamp = rfc3339_ms(now);
    let task = TaskSnapshot {
        id: task_id,
        owner: owner.to_owned(),
        title: title.to_owned(),
        description: None,
        status: TaskStatus::Pending,
        priority: Priority::Medium,
        tags: Vec::new(),
        due: None,
        time_zone: "UTC".to_owned(),
        recurrence: None,
        reminders: reminders
            .iter()
            .map(|&(id, at)| ReminderSnapshot {
                id,
                at: rfc3339_ms(at),
                minutes_before: None,
            })
            .collect(),
        created_at: stamp.clone(),
        updated_at: stamp,
        completed_at: None,
    };
    Ok(OutgoingEvent::task(
        EventType::TaskCreated,
        &TaskEventData::snapshot(task),
        now,
    )?)
}

// --- the sink, as its clients see it ----------------------------------------------------------

/// The control side of a running `sink` (its `/bench/…` routes).
#[derive(Clone)]
pub struct SinkClient {
    http: reqwest::Client,
    base: String,
}

/// How many deliveries a sink holds (of one topic, from an index, of one owner).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct SinkCount {
    /// Deliveries from `from`, matching the filter.
    pub deliveries: usize,
    /// Distinct event ids among them.
    pub distinct: usize,
    /// All deliveries of the topic (the next `from`).
    pub total: usize,
}

impl SinkClient {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `/bench/<what>?topic=…&from=…[&owner=…]`.
    fn url(&self, what: &str, topic: &str, from: usize, owner: Option<&str>) -> String {
        // Percent-encodes all but unreserved characters.
        let enc = |v: &str| {
            v.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let mut url = format!(
            "{}/bench/{what}?topic={}&from={from}",
            self.base,
            enc(topic)
        );
        if let Some(o) = owner {
            url.push_str(&format!("&owner={}", enc(o)));
        }
        url
    }

    pub async fn count(
        &self,
        topic: &str,
        from: usize,
        owner: Option<&str>,
    ) -> anyhow::Result<SinkCount> {
        let r = self
            .http
            .get(self.url("count", topic, from, owner))
            .send()
            .await
            .context("cannot reach the sink")?;
        Ok(r.error_for_status()?.json().await?)
    }

    /// The index the next delivery of `topic` will get: deliveries of a measurement are the
    /// ones from there on.
    pub async fn mark(&self, topic: &str) -> anyhow::Result<usize> {
        Ok(self.count(topic, 0, None).await?.total)
    }

    pub async fn deliveries(
        &self,
        topic: &str,
        from: usize,
        owner: Option<&str>,
    ) -> anyhow::Result<Vec<Delivery>> {
        let r = self
            .http
            .get(self.url("deliveries", topic, from, owner))
            .send()
            .await
            .context("cannot reach the sink")?;
        Ok(r.error_for_status()?.json().await?)
    }

    /// Waits until `expected` distinct events (from `from`, of `owner`) have arrived, or no new
    /// delivery has come for `idle` after `not_before` has passed. Returns the last count.
    pub async fn wait_distinct(
        &self,
        topic: &str,
        from: usize,
        owner: Option<&str>,
        expected: usize,
        not_before: Instant,
        idle: Duration,
    ) -> anyhow::Result<SinkCount> {
        let mut last = self.count(topic, from, owner).await?;
        let mut last_change = Instant::now();
        while last.distinct < expected {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.count(topic, from, owner).await?;
            if now.deliveries != last.deliveries {
                last_change = Instant::now();
            }
            last = now;
            let quiet_since = last_change.max(not_before);
            if Instant::now() > quiet_since + idle {
                eprintln!(
                    "giving up: {} of {expected} distinct events after {:.0} s without a delivery",
                    last.distinct,
                    idle.as_secs_f64()
                );
                break;
            }
        }
        Ok(last)
    }
}

// --- Redis (RESP by hand: a few commands do not warrant a client library) ---------------------

/// One connection to Redis speaking RESP2.
pub struct Redis {
    conn: BufReader<TcpStream>,
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    fn as_str(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) | Resp::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Resp::Int(i) => Some(*i),
            other => other.as_str()?.parse().ok(),
        }
    }

    /// A flat key/value array (as XINFO answers) as a map.
    fn as_map(&self) -> BTreeMap<String, Resp> {
        let mut map = BTreeMap::new();
        if let Resp::Array(Some(items)) = self {
            for pair in items.chunks(2) {
                if let [k, v] = pair
                    && let Some(k) = k.as_str()
                {
                    map.insert(k.to_owned(), v.clone());
                }
            }
        }
        map
    }
}

impl Redis {
    /// Connects to `host:port` and selects database `db`.
    pub async fn connect(addr: &str, db: u32) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        stream.set_nodelay(true)?;
        let mut redis = Self {
            conn: BufReader::new(stream),
        };
        redis.cmd(&["SELECT", &db.to_string()]).await?;
        Ok(redis)
    }

    pub async fn cmd(&mut self, args: &[&str]) -> anyhow::Result<Resp> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&req).await?;
        self.read().await
    }

    async fn read(&mut self) -> anyhow::Result<Resp> {
        let mut line = String::new();
        if self.conn.read_line(&mut line).await? == 0 {
            bail!("Redis closed the connection");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1.min(line.len()));
        Ok(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => bail!("Redis error: {rest}"),
            ":" => Resp::Int(rest.parse()?),
            "$" => {
                let n: i64 = rest.parse()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.conn.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Resp::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
            }
            "*" => {
                let n: i64 = rest.parse()?;
                if n < 0 {
                    Resp::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(Box::pin(self.read()).await?);
                    }
                    Resp::Array(Some(items))
                }
            }
            _ => bail!("unexpected RESP reply {line:?}"),
        })
    }

    /// Entries of `stream` that consumer group `group` has not acknowledged yet: not yet read
    /// (`lag`) plus read and pending. `None` while the group (or the stream) does not exist.
    pub async fn group_backlog(
        &mut self,
        stream: &str,
        group: &str,
    ) -> anyhow::Result<Option<i64>> {
        let groups = match self.cmd(&["XINFO", "GROUPS", stream]).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        let Resp::Array(Some(groups)) = groups else {
            return Ok(None);
        };
        for g in &groups {
            let g = g.as_map();
            if g.get("name").and_then(Resp::as_str) != Some(group) {
                continue;
            }
            let pending = g.get("pending").and_then(Resp::as_i64).unwrap_or(0);
            let lag = match g.get("lag").and_then(Resp::as_i64) {
                Some(lag) => lag,
                // Redis cannot tell the lag (e.g. after trimming): compare the last ids.
                None => {
                    let info = self.cmd(&["XINFO", "STREAM", stream]).await?.as_map();
                    let last = info.get("last-generated-id").and_then(Resp::as_str);
                    let read = g.get("last-delivered-id").and_then(Resp::as_str);
                    i64::from(last != read)
                }
            };
            return Ok(Some(lag + pending));
        }
        Ok(None)
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub async fn used_memory(&mut self) -> anyhow::Result<Option<u64>> {
        let info = self.cmd(&["INFO", "memory"]).await?;
        Ok(info.as_str().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
        }))
    }
}

// --- CPU per process -----------------------------------------------------------------------------

/// CPU time (USER_HZ ticks, 100 per second) of the named processes, all `postgres` processes
/// (with their reaped children) and the machine, at one instant.
pub struct CpuWatch {
    at: Instant,
    procs: Vec<(String, Option<u64>)>,
    postgres: u64,
    busy: u64,
    /// Interrupts and softirqs (mostly loopback networking here), part of `busy`.
    irq: u64,
    me: u64,
}

/// `name=pid` as `--watch` takes it.
pub fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((
        name.to_owned(),
        pid.parse().map_err(|_| format!("bad pid in {s:?}"))?,
    ))
}

impl CpuWatch {
    pub fn take(watch: &[(String, u32)]) -> Self {
        let procs = watch
            .iter()
            .map(|(name, pid)| {
                (
                    name.clone(),
                    crate::cpu::proc_ticks(&pid.to_string()).map(|s| s.1),
                )
            })
            .collect();
        let mut postgres = 0;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str() else { continue };
                if pid.bytes().all(|b| b.is_ascii_digit())
                    && let Some((comm, own, children)) = crate::cpu::proc_ticks(pid)
                    && comm == "postgres"
                {
                    postgres += own + children;
                }
            }
        }
        // user nice system idle iowait irq softirq steal
        let (busy, irq) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_owned();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let f = |i: usize| v.get(i).copied().unwrap_or(0);
                Some((f(0) + f(1) + f(2) + f(5) + f(6) + f(7), f(5) + f(6)))
            })
            .unwrap_or((0, 0));
        let me = crate::cpu::proc_ticks("self").map_or(0, |s| s.1 + s.2);
        Self {
            at: Instant::now(),
            procs,
            postgres,
            busy,
            irq,
            me,
        }
    }

    /// CPU ticks (1/100 s) each spent since `self`, and the seconds between: the listed
    /// processes, `postgres`, `todo-bench` (this process), `irq` (interrupts and softirqs:
    /// mostly loopback networking), `other` (busy time nothing of these accounts for: anything
    /// else running on the machine) and `machine`.
    pub fn ticks(&self, end: &CpuWatch) -> (f64, Vec<(String, u64)>) {
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut out = Vec::new();
        let mut accounted = 0;
        for ((name, a), (_, b)) in self.procs.iter().zip(&end.procs) {
            let d = match (a, b) {
                (Some(a), Some(b)) => b.saturating_sub(*a),
                _ => 0,
            };
            accounted += d;
            out.push((name.clone(), d));
        }
        let postgres = end.postgres.saturating_sub(self.postgres);
        let me = end.me.saturating_sub(self.me);
        let busy = end.busy.saturating_sub(self.busy);
        let irq = end.irq.saturating_sub(self.irq);
        out.push(("postgres".into(), postgres));
        out.push(("todo-bench".into(), me));
        out.push(("irq".into(), irq));
        out.push((
            "other".into(),
            busy.saturating_sub(accounted + postgres + me + irq),
        ));
        out.push(("machine".into(), busy));
        (secs, out)
    }

    /// Percent of one core each spent since `self` (up to 100 × cores), as [`Self::ticks`].
    pub fn since(&self, end: &CpuWatch) -> Value {
        let (secs, ticks) = self.ticks(end);
        let mut out = serde_json::Map::new();
        for (name, t) in ticks {
            out.insert(name, json!(round(t as f64 / 100.0 / secs * 100.0, 1)));
        }
        out.insert("window_s".into(), json!(round(secs, 1)));
        Value::Object(out)
    }
}

// --- redis-benchmark ---------------------------------------------------------------------------

#[derive(Args)]
struct XaddArgs {
    /// The redis-benchmark binary.
    #[arg(long, default_value = "redis-benchmark")]
    redis_benchmark: String,
    /// Redis as host:port.
    #[arg(long)]
    redis: String,
    /// The database number (the pipeline's).
    #[arg(long, default_value_t = 0)]
    db: u32,
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// Size of the field value; 0 sends `f v`. daprd sends the event as one field.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// `MAXLEN ~` as daprd sends it (the pubsub component's `maxLenApprox`); 0 = none.
    #[arg(long, default_value_t = 100_000)]
    maxlen: u64,
    #[arg(long, default_value = "")]
    label: String,
}

/// Runs `redis-benchmark` with an XADD to a scratch stream (deleted afterwards), as daprd's
/// Redis Streams pub/sub issues one per published event.
async fn xadd(args: XaddArgs) -> anyhow::Result<Value> {
    let (host, port) = args
        .redis
        .rsplit_once(':')
        .context("--redis must be host:port")?;
    let stream = "todo-bench:xadd";
    let value = if args.payload_bytes == 0 {
        "v".to_owned()
    } else {
        "x".repeat(args.payload_bytes)
    };
    let mut cmd_args: Vec<String> = vec!["XADD".into(), stream.into()];
    if args.maxlen > 0 {
        cmd_args.extend(["MAXLEN".into(), "~".into(), args.maxlen.to_string()]);
    }
    cmd_args.extend(["*".into(), "f".into(), value]);
    let out = tokio::process::Command::new(&args.redis_benchmark)
        .args(["-h", host, "-p", port, "--dbnum", &args.db.to_string()])
        .args([
            "-n",
            &args.requests.to_string(),
            "-c",
            &args.clients.to_string(),
        ])
        .arg("-q")
        .args(&cmd_args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", args.redis_benchmark))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut redis = Redis::connect(&args.redis, args.db).await?;
    redis.cmd(&["DEL", stream]).await?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `-q` prints progress lines ending in \r, then "<command>: N requests per second, p50=…".
    let last = stdout
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .with_context(|| format!("no rate in redis-benchmark's output: {stdout}"))?;
    let tail = last.rsplit_once(": ").map_or(last, |(_, t)| t);
    let rate: f64 = tail
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("cannot parse {last:?}"))?;
    let p50 = tail
        .split("p50=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok());
    Ok(json!({
        "kind": "xadd",
        "label": args.label,
        "requests": args.requests,
        "clients": args.clients,
        "payload_bytes": args.payload_bytes,
        "maxlen": args.maxlen,
        "rate": rate,
        "p50_ms": p50,
    }))
}

// --- memory ------------------------------------------------------------------------------------

#[derive(Args)]
struct MemoryArgs {
    /// A process to measure, as name=pid (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Redis as host:port, for `used_memory`.
    #[arg(long)]
    redis: Option<String>,
    #[arg(long, default_value_t = 0)]
    db: u32,
    /// Pending reminders at the time (for the report).
    #[arg(long)]
    pending: Option<u64>,
    #[arg(long, default_value = "")]
    label: String,
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn vm_rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Open sockets of a process (its TCP connections, mostly).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| {
        dir.flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            })
            .count()
    })
}

async fn memory(args: MemoryArgs) -> anyhow::Result<Value> {
    let mut procs = serde_json::Map::new();
    for (name, pid) in &args.watch {
        let (rss, hwm) = vm_rss(*pid).with_context(|| format!("no process {pid} ({name})"))?;
        procs.insert(
            name.clone(),
            json!({ "rss_kib": rss, "hwm_kib": hwm, "sockets": sockets(*pid) }),
        );
    }
    let redis_used = match &args.redis {
        Some(addr) => Redis::connect(addr, args.db).await?.used_memory().await?,
        None => None,
    };
    Ok(json!({
        "kind": "memory",
        "label": args.label,
        "pending": args.pending,
        "processes": procs,
        "redis_used_memory": redis_used,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_signed_values() {
        let v: Vec<i64> = (1..=100).map(|i| i * 1_000_000).collect();
        let d = distribution(v);
        assert_eq!(d["p50_ms"], 50.0);
        assert_eq!(d["p99_ms"], 99.0);
        assert_eq!(d["max_ms"], 100.0);
        let d = distribution(vec![-2_000_000, 4_000_000]);
        assert_eq!(d["min_ms"], -2.0);
        assert_eq!(d["p50_ms"], -2.0);
    }

    #[test]
    fn task_event_has_the_server_shape() {
        let now = Utc::now();
        let task = Uuid::new_v4();
        let reminder = (Uuid::new_v4(), now + chrono::TimeDelta::seconds(30));
        let e = task_created(task, "bench", "t", &[reminder], now).unwrap();
        let v = &e.envelope;
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "com.todo.task.created");
        assert_eq!(v["source"], "/mcp-server/tasks");
        assert_eq!(v["subject"], task.to_string());
        assert_eq!(v["data"]["task"]["status"], "pending");
        assert_eq!(v["data"]["task"]["priority"], "medium");
        assert_eq!(
            v["data"]["task"]["reminders"][0]["id"],
            reminder.0.to_string()
        );
        let at = v["data"]["task"]["reminders"][0]["at"].as_str().unwrap();
        assert_eq!(
            rfc3339_ns(at),
            Some(reminder.1.timestamp_millis() * 1_000_000)
        );
    }

    #[test]
    fn resp_maps() {
        let r = Resp::Array(Some(vec![
            Resp::Bulk(Some("name".into())),
            Resp::Bulk(Some("scheduler".into())),
            Resp::Bulk(Some("lag".into())),
            Resp::Int(3),
        ]));
        let m = r.as_map();
        assert_eq!(m["name"].as_str(), Some("scheduler"));
        assert_eq!(m["lag"].as_i64(), Some(3));
    }
}
