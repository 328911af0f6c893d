//! `pgbench`: the baseline of the `http` runs. pgbench runs the tool's SQL transaction
//! (`bench/sql/<tool>.sql`) at the same concurrency, after an unmeasured warm-up run; its rate
//! and the CPU split of the measured run are reported.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cpu::CpuSample;

/// `todo-bench pgbench`.
#[derive(Args)]
pub struct PgbenchArgs {
    /// The pgbench binary.
    #[arg(long, default_value = "pgbench")]
    pgbench: PathBuf,
    /// The tool the script mirrors (for the report).
    #[arg(long)]
    tool: String,
    /// The script file.
    #[arg(long)]
    script: PathBuf,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// PID of the (idle) server, so that the CPU split accounts for it.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Further pgbench arguments (connection options, -D variables), after `--`.
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Runs pgbench (`-M prepared`, as sqlx prepares every statement; `-j min(clients, 2)`).
pub fn run(args: PgbenchArgs) -> anyhow::Result<Value> {
    let jobs = args.clients.clamp(1, 2);
    let run = |seconds: u64| -> anyhow::Result<String> {
        let out = std::process::Command::new(&args.pgbench)
            .args(["-n", "-M", "prepared"])
            .args(["-c", &args.clients.to_string(), "-j", &jobs.to_string()])
            .args(["-T", &seconds.to_string()])
            .arg("-f")
            .arg(&args.script)
            .args(&args.extra)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", args.pgbench.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || stdout.contains("aborted") {
            bail!(
                "pgbench failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    };
    if args.warmup > 0 {
        run(args.warmup)?;
    }
    let watch: Vec<(String, u32)> = args
        .server_pid
        .map(|pid| ("server".to_owned(), pid))
        .into_iter()
        .collect();
    let cpu_start = CpuSample::take(&watch);
    let stdout = run(args.duration)?;
    // pgbench's CPU time is ours once it has been reaped (children's times).
    let cpu_end = CpuSample::take(&watch);

    // The first number after `prefix` on a line of the output.
    let field = |prefix: &str| -> Option<String> {
        stdout.lines().find_map(|l| {
            let rest = l.trim().strip_prefix(prefix)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
    };
    let tps: f64 = field("tps = ")
        .context("no `tps = ` line in pgbench output")?
        .parse()?;
    let number = |prefix: &str| field(prefix).and_then(|s| s.parse::<f64>().ok());
    Ok(json!({
        "kind": "pgbench",
        "tool": args.tool,
        "clients": args.clients,
        "jobs": jobs,
        "seconds": args.duration,
        "tps": tps,
        "transactions": number("number of transactions actually processed:").map(|n| n as u64),
        "errors": number("number of failed transactions:").map_or(0, |n| n as u64),
        "latency_avg_ms": number("latency average = "),
        "cpu": cpu_start.until(&cpu_end).split(),
    }))
}
