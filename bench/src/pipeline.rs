//! `todo-bench pipeline …`: the measurements behind `scripts/bench-pipeline.sh`, which benchmarks
//! the event pipeline end to end through real Dapr sidecars: the outbox relay and the scheduler.
//!
//! The script starts every process (PostgreSQL, Redis, daprd sidecars, the Dapr scheduler
//! service, `todo-mcp`, `todo-scheduler`, and the sink below); these subcommands drive the load
//! and measure. Each measuring subcommand prints one JSON object on stdout (diagnostics go to
//! stderr); `todo-bench report` turns the JSON lines of a run into the report.
//!
//! * `sink`          a Dapr subscriber app ([`sink`]): records the wall-clock receive time of
//!   every event its sidecar delivers, and serves what it recorded on `/bench/…`.
//! * `relay-latency` commits events at a fixed rate and measures commit-to-delivery latency at
//!   the sink, with loss and duplicates ([`relay`]).
//! * `relay-drain`   commits a large batch of events at once and measures how fast the relay
//!   publishes and the sink receives them ([`relay`]).
//! * `reminders`     publishes `com.todo.task.created` events carrying reminders, measures how
//!   long `todo-scheduler` takes to arm them and how late their notifications arrive
//!   ([`reminders`]).
//! * `xadd`          `redis-benchmark` with the XADD that daprd issues per published event: the
//!   relay's ceiling.
//! * `memory`        resident memory of the given processes, and Redis' memory.
//! * `dapr-calls`    latency and CPU per call of each kind of sidecar call the scheduler makes
//!   ([`calls`]).
//!
//! All processes run on one machine, so the wall clocks of producer, relay, scheduler and sink
//! are the same clock: latencies are differences of `SystemTime` readings (nanoseconds since the
//! Unix epoch) taken in different processes. The measuring subcommands also sample the CPU of
//! the processes named with `--watch name=pid` over their measured window ([`crate::cpu`]).

mod calls;
mod relay;
mod reminders;
mod sink;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use redis::AsyncCommands;
use redis::streams::{StreamInfoGroupsReply, StreamInfoStreamReply};
use serde_json::{Value, json};
use todo_shared::events::{EventType, OutgoingEvent, TaskEventData};
use todo_shared::snapshot::{ReminderSnapshot, TaskSnapshot};
use todo_shared::task::{Priority, TaskStatus};
use uuid::Uuid;

use crate::cpu::parse_watch;
use sink::Delivery;

/// `todo-bench pipeline`.
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
}

/// Runs one pipeline subcommand.
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
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

// --- time ---------------------------------------------------------------------

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

/// Nanoseconds since the Unix epoch as a time.
pub fn ns_to_time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// A time as the events carry it: RFC 3339 with milliseconds, in UTC.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `x` rounded to `decimals` decimal places.
fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
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
        version: 1,
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
    /// The sink at `base` (`http://host:port`).
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
    fn url(
        &self,
        what: &str,
        topic: &str,
        from: usize,
        owner: Option<&str>,
    ) -> anyhow::Result<reqwest::Url> {
        let mut params = vec![("topic", topic.to_owned()), ("from", from.to_string())];
        params.extend(owner.map(|o| ("owner", o.to_owned())));
        Ok(reqwest::Url::parse_with_params(
            &format!("{}/bench/{what}", self.base),
            &params,
        )?)
    }

    /// The deliveries of `topic` from index `from` (of `owner`), counted.
    pub async fn count(
        &self,
        topic: &str,
        from: usize,
        owner: Option<&str>,
    ) -> anyhow::Result<SinkCount> {
        let r = self
            .http
            .get(self.url("count", topic, from, owner)?)
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

    /// The deliveries of `topic` from index `from` (of `owner`), in arrival order.
    pub async fn deliveries(
        &self,
        topic: &str,
        from: usize,
        owner: Option<&str>,
    ) -> anyhow::Result<Vec<Delivery>> {
        let r = self
            .http
            .get(self.url("deliveries", topic, from, owner)?)
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

// --- Redis ------------------------------------------------------------------------------------

/// A connection to the pipeline's Redis.
pub struct Redis(redis::aio::MultiplexedConnection);

impl Redis {
    /// Connects to `host:port`, database `db`.
    pub async fn connect(addr: &str, db: u32) -> anyhow::Result<Self> {
        // The 500 ms default response timeout is too short while the pipeline saturates the
        // cores.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(10)));
        let conn = redis::Client::open(format!("redis://{addr}/{db}"))?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        Ok(Self(conn))
    }

    /// Entries of `stream` that consumer group `group` has not acknowledged yet: not yet read
    /// (`lag`) plus read and pending. `None` while the group (or the stream) does not exist.
    pub async fn group_backlog(
        &mut self,
        stream: &str,
        group: &str,
    ) -> anyhow::Result<Option<i64>> {
        let groups: StreamInfoGroupsReply = match self.0.xinfo_groups(stream).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(g) = groups.groups.into_iter().find(|g| g.name == group) else {
            return Ok(None);
        };
        let lag = match g.lag {
            Some(lag) => lag,
            // Redis cannot tell the lag (e.g. after trimming): compare the last ids.
            None => {
                let info: StreamInfoStreamReply = self.0.xinfo_stream(stream).await?;
                usize::from(info.last_generated_id != g.last_delivered_id)
            }
        };
        Ok(Some((lag + g.pending) as i64))
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub async fn used_memory(&mut self) -> anyhow::Result<Option<u64>> {
        let info: redis::InfoDict = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.0)
            .await?;
        Ok(info.get("used_memory"))
    }

    /// Deletes a key.
    pub async fn del(&mut self, key: &str) -> anyhow::Result<()> {
        let _: u64 = self.0.del(key).await?;
        Ok(())
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
    Redis::connect(&args.redis, args.db)
        .await?
        .del(stream)
        .await?;
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
}
