//! The scheduler: arming reminders, and how late their notifications arrive.
//!
//! `todo-scheduler` runs beside its daprd (app-id `scheduler`, pointed at the Dapr scheduler
//! service); it consumes topic `tasks` through consumer group `scheduler` of the Redis stream
//! `tasks`, arms each reminder (state store records, the sweep's index, a Dapr job), and when a
//! job comes due publishes `com.todo.reminder.triggered` on `notifications`, where the sink
//! records when it arrives.
//!
//! One run of `reminders` publishes `--tasks` synthetic `com.todo.task.created` events (the
//! shape `todo-mcp` writes) through a daprd's bulk publish API, `--per-call` events a call as the
//! relay publishes them, each task with `--per-task` reminders;
//! the reminders' times start `--start-in` seconds after the command starts and are spread
//! evenly over `--spread` seconds (0: all at the same instant). The events are owned by
//! `--owner`, which tells this batch's notifications apart at the sink.
//!
//! * **Arming**: from the first publish until consumer group `scheduler` has acknowledged
//!   every entry of the stream (Redis `XINFO GROUPS`: lag + pending = 0), that is until the
//!   scheduler has answered SUCCESS for every event, which it does once the reminders are
//!   armed. Publishing pauses while more than `--max-ahead` events are unacknowledged, so that
//!   the stream's approximate trimming (`maxLenApprox`) cannot drop events not yet read.
//! * **Firing** (`--wait-fired`): lateness = the sink's receive time − the reminder's `fire_at`
//!   (as carried by the notification), per distinct notification; loss = reminders without a
//!   notification; duplicates counted apart; notifications/s over first to last delivery.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{TimeDelta, Utc};
use clap::Args;
use serde_json::{Value, json};
use todo_dapr::DaprClient;
use todo_dapr::app::PUBSUB_NAME;
use todo_dapr::client::BulkEntry;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{Redis, SinkClient, now_ns, ns_to_time, parse_watch, rfc3339_ns, round, task_created};
use crate::cpu::CpuSample;
use crate::latency::Latencies;

const TOPIC_TASKS: &str = "tasks";
const TOPIC_NOTIFICATIONS: &str = "notifications";

/// `todo-bench pipeline reminders`.
#[derive(Args)]
pub struct RemindersArgs {
    /// gRPC port of the daprd to publish through.
    #[arg(long)]
    dapr_grpc_port: u16,
    /// Redis as host:port (to follow consumer group `scheduler`).
    #[arg(long)]
    redis: String,
    /// The Redis database the components use.
    #[arg(long, default_value_t = 0)]
    db: u32,
    /// The scheduler's consumer group (its app-id).
    #[arg(long, default_value = "scheduler")]
    group: String,
    /// The sink's base URL (with --wait-fired).
    #[arg(long)]
    sink: Option<String>,
    /// Tasks to publish.
    #[arg(long)]
    tasks: u64,
    /// Reminders per task.
    #[arg(long, default_value_t = 1)]
    per_task: u64,
    /// Seconds from the start of the command to the first reminder.
    #[arg(long)]
    start_in: f64,
    /// Seconds over which the reminders' times are spread (0: all at once).
    #[arg(long, default_value_t = 0.0)]
    spread: f64,
    /// Owner of the tasks: tells this batch's notifications apart.
    #[arg(long)]
    owner: String,
    /// Events per bulk publish call (as the relay publishes them).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    per_call: u64,
    /// Publish calls in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Most events published but not yet acknowledged by the scheduler.
    #[arg(long, default_value_t = 2000)]
    max_ahead: i64,
    /// Wait for the notifications and measure their lateness.
    #[arg(long)]
    wait_fired: bool,
    /// Give up waiting for notifications after this many seconds without one (after the last
    /// reminder's time), or for the arming after this many seconds without progress.
    #[arg(long, default_value_t = 60.0)]
    idle: f64,
    /// Processes whose CPU to sample, as name=pid (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Reminders already pending when this batch is armed (echoed into the result).
    #[arg(long)]
    pending_before: Option<u64>,
    #[arg(long, default_value = "")]
    label: String,
}

/// Waits until the scheduler's backlog is at most `limit`; returns it.
async fn backlog_at_most(
    redis: &mut Redis,
    group: &str,
    limit: i64,
    idle: Duration,
) -> anyhow::Result<i64> {
    let mut last = i64::MAX;
    let mut progress = Instant::now();
    loop {
        let backlog = redis
            .group_backlog(TOPIC_TASKS, group)
            .await?
            .with_context(|| format!("consumer group `{group}` of stream `{TOPIC_TASKS}` is missing: is the scheduler subscribed?"))?;
        if backlog <= limit {
            return Ok(backlog);
        }
        if backlog < last {
            progress = Instant::now();
            last = backlog;
        } else if progress.elapsed() > idle {
            bail!(
                "the scheduler acknowledged nothing for {:.0} s ({backlog} events outstanding)",
                idle.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes the batch, waits for it to be armed and, with `--wait-fired`, for its
/// notifications.
pub async fn run(args: RemindersArgs) -> anyhow::Result<Value> {
    let start_ns = now_ns();
    let start = ns_to_time(start_ns);
    let count = args.tasks * args.per_task;
    let first_due = start + TimeDelta::milliseconds((args.start_in * 1e3) as i64);
    // Millisecond times, evenly spread: reminder j at first_due + spread * j / count.
    let due_of = |j: u64| {
        let offset = if count > 1 {
            args.spread * 1e3 * j as f64 / count as f64
        } else {
            0.0
        };
        first_due + TimeDelta::milliseconds(offset as i64)
    };
    let last_due = due_of(count.saturating_sub(1));

    let sink = args.sink.as_deref().map(SinkClient::new);
    let mark = match (&sink, args.wait_fired) {
        (Some(s), true) => s.mark(TOPIC_NOTIFICATIONS).await?,
        (None, true) => bail!("--wait-fired needs --sink"),
        _ => 0,
    };
    let mut redis = Redis::connect(&args.redis, args.db).await?;
    let idle = Duration::from_secs_f64(args.idle);
    let before = backlog_at_most(&mut redis, &args.group, i64::MAX, idle).await?;
    if before > 0 {
        eprintln!("note: {before} events were outstanding for the scheduler before this batch");
    }

    let publisher = DaprClient::new(&format!("http://127.0.0.1:{}", args.dapr_grpc_port), None)?;
    let mut expected: HashMap<String, i64> = HashMap::with_capacity(count as usize);
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let mut set = JoinSet::new();
    let cpu0 = CpuSample::take(&args.watch);
    let t0 = Instant::now();
    let mut max_backlog = 0;
    let mut chunk = Vec::with_capacity(args.per_call as usize);
    for i in 0..args.tasks {
        if i % 200 == 0 {
            // Keep the scheduler's backlog bounded (the stream is trimmed approximately).
            let b = backlog_at_most(&mut redis, &args.group, args.max_ahead, idle).await?;
            max_backlog = max_backlog.max(b);
        }
        let reminders: Vec<_> = (0..args.per_task)
            .map(|k| (Uuid::new_v4(), due_of(i * args.per_task + k)))
            .collect();
        for (id, at) in &reminders {
            expected.insert(id.to_string(), at.timestamp_millis() * 1_000_000);
        }
        let event = task_created(
            Uuid::now_v7(),
            &args.owner,
            &format!("Reminder bench {i}"),
            &reminders,
            Utc::now(),
        )?;
        chunk.push(event.envelope);
        if (chunk.len() as u64) < args.per_call && i + 1 < args.tasks {
            continue;
        }
        let permit = permits.clone().acquire_owned().await?;
        let p = publisher.clone();
        let envelopes = std::mem::take(&mut chunk);
        set.spawn(async move {
            let entries = BulkEntry::numbered(&envelopes);
            let failed = p.bulk_publish(PUBSUB_NAME, TOPIC_TASKS, &entries).await;
            drop(permit);
            match failed {
                Ok(failed) if failed.is_empty() => Ok(()),
                Ok(failed) => bail!("{} events were not published: {failed:?}", failed.len()),
                Err(e) => Err(e.into()),
            }
        });
        // Reap finished publishes as we go, failing fast.
        while let Some(r) = set.try_join_next() {
            r??;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let publish_s = t0.elapsed().as_secs_f64();
    backlog_at_most(&mut redis, &args.group, 0, idle).await?;
    let armed_ns = now_ns();
    let arming_s = t0.elapsed().as_secs_f64();
    let cpu1 = CpuSample::take(&args.watch);
    let first_due_ns = first_due.timestamp_nanos_opt().unwrap_or(0);
    eprintln!(
        "{}: {count} reminders armed in {arming_s:.1} s ({:.0}/s); first due in {:.1} s",
        args.label,
        count as f64 / arming_s,
        (first_due_ns - armed_ns) as f64 / 1e9
    );

    let mut out = json!({
        "kind": "reminders",
        "label": args.label,
        "owner": args.owner,
        "pending_before": args.pending_before,
        "tasks": args.tasks,
        "per_task": args.per_task,
        "reminders": count,
        "start_in_s": args.start_in,
        "spread_s": args.spread,
        "concurrency": args.concurrency,
        "publish_s": round(publish_s, 3),
        "arming_s": round(arming_s, 3),
        "arming_rate": round(count as f64 / arming_s, 1),
        "events_per_s": round(args.tasks as f64 / arming_s, 1),
        "max_backlog": max_backlog,
        // Positive: all armed before the first reminder was due.
        "armed_margin_s": round((first_due_ns - armed_ns) as f64 / 1e9, 3),
        "cpu_arming": cpu0.until(&cpu1).by_process(),
    });
    if !args.wait_fired {
        return Ok(out);
    }

    let sink = sink.context("--wait-fired needs --sink")?;
    // CPU over the firing: from the first reminder's time to the last delivery.
    let to_first = (first_due_ns - now_ns()).max(0);
    tokio::time::sleep(Duration::from_nanos(to_first as u64)).await;
    let cpu2 = CpuSample::take(&args.watch);
    let last_due_at = Instant::now()
        + Duration::from_nanos(
            (last_due.timestamp_nanos_opt().unwrap_or(0) - now_ns()).max(0) as u64,
        );
    let counted = sink
        .wait_distinct(
            TOPIC_NOTIFICATIONS,
            mark,
            Some(&args.owner),
            count as usize,
            last_due_at,
            idle,
        )
        .await?;
    let cpu3 = CpuSample::take(&args.watch);
    let deliveries = sink
        .deliveries(TOPIC_NOTIFICATIONS, mark, Some(&args.owner))
        .await?;

    let mut first: HashMap<&str, i64> = HashMap::new();
    let mut ids = HashSet::new();
    let mut wrong_time = 0u64;
    for d in &deliveries {
        ids.insert(d.id.as_str());
        let Some(rid) = d.reminder_id.as_deref() else {
            continue;
        };
        if let (Some(want), Some(got)) =
            (expected.get(rid), d.fire_at.as_deref().and_then(rfc3339_ns))
            && *want != got
        {
            wrong_time += 1;
        }
        first
            .entry(rid)
            .and_modify(|t| *t = (*t).min(d.recv_ns))
            .or_insert(d.recv_ns);
    }
    let mut lateness = Latencies::default();
    let mut per_second: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut first_recv, mut last_recv) = (i64::MAX, i64::MIN);
    let mut lost = 0u64;
    for (rid, due_ns) in &expected {
        match first.get(rid.as_str()) {
            Some(&recv) => {
                lateness.record(recv - due_ns);
                first_recv = first_recv.min(recv);
                last_recv = last_recv.max(recv);
                *per_second.entry(recv / 1_000_000_000).or_default() += 1;
            }
            None => lost += 1,
        }
    }
    let delivered = expected.len() as u64 - lost;
    let window = (last_recv - first_recv) as f64 / 1e9;
    let from_first_due = (last_recv - first_due_ns) as f64 / 1e9;
    let o = out.as_object_mut().context("object")?;
    o.insert("deliveries".into(), json!(counted.deliveries));
    o.insert("delivered".into(), json!(delivered));
    o.insert(
        "duplicates".into(),
        json!(deliveries.len().saturating_sub(ids.len())),
    );
    o.insert("lost".into(), json!(lost));
    o.insert("wrong_fire_at".into(), json!(wrong_time));
    o.insert("lateness".into(), lateness.summary());
    o.insert(
        "notifications_per_s".into(),
        json!(if window > 0.0 {
            round(delivered.saturating_sub(1) as f64 / window, 1)
        } else {
            0.0
        }),
    );
    o.insert("delivery_window_s".into(), json!(round(window, 3)));
    // From the first reminder's time to the last notification: for a batch due at one instant,
    // the time the whole batch took; divided by the batch, the time per firing.
    o.insert(
        "first_due_to_last_s".into(),
        json!(round(from_first_due, 3)),
    );
    o.insert(
        "ms_per_firing".into(),
        json!(if delivered > 0 {
            round(from_first_due * 1e3 / delivered as f64, 3)
        } else {
            0.0
        }),
    );
    o.insert(
        "peak_per_s".into(),
        json!(per_second.values().copied().max().unwrap_or(0)),
    );
    o.insert("cpu_firing".into(), cpu2.until(&cpu3).by_process());
    Ok(out)
}
