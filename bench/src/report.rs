//! The results table: throughput against pgbench, sequential latency, and the verdicts.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::json::{f, s, u};

#[derive(Args)]
pub struct ReportArgs {
    /// JSON lines written by `http`, `stdio` and `pgbench`.
    #[arg(long)]
    results: PathBuf,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Text placed above the tables (e.g. the run's settings), Markdown.
    #[arg(long, default_value = "")]
    header: String,
    /// Target: `add_task` at this many clients reaches this fraction of pgbench.
    #[arg(long, default_value_t = 0.6)]
    target_ratio: f64,
    #[arg(long, default_value_t = 32)]
    target_clients: u64,
    /// Target: sequential HTTP p50 of the call labelled `target` at most this many ms.
    #[arg(long, default_value_t = 2.0)]
    target_p50_ms: f64,
}

/// A number the script may have added to a result, or `-`.
fn opt(v: &Value, key: &str, decimals: usize) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or("-".to_owned(), |x| format!("{x:.decimals$}"))
}

fn cpu(v: &Value, key: &str) -> f64 {
    f(v, &format!("/cpu/{key}"))
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

    let mut out = String::new();
    if !args.header.is_empty() {
        out.push_str(&args.header);
        out.push_str("\n\n");
    }

    // Throughput: each server run next to the pgbench run of the same tool and clients.
    let _ = writeln!(
        out,
        "### Throughput over streamable HTTP vs pgbench (same SQL, same concurrency)\n"
    );
    let _ = writeln!(
        out,
        "| tool | clients | server calls/s | pgbench tps | ratio | p50 ms | p99 ms | max ms | errors | DB xacts per call | relay backlog at end | CPU% server run: todo-mcp / postgres / load gen / other | CPU% pgbench run: postgres / pgbench / other |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    let mut ratio_at_target: Option<f64> = None;
    let mut total_errors = 0;
    let mut max_other: f64 = 0.0;
    for http in rows
        .iter()
        .filter(|r| s(r, "kind") == "http" && s(r, "label") == "load")
    {
        let tool = s(http, "tool");
        let clients = u(http, "/clients");
        let pg = rows.iter().find(|r| {
            s(r, "kind") == "pgbench" && s(r, "tool") == tool && u(r, "/clients") == clients
        });
        let rate = f(http, "/rate");
        let tps = pg.map_or(f64::NAN, |p| f(p, "/tps"));
        let ratio = rate / tps;
        let errors = u(http, "/errors") + pg.map_or(0, |p| u(p, "/errors"));
        total_errors += errors;
        if tool == "add_task" && clients == args.target_clients {
            ratio_at_target = Some(ratio);
        }
        let pg_cpu = pg.map_or("-".to_owned(), |p| {
            format!(
                "{:.0} / {:.0} / {:.0}",
                cpu(p, "postgres_pct"),
                cpu(p, "loadgen_pct"),
                cpu(p, "other_pct")
            )
        });
        let _ = writeln!(
            out,
            "| {tool} | {clients} | {rate:.0} | {tps:.0} | {ratio:.2} | {:.2} | {:.2} | {:.1} | {errors} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} | {pg_cpu} |",
            f(http, "/p50_ms"),
            f(http, "/p99_ms"),
            f(http, "/max_ms"),
            opt(http, "db_xacts_per_call", 2),
            opt(http, "backlog_after", 0),
            cpu(http, "server_pct"),
            cpu(http, "postgres_pct"),
            cpu(http, "loadgen_pct"),
            cpu(http, "other_pct"),
        );
        for r in std::iter::once(http).chain(pg) {
            max_other = max_other.max(cpu(r, "other_pct"));
        }
    }

    let _ = writeln!(
        out,
        "\n- ratio = server calls/s ÷ pgbench tps. pgbench runs while todo-mcp is stopped.\n\
         - DB xacts per call: PostgreSQL transactions (pg_stat_database) per successful call over \
         the whole run, warm-up and the outbox relay's catch-up included: add_task commits 1 and \
         its in-process outbox relay commits the rest; list_tasks runs 3 autocommit statements.\n\
         - relay backlog at end: outbox rows still unpublished when the load stopped (the relay \
         drains them before the next run).\n\
         - `other` = busy CPU no process accounts for: softirqs of loopback networking, and \
         anything else running on the machine."
    );
    if max_other > 25.0 {
        let _ = writeln!(
            out,
            "\n**Warning: up to {max_other:.0}% of a core went to `other` during a run: something \
             else was probably using the machine; rerun on a quiet machine.**"
        );
    }
    let _ = writeln!(
        out,
        "\n### Sequential calls (one client, one call at a time)\n"
    );
    let _ = writeln!(
        out,
        "| transport | tool (arguments) | calls | p50 ms | p99 ms | mean ms | max ms | errors |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    let mut seq_http_p50: Option<(f64, String)> = None;
    for r in rows.iter().filter(|r| s(r, "label").starts_with("seq")) {
        let errors = u(r, "/errors");
        total_errors += errors;
        let what = s(r, "label")
            .split_once(':')
            .map_or(s(r, "tool"), |(_, d)| d)
            .to_owned();
        if s(r, "kind") == "http" && s(r, "label").starts_with("seq-target") {
            seq_http_p50 = Some((f(r, "/p50_ms"), what.clone()));
        }
        let _ = writeln!(
            out,
            "| {} | {what} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {errors} |",
            s(r, "kind"),
            u(r, "/ok"),
            f(r, "/p50_ms"),
            f(r, "/p99_ms"),
            f(r, "/mean_ms"),
            f(r, "/max_ms"),
        );
    }

    let _ = writeln!(out, "\n### Targets\n");
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    match ratio_at_target {
        Some(r) => {
            let _ = writeln!(
                out,
                "- add_task at {} clients: {r:.3} of pgbench (target ≥ {}) → **{}**",
                args.target_clients,
                args.target_ratio,
                verdict(r >= args.target_ratio)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- add_task at {} clients: not measured",
                args.target_clients
            );
        }
    }
    match &seq_http_p50 {
        Some((p50, what)) => {
            let _ = writeln!(
                out,
                "- sequential HTTP call p50 ({what}): {p50:.3} ms (target ≤ {} ms) → **{}**",
                args.target_p50_ms,
                verdict(*p50 <= args.target_p50_ms)
            );
        }
        None => {
            let _ = writeln!(out, "- sequential HTTP call p50: not measured");
        }
    }
    if total_errors > 0 {
        let _ = writeln!(
            out,
            "- **INVALID RUN: {total_errors} failed call(s)/transaction(s)**; see the JSON lines in {}",
            args.results.display()
        );
    }

    print!("{out}");
    if let Some(md) = &args.md {
        std::fs::write(md, &out).with_context(|| format!("cannot write {}", md.display()))?;
    }
    if total_errors > 0 {
        anyhow::bail!("{total_errors} error(s) during the run");
    }
    Ok(())
}
