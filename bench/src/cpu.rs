//! CPU accounting from `/proc`: how the machine's cores were spent over a measured window.
//!
//! Times in `/proc` are in USER_HZ ticks, which Linux fixes at 100 per second for user space.
//! PostgreSQL's share is the sum over every process named `postgres` of its own CPU time plus
//! that of its reaped children: a backend that exits during the window (pgbench's connections)
//! is then still counted, through the postmaster's `cutime`/`cstime`. The load generator is this
//! process with its reaped children (pgbench, when `todo-bench pgbench` runs it).

use std::time::Instant;

use serde_json::{Map, Value, json};

const USER_HZ: f64 = 100.0;

/// `name=pid`, as `--watch` takes it.
pub fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((
        name.to_owned(),
        pid.parse().map_err(|_| format!("bad pid in {s:?}"))?,
    ))
}

/// CPU counters of the machine and of the watched processes at one instant.
pub struct CpuSample {
    at: Instant,
    cores: usize,
    /// Machine-wide busy ticks (all cores): user, nice, system, irq, softirq, steal.
    busy: u64,
    iowait: u64,
    /// Interrupts and softirqs (mostly loopback networking here), part of `busy`.
    irq: u64,
    postgres: u64,
    /// This process and its reaped children.
    me: u64,
    /// Own ticks of each watched process; `None` once it has gone.
    watched: Vec<(String, Option<u64>)>,
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

/// (comm, own ticks, reaped children's ticks) of a process (`self` for this one).
fn proc_ticks(pid: &str) -> Option<(String, u64, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat(&t))
}

impl CpuSample {
    /// Samples the machine, every `postgres` process, this process and the `watch`ed ones.
    pub fn take(watch: &[(String, u32)]) -> Self {
        let at = Instant::now();
        let (mut cores, mut busy, mut iowait, mut irq) = (0, 0, 0, 0);
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
                        irq = f(5) + f(6);
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
                if pid.bytes().all(|b| b.is_ascii_digit())
                    && let Some((comm, own, children)) = proc_ticks(pid)
                    && comm == "postgres"
                {
                    postgres += own + children;
                }
            }
        }
        let watched = watch
            .iter()
            .map(|(name, pid)| {
                let own = proc_ticks(&pid.to_string()).map(|(_, own, _)| own);
                (name.clone(), own)
            })
            .collect();
        let me = proc_ticks("self").map_or(0, |(_, own, children)| own + children);
        Self {
            at,
            cores,
            busy,
            iowait,
            irq,
            postgres,
            me,
            watched,
        }
    }

    /// What was spent from `self` to `end`.
    pub fn until(&self, end: &CpuSample) -> CpuSpent {
        let watched: Vec<(String, u64)> = self
            .watched
            .iter()
            .zip(&end.watched)
            .map(|((name, a), (_, b))| {
                let d = match (a, b) {
                    (Some(a), Some(b)) => b.saturating_sub(*a),
                    _ => 0,
                };
                (name.clone(), d)
            })
            .collect();
        let busy = end.busy.saturating_sub(self.busy);
        let postgres = end.postgres.saturating_sub(self.postgres);
        let me = end.me.saturating_sub(self.me);
        let irq = end.irq.saturating_sub(self.irq);
        let accounted: u64 = watched.iter().map(|(_, t)| t).sum::<u64>() + postgres + me + irq;
        CpuSpent {
            secs: end.at.duration_since(self.at).as_secs_f64().max(1e-9),
            cores: self.cores,
            busy,
            iowait: end.iowait.saturating_sub(self.iowait),
            irq,
            postgres,
            me,
            other: busy.saturating_sub(accounted),
            watched,
        }
    }
}

/// CPU ticks spent over a window.
pub struct CpuSpent {
    secs: f64,
    cores: usize,
    busy: u64,
    iowait: u64,
    irq: u64,
    postgres: u64,
    me: u64,
    /// Busy time none of the others accounts for: anything else running on the machine.
    other: u64,
    watched: Vec<(String, u64)>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl CpuSpent {
    /// Percent of one core (up to 100 × cores).
    fn pct(&self, ticks: u64) -> f64 {
        round1(ticks as f64 / USER_HZ / self.secs * 100.0)
    }

    /// The split of `http` and `pgbench` runs, in percent of one core: the server (the process
    /// watched as `server`), PostgreSQL, the load generator, and `other`: busy time none of them
    /// accounts for, interrupts and softirqs (loopback networking) included. Processes are
    /// charged some of the softirqs they cause, so `other` is what remains, never below zero.
    pub fn split(&self) -> Value {
        let server: u64 = self.watched.iter().map(|(_, t)| t).sum();
        let other = self.busy.saturating_sub(server + self.postgres + self.me);
        json!({
            "window_s": round1(self.secs),
            "cores": self.cores,
            "busy_pct": self.pct(self.busy),
            "iowait_pct": self.pct(self.iowait),
            "postgres_pct": self.pct(self.postgres),
            "server_pct": self.pct(server),
            "loadgen_pct": self.pct(self.me),
            "other_pct": self.pct(other),
        })
    }

    /// Ticks per party, as the pipeline reports them: each watched process by name, then
    /// `postgres`, `todo-bench` (this process), `irq`, `other` and `machine` (all busy time).
    fn parties(&self) -> impl Iterator<Item = (&str, u64)> {
        self.watched
            .iter()
            .map(|(name, t)| (name.as_str(), *t))
            .chain([
                ("postgres", self.postgres),
                ("todo-bench", self.me),
                ("irq", self.irq),
                ("other", self.other),
                ("machine", self.busy),
            ])
    }

    /// The pipeline's window: percent of one core per party, and `window_s`.
    pub fn by_process(&self) -> Value {
        let mut out: Map<String, Value> = self
            .parties()
            .map(|(name, t)| (name.to_owned(), json!(self.pct(t))))
            .collect();
        out.insert("window_s".into(), json!(round1(self.secs)));
        Value::Object(out)
    }

    /// CPU milliseconds per call of each party, over `calls` calls.
    pub fn per_call(&self, calls: usize) -> Value {
        let per = |t: u64| (t as f64 * 1e3 / USER_HZ / calls.max(1) as f64 * 1e3).round() / 1e3;
        Value::Object(
            self.parties()
                .map(|(name, t)| (name.to_owned(), json!(per(t))))
                .collect(),
        )
    }
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

    #[test]
    fn parses_watch() {
        assert_eq!(parse_watch("redis=42"), Ok(("redis".into(), 42)));
        assert!(parse_watch("redis").is_err());
    }

    #[test]
    fn other_is_what_nobody_accounts_for() {
        let spent = CpuSpent {
            secs: 2.0,
            cores: 2,
            busy: 300,
            iowait: 0,
            irq: 20,
            postgres: 100,
            me: 30,
            other: 300 - (50 + 100 + 30 + 20),
            watched: vec![("server".into(), 50)],
        };
        let split = spent.split();
        assert_eq!(split["server_pct"], 25.0);
        assert_eq!(split["other_pct"], 60.0); // irq included
        // Processes charged more than the machine's busy time leave nothing to `other`.
        let over = CpuSpent {
            secs: 1.0,
            cores: 2,
            busy: 100,
            iowait: 0,
            irq: 20,
            postgres: 80,
            me: 30,
            other: 0,
            watched: vec![],
        };
        assert_eq!(over.split()["other_pct"], 0.0);
        let by = spent.by_process();
        assert_eq!(by["server"], 25.0);
        assert_eq!(by["other"], 50.0);
        assert_eq!(by["machine"], 150.0);
        assert_eq!(spent.per_call(10)["postgres"], 100.0);
    }
}
