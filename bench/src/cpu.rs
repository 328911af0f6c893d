//! CPU accounting from `/proc`: how the machine's cores were spent during a measured window.
//!
//! Times in `/proc` are in USER_HZ ticks, which Linux fixes at 100 per second for user space.
//! PostgreSQL's share is the sum over every process named `postgres` of its own CPU time plus
//! that of its reaped children: a backend that exits during the window (pgbench's connections)
//! is then still counted, through the postmaster's `cutime`/`cstime`.

use std::time::Instant;

use serde_json::{Value, json};

const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// Machine-wide busy ticks (all cores): user, nice, system, irq, softirq, steal.
    busy: u64,
    iowait: u64,
    cores: usize,
    postgres: u64,
    server: Option<u64>,
    /// This process, plus its reaped children (pgbench, when `pgbench` runs it).
    me: u64,
}

/// (comm, utime + stime, cutime + cstime) of a `/proc/<pid>/stat` line.
fn parse_stat(text: &str) -> Option<(String, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14.
    let num = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Some((comm, num(11) + num(12), num(13) + num(14)))
}

/// (comm, own CPU ticks, reaped children's ticks) of a process (`self` for this one).
pub fn proc_ticks(pid: &str) -> Option<(String, u64, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat(&t))
}

impl CpuSnapshot {
    pub fn take(server_pid: Option<u32>) -> Self {
        let at = Instant::now();
        let mut busy = 0;
        let mut iowait = 0;
        let mut cores = 0;
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            for line in stat.lines() {
                let mut it = line.split_whitespace();
                match it.next() {
                    Some("cpu") => {
                        let v: Vec<u64> = it.filter_map(|s| s.parse().ok()).collect();
                        let f = |i: usize| v.get(i).copied().unwrap_or(0);
                        // user nice system idle iowait irq softirq steal
                        busy = f(0) + f(1) + f(2) + f(5) + f(6) + f(7);
                        iowait = f(4);
                    }
                    Some(name) if name.starts_with("cpu") => cores += 1,
                    _ => {}
                }
            }
        }
        let mut postgres = 0;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str() else { continue };
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((comm, own, children)) = proc_ticks(pid)
                    && comm == "postgres"
                {
                    postgres += own + children;
                }
            }
        }
        let server = server_pid.and_then(|p| proc_ticks(&p.to_string()).map(|(_, own, _)| own));
        let me = proc_ticks("self").map_or(0, |(_, own, children)| own + children);
        Self {
            at,
            busy,
            iowait,
            cores,
            postgres,
            server,
            me,
        }
    }
}

/// Percentages of one core (so up to 100 × cores) spent by each party between two snapshots.
/// The load generator is this process and its reaped children (pgbench). `other` is busy time
/// no process accounts for: interrupts and softirqs (loopback networking) and anything else
/// running on the machine, so a large `other` flags a disturbed run.
pub fn split(a: &CpuSnapshot, b: &CpuSnapshot) -> Value {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let pct = |ticks: u64| ticks as f64 / USER_HZ / secs * 100.0;
    let busy = b.busy.saturating_sub(a.busy);
    let postgres = b.postgres.saturating_sub(a.postgres);
    let server = match (a.server, b.server) {
        (Some(x), Some(y)) => y.saturating_sub(x),
        _ => 0,
    };
    let me = b.me.saturating_sub(a.me);
    let loadgen = me;
    let other = busy.saturating_sub(postgres + server + me);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "window_s": round(secs),
        "cores": a.cores,
        "busy_pct": round(pct(busy)),
        "iowait_pct": round(pct(b.iowait.saturating_sub(a.iowait))),
        "postgres_pct": round(pct(postgres)),
        "server_pct": round(pct(server)),
        "loadgen_pct": round(pct(loadgen)),
        "other_pct": round(pct(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let line = "123 (postgres: todo x) S 1 2 3 4 5 6 7 8 9 10 11 22 33 44 55 20 0";
        let (comm, own, children) = parse_stat(line).unwrap();
        assert_eq!(comm, "postgres: todo x");
        assert_eq!(own, 11 + 22);
        assert_eq!(children, 33 + 44);
    }
}
