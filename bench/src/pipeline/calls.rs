//! What one sidecar call of the scheduler costs (`dapr-calls`): the breakdown behind the arming
//! rate. The calls go through `todo_dapr::DaprClient`, the client `todo-scheduler` itself uses.
//!
//! Arming a reminder is a sequence of calls from `todo-scheduler` to its daprd (see
//! `scheduler/src/apply.rs`); for a task event with one reminder:
//!
//! | call              | what for                                                         | n |
//! |-------------------|------------------------------------------------------------------|---|
//! | state bulk get    | `task:…`, `sweep:watermark`, `reminder:…`, its `due:…` bucket     | 1 |
//! | state transaction | `reminder:…` and the `due:…` bucket                              | 1 |
//! | job schedule      | the reminder's job                                               | 1 |
//! | state save        | `task:…`, the event's commit point                               | 1 |
//!
//! and firing one is a job delivery (dapr-scheduler → daprd → `POST /job/…`), a state get, a
//! publish and a state save. This subcommand times each kind of call on its own, one call at a
//! time, against the scheduler's sidecar (the state store is scoped to app-id `scheduler`), and
//! samples the CPU the processes named with `--watch` spent per call. Keys and jobs it creates
//! are removed at the end.

use std::time::Instant;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use clap::Args;
use serde_json::{Value, json};
use todo_dapr::DaprClient;
use todo_dapr::app::PUBSUB_NAME;
use todo_dapr::client::StateWrite;

use super::{parse_watch, rfc3339_ms};
use crate::cpu::CpuSample;
use crate::latency::Latencies;

/// The scheduler's state store (its `--state-store` default).
const STORE: &str = "statestore";

/// `todo-bench pipeline dapr-calls`.
#[derive(Args)]
pub struct CallsArgs {
    /// gRPC port of the scheduler's daprd.
    #[arg(long)]
    dapr_grpc_port: u16,
    /// Calls of each kind.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Processes whose CPU to sample, as name=pid (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    #[arg(long, default_value = "")]
    label: String,
}

/// A reminder record's size, roughly: the documents the engine writes are of this order.
fn document(i: usize) -> Value {
    json!({
        "owner": "bench-calls",
        "task_id": uuid::Uuid::now_v7(),
        "reminder_id": uuid::Uuid::new_v4(),
        "title": format!("Sidecar call {i}"),
        "fire_at": rfc3339_ms(Utc::now() + TimeDelta::days(2)),
        "due": null,
        "time_zone": "UTC",
        "state": "pending"
    })
}

/// Times `n` calls of each kind, one at a time, through the sidecar client the scheduler uses.
pub async fn run(args: CallsArgs) -> anyhow::Result<Value> {
    let sidecar = DaprClient::new(&format!("http://127.0.0.1:{}", args.dapr_grpc_port), None)?;
    let n = args.calls;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let key = |i: usize| format!("bench-calls:{run_id}:{i}");
    let job = |i: usize| format!("bench-calls-{run_id}-{i}");
    let mut kinds = serde_json::Map::new();
    let mut etags: Vec<String> = Vec::with_capacity(n);

    // Each kind: n sequential calls, latency per call and CPU per call.
    macro_rules! measure {
        ($name:expr, $i:ident, $call:expr) => {{
            let mut latency = Latencies::default();
            let cpu0 = CpuSample::take(&args.watch);
            for $i in 0..n {
                let t = Instant::now();
                $call;
                latency.record_duration(t.elapsed());
            }
            let cpu1 = CpuSample::take(&args.watch);
            kinds.insert(
                $name.to_owned(),
                json!({
                    "latency": latency.summary(),
                    "cpu_ms_per_call": cpu0.until(&cpu1).per_call(n),
                }),
            );
        }};
    }

    measure!("state save (insert)", i, {
        sidecar
            .save_state(STORE, &key(i), &document(i), None, None)
            .await
            .context("state insert")?
    });
    measure!("state get", i, {
        let (_, etag) = sidecar
            .get_state(STORE, &key(i))
            .await?
            .context("no such state entry")?;
        etags.push(etag);
    });
    measure!("state save (ETag)", i, {
        sidecar
            .save_state(STORE, &key(i), &document(i), Some(&etags[i]), None)
            .await
            .context("state update")?
    });
    measure!("state bulk get", i, {
        // Four keys, as an event with one reminder reads: two exist, two do not.
        let keys = [key(i), key((i + 1) % n), key(n + i), key(2 * n + i)];
        sidecar.get_bulk_state(STORE, &keys).await?;
    });
    measure!("state transaction", i, {
        let (a, b) = (key(3 * n + 2 * i), key(3 * n + 2 * i + 1));
        let (va, vb) = (document(i), document(i));
        let writes = [
            StateWrite::Save {
                key: &a,
                value: &va,
                etag: None,
                ttl: None,
            },
            StateWrite::Save {
                key: &b,
                value: &vb,
                etag: None,
                ttl: None,
            },
        ];
        sidecar
            .transact_state(STORE, &writes)
            .await
            .context("state transaction")?
    });
    let due = Utc::now() + TimeDelta::days(2);
    measure!("job schedule", i, {
        sidecar
            .schedule_job(&job(i), due, 3600)
            .await
            .context("schedule a job")?
    });
    measure!("pub-sub publish", i, {
        let event = json!({
            "specversion": "1.0", "id": format!("{run_id}-{i}"), "source": "/bench",
            "type": "com.todo.reminder.triggered", "datacontenttype": "application/json",
            "data": document(i)
        });
        // A topic nobody subscribes to.
        sidecar
            .publish(PUBSUB_NAME, "bench-calls", &event, None)
            .await
            .context("publish")?
    });
    measure!("job delete", i, {
        sidecar.delete_job(&job(i)).await.context("delete a job")?
    });
    for i in (0..n).chain(3 * n..5 * n) {
        sidecar.delete_state(STORE, &key(i), None).await?;
    }
    Ok(json!({
        "kind": "dapr-calls",
        "label": args.label,
        "calls": n,
        "kinds": kinds,
    }))
}
