//! `report`: the JSON lines of a run as Markdown, with a section for each kind of row the file
//! holds: the server against pgbench and the sequential calls (`scripts/bench.sh`), one user's
//! calls while another floods the server (`scripts/bench-fairness.sh`), the outbox relay and
//! the scheduler (`scripts/bench-pipeline.sh`). Every figure stands beside its baseline:
//! pgbench's rate for the server's, the idle server and the server without its fair share for
//! the flooded one, `redis-benchmark` XADD for the relay's.
//!
//! The command fails when the run is invalid: a failed call or transaction, a lost event or
//! notification. The performance targets are verdicts in the report only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// `todo-bench report`.
#[derive(Args)]
pub struct ReportArgs {
    /// JSON lines written by the other subcommands.
    #[arg(long)]
    results: PathBuf,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Markdown placed above the tables (the run's settings).
    #[arg(long, default_value = "")]
    header: String,
    /// Target: `add_task` at each of --target-clients reaches this fraction of pgbench.
    #[arg(long, default_value_t = 0.7)]
    target_ratio: f64,
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    target_clients: Vec<u64>,
    /// Target: sequential HTTP p50 of the call labelled `seq-target` at most this many ms.
    #[arg(long, default_value_t = 2.0)]
    target_p50_ms: f64,
    /// Target: with the fair share on, the other user's p99 under a flood at most this many
    /// times its p99 on the idle server.
    #[arg(long, default_value_t = 2.0)]
    target_fairness_ratio: f64,
}

/// The rows of `scripts/bench.sh`.
const SERVER_KINDS: [&str; 3] = ["http", "stdio", "pgbench"];
/// The rows of `scripts/bench-pipeline.sh`.
const PIPELINE_KINDS: [&str; 6] = [
    "relay-latency",
    "relay-drain",
    "xadd",
    "reminders",
    "memory",
    "dapr-calls",
];

/// Renders the report; fails when the run is invalid.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("results file is not JSON lines")?;

    let mut md = Md::default();
    if !args.header.is_empty() {
        md.block(&args.header);
    }
    let mut problems = Vec::new();
    let (fairness, rows): (Vec<Value>, Vec<Value>) = rows.into_iter().partition(is_fairness);
    if rows.iter().any(|r| SERVER_KINDS.contains(&s(r, "kind"))) {
        server_sections(&mut md, &rows, &args, &mut problems);
    }
    if !fairness.is_empty() {
        fairness_sections(&mut md, &fairness, &args, &mut problems);
    }
    let mut cpu = Vec::new();
    relay_sections(&mut md, &rows, &mut problems, &mut cpu);
    scheduler_sections(&mut md, &rows, &mut problems, &mut cpu);
    if !cpu.is_empty() {
        cpu_table(&mut md, &cpu);
    }
    if rows.iter().any(|r| PIPELINE_KINDS.contains(&s(r, "kind"))) {
        md.block("### Loss check");
        if problems.is_empty() {
            md.bullets([
                "every committed event and every fired reminder reached the subscriber: **no loss**",
            ]);
        }
    }
    if !problems.is_empty() {
        let mut lines: Vec<String> = problems.iter().map(|p| format!("**{p}**")).collect();
        lines.push(format!(
            "**INVALID RUN**; raw results in {}",
            args.results.display()
        ));
        md.bullets(lines);
    }

    let out = md.finish();
    print!("{out}");
    if let Some(path) = &args.md {
        std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !problems.is_empty() {
        bail!("{} problem(s) in the run", problems.len());
    }
    Ok(())
}

// --- reading rows: a missing number reads as NaN (shown as `-`) or 0 ----------------------------

/// The number at JSON pointer `path` (e.g. `/latency/p50_ms`), or NaN.
fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The unsigned integer at JSON pointer `path`, or 0.
fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// The string under `key`, or "".
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `x` with `decimals` digits, or `-` for NaN.
fn num(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else {
        format!("{x:.decimals$}")
    }
}

/// The number at `path` with `decimals` digits, or `-`.
fn n(v: &Value, path: &str, decimals: usize) -> String {
    num(f(v, path), decimals)
}

/// The integer at `path`, or `-` when absent.
fn int(v: &Value, path: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_i64)
        .map_or("-".into(), |x| x.to_string())
}

/// The numbers of the array under `key`, joined by arrows.
fn series(v: &Value, key: &str) -> String {
    let values = v.get(key).and_then(Value::as_array).into_iter().flatten();
    let cells: Vec<String> = values
        .map(|x| num(x.as_f64().unwrap_or(f64::NAN), 0))
        .collect();
    cells.join(" → ")
}

// --- Markdown ---------------------------------------------------------------------------------

/// A Markdown document of blocks separated by blank lines.
#[derive(Default)]
struct Md(String);

impl Md {
    /// A heading or a paragraph.
    fn block(&mut self, text: &str) {
        let _ = write!(self.0, "{}\n\n", text.trim_end());
    }

    /// A list.
    fn bullets<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) {
        for item in items {
            let _ = writeln!(self.0, "- {}", item.as_ref());
        }
        self.0.push('\n');
    }

    /// A table of `columns` (their names separated by ` | `, as in its header line); a column
    /// named with a leading `>` is right-aligned (numbers).
    fn table(&mut self, columns: &str, rows: impl IntoIterator<Item = Vec<String>>) {
        let columns: Vec<&str> = columns.split(" | ").collect();
        let names: Vec<&str> = columns.iter().map(|c| c.trim_start_matches('>')).collect();
        let rules: Vec<&str> = columns
            .iter()
            .map(|c| if c.starts_with('>') { "---:" } else { "---" })
            .collect();
        let _ = writeln!(self.0, "| {} |", names.join(" | "));
        let _ = writeln!(self.0, "|{}|", rules.join("|"));
        for row in rows {
            let _ = writeln!(self.0, "| {} |", row.join(" | "));
        }
        self.0.push('\n');
    }

    fn finish(self) -> String {
        format!("{}\n", self.0.trim_end())
    }
}

/// Shown when some window's `other` CPU shows that something else was using the machine.
fn warn_other(md: &mut Md, max_other: f64) {
    if max_other > 25.0 {
        md.block(&format!(
            "**Warning: up to {max_other:.0}% of a core went to `other` during a run: something \
             else was using the machine; rerun on a quiet machine.**"
        ));
    }
}

// --- todo-mcp against pgbench (scripts/bench.sh) -------------------------------------------------

fn server_sections(md: &mut Md, rows: &[Value], args: &ReportArgs, problems: &mut Vec<String>) {
    let errors: u64 = rows
        .iter()
        .filter(|r| SERVER_KINDS.contains(&s(r, "kind")))
        .map(|r| u(r, "/errors"))
        .sum();
    let cpu = |r: &Value, keys: &[&str]| {
        keys.iter()
            .map(|k| n(r, &format!("/cpu/{k}_pct"), 0))
            .collect::<Vec<_>>()
            .join(" / ")
    };

    md.block("### Throughput over streamable HTTP vs pgbench (same SQL, same concurrency)");
    let mut ratio_at_target = std::collections::BTreeMap::new();
    let mut max_other: f64 = 0.0;
    let mut table = Vec::new();
    for http in rows
        .iter()
        .filter(|r| s(r, "kind") == "http" && s(r, "label") == "load")
    {
        let (tool, clients) = (s(http, "tool"), u(http, "/clients"));
        let pg = rows.iter().find(|r| {
            s(r, "kind") == "pgbench" && s(r, "tool") == tool && u(r, "/clients") == clients
        });
        let tps = pg.map_or(f64::NAN, |p| f(p, "/tps"));
        let ratio = f(http, "/rate") / tps;
        if tool == "add_task" && args.target_clients.contains(&clients) {
            ratio_at_target.insert(clients, ratio);
        }
        for r in std::iter::once(http).chain(pg) {
            max_other = max_other.max(f(r, "/cpu/other_pct"));
        }
        table.push(vec![
            tool.to_owned(),
            clients.to_string(),
            n(http, "/rate", 0),
            num(tps, 0),
            num(ratio, 2),
            n(http, "/p50_ms", 2),
            n(http, "/p99_ms", 2),
            n(http, "/max_ms", 1),
            (u(http, "/errors") + pg.map_or(0, |p| u(p, "/errors"))).to_string(),
            n(http, "/db_xacts_per_call", 2),
            int(http, "/backlog_after"),
            cpu(http, &["server", "postgres", "loadgen", "other"]),
            pg.map_or("-".into(), |p| cpu(p, &["postgres", "loadgen", "other"])),
        ]);
    }
    md.table(
        "tool | >clients | >server calls/s | >pgbench tps | >ratio | >p50 ms | >p99 ms | \
         >max ms | >errors | >DB xacts per call | >relay backlog at end | \
         CPU% server run: todo-mcp / postgres / load gen / other | \
         CPU% pgbench run: postgres / pgbench / other",
        table,
    );
    md.bullets([
        "ratio = server calls/s ÷ pgbench tps; pgbench runs while todo-mcp is stopped",
        "DB xacts per call: PostgreSQL transactions per successful call over the whole run, the \
         outbox relay's included",
        "relay backlog at end: outbox rows not yet published when the load stopped",
        "`other`: busy CPU no process accounts for (softirqs of loopback networking, anything \
         else on the machine)",
    ]);
    warn_other(md, max_other);

    md.block("### Sequential calls (one client, one call at a time)");
    let mut seq_http_p50 = None;
    let seq = rows.iter().filter(|r| s(r, "label").starts_with("seq"));
    let table: Vec<Vec<String>> = seq
        .map(|r| {
            let what = s(r, "label")
                .split_once(':')
                .map_or(s(r, "tool"), |(_, d)| d);
            if s(r, "kind") == "http" && s(r, "label").starts_with("seq-target") {
                seq_http_p50 = Some((f(r, "/p50_ms"), what.to_owned()));
            }
            vec![
                s(r, "kind").to_owned(),
                what.to_owned(),
                u(r, "/ok").to_string(),
                n(r, "/p50_ms", 3),
                n(r, "/p99_ms", 3),
                n(r, "/mean_ms", 3),
                n(r, "/max_ms", 2),
                u(r, "/errors").to_string(),
            ]
        })
        .collect();
    md.table(
        "transport | tool (arguments) | >calls | >p50 ms | >p99 ms | >mean ms | >max ms | >errors",
        table,
    );

    md.block("### Targets");
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let mut targets: Vec<String> = args
        .target_clients
        .iter()
        .map(|clients| match ratio_at_target.get(clients) {
            Some(r) => format!(
                "add_task at {clients} clients: {r:.3} of pgbench (target ≥ {}) → **{}**",
                args.target_ratio,
                verdict(*r >= args.target_ratio)
            ),
            None => format!("add_task at {clients} clients: not measured"),
        })
        .collect();
    targets.push(match seq_http_p50 {
        Some((p50, what)) => format!(
            "sequential HTTP call p50 ({what}): {p50:.3} ms (target ≤ {} ms) → **{}**",
            args.target_p50_ms,
            verdict(p50 <= args.target_p50_ms)
        ),
        None => "sequential HTTP call p50: not measured".to_owned(),
    });
    md.bullets(targets);
    if errors > 0 {
        problems.push(format!("{errors} failed call(s)/transaction(s)"));
    }
}

// --- one user flooding, another calling (scripts/bench-fairness.sh) ---------------------------

/// The rows of `scripts/bench-fairness.sh`: `http` rows labelled `fairness:<server>:<part>`,
/// where `<server>` names how the server was started (`on`: its fair share as configured, the
/// run the target is judged on; anything else a baseline) and `<part>` is `idle` (user B's
/// sequential calls alone), `probe` (B's calls again while A floods) or `flood` (A's calls,
/// measured over the same window). The script adds `server_flags`.
fn is_fairness(r: &Value) -> bool {
    s(r, "label").starts_with("fairness:")
}

/// The server and part of a fairness row.
fn fairness_part(r: &Value) -> (&str, &str) {
    let mut it = s(r, "label").splitn(3, ':').skip(1);
    (it.next().unwrap_or(""), it.next().unwrap_or(""))
}

fn fairness_sections(md: &mut Md, rows: &[Value], args: &ReportArgs, problems: &mut Vec<String>) {
    let mut servers: Vec<&str> = Vec::new();
    for r in rows {
        let (server, _) = fairness_part(r);
        if !servers.contains(&server) {
            servers.push(server);
        }
        if u(r, "/errors") > 0 {
            problems.push(format!(
                "{}: {} failed call(s), first: {}",
                s(r, "label"),
                u(r, "/errors"),
                s(r, "first_error")
            ));
        }
    }
    let find = |server: &str, part: &str| rows.iter().find(|r| fairness_part(r) == (server, part));
    let latency = |r: Option<&Value>| {
        r.map_or("-".into(), |r| {
            format!(
                "{} / {} / {}",
                n(r, "/p50_ms", 2),
                n(r, "/p99_ms", 2),
                n(r, "/max_ms", 1)
            )
        })
    };
    let p99 = |r: Option<&Value>| r.map_or(f64::NAN, |r| f(r, "/p99_ms"));
    let flags = |server: &str| {
        rows.iter()
            .find(|r| fairness_part(r).0 == server)
            .map_or("", |r| s(r, "server_flags"))
    };

    md.block(
        "### Fairness: user B's sequential `list_tasks` while user A floods `add_task` \
         (B idle first, then under the flood)",
    );
    let first_flood = servers.iter().find_map(|sv| find(sv, "flood"));
    md.table(
        "fair share | server flags | >B idle p50 / p99 / max ms | \
         >B under flood p50 / p99 / max ms | >p99 ratio | >B calls idle / flood | \
         >B refused (429)",
        servers.iter().map(|sv| {
            let (idle, probe) = (find(sv, "idle"), find(sv, "probe"));
            vec![
                (*sv).to_owned(),
                format!("`{}`", flags(sv)),
                latency(idle),
                latency(probe),
                num(p99(probe) / p99(idle), 2),
                format!(
                    "{} / {}",
                    idle.map_or(0, |r| u(r, "/ok")),
                    probe.map_or(0, |r| u(r, "/ok"))
                ),
                (idle.map_or(0, |r| u(r, "/refused")) + probe.map_or(0, |r| u(r, "/refused")))
                    .to_string(),
            ]
        }),
    );
    md.table(
        "fair share | >A clients | >A admitted calls/s | >A refused (429)/s | \
         >admitted p50 / p99 ms | >refused p50 / p99 ms | >window s | \
         CPU% during the flood: machine / todo-mcp / postgres / A's load gen / other (B's \
         included)",
        servers.iter().filter_map(|sv| {
            let r = find(sv, "flood")?;
            Some(vec![
                (*sv).to_owned(),
                u(r, "/clients").to_string(),
                n(r, "/rate", 0),
                n(r, "/refused_rate", 0),
                format!("{} / {}", n(r, "/p50_ms", 1), n(r, "/p99_ms", 1)),
                format!(
                    "{} / {}",
                    n(r, "/refused_latency/p50_ms", 2),
                    n(r, "/refused_latency/p99_ms", 2)
                ),
                n(r, "/seconds", 1),
                ["busy", "server", "postgres", "loadgen", "other"]
                    .iter()
                    .map(|k| n(r, &format!("/cpu/{k}_pct"), 0))
                    .collect::<Vec<_>>()
                    .join(" / "),
            ])
        }),
    );
    let mut notes = vec![
        "B: one client, one call at a time, paced (`interval_ms` between starts); p99 ratio = \
         B's p99 under the flood ÷ its p99 on the idle server started the same way"
            .to_owned(),
    ];
    if let Some(r) = first_flood {
        notes.push(format!(
            "A: closed-loop clients, one keep-alive connection each; a 429 is counted as refused \
             and {}; A's window is B's flood run (A is stopped when B's calls are done)",
            match s(r, "on_429") {
                "wait" => "the client waits its `Retry-After` before the next call",
                _ => "the client sends its next call at once (`Retry-After` ignored)",
            }
        ));
    }
    md.bullets(notes);
    for sv in &servers {
        if let Some(r) = find(sv, "flood")
            && r.get("ended_by_signal").and_then(Value::as_bool) == Some(false)
        {
            problems.push(format!(
                "fairness ({sv}): A's flood ended before B's calls did; raise its duration"
            ));
        }
    }

    md.block("### Target");
    let ratio_of = |sv: &str| p99(find(sv, "probe")) / p99(find(sv, "idle"));
    let mut verdicts = Vec::new();
    if servers.contains(&"on") {
        let ratio = ratio_of("on");
        let refused: u64 = ["idle", "probe"]
            .iter()
            .filter_map(|part| find("on", part))
            .map(|r| u(r, "/refused"))
            .sum();
        let met = ratio <= args.target_fairness_ratio && refused == 0;
        verdicts.push(format!(
            "target: B's p99 under the flood ≤ {}× its idle p99, fair share on: {} ms vs {} ms \
             = {}×{} → **{}**",
            args.target_fairness_ratio,
            num(p99(find("on", "probe")), 2),
            num(p99(find("on", "idle")), 2),
            num(ratio, 2),
            if refused > 0 {
                format!(", and B was refused {refused} time(s)")
            } else {
                String::new()
            },
            if met { "met" } else { "not met" }
        ));
    } else {
        verdicts.push("target: no run with the fair share on".to_owned());
    }
    for sv in servers.iter().filter(|sv| **sv != "on") {
        verdicts.push(format!(
            "baseline, fair share {sv} (same run): B's p99 under the flood {} ms vs {} ms idle = \
             {}×",
            num(p99(find(sv, "probe")), 2),
            num(p99(find(sv, "idle")), 2),
            num(ratio_of(sv), 2)
        ));
    }
    md.bullets(verdicts);
}

// --- the outbox relay (scripts/bench-pipeline.sh) ---------------------------------------------

/// A measured window's CPU sample: (window name, result, key of its sample).
type CpuRow<'a> = (String, &'a Value, &'static str);

fn relay_sections<'a>(
    md: &mut Md,
    rows: &'a [Value],
    problems: &mut Vec<String>,
    cpu: &mut Vec<CpuRow<'a>>,
) {
    let kind = |k: &'static str| rows.iter().filter(move |r| s(r, "kind") == k);
    let latency: Vec<&Value> = kind("relay-latency").collect();
    let drain: Vec<&Value> = kind("relay-drain").collect();
    if latency.is_empty() && drain.is_empty() {
        return;
    }
    md.block("### Outbox relay: todo-mcp → daprd → Redis Streams → daprd → subscriber");

    if let Some(first) = latency.first() {
        md.block(&format!(
            "#### Commit-to-delivery latency at a steady {} events/s for {} s",
            n(first, "/rate_target", 0),
            n(first, "/duration_s", 0)
        ));
        let mut table = Vec::new();
        for r in &latency {
            let mode = s(r, "mode");
            let (lost, errors) = (u(r, "/lost"), u(r, "/commit_errors"));
            if lost > 0 {
                problems.push(format!("relay latency ({mode}): {lost} event(s) lost"));
            }
            if errors > 0 {
                problems.push(format!(
                    "relay latency ({mode}): {errors} commit(s) failed: {}",
                    s(r, "first_error")
                ));
            }
            table.push(vec![
                match mode {
                    "mcp" => "`add_task` via MCP (relay woken by its commit)",
                    "sql" => "INSERT by another process (relay polls)",
                    m => m,
                }
                .to_owned(),
                u(r, "/committed").to_string(),
                n(r, "/rate_achieved", 0),
                u(r, "/distinct_delivered").to_string(),
                lost.to_string(),
                u(r, "/duplicates").to_string(),
                n(r, "/latency/p50_ms", 1),
                n(r, "/latency/p90_ms", 1),
                n(r, "/latency/p99_ms", 1),
                n(r, "/latency/max_ms", 1),
                format!(
                    "{} / {}",
                    n(r, "/latency_from_event_time/p50_ms", 1),
                    n(r, "/latency_from_event_time/p99_ms", 1)
                ),
                format!(
                    "{} / {}",
                    n(r, "/commit_to_marked/p50_ms", 0),
                    n(r, "/commit_to_marked/max_ms", 0)
                ),
                int(r, "/backlog_at_end"),
            ]);
            cpu.push((format!("relay latency, {mode}"), *r, "cpu"));
        }
        md.table(
            "producer | >committed | >achieved events/s | >delivered | >lost | >duplicates | \
             >p50 ms | >p90 ms | >p99 ms | >max ms | >p50 / p99 ms from event `time` | \
             >commit → marked published p50 / max ms | >relay backlog when the load stopped",
            table,
        );
        md.block("Latency p50 in ms by tenth of the run (by commit time):");
        md.bullets(
            latency
                .iter()
                .map(|r| format!("{}: {}", s(r, "mode"), series(r, "p50_ms_by_tenth"))),
        );
        md.bullets([
            "latency = receive time at the subscriber − commit acknowledged to the producer; \
             lost = committed − distinct delivered, matched by task id; the producer is \
             open-loop (fixed schedule)",
        ]);
    }

    let mut relay_max: Option<f64> = None;
    for r in &drain {
        let lost = u(r, "/lost");
        if lost > 0 {
            problems.push(format!("relay drain: {lost} event(s) lost"));
        } else {
            relay_max = Some(relay_max.unwrap_or(0.0).max(f(r, "/relay_rate")));
        }
        md.block(&format!(
            "#### Maximum sustained throughput: {} events committed at once, relayed until all arrived ({})",
            u(r, "/events"),
            drain_mode(r)
        ));
        md.table(
            ">relay published events/s | >subscriber received events/s | \
             >commit → first delivery ms | >commit → last delivery s | >delivered | >lost | \
             >duplicates",
            [vec![
                n(r, "/relay_rate", 0),
                n(r, "/sink_rate", 0),
                n(r, "/commit_to_first_ms", 0),
                n(r, "/commit_to_last_s", 1),
                u(r, "/distinct_delivered").to_string(),
                lost.to_string(),
                u(r, "/duplicates").to_string(),
            ]],
        );
        md.bullets([
            "relay published/s: events ÷ time from the first to the last `published_at`; \
             subscriber received/s: first to last delivery"
                .to_owned(),
            format!(
                "the relay's events/s per 10 s of the drain (the last one partial): {}",
                series(r, "relay_rate_by_10s")
            ),
        ]);
        if r.get("held_subscriber").and_then(Value::as_bool) == Some(true) {
            cpu.push(("relay drain, the relay alone".into(), *r, "cpu_relay"));
            cpu.push((
                "relay drain, the subscriber catching up alone".into(),
                *r,
                "cpu_delivery",
            ));
        } else {
            cpu.push((format!("relay drain, {}", drain_mode(r)), *r, "cpu"));
        }
    }
    if drain.len() > 1 {
        md.block(
            "#### The subscriber's app protocol: HTTP in bulk (as the services subscribe), one \
             event per request, or Dapr's gRPC app callback",
        );
        md.table(
            "delivered to the subscriber over | >received events/s | \
             >CPU ms per event: subscriber's daprd | >subscriber",
            drain.iter().map(|r| {
                let events = u(r, "/distinct_delivered").max(1) as f64;
                let window = f(r, "/cpu/window_s");
                let per_event = |process: &str| {
                    let ms = f(r, &format!("/cpu/{process}")) / 100.0 * window * 1000.0 / events;
                    format!("{ms:.3}")
                };
                vec![
                    drain_mode(r),
                    n(r, "/sink_rate", 0),
                    per_event("daprd-sink"),
                    per_event("sink"),
                ]
            }),
        );
    }

    let xadd: Vec<&Value> = kind("xadd").collect();
    if !xadd.is_empty() {
        md.block("#### Ceiling: `redis-benchmark` XADD on the same Redis, same run");
        md.table(
            "command | >clients | >requests/s | >p50 ms | >relay max events/s ÷ XADD/s",
            xadd.iter().map(|r| {
                let payload = u(r, "/payload_bytes");
                let value = if payload == 0 {
                    "v".to_owned()
                } else {
                    format!("<{payload} bytes>")
                };
                let trim = match u(r, "/maxlen") {
                    0 => String::new(),
                    m => format!("MAXLEN ~ {m} "),
                };
                vec![
                    format!("`XADD s {trim}* f {value}`"),
                    u(r, "/clients").to_string(),
                    n(r, "/rate", 0),
                    n(r, "/p50_ms", 3),
                    relay_max.map_or("-".into(), |m| num(m / f(r, "/rate"), 4)),
                ]
            }),
        );
        md.bullets(["daprd issues one such XADD per published event"]);
    }
}

// --- the scheduler (scripts/bench-pipeline.sh) -------------------------------------------------

fn scheduler_sections<'a>(
    md: &mut Md,
    rows: &'a [Value],
    problems: &mut Vec<String>,
    cpu: &mut Vec<CpuRow<'a>>,
) {
    let kind = |k: &'static str| rows.iter().filter(move |r| s(r, "kind") == k);
    let reminders: Vec<&Value> = kind("reminders").collect();
    if !reminders.is_empty() {
        md.block(
            "### Scheduler: task events → todo-scheduler → Dapr Jobs → notification at the subscriber",
        );
        md.block("#### Arming and firing");
        let mut table = Vec::new();
        for r in &reminders {
            let label = s(r, "label");
            let fired = r.get("lateness").is_some();
            let lost = u(r, "/lost");
            if fired && lost > 0 {
                problems.push(format!("reminders {label}: {lost} notification(s) lost"));
            }
            if fired && u(r, "/wrong_fire_at") > 0 {
                problems.push(format!(
                    "reminders {label}: {} notification(s) with a wrong fire_at",
                    u(r, "/wrong_fire_at")
                ));
            }
            let due = if f(r, "/spread_s") > 0.0 {
                format!(
                    "over {} s, from +{} s",
                    n(r, "/spread_s", 0),
                    n(r, "/start_in_s", 0)
                )
            } else {
                format!("all at +{} s", n(r, "/start_in_s", 0))
            };
            let when_fired = |x: String| if fired { x } else { "-".to_owned() };
            table.push(vec![
                label.to_owned(),
                format!("{} ({})", u(r, "/reminders"), u(r, "/per_task")),
                due,
                int(r, "/pending_before"),
                n(r, "/arming_s", 1),
                n(r, "/arming_rate", 0),
                when_fired(n(r, "/armed_margin_s", 1)),
                when_fired(u(r, "/delivered").to_string()),
                when_fired(lost.to_string()),
                when_fired(u(r, "/duplicates").to_string()),
                when_fired(n(r, "/lateness/p50_ms", 1)),
                when_fired(n(r, "/lateness/p99_ms", 1)),
                when_fired(n(r, "/lateness/max_ms", 1)),
                when_fired(n(r, "/notifications_per_s", 0)),
                when_fired(u(r, "/peak_per_s").to_string()),
            ]);
            cpu.push((format!("arming {label}"), *r, "cpu_arming"));
            if fired {
                cpu.push((format!("firing {label}"), *r, "cpu_firing"));
            }
        }
        md.table(
            "batch | >reminders (per task) | due | >pending before | >arming s | \
             >armed reminders/s | >armed before first due by s | >delivered | >lost | \
             >duplicates | >lateness p50 ms | >p99 ms | >max ms | >notifications/s | >peak/s",
            table,
        );
        md.bullets([
            "arming: from the first publish until the scheduler's consumer group has acknowledged \
             every event; lateness = receive time at the subscriber − the reminder's `fire_at`; \
             notifications/s: first to last delivery",
        ]);

        // The same batch due at one instant, with few and with many reminders pending.
        let batches: Vec<&&Value> = reminders
            .iter()
            .filter(|r| r.get("lateness").is_some() && f(r, "/spread_s") == 0.0)
            .collect();
        if let [a, .., b] = batches[..] {
            md.block(&format!(
                "#### Cost of a firing vs pending reminders ({} reminders due at the same instant)",
                u(a, "/reminders")
            ));
            md.table(
                ">pending before | >batch done in s | >ms per firing | >lateness p50 ms | \
                 >p99 ms | >max ms | >notifications/s",
                batches.iter().map(|r| {
                    vec![
                        u(r, "/pending_before").to_string(),
                        n(r, "/first_due_to_last_s", 2),
                        n(r, "/ms_per_firing", 2),
                        n(r, "/lateness/p50_ms", 1),
                        n(r, "/lateness/p99_ms", 1),
                        n(r, "/lateness/max_ms", 1),
                        n(r, "/notifications_per_s", 0),
                    ]
                }),
            );
            let times = |path: &str| num(f(b, path) / f(a, path), 2);
            md.bullets([format!(
                "{} pending vs {} pending: ms per firing ×{}, lateness p99 ×{}, notifications/s ×{}",
                u(b, "/pending_before"),
                u(a, "/pending_before"),
                times("/ms_per_firing"),
                times("/lateness/p99_ms"),
                times("/notifications_per_s"),
            )]);
        }
    }

    for c in kind("dapr-calls") {
        dapr_calls(md, c, &reminders);
    }

    let memory: Vec<&Value> = kind("memory").collect();
    if !memory.is_empty() {
        md.block("#### Resident memory: VmRSS MiB (peak VmHWM), and open sockets");
        let names: BTreeSet<&String> = memory
            .iter()
            .filter_map(|m| m.get("processes").and_then(Value::as_object))
            .flat_map(|p| p.keys())
            .collect();
        let processes: Vec<String> = names.iter().map(|n| format!(">{n}")).collect();
        let columns = format!(
            "when | >pending reminders | {} | >Redis used_memory MiB",
            processes.join(" | ")
        );
        let mib = |v: &Value, path: &str| num(f(v, path) / 1024.0, 1);
        md.table(
            &columns,
            memory.iter().map(|m| {
                let mut row = vec![s(m, "label").to_owned(), int(m, "/pending")];
                row.extend(names.iter().map(|name| {
                    let p = format!("/processes/{name}");
                    format!(
                        "{} ({}), {}",
                        mib(m, &format!("{p}/rss_kib")),
                        mib(m, &format!("{p}/hwm_kib")),
                        u(m, &format!("{p}/sockets"))
                    )
                }));
                row.push(num(f(m, "/redis_used_memory") / 1048576.0, 1));
                row
            }),
        );
    }
}

/// The sidecar calls the scheduler makes, one at a time, and what arming a reminder adds up to.
fn dapr_calls(md: &mut Md, c: &Value, reminders: &[&Value]) {
    // Calls per armed reminder (a new task with one new reminder), from the engine's code
    // (`scheduler/src/apply.rs`); the names are those `todo-bench pipeline dapr-calls` measures.
    const PER_REMINDER: [(&str, u64); 8] = [
        ("state bulk get", 1),
        ("state transaction", 1),
        ("job schedule", 1),
        ("state save (insert)", 1),
        ("state get", 0),
        ("state save (ETag)", 0),
        ("pub-sub publish", 0),
        ("job delete", 0),
    ];
    md.block(&format!(
        "#### The scheduler's sidecar calls, one at a time ({} of each, idle pipeline)",
        u(c, "/calls")
    ));
    let mut procs: Vec<String> = c
        .pointer("/kinds/state get/cpu_ms_per_call")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| !FIXED_PARTIES.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let cpu_column = format!("CPU ms per call: {} / machine", procs.join(" / "));
    procs.push("machine".to_owned());
    let (mut cpu, mut latency) = (0.0, 0.0);
    let table: Vec<Vec<String>> = PER_REMINDER
        .iter()
        .map(|(name, per)| {
            let p = format!("/kinds/{name}");
            cpu += *per as f64 * f(c, &format!("{p}/cpu_ms_per_call/machine"));
            latency += *per as f64 * f(c, &format!("{p}/latency/p50_ms"));
            let cpu: Vec<String> = procs
                .iter()
                .map(|k| n(c, &format!("{p}/cpu_ms_per_call/{k}"), 2))
                .collect();
            vec![
                (*name).to_owned(),
                per.to_string(),
                n(c, &format!("{p}/latency/p50_ms"), 2),
                n(c, &format!("{p}/latency/p99_ms"), 2),
                cpu.join(" / "),
            ]
        })
        .collect();
    md.table(
        &format!("call | >per armed reminder | >p50 ms | >p99 ms | {cpu_column}"),
        table,
    );
    let mut notes = vec![format!(
        "arming one reminder takes {} sidecar calls in sequence: {} ms of latency and about {} \
         ms of CPU by these figures (the delivery of the event to the app comes on top)",
        PER_REMINDER.iter().map(|(_, per)| per).sum::<u64>(),
        num(latency, 1),
        num(cpu, 1)
    )];
    for r in reminders
        .iter()
        .filter(|r| s(r, "label").starts_with("pending"))
    {
        let per = f(r, "/cpu_arming/machine") / 100.0 * f(r, "/arming_s") * 1e3
            / u(r, "/reminders").max(1) as f64;
        if !per.is_nan() {
            notes.push(format!(
                "measured while arming \"{}\": {} ms of machine CPU per armed reminder ({} per task)",
                s(r, "label"),
                num(per, 1),
                u(r, "/per_task")
            ));
        }
    }
    md.bullets(notes);
}

/// The parties every pipeline CPU sample has besides the watched processes.
const FIXED_PARTIES: [&str; 5] = ["postgres", "todo-bench", "irq", "other", "machine"];

/// The CPU of the pipeline's measured windows: the watched processes, then the fixed parties.
fn cpu_table(md: &mut Md, rows: &[CpuRow<'_>]) {
    let named: BTreeSet<&str> = rows
        .iter()
        .filter_map(|(_, v, key)| v.get(*key).and_then(Value::as_object))
        .flat_map(|cpu| cpu.keys().map(String::as_str))
        .filter(|k| *k != "window_s" && !FIXED_PARTIES.contains(k))
        .collect();
    let parties: Vec<&str> = named.into_iter().chain(FIXED_PARTIES).collect();
    md.block(
        "#### CPU during each window (% of one core; `irq`: interrupts and softirqs, mostly \
         loopback networking; `other`: busy time nothing listed accounts for)",
    );
    let columns: Vec<String> = parties.iter().map(|p| format!(">{p}")).collect();
    md.table(
        &format!("window | >s | {}", columns.join(" | ")),
        rows.iter().filter_map(|(name, v, key)| {
            let cpu = v.get(*key)?;
            let mut row = vec![name.clone(), n(cpu, "/window_s", 0)];
            row.extend(parties.iter().map(|p| n(cpu, &format!("/{p}"), 0)));
            Some(row)
        }),
    );
    let max_other = rows
        .iter()
        .filter_map(|(_, v, key)| v.get(*key)?.get("other")?.as_f64())
        .fold(0.0, f64::max);
    warn_other(md, max_other);
}

/// How a relay drain's subscriber was called (its label names the gRPC and one-by-one runs),
/// and whether it was held until the relay was done.
fn drain_mode(r: &Value) -> String {
    let protocol = match r.get("label").and_then(Value::as_str) {
        Some("drain-grpc") => "gRPC app callback",
        Some("drain-one-by-one") => "HTTP, one event per request",
        _ => "HTTP",
    };
    if r.get("held_subscriber").and_then(Value::as_bool) == Some(true) {
        format!("{protocol}; subscriber held until the relay was done")
    } else {
        protocol.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &[Value]) -> (String, anyhow::Result<()>) {
        let dir = std::env::temp_dir().join(format!("todo-bench-report-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let results = dir.join("results.jsonl");
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        std::fs::write(&results, text.join("\n")).unwrap();
        let md = dir.join("out.md");
        let outcome = run(ReportArgs {
            results,
            md: Some(md.clone()),
            header: "## header".into(),
            target_ratio: 0.7,
            target_clients: vec![8, 32],
            target_p50_ms: 2.0,
            target_fairness_ratio: 2.0,
        });
        let out = std::fs::read_to_string(md).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        (out, outcome)
    }

    #[test]
    fn table_aligns_numbers() {
        let mut md = Md::default();
        md.table("a | >b", [vec!["x".into(), "1".into()]]);
        assert_eq!(md.finish(), "| a | b |\n|---|---:|\n| x | 1 |\n");
    }

    #[test]
    fn server_rows_against_pgbench() {
        let cpu = serde_json::json!({"server_pct": 50.0, "postgres_pct": 60.0, "loadgen_pct": 10.0, "other_pct": 1.0});
        let (out, ok) = report(&[
            serde_json::json!({"kind": "pgbench", "tool": "add_task", "clients": 32, "tps": 1000.0, "errors": 0, "cpu": cpu}),
            serde_json::json!({"kind": "http", "label": "load", "tool": "add_task", "clients": 32, "rate": 700.0, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0, "errors": 0, "cpu": cpu}),
            serde_json::json!({"kind": "http", "label": "seq-target:list_tasks {}", "tool": "list_tasks", "ok": 10, "p50_ms": 1.5, "errors": 0}),
        ]);
        ok.unwrap();
        assert!(out.starts_with("## header\n\n### Throughput"), "{out}");
        assert!(
            out.contains("| add_task | 32 | 700 | 1000 | 0.70 |"),
            "{out}"
        );
        assert!(
            out.contains("add_task at 32 clients: 0.700 of pgbench (target ≥ 0.7) → **PASS**"),
            "{out}"
        );
        assert!(out.contains("add_task at 8 clients: not measured"), "{out}");
        assert!(out.contains("1.500 ms (target ≤ 2 ms) → **PASS**"), "{out}");
        assert!(!out.contains("Loss check"));
    }

    #[test]
    fn fairness_rows_judge_the_fair_share_against_the_idle_server() {
        let row = |label: &str, p99: f64| {
            serde_json::json!({"kind": "http", "label": label, "tool": "list_tasks", "ok": 500,
                "p50_ms": 1.0, "p99_ms": p99, "max_ms": 9.0, "errors": 0, "refused": 0,
                "server_flags": "--x"})
        };
        let flood = |server: &str| {
            serde_json::json!({"kind": "http", "label": format!("fairness:{server}:flood"),
                "tool": "add_task", "clients": 32, "rate": 100.0, "refused_rate": 5000.0,
                "errors": 0, "on_429": "count", "ended_by_signal": true})
        };
        let (out, ok) = report(&[
            row("fairness:on:idle", 2.0),
            flood("on"),
            row("fairness:on:probe", 3.0),
            row("fairness:off:idle", 2.0),
            flood("off"),
            row("fairness:off:probe", 20.0),
        ]);
        ok.unwrap();
        assert!(!out.contains("Throughput"), "{out}");
        assert!(
            out.contains("| on | `--x` | 1.00 / 2.00 / 9.0 | 1.00 / 3.00 / 9.0 | 1.50 |"),
            "{out}"
        );
        assert!(out.contains("| off | 32 | 100 | 5000 |"), "{out}");
        assert!(
            out.contains("3.00 ms vs 2.00 ms = 1.50× → **met**"),
            "{out}"
        );
        assert!(out.contains("fair share off (same run): B's p99 under the flood 20.00 ms vs 2.00 ms idle = 10.00×"), "{out}");
        assert!(out.contains("`Retry-After` ignored"), "{out}");

        let (out, ok) = report(&[row("fairness:on:idle", 2.0), row("fairness:on:probe", 5.0)]);
        ok.unwrap();
        assert!(out.contains("= 2.50× → **not met**"), "{out}");
    }

    #[test]
    fn errors_and_losses_fail_the_run() {
        let (out, ok) =
            report(&[serde_json::json!({"kind": "stdio", "label": "seq:x", "errors": 2})]);
        assert!(ok.is_err());
        assert!(out.contains("2 failed call(s)"), "{out}");
        let (out, ok) = report(&[
            serde_json::json!({"kind": "relay-drain", "events": 10, "lost": 1, "cpu": {"todo-mcp": 5.0, "other": 1.0, "window_s": 2.0}}),
        ]);
        assert!(ok.is_err());
        assert!(out.contains("relay drain: 1 event(s) lost"), "{out}");
        assert!(out.contains("| relay drain, HTTP | 2 | 5 |"), "{out}");
        // Two drains, one to a subscriber over gRPC: the protocols side by side, per event.
        let drain = |label: &str, daprd: f64| {
            serde_json::json!({"kind": "relay-drain", "label": label, "events": 1000, "lost": 0,
                "distinct_delivered": 1000, "sink_rate": 500.0,
                "cpu": {"daprd-sink": daprd, "sink": 5.0, "window_s": 2.0}})
        };
        let (out, _) = report(&[
            drain("drain", 50.0),
            drain("drain-one-by-one", 75.0),
            drain("drain-grpc", 25.0),
        ]);
        assert!(out.contains("| HTTP | 500 | 1.000 | 0.100 |"), "{out}");
        assert!(
            out.contains("| HTTP, one event per request | 500 | 1.500 | 0.100 |"),
            "{out}"
        );
        assert!(
            out.contains("| gRPC app callback | 500 | 0.500 | 0.100 |"),
            "{out}"
        );
        let (out, ok) = report(&[
            serde_json::json!({"kind": "relay-drain", "events": 10, "lost": 0, "relay_rate": 100.0, "cpu": {}}),
            serde_json::json!({"kind": "xadd", "clients": 50, "rate": 10000.0, "payload_bytes": 0, "maxlen": 0}),
        ]);
        ok.unwrap();
        assert!(
            out.contains("| `XADD s * f v` | 50 | 10000 | - | 0.0100 |"),
            "{out}"
        );
        assert!(out.contains("**no loss**"), "{out}");
    }
}
