//! What one sidecar call of the scheduler costs (`dapr-calls`): the breakdown behind the arming
//! rate.
//!
//! Arming a reminder is a sequence of calls from `todo-scheduler` to its daprd (see
//! `scheduler/src/engine.rs` and `sweep.rs`); for a task event with one reminder:
//!
//! | call                                  | what for                                     | n  |
//! |---------------------------------------|----------------------------------------------|----|
//! | state GET                             | `processed:…`, `task:…`, `reminder:…`, `sweep:watermark`, `due:…` bucket | 5 |
//! | state POST (first-write)              | `task:…`, `reminder:…`, `due:…` bucket, `processed:…` | 4 |
//! | jobs POST (schedule)                  | the reminder's job                           | 1  |
//!
//! and firing one is a job delivery (dapr-scheduler → daprd → `POST /job/…`), a state GET, a
//! publish and a state POST. This subcommand times each kind of call on its own, one call at a
//! time, against the scheduler's sidecar (the state store is scoped to app-id `scheduler`), and
//! samples the CPU the processes named with `--watch` spent per call. Keys and jobs it creates
//! are removed at the end; the published events go to a topic nobody subscribes to.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{TimeDelta, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::{CpuWatch, distribution, parse_watch, rfc3339_ms, round};

#[derive(Args)]
pub struct CallsArgs {
    /// HTTP port of the scheduler's daprd.
    #[arg(long)]
    dapr_http_port: u16,
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

struct Sidecar {
    http: reqwest::Client,
    base: String,
}

impl Sidecar {
    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let r = rb.send().await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!("HTTP {status}: {}", r.text().await.unwrap_or_default());
        }
        Ok(r)
    }

    async fn save(&self, key: &str, value: &Value, etag: Option<&str>) -> anyhow::Result<()> {
        let mut item = json!({
            "key": key, "value": value,
            "options": { "concurrency": "first-write", "consistency": "strong" },
        });
        if let Some(e) = etag {
            item["etag"] = json!(e);
        }
        self.send(
            self.http
                .post(format!("{}/v1.0/state/statestore", self.base))
                .json(&[item]),
        )
        .await
        .map(drop)
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let r = self
            .send(
                self.http
                    .get(format!("{}/v1.0/state/statestore/{key}", self.base))
                    .header("consistency", "strong"),
            )
            .await?;
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        r.bytes().await?;
        Ok(etag)
    }
}

pub async fn run(args: CallsArgs) -> anyhow::Result<Value> {
    let sidecar = Sidecar {
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("http://127.0.0.1:{}", args.dapr_http_port),
    };
    let n = args.calls;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let key = |i: usize| format!("bench-calls:{run_id}:{i}");
    let job = |i: usize| format!("bench-calls-{run_id}-{i}");
    let mut kinds = serde_json::Map::new();
    let mut etags: Vec<String> = Vec::with_capacity(n);

    // Each kind: n sequential calls, latency per call and CPU per call.
    macro_rules! measure {
        ($name:expr, $i:ident, $call:expr) => {{
            let mut lat = Vec::with_capacity(n);
            let cpu0 = CpuWatch::take(&args.watch);
            for $i in 0..n {
                let t = Instant::now();
                $call;
                lat.push(t.elapsed().as_nanos() as i64);
            }
            let cpu1 = CpuWatch::take(&args.watch);
            kinds.insert(
                $name.to_owned(),
                json!({ "latency": distribution(lat), "cpu_ms_per_call": per_call(&cpu0, &cpu1, n) }),
            );
        }};
    }

    measure!("state POST insert", i, {
        sidecar
            .save(&key(i), &document(i), None)
            .await
            .context("state insert")?
    });
    measure!("state GET", i, {
        etags.push(sidecar.get(&key(i)).await?.context("no ETag")?)
    });
    measure!("state POST update (ETag)", i, {
        sidecar
            .save(&key(i), &document(i), Some(&etags[i]))
            .await
            .context("state update")?
    });
    let due = rfc3339_ms(Utc::now() + TimeDelta::days(2));
    measure!("jobs POST schedule", i, {
        let body = json!({
            "dueTime": due, "data": { "due": due }, "overwrite": true,
            "failurePolicy": { "constant": { "interval": "1s", "maxRetries": 3600 } },
        });
        sidecar
            .send(
                sidecar
                    .http
                    .post(format!("{}/v1.0-alpha1/jobs/{}", sidecar.base, job(i)))
                    .json(&body),
            )
            .await
            .context("schedule a job")?;
    });
    measure!("pub-sub publish", i, {
        sidecar
            .send(
                sidecar
                    .http
                    .post(format!("{}/v1.0/publish/pubsub/bench-calls", sidecar.base))
                    .header("content-type", "application/cloudevents+json")
                    .body(
                        json!({
                            "specversion": "1.0", "id": format!("{run_id}-{i}"), "source": "/bench",
                            "type": "com.todo.reminder.triggered", "datacontenttype": "application/json",
                            "data": document(i)
                        })
                        .to_string(),
                    ),
            )
            .await
            .context("publish")?;
    });
    measure!("jobs DELETE", i, {
        sidecar
            .send(
                sidecar
                    .http
                    .delete(format!("{}/v1.0-alpha1/jobs/{}", sidecar.base, job(i))),
            )
            .await
            .context("delete a job")?;
    });
    for i in 0..n {
        sidecar
            .send(
                sidecar
                    .http
                    .delete(format!("{}/v1.0/state/statestore/{}", sidecar.base, key(i))),
            )
            .await?;
    }
    Ok(json!({
        "kind": "dapr-calls",
        "label": args.label,
        "calls": n,
        "kinds": kinds,
    }))
}

/// CPU milliseconds per call of each sampled process between two samples.
fn per_call(a: &CpuWatch, b: &CpuWatch, n: usize) -> Value {
    let (_, ticks) = a.ticks(b);
    Value::Object(
        ticks
            .into_iter()
            .map(|(name, t)| (name, json!(round(t as f64 * 10.0 / n as f64, 3))))
            .collect(),
    )
}
