//! The outbox relay: commit-to-delivery latency at a steady rate, and throughput.
//!
//! `todo-mcp --events dapr` is the relay, beside its own daprd; the sink, beside another daprd
//! (its own consumer group on topic `tasks`), records when each event arrives.
//!
//! **Latency** (`relay-latency`): a producer commits one event per transaction at a fixed rate
//! (open loop: event *i* starts at *t0 + i/rate* whatever happened to the earlier ones, on up to
//! `--connections` concurrent connections), for `--duration` seconds. Two producers:
//!
//! * `mcp`: `add_task` calls through `todo-mcp`'s MCP endpoint, the production path: the
//!   commit wakes the relay in the same process at once.
//! * `sql`: events committed to `outbox` by another process (another replica), through the
//!   server's own `store::outbox::enqueue`: nothing wakes the relay, which finds them at its
//!   next poll.
//!
//! Commit time is when the commit was acknowledged to the producer: the transaction committed
//! (`sql`), or the `add_task` response arrived (`mcp`; the server answers after its commit). Latency = the sink's receive time − commit time. Every committed event must arrive:
//! loss = committed − distinct delivered (matched by task id), duplicates are counted apart.
//! Also reported: the latency from the event's own `time` (stamped before the commit).
//!
//! **Throughput** (`relay-drain`): `--events` rows committed in one transaction (so the relay
//! sees the whole backlog at once, at its next poll); then the relay's publishing rate (from the
//! `published_at` the relay stamps per batch) and the sink's receiving rate (first to last
//! delivery) are measured until every event has arrived. With `--hold PID` (the subscriber's
//! sidecar) the subscriber is stopped (SIGSTOP) until the relay has published every event, so
//! the relay has the machine to itself, and the subscriber then catches up alone: on two cores
//! the two halves otherwise share them, and each figure is the other's ceiling too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use mcp_server::store::{Db, outbox};
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{SinkClient, now_ns, parse_watch, rfc3339_ns, round, task_created};
use crate::cpu::CpuSample;
use crate::latency::Latencies;
use crate::mcp::{self, ToolCall};

/// The topic task events go to.
const TOPIC: &str = "tasks";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Producer {
    /// `add_task` through todo-mcp's MCP endpoint (the relay is woken by the commit).
    Mcp,
    /// Rows inserted into `outbox` by another process (the relay finds them by polling).
    Sql,
}

impl Producer {
    fn name(self) -> &'static str {
        match self {
            Producer::Mcp => "mcp",
            Producer::Sql => "sql",
        }
    }
}

/// `todo-bench pipeline relay-latency`.
#[derive(Args)]
pub struct LatencyArgs {
    #[arg(long, value_enum)]
    mode: Producer,
    /// Events per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of production.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// The outbox's database (sql mode).
    #[arg(long)]
    database_url: Option<String>,
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp (mcp mode).
    #[arg(long)]
    mcp_url: Option<String>,
    /// Bearer token for the MCP endpoint; defaults to $BENCH_TOKEN.
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The sink's base URL.
    #[arg(long)]
    sink: String,
    /// Most commits in flight at once.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Give up waiting for deliveries after this many seconds without one.
    #[arg(long, default_value_t = 30.0)]
    idle: f64,
    /// Processes whose CPU to sample, as name=pid (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    #[arg(long, default_value = "")]
    label: String,
}

/// One committed event: its task id and when the commit was acknowledged.
struct Committed {
    task_id: String,
    commit_ns: i64,
}

/// Commits one event per call.
enum Source {
    Sql(Db),
    Mcp {
        http: reqwest::Client,
        url: String,
        auth: String,
        add_task: ToolCall,
    },
}

impl Source {
    async fn commit(&self, n: u64) -> anyhow::Result<Committed> {
        match self {
            Source::Sql(db) => {
                let task_id = Uuid::now_v7();
                let event = task_created(
                    task_id,
                    "bench-relay",
                    &format!("Relay {n}"),
                    &[],
                    Utc::now(),
                )?;
                let mut tx = db.begin().await?;
                outbox::enqueue(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(Committed {
                    task_id: task_id.to_string(),
                    commit_ns: now_ns(),
                })
            }
            Source::Mcp {
                http,
                url,
                auth,
                add_task,
            } => {
                let resp = http
                    .post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", mcp::PROTOCOL_VERSION.to_string())
                    .body(add_task.request(n)?)
                    .send()
                    .await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                let commit_ns = now_ns();
                if !status.is_success() {
                    bail!(
                        "HTTP {status}: {}",
                        mcp::truncate(&String::from_utf8_lossy(&body), 300)
                    );
                }
                let result = mcp::tool_result(&body, n).map_err(|e| anyhow::anyhow!("{e}"))?;
                let task_id = result
                    .structured_content
                    .as_ref()
                    .and_then(|v| v.pointer("/task/id"))
                    .and_then(|v| v.as_str())
                    .context("no task id in the add_task result")?;
                Ok(Committed {
                    task_id: task_id.to_owned(),
                    commit_ns,
                })
            }
        }
    }
}

async fn pool(url: Option<&str>, connections: usize) -> anyhow::Result<PgPool> {
    let url = url.context("--database-url is required")?;
    PgPoolOptions::new()
        .max_connections(connections as u32)
        .min_connections(connections as u32)
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL")
}

pub async fn latency(args: LatencyArgs) -> anyhow::Result<Value> {
    let source = Arc::new(match args.mode {
        Producer::Sql => Source::Sql(Db::Postgres(
            pool(args.database_url.as_deref(), args.connections).await?,
        )),
        Producer::Mcp => Source::Mcp {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(args.connections)
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(30))
                .build()?,
            url: args.mcp_url.clone().context("--mcp-url is required")?,
            auth: format!(
                "Bearer {}",
                args.token.clone().context("--token is required")?
            ),
            add_task: ToolCall::new("add_task", r#"{"title":"Relay {n}"}"#)?,
        },
    });
    let sink = SinkClient::new(&args.sink);
    let mark = sink.mark(TOPIC).await?;
    // One warm-up commit per connection, then the deliveries of those are skipped.
    let mut warm = JoinSet::new();
    for n in 0..args.connections as u64 {
        let s = source.clone();
        warm.spawn(async move { s.commit(1_000_000_000 + n).await });
    }
    while let Some(r) = warm.join_next().await {
        r??;
    }

    let total = (args.rate * args.duration).round() as u64;
    let permits = Arc::new(Semaphore::new(args.connections));
    let mut set = JoinSet::new();
    let mut start_delays = Latencies::default();
    let cpu0 = CpuSample::take(&args.watch);
    let t0 = Instant::now();
    for n in 0..total {
        let due = t0 + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let permit = permits.clone().acquire_owned().await?;
        start_delays.record_duration(due.elapsed());
        let s = source.clone();
        set.spawn(async move {
            let r = s.commit(n).await;
            drop(permit);
            r
        });
    }
    let mut committed = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(c) => committed.push(c),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let produce_s = t0.elapsed().as_secs_f64();
    let cpu1 = CpuSample::take(&args.watch);
    let db = match (&*source, &args.database_url) {
        (Source::Sql(Db::Postgres(pool)), _) => Some(pool.clone()),
        (Source::Mcp { .. }, Some(url)) => Some(pool(Some(url), 1).await?),
        _ => None,
    };
    // Events committed but not yet published when the producer stopped: a relay that keeps up
    // has a few at most.
    let backlog_at_end: Option<i64> = match &db {
        Some(pool) => Some(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(pool)
                .await?,
        ),
        None => None,
    };

    let last_commit = Instant::now();
    // Warm-up events are delivered too (first); count them in what must arrive.
    let expected = committed.len() + args.connections;
    let count = sink
        .wait_distinct(
            TOPIC,
            mark,
            None,
            expected,
            last_commit,
            Duration::from_secs_f64(args.idle),
        )
        .await?;
    let deliveries = sink.deliveries(TOPIC, mark, None).await?;

    // First receive time per task id, and duplicates (one event per task here).
    let mut first: HashMap<&str, (i64, Option<&str>)> = HashMap::new();
    let mut ids = HashSet::new();
    for d in &deliveries {
        ids.insert(d.id.as_str());
        if let Some(subject) = d.subject.as_deref() {
            first
                .entry(subject)
                .and_modify(|e| e.0 = e.0.min(d.recv_ns))
                .or_insert((d.recv_ns, d.time.as_deref()));
        }
    }
    // When the relay marked each event published (stamped once per round, after the round's
    // last publish), to split the latency into the relay's part and the delivery's.
    let published: HashMap<String, i64> = match &db {
        Some(pool) => {
            let ids: Vec<Uuid> = committed
                .iter()
                .filter_map(|c| c.task_id.parse().ok())
                .collect();
            let rows: Vec<(Uuid, Option<DateTime<Utc>>)> =
                sqlx::query_as("SELECT subject, published_at FROM outbox WHERE subject = ANY($1)")
                    .bind(&ids)
                    .fetch_all(pool)
                    .await?;
            rows.into_iter()
                .filter_map(|(s, p)| Some((s.to_string(), p?.timestamp_nanos_opt()?)))
                .collect()
        }
        None => HashMap::new(),
    };
    // Latency p50 per tenth of the run (by commit time): flat when the pipeline keeps up.
    let t_first = committed.iter().map(|c| c.commit_ns).min().unwrap_or(0);
    let span = (committed.iter().map(|c| c.commit_ns).max().unwrap_or(0) - t_first).max(1);
    let mut tenths = vec![Latencies::default(); 10];
    let mut latencies = Latencies::default();
    let mut from_event_time = Latencies::default();
    let mut to_marked = Latencies::default();
    let mut marked_to_recv = Latencies::default();
    let mut lost = 0u64;
    for c in &committed {
        match first.get(c.task_id.as_str()) {
            Some(&(recv, time)) => {
                latencies.record(recv - c.commit_ns);
                let slot = ((c.commit_ns - t_first) * 10 / span).clamp(0, 9) as usize;
                tenths[slot].record(recv - c.commit_ns);
                if let Some(t) = time.and_then(rfc3339_ns) {
                    from_event_time.record(recv - t);
                }
                if let Some(&p) = published.get(&c.task_id) {
                    to_marked.record(p - c.commit_ns);
                    marked_to_recv.record(recv - p);
                }
            }
            None => lost += 1,
        }
    }
    Ok(json!({
        "kind": "relay-latency",
        "label": args.label,
        "mode": args.mode.name(),
        "rate_target": args.rate,
        "duration_s": args.duration,
        "connections": args.connections,
        "committed": committed.len(),
        "commit_errors": errors,
        "first_error": first_error,
        "produce_s": round(produce_s, 3),
        "rate_achieved": round(committed.len() as f64 / produce_s, 1),
        "start_delay": start_delays.summary(),
        "deliveries": count.deliveries,
        "distinct_delivered": count.distinct,
        "duplicates": count.deliveries - count.distinct,
        "lost": lost,
        "latency": latencies.summary(),
        "p50_ms_by_tenth": tenths.iter().map(|t| t.quantile_ms(0.5)).collect::<Vec<_>>(),
        "backlog_at_end": backlog_at_end,
        "latency_from_event_time": from_event_time.summary(),
        // Commit → the relay's `published_at` for the event's round (after the round's last
        // publish), and from there → received: the relay's share and the delivery's.
        "commit_to_marked": to_marked.summary(),
        "marked_to_received": marked_to_recv.summary(),
        "cpu": cpu0.until(&cpu1).by_process(),
    }))
}

/// `todo-bench pipeline relay-drain`.
#[derive(Args)]
pub struct DrainArgs {
    /// The outbox's database.
    #[arg(long)]
    database_url: String,
    /// The sink's base URL.
    #[arg(long)]
    sink: String,
    /// Events committed at once.
    #[arg(long, default_value_t = 50_000)]
    events: u32,
    /// Give up waiting for deliveries after this many seconds without one.
    #[arg(long, default_value_t = 60.0)]
    idle: f64,
    /// Processes whose CPU to sample, as name=pid (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Stop this process (the subscriber's sidecar) until the relay has published every event.
    #[arg(long)]
    hold: Option<u32>,
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(sqlx::FromRow)]
struct PublishedRange {
    published: i64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

pub async fn drain(args: DrainArgs) -> anyhow::Result<Value> {
    let pool = pool(Some(&args.database_url), 1).await?;
    let sink = SinkClient::new(&args.sink);
    let mark = sink.mark(TOPIC).await?;
    // The envelope add_task writes; each row gets its own event id and task id.
    let now = Utc::now();
    let template = task_created(Uuid::nil(), "bench-drain", "Drain", &[], now)?.envelope;
    // Resumed however this ends, so that a failed run cannot leave the sidecar stopped.
    let held = args.hold.map(Held::stop).transpose()?;
    let cpu0 = CpuSample::take(&args.watch);
    let t_insert = Instant::now();
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at, traceparent) \
         SELECT g.id, $4, 'com.todo.task.created', g.subject, \
                jsonb_set(jsonb_set(jsonb_set($1::jsonb, '{id}', to_jsonb(g.id::text)), \
                          '{subject}', to_jsonb(g.subject::text)), \
                          '{data,task,id}', to_jsonb(g.subject::text)), \
                $2, '00-' || md5(g.id::text) || '-' || left(md5(g.subject::text), 16) || '-01' \
         FROM (SELECT gen_random_uuid() AS id, gen_random_uuid() AS subject \
               FROM generate_series(1, $3::int)) g \
         RETURNING id",
    )
    .bind(Json(&template))
    .bind(now)
    .bind(args.events as i32)
    .bind(TOPIC)
    .fetch_all(&mut *tx)
    .await
    .context("inserting the backlog")?;
    tx.commit().await?;
    let commit_ns = now_ns();
    let insert_s = t_insert.elapsed().as_secs_f64();
    eprintln!(
        "committed {} outbox rows in {insert_s:.1} s; waiting for the sink",
        ids.len()
    );
    // With the subscriber held: the relay's share of the CPU, then the subscriber's.
    let cpu_relay = match held {
        Some(held) => {
            let relayed = wait_published(&pool, Duration::from_secs_f64(args.idle)).await;
            let cpu = CpuSample::take(&args.watch);
            drop(held);
            relayed?;
            Some(cpu)
        }
        None => None,
    };
    let count = sink
        .wait_distinct(
            TOPIC,
            mark,
            None,
            ids.len(),
            Instant::now(),
            Duration::from_secs_f64(args.idle),
        )
        .await?;
    let cpu1 = CpuSample::take(&args.watch);
    let deliveries = sink.deliveries(TOPIC, mark, None).await?;

    let wanted: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    let mut seen = HashSet::new();
    let (mut first_recv, mut last_recv) = (i64::MAX, i64::MIN);
    for d in deliveries.iter().filter(|d| wanted.contains(&d.id)) {
        if seen.insert(d.id.as_str()) {
            first_recv = first_recv.min(d.recv_ns);
            last_recv = last_recv.max(d.recv_ns);
        }
    }
    let matched = seen.len();
    let lost = ids.len() - matched;
    let range: PublishedRange = sqlx::query_as(
        "SELECT count(published_at) AS published, min(published_at) AS first, \
                max(published_at) AS last FROM outbox WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await?;
    // The relay's pace over the drain: events marked published per 10 s from its first round.
    let by_10s: Vec<i64> = sqlx::query_scalar(
        "WITH d AS (SELECT published_at FROM outbox WHERE id = ANY($1) AND published_at IS NOT NULL), \
              m AS (SELECT min(published_at) AS m FROM d) \
         SELECT count(*) FROM d, m \
         GROUP BY floor(extract(epoch FROM d.published_at - m.m) / 10) \
         ORDER BY floor(extract(epoch FROM d.published_at - m.m) / 10)",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await?;
    let secs = |a: i64, b: i64| (b - a) as f64 / 1e9;
    let sink_window = if matched > 1 {
        secs(first_recv, last_recv)
    } else {
        0.0
    };
    let relay_window = match (range.first, range.last) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => 0.0,
    };
    let rate = |n: usize, s: f64| if s > 0.0 { round(n as f64 / s, 1) } else { 0.0 };
    Ok(json!({
        "kind": "relay-drain",
        "label": args.label,
        "events": ids.len(),
        "insert_s": round(insert_s, 3),
        "deliveries": count.deliveries,
        "distinct_delivered": matched,
        "duplicates": deliveries.len().saturating_sub(seen.len()),
        "lost": lost,
        "published_in_db": range.published,
        // The relay's own pace: events between its first and last batch's `published_at`.
        "relay_window_s": round(relay_window, 3),
        "relay_rate": rate(range.published as usize, relay_window),
        // Events per second in each 10 s of the drain (the last one partial).
        "relay_rate_by_10s": by_10s.iter().map(|n| *n as f64 / 10.0).collect::<Vec<_>>(),
        // What the subscriber saw: first to last delivery.
        "sink_window_s": round(sink_window, 3),
        "sink_rate": rate(matched.saturating_sub(1), sink_window),
        // Commit of the backlog to its last delivery (includes the relay's poll interval).
        "commit_to_last_s": if matched > 0 { round(secs(commit_ns, last_recv), 3) } else { 0.0 },
        "commit_to_first_ms": if matched > 0 { round(secs(commit_ns, first_recv) * 1e3, 1) } else { 0.0 },
        "held_subscriber": args.hold.is_some(),
        "cpu": cpu0.until(&cpu1).by_process(),
        "cpu_relay": cpu_relay.as_ref().map(|mid| cpu0.until(mid).by_process()),
        "cpu_delivery": cpu_relay.as_ref().map(|mid| mid.until(&cpu1).by_process()),
    }))
}

/// Until nothing is left to publish in the outbox; fails after `idle` without progress. Reads
/// only the oldest unpublished event (through the relay's own index), as a count would scan the
/// table and take the cores from the relay being measured.
async fn wait_published(pool: &PgPool, idle: Duration) -> anyhow::Result<()> {
    let (mut oldest, mut since) = (None, Instant::now());
    loop {
        let now_oldest: Option<i64> = sqlx::query_scalar(
            // `seq > 0`: the relay's walk index (migration 0005).
            "SELECT seq FROM outbox WHERE published_at IS NULL AND seq > 0 ORDER BY seq LIMIT 1",
        )
        .fetch_optional(pool)
        .await?;
        if now_oldest.is_none() {
            return Ok(());
        }
        if now_oldest != oldest {
            (oldest, since) = (now_oldest, Instant::now());
        } else if since.elapsed() > idle {
            bail!("the relay published nothing for {idle:?}; event {oldest:?} waits");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A process stopped (SIGSTOP) until this is dropped (SIGCONT).
struct Held(u32);

impl Held {
    fn stop(pid: u32) -> anyhow::Result<Self> {
        signal(pid, "STOP")?;
        Ok(Held(pid))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Err(e) = signal(self.0, "CONT") {
            eprintln!("cannot resume process {}: {e:#}", self.0);
        }
    }
}

/// Sends `kill -SIG pid`.
fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}
