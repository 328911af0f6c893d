//! `sql-check`: does a pgbench script still send what the server sends?
//!
//! `scripts/bench.sh` runs one `add_task` and one `list_tasks` call against a probe database
//! with `log_statement = 'all'`, then hands the PostgreSQL log to this check. It picks the
//! statements of each call out of the log and compares them, statement by statement, with the
//! pgbench script, after normalising what legitimately differs: placeholders (`$1` in the log,
//! `:name` in pgbench) and, in `add_task.sql`, the values pgbench has to compute in SQL (the
//! time-ordered id expression, `now()`, `NULL` literals) and the `RETURNING` that hands the id
//! to the next statements. Anything else that differs (a column, a clause, a statement more or
//! less) fails the check, so the benchmark cannot silently drift from the server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args)]
pub struct SqlCheckArgs {
    /// The PostgreSQL server log.
    #[arg(long)]
    pg_log: PathBuf,
    /// Byte offset in the log where the probe started.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// The probe database (log lines of other databases are ignored).
    #[arg(long)]
    db: String,
    /// pgbench script mirroring add_task.
    #[arg(long)]
    add_script: PathBuf,
    /// pgbench script mirroring list_tasks.
    #[arg(long)]
    list_script: PathBuf,
}

/// The id expression of `add_task.sql` (pgbench cannot make a UUID itself).
const ID_EXPR: &str = "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid";

/// One statement of the log: the backend pid and the SQL text.
#[derive(Debug, Clone)]
struct Logged {
    pid: String,
    sql: String,
}

/// Statements of `db` logged by `log_statement = 'all'` (simple and extended protocol).
fn parse_log(text: &str, db: &str) -> Vec<Logged> {
    let marker = format!("@{db} LOG:  ");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(pos) = line.find(&marker) else {
            continue;
        };
        let pid = line[..pos]
            .rfind('[')
            .and_then(|open| line[open + 1..].split_once(']').map(|(p, _)| p.to_owned()))
            .unwrap_or_default();
        let msg = &line[pos + marker.len()..];
        let sql = if let Some(s) = msg.strip_prefix("statement: ") {
            s
        } else if let Some(rest) = msg.strip_prefix("execute ") {
            // `execute sqlx_s_3: SELECT ...`
            match rest.split_once(": ") {
                Some((_, s)) => s,
                None => continue,
            }
        } else {
            continue;
        };
        out.push(Logged {
            pid,
            sql: sql.to_owned(),
        });
    }
    out
}

/// The statements of a pgbench script, without comments and meta-command words.
fn parse_script(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(sql) = line.strip_suffix("\\gset") {
            cur.push(' ');
            cur.push_str(sql);
            out.push(std::mem::take(&mut cur));
        } else if let Some(sql) = line.strip_suffix(';') {
            cur.push(' ');
            cur.push_str(sql);
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(' ');
            cur.push_str(line);
        }
    }
    out
}

/// Placeholders (`$n`, `:name`, but not `::type`) become `?`; whitespace is collapsed.
fn normalise(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        if c == '$' && next.is_ascii_digit() {
            out.push('?');
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if c == ':' && next == ':' {
            out.push_str("::");
            i += 2;
            continue;
        }
        if c == ':' && (next.is_ascii_alphabetic() || next == '_') {
            out.push('?');
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // `VALUES (` vs `VALUES(` and the like are not differences.
    collapse_in_lists(&collapsed.replace("( ", "(").replace(" )", ")"))
}

/// `IN (?, ?, ?)` becomes `IN (?…)`: a list with one placeholder per value (the tag filter)
/// has as many as the call has values, which is not a difference of the statement's shape.
fn collapse_in_lists(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("IN (?") {
        out.push_str(&rest[..i]);
        out.push_str("IN (?…");
        rest = &rest[i + "IN (?".len()..];
        while let Some(r) = rest.strip_prefix(", ?") {
            rest = r;
        }
    }
    out.push_str(rest);
    out
}

/// What `add_task.sql` computes in SQL stands for a bound value on the server.
fn normalise_add_script(sql: &str) -> String {
    let sql = sql
        .replace(ID_EXPR, "$0")
        .replace("now()", "$0")
        .replace(" NULL,", " $0,")
        .replace(" NULL)", " $0)")
        .replace("RETURNING id AS task_id", "");
    normalise(&sql)
}

fn compare(name: &str, server: &[String], script: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if server.len() != script.len() {
        problems.push(format!(
            "{name}: the server ran {} statements, the script has {}",
            server.len(),
            script.len()
        ));
    }
    for (i, (a, b)) in server.iter().zip(script).enumerate() {
        if a != b {
            problems.push(format!(
                "{name}, statement {}:\n  server: {a}\n  script: {b}",
                i + 1
            ));
        }
    }
    problems
}

pub fn run(args: SqlCheckArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.pg_log)
        .with_context(|| format!("cannot read {}", args.pg_log.display()))?;
    let from = usize::try_from(args.offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..]);
    let logged = parse_log(&text, &args.db);

    // add_task: from the BEGIN before `INSERT INTO tasks` to the COMMIT, on that backend.
    let insert = logged
        .iter()
        .position(|l| l.sql.starts_with("INSERT INTO tasks "))
        .context("no `INSERT INTO tasks` in the log: did the probe's add_task run?")?;
    let pid = &logged[insert].pid;
    let begin = logged[..insert]
        .iter()
        .rposition(|l| &l.pid == pid && l.sql == "BEGIN")
        .context("no BEGIN before the add_task INSERT")?;
    let mut server_add = Vec::new();
    for l in logged[begin..].iter().filter(|l| &l.pid == pid) {
        server_add.push(normalise(&l.sql));
        if l.sql == "COMMIT" {
            break;
        }
    }

    // list_tasks: the count, the page and the reminders query, after the add.
    let find = |prefix: &str| -> anyhow::Result<String> {
        logged[insert..]
            .iter()
            .find(|l| l.sql.starts_with(prefix))
            .map(|l| normalise(&l.sql))
            .with_context(|| format!("no `{prefix}…` in the log: did the probe's list_tasks run?"))
    };
    let server_list = vec![
        find("SELECT COUNT(*) AS total FROM tasks")?,
        find("SELECT t.id, t.owner")?,
        find("SELECT id, task_id, fire_at, minutes_before FROM reminders")?,
    ];

    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let script_add: Vec<String> = parse_script(&read(&args.add_script)?)
        .iter()
        .map(|s| normalise_add_script(s))
        .collect();
    let script_list: Vec<String> = parse_script(&read(&args.list_script)?)
        .iter()
        .map(|s| normalise(s))
        .collect();

    let mut problems = compare("add_task", &server_add, &script_add);
    problems.extend(compare("list_tasks", &server_list, &script_list));
    if problems.is_empty() {
        eprintln!(
            "sql-check: add_task ({} statements) and list_tasks ({}) match the server",
            server_add.len(),
            server_list.len()
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("sql-check: {p}");
        }
        bail!("the pgbench scripts no longer match what the server sends; update bench/sql")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_normalise_alike() {
        assert_eq!(
            normalise("SELECT a::text FROM t WHERE x = $1 AND y IN ($2, $13) AND z IN ($4)"),
            normalise("SELECT a::text FROM t WHERE x = :owner AND y IN (:id1) AND z IN (:a, :b)")
        );
        assert_eq!(
            normalise("SELECT 1 WHERE y IN ($2, $3) ORDER BY a"),
            "SELECT 1 WHERE y IN (?…) ORDER BY a"
        );
        assert_ne!(normalise("VALUES ($1, $2)"), normalise("VALUES (:a)"));
    }

    #[test]
    fn scripts_split_on_semicolons_and_gset() {
        let s = "-- c\nBEGIN;\nINSERT INTO t (a)\nVALUES (now())\nRETURNING id AS task_id \\gset\nCOMMIT;\n";
        let v = parse_script(s);
        assert_eq!(v.len(), 3);
        assert_eq!(
            normalise_add_script(&v[1]),
            normalise("INSERT INTO t (a) VALUES ($1)")
        );
    }

    #[test]
    fn log_lines_parse() {
        let log = "2026-11-26 15:55:50.329 UTC [9493] todo@probe LOG:  statement: BEGIN\n\
                   2026-11-26 15:55:50.330 UTC [9493] todo@probe LOG:  execute sqlx_s_8: INSERT INTO x VALUES ($1)\n\
                   2026-11-26 15:55:50.330 UTC [9493] todo@probe DETAIL:  parameters: $1 = 'a'\n\
                   2026-11-26 15:55:50.330 UTC [9494] todo@other LOG:  statement: BEGIN\n";
        let v = parse_log(log, "probe");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].pid, "9493");
        assert_eq!(v[1].sql, "INSERT INTO x VALUES ($1)");
    }
}
