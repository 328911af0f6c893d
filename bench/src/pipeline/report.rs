//! The pipeline report: the JSON lines of a `scripts/bench-pipeline.sh` run as Markdown tables.
//!
//! Figures only, no thresholds: the one verdict is the loss check (any committed event or armed
//! reminder that never reached the sink, or a failed commit), which makes the run invalid and
//! the command fail.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::json::{f, num, s, u};

#[derive(Args)]
pub struct ReportArgs {
    /// JSON lines written by the pipeline subcommands.
    #[arg(long)]
    results: PathBuf,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Markdown placed above the tables (the run's settings).
    #[arg(long, default_value = "")]
    header: String,
}

fn mib(kib: f64) -> String {
    num(kib / 1024.0, 1)
}

/// The CPU samples of the measured windows: `rows` are (window name, result, key of its sample).
/// The processes named in the samples come first, then the fixed columns.
fn cpu_table(out: &mut String, title: &str, rows: &[(&str, &Value, &str)]) {
    const FIXED: [&str; 5] = ["postgres", "todo-bench", "irq", "other", "machine"];
    let mut named = BTreeSet::new();
    for (_, v, key) in rows {
        if let Some(Value::Object(cpu)) = v.get(*key) {
            for k in cpu.keys() {
                if k != "window_s" && !FIXED.contains(&k.as_str()) {
                    named.insert(k.clone());
                }
            }
        }
    }
    let cols: Vec<String> = named
        .into_iter()
        .chain(FIXED.iter().map(|s| (*s).to_owned()))
        .collect();
    let _ = writeln!(out, "\n{title}\n");
    let _ = writeln!(out, "| window | s | {} |", cols.join(" | "));
    let _ = writeln!(out, "|---|---:|{}", "---:|".repeat(cols.len()));
    for (name, v, key) in rows {
        let Some(cpu) = v.get(*key) else { continue };
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                cpu.get(c)
                    .and_then(Value::as_f64)
                    .map_or("-".into(), |x| num(x, 0))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            num(f(cpu, "/window_s"), 0),
            cells.join(" | ")
        );
    }
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("results file is not JSON lines")?;
    let kind = |k: &'static str| rows.iter().filter(move |r| s(r, "kind") == k);

    let mut out = String::new();
    if !args.header.is_empty() {
        out.push_str(&args.header);
        out.push_str("\n\n");
    }
    let mut problems: Vec<String> = Vec::new();
    let mut cpu_rows: Vec<(String, &Value, &str)> = Vec::new();

    // --- issue 3 ---
    let latency: Vec<&Value> = kind("relay-latency").collect();
    let drain: Vec<&Value> = kind("relay-drain").collect();
    let xadd: Vec<&Value> = kind("xadd").collect();
    if !latency.is_empty() || !drain.is_empty() {
        let _ = writeln!(
            out,
            "### Issue 3 — outbox relay: todo-mcp → daprd → Redis Streams → daprd → subscriber\n"
        );
    }
    if let Some(first) = latency.first() {
        let _ = writeln!(
            out,
            "#### Commit-to-delivery latency at a steady {} events/s for {} s\n",
            num(f(first, "/rate_target"), 0),
            num(f(first, "/duration_s"), 0)
        );
        let _ = writeln!(
            out,
            "| producer | committed | achieved events/s | delivered | lost | duplicates | p50 ms | p90 ms | p99 ms | max ms | p50 / p99 ms from event `time` | commit → marked published p50 / max ms | relay backlog when the load stopped |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &latency {
            let mode = match s(r, "mode") {
                "mcp" => "`add_task` via MCP (relay woken by its commit)",
                "sql" => "direct INSERT by another process (relay polls)",
                m => m,
            };
            let lost = u(r, "/lost");
            let errors = u(r, "/commit_errors");
            if lost > 0 {
                problems.push(format!(
                    "relay latency ({}): {lost} event(s) lost",
                    s(r, "mode")
                ));
            }
            if errors > 0 {
                problems.push(format!(
                    "relay latency ({}): {errors} commit(s) failed: {}",
                    s(r, "mode"),
                    s(r, "first_error")
                ));
            }
            let _ = writeln!(
                out,
                "| {mode} | {} | {} | {} | {lost} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} |",
                u(r, "/committed"),
                num(f(r, "/rate_achieved"), 0),
                u(r, "/distinct_delivered"),
                u(r, "/duplicates"),
                num(f(r, "/latency/p50_ms"), 1),
                num(f(r, "/latency/p90_ms"), 1),
                num(f(r, "/latency/p99_ms"), 1),
                num(f(r, "/latency/max_ms"), 1),
                num(f(r, "/latency_from_event_time/p50_ms"), 1),
                num(f(r, "/latency_from_event_time/p99_ms"), 1),
                num(f(r, "/commit_to_marked/p50_ms"), 0),
                num(f(r, "/commit_to_marked/max_ms"), 0),
                r.get("backlog_at_end")
                    .and_then(Value::as_i64)
                    .map_or("-".into(), |b| b.to_string()),
            );
            cpu_rows.push((format!("relay latency, {}", s(r, "mode")), r, "cpu"));
        }
        let _ = writeln!(
            out,
            "\nLatency p50 in ms by tenth of the run (by commit time; flat while the pipeline keeps up):\n"
        );
        for r in &latency {
            let tenths: Vec<String> = r
                .get("p50_ms_by_tenth")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_f64().map_or("-".into(), |x| num(x, 0)))
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(out, "- {}: {}", s(r, "mode"), tenths.join(" → "));
        }
        let _ = writeln!(
            out,
            "\n- latency = receive time at the subscriber − commit acknowledged to the producer \
             (`add_task` response received / INSERT returned); lost = committed − distinct \
             delivered, matched by task id; the producer is open-loop (fixed schedule).\n\
             - the relay is woken by commits of its own process; rows committed by another \
             process wait for its next poll (500 ms after its previous round, \
             `RelaySettings::poll`).\n\
             - the relay publishes one event per sidecar call, one call at a time, up to 256 \
             tasks' events per round, and marks a round's events published after its last \
             publish (`commit → marked published`)."
        );
    }
    let mut relay_max: Option<f64> = None;
    for r in &drain {
        let lost = u(r, "/lost");
        if lost > 0 {
            problems.push(format!("relay drain: {lost} event(s) lost"));
        } else {
            relay_max = Some(relay_max.unwrap_or(0.0).max(f(r, "/relay_rate")));
        }
        let _ = writeln!(
            out,
            "\n#### Maximum sustained throughput: {} events committed at once, relayed until all arrived\n",
            u(r, "/events")
        );
        let _ = writeln!(
            out,
            "| relay published events/s | subscriber received events/s | commit → first delivery ms | commit → last delivery s | delivered | lost | duplicates |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {lost} | {} |",
            num(f(r, "/relay_rate"), 0),
            num(f(r, "/sink_rate"), 0),
            num(f(r, "/commit_to_first_ms"), 0),
            num(f(r, "/commit_to_last_s"), 1),
            u(r, "/distinct_delivered"),
            u(r, "/duplicates"),
        );
        let pace: Vec<String> = r
            .get("relay_rate_by_10s")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| num(v.as_f64().unwrap_or(f64::NAN), 0))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n- relay published/s: events ÷ time between the first and the last `published_at` \
             the relay stamped; subscriber received/s: first to last delivery at the sink.\n\
             - the relay's pace in events/s per 10 s of the drain (the last one partial): {}",
            pace.join(" → ")
        );
        cpu_rows.push(("relay drain".to_owned(), r, "cpu"));
    }
    if !xadd.is_empty() {
        let _ = writeln!(
            out,
            "\n#### Ceiling: `redis-benchmark` XADD on the same Redis, same run\n"
        );
        let _ = writeln!(
            out,
            "| command | clients | requests/s | p50 ms | relay max events/s ÷ XADD/s |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for r in &xadd {
            let payload = u(r, "/payload_bytes");
            let value = if payload == 0 {
                "v".to_owned()
            } else {
                format!("<{payload} bytes>")
            };
            let maxlen = u(r, "/maxlen");
            let trim = if maxlen > 0 {
                format!("MAXLEN ~ {maxlen} ")
            } else {
                String::new()
            };
            let ratio = relay_max.map_or("-".to_owned(), |m| num(m / f(r, "/rate"), 4));
            let _ = writeln!(
                out,
                "| `XADD s {trim}* f {value}` | {} | {} | {} | {ratio} |",
                u(r, "/clients"),
                num(f(r, "/rate"), 0),
                num(f(r, "/p50_ms"), 3),
            );
        }
        let _ = writeln!(
            out,
            "\n- daprd issues one such XADD per published event (the event as one field); the \
             relay publishes one event per sidecar call, one call at a time."
        );
    }

    // --- issue 4 ---
    let reminders: Vec<&Value> = kind("reminders").collect();
    let memory: Vec<&Value> = kind("memory").collect();
    if !reminders.is_empty() {
        let _ = writeln!(
            out,
            "\n### Issue 4 — scheduler: task events → todo-scheduler → Dapr Jobs → notification at the subscriber\n"
        );
        let _ = writeln!(out, "#### Arming and firing\n");
        let _ = writeln!(
            out,
            "| batch | reminders (per task) | due | pending before | arming s | armed reminders/s | armed before first due by s | delivered | lost | duplicates | lateness p50 ms | p99 ms | max ms | notifications/s | peak/s |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &reminders {
            let fired = r.get("lateness").is_some();
            let spread = f(r, "/spread_s");
            let due = if spread > 0.0 {
                format!(
                    "over {} s, from +{} s",
                    num(spread, 0),
                    num(f(r, "/start_in_s"), 0)
                )
            } else {
                format!("all at +{} s", num(f(r, "/start_in_s"), 0))
            };
            let lost = u(r, "/lost");
            if fired && lost > 0 {
                problems.push(format!(
                    "reminders {}: {lost} notification(s) lost",
                    s(r, "label")
                ));
            }
            if fired && u(r, "/wrong_fire_at") > 0 {
                problems.push(format!(
                    "reminders {}: {} notification(s) with a wrong fire_at",
                    s(r, "label"),
                    u(r, "/wrong_fire_at")
                ));
            }
            let cell = |x: String| if fired { x } else { "-".to_owned() };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {due} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s(r, "label"),
                u(r, "/reminders"),
                u(r, "/per_task"),
                r.get("pending_before")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |p| p.to_string()),
                num(f(r, "/arming_s"), 1),
                num(f(r, "/arming_rate"), 0),
                cell(num(f(r, "/armed_margin_s"), 1)),
                cell(u(r, "/delivered").to_string()),
                cell(lost.to_string()),
                cell(u(r, "/duplicates").to_string()),
                cell(num(f(r, "/lateness/p50_ms"), 1)),
                cell(num(f(r, "/lateness/p99_ms"), 1)),
                cell(num(f(r, "/lateness/max_ms"), 1)),
                cell(num(f(r, "/notifications_per_s"), 0)),
                cell(u(r, "/peak_per_s").to_string()),
            );
            cpu_rows.push((format!("arming {}", s(r, "label")), r, "cpu_arming"));
            if fired {
                cpu_rows.push((format!("firing {}", s(r, "label")), r, "cpu_firing"));
            }
        }
        let _ = writeln!(
            out,
            "\n- arming: from the first publish of the batch's `com.todo.task.created` events until \
             the scheduler's consumer group had acknowledged them all; lateness = receive time \
             at the subscriber − the reminder's `fire_at`; notifications/s: first to last \
             delivery."
        );

        // The same batch due at one instant, with few and with many reminders pending.
        let batches: Vec<&&Value> = reminders
            .iter()
            .filter(|r| r.get("lateness").is_some() && f(r, "/spread_s") == 0.0)
            .collect();
        if batches.len() >= 2 {
            let _ = writeln!(
                out,
                "\n#### Cost of a firing vs pending reminders ({} reminders due at the same instant)\n",
                u(batches[0], "/reminders")
            );
            let _ = writeln!(
                out,
                "| pending before | batch done in s | ms per firing | lateness p50 ms | p99 ms | max ms | notifications/s |"
            );
            let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
            for r in &batches {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    u(r, "/pending_before"),
                    num(f(r, "/first_due_to_last_s"), 2),
                    num(f(r, "/ms_per_firing"), 2),
                    num(f(r, "/lateness/p50_ms"), 1),
                    num(f(r, "/lateness/p99_ms"), 1),
                    num(f(r, "/lateness/max_ms"), 1),
                    num(f(r, "/notifications_per_s"), 0),
                );
            }
            let (a, b) = (batches[0], batches[batches.len() - 1]);
            let _ = writeln!(
                out,
                "\n- ratio, {} pending vs {} pending: ms per firing ×{}, lateness p99 ×{}, notifications/s ×{}",
                u(b, "/pending_before"),
                u(a, "/pending_before"),
                num(f(b, "/ms_per_firing") / f(a, "/ms_per_firing"), 2),
                num(f(b, "/lateness/p99_ms") / f(a, "/lateness/p99_ms"), 2),
                num(
                    f(b, "/notifications_per_s") / f(a, "/notifications_per_s"),
                    2
                ),
            );
        }
    }
    for c in kind("dapr-calls") {
        // Calls per armed reminder (a new task with one new reminder), from the engine's code.
        const PER_REMINDER: [(&str, u64); 6] = [
            ("state GET", 5),
            ("state POST insert", 3),
            ("state POST update (ETag)", 1),
            ("jobs POST schedule", 1),
            ("pub-sub publish", 0),
            ("jobs DELETE", 0),
        ];
        let _ = writeln!(
            out,
            "\n#### The scheduler's sidecar calls, one at a time ({} of each, idle pipeline)\n",
            u(c, "/calls")
        );
        let procs: Vec<String> = c
            .pointer("/kinds/state GET/cpu_ms_per_call")
            .and_then(Value::as_object)
            .map(|m| {
                m.keys()
                    .filter(|k| {
                        !["postgres", "todo-bench", "irq", "other", "machine"].contains(&k.as_str())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| call | per armed reminder | p50 ms | p99 ms | CPU ms per call: {} / machine |",
            procs.join(" / ")
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        let mut est_cpu = 0.0;
        let mut est_lat = 0.0;
        for (name, per) in PER_REMINDER {
            let p = format!("/kinds/{name}");
            let cpu: Vec<String> = procs
                .iter()
                .chain(std::iter::once(&"machine".to_owned()))
                .map(|k| num(f(c, &format!("{p}/cpu_ms_per_call/{k}")), 2))
                .collect();
            est_cpu += per as f64 * f(c, &format!("{p}/cpu_ms_per_call/machine"));
            est_lat += per as f64 * f(c, &format!("{p}/latency/p50_ms"));
            let _ = writeln!(
                out,
                "| {name} | {per} | {} | {} | {} |",
                num(f(c, &format!("{p}/latency/p50_ms")), 2),
                num(f(c, &format!("{p}/latency/p99_ms")), 2),
                cpu.join(" / "),
            );
        }
        let _ = writeln!(
            out,
            "\n- arming one reminder (a new task with one reminder) takes 10 sidecar calls in \
             sequence: {} ms of latency and about {} ms of CPU by these figures (the delivery of \
             the event to the app comes on top)",
            num(est_lat, 1),
            num(est_cpu, 1)
        );
        for r in &reminders {
            let cpu = f(r, "/cpu_arming/machine") / 100.0 * f(r, "/arming_s") * 1e3
                / u(r, "/reminders").max(1) as f64;
            if !cpu.is_nan() && s(r, "label").starts_with("pending") {
                let _ = writeln!(
                    out,
                    "- measured while arming \"{}\": {} ms of machine CPU per armed reminder \
                     ({} per task)",
                    s(r, "label"),
                    num(cpu, 1),
                    u(r, "/per_task")
                );
            }
        }
    }
    if !memory.is_empty() {
        let _ = writeln!(
            out,
            "\n#### Resident memory: VmRSS MiB (peak VmHWM), and open sockets\n"
        );
        let names: BTreeSet<String> = memory
            .iter()
            .filter_map(|m| m.get("processes").and_then(Value::as_object))
            .flat_map(|p| p.keys().cloned())
            .collect();
        let names: Vec<String> = names.into_iter().collect();
        let _ = writeln!(
            out,
            "| when | pending reminders | {} | Redis used_memory MiB |",
            names
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|---|---:|{}---:|", "---:|".repeat(names.len()));
        for m in &memory {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    let p = format!("/processes/{n}");
                    format!(
                        "{} ({}), {}",
                        mib(f(m, &format!("{p}/rss_kib"))),
                        mib(f(m, &format!("{p}/hwm_kib"))),
                        u(m, &format!("{p}/sockets"))
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                s(m, "label"),
                m.get("pending")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |p| p.to_string()),
                cells.join(" | "),
                num(f(m, "/redis_used_memory") / 1048576.0, 1),
            );
        }
    }

    if !cpu_rows.is_empty() {
        let rows: Vec<(&str, &Value, &str)> = cpu_rows
            .iter()
            .map(|(n, v, k)| (n.as_str(), *v, *k))
            .collect();
        cpu_table(
            &mut out,
            "#### CPU during each window (% of one core; `irq`: interrupts and softirqs, mostly loopback networking; `other`: busy time nothing listed accounts for, i.e. anything else running on the machine)",
            &rows,
        );
    }

    let max_other = cpu_rows
        .iter()
        .filter_map(|(_, v, k)| {
            v.get(*k)
                .and_then(|c| c.get("other"))
                .and_then(Value::as_f64)
        })
        .fold(0.0, f64::max);
    if max_other > 25.0 {
        let _ = writeln!(
            out,
            "\n**Warning: up to {max_other:.0}% of a core went to `other` during a window: something \
             else was using the machine; rerun on a quiet machine.**"
        );
    }
    let _ = writeln!(out, "\n### Loss check\n");
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "- every committed event and every fired reminder reached the subscriber: **no loss**"
        );
    } else {
        for p in &problems {
            let _ = writeln!(out, "- **{p}**");
        }
        let _ = writeln!(
            out,
            "- **INVALID RUN**; raw results in {}",
            args.results.display()
        );
    }

    print!("{out}");
    if let Some(md) = &args.md {
        std::fs::write(md, &out).with_context(|| format!("cannot write {}", md.display()))?;
    }
    if !problems.is_empty() {
        anyhow::bail!("{} problem(s) in the run", problems.len());
    }
    Ok(())
}
