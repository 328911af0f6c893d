//! Property tests of what reaches the MCP server from outside: tool arguments (their wire shape and
//! their parsing into commands, `mcp::args`), list cursors and search text, and the events its
//! consumers receive.
//!
//! Pure parsing runs without a database. The consumer and cursor properties run against a fresh
//! SQLite file, and against PostgreSQL too when `TODO_TEST_DATABASE_URL` is set (as
//! `scripts/test.sh` does): only PostgreSQL refuses some strings (NUL) and some times (before
//! 4713 BC), so only it shows whether such input is classified correctly.

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use mcp_server::app::commands::{NewTask, TaskPatch};
use mcp_server::app::listing::{ListQuery, RowKey};
use mcp_server::app::notifications::NotificationService;
use mcp_server::app::tasks::TaskService;
use mcp_server::events::bus::Disposition;
use mcp_server::events::consumers::{NotificationConsumer, RecurrenceConsumer};
use mcp_server::mcp::args::{
    AddTaskArgs, CancelReminderArgs, ListNotificationsArgs, ListTasksArgs, SetReminderArgs,
    TaskIdArgs, UpdateTaskArgs,
};
use mcp_server::store::Db;
use mcp_server::store::tasks::like_pattern;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use todo_shared::ValidationError;
use todo_shared::events::{EventType, SCHEDULER_SOURCE, TASKS_SOURCE, occurrence_task_id};
use todo_shared::listing::parse_search;
use todo_shared::time::Zone;
use uuid::Uuid;

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 1_000,
        // No regression files beside the sources; a failure prints its minimal input.
        failure_persistence: None,
        ..Config::default()
    }
}

/// A fixed "now" so that "in the future" means the same in every run.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("valid literal")
}

// --- strategies ---------------------------------------------------------------------------------

/// Text a hostile caller might send: wildcards, quotes, NUL and other controls, non-ASCII,
/// near-limit and over-limit lengths, and plain random strings.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[%_'\"\\\\ a-zA-Z0-9\u{0}\u{7}\n\t]{0,24}",
        1 => prop::sample::select(vec![
            String::new(),
            " ".to_owned(),
            "%".to_owned(),
            "_".to_owned(),
            "\\".to_owned(),
            "' OR 1=1 --".to_owned(),
            "\u{0}".to_owned(),
            "a\u{0}b".to_owned(),
            "\u{202E}evil".to_owned(),
            "\u{FEFF}".to_owned(),
            "x".repeat(200),
            "x".repeat(201),
            "é".repeat(200),
            "é".repeat(2_001),
            "y".repeat(100_000),
        ]),
    ]
}

/// Values a due time, `until`, `at`, `due_before` or `due_after` might be given.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "2027-05-01T10:00:00Z", "2027-05-01", "2027-05-01T10:00", "2027-05-01 10:00:30.5",
            "2027-03-14T02:30", "2026-11-01T01:30", "2020-01-01T00:00:00Z", "0001-01-01",
            "0001-01-01T00:00:00Z", "1899-12-31", "1900-01-01", "9999-12-31", "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-23:59", "10000-01-01", "100000-01-01T00:00:00Z",
            "2027-02-30", "2027-02-03T24:30", "tomorrow", "", "2016-12-31T23:59:60Z",
            "+002027-05-01T10:00:00Z", "2027-05-01T10:00:00+24:00",
        ])
        .prop_map(str::to_owned),
        1 => hostile_text(),
    ]
}

fn zone_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "UTC", "America/New_York", "europe/berlin", "  Asia/Kolkata ", "Pacific/Kiritimati",
            "Mars/Olympus_Mons", "+05:00", "", "EST5EDT7", "../../etc/passwd",
        ])
        .prop_map(str::to_owned),
        1 => hostile_text(),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0 9 * * 1-5", "* * * * *", "0 0 31 2 *", "0 0 30 2 *", "*/10 * * * * *", "@daily",
            "61 * * * *", "0 0 29 2 *", "0 0 L * *", "0 12 * * 1#2", "", "   ",
        ])
        .prop_map(str::to_owned),
        1 => hostile_text(),
        1 => prop::collection::vec("[0-9*/,LW#?+-]{1,6}", 0..8).prop_map(|f| f.join(" ")),
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..30).prop_map(Value::from),
        (0u64..20_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
    ]
}

/// A recurrence object: mostly the right fields with hostile values, sometimes extra fields.
fn recurrence_json() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "daily", "weekly", "monthly", "yearly", "cron", "hourly", "DAILY", "",
        ]),
        prop::option::of(json_number()),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["mo", "tu", "su", "monday", "xx", "MO"]),
            0..9,
        )),
        prop::option::of(time_text()),
        prop::option::of(json_number()),
        prop::option::of(cron_text()),
        any::<bool>(),
    )
        .prop_map(
            |(frequency, interval, weekdays, until, count, cron, extra)| {
                let mut o = Map::new();
                o.insert("frequency".into(), json!(frequency));
                put(&mut o, "interval", interval);
                put(&mut o, "weekdays", weekdays.map(|w| json!(w)));
                put(&mut o, "until", until.map(Value::from));
                put(&mut o, "count", count);
                put(&mut o, "cron", cron.map(Value::from));
                if extra {
                    o.insert("every".into(), json!(2));
                }
                Value::Object(o)
            },
        )
}

fn reminder_json() -> impl Strategy<Value = Value> {
    (
        prop::option::of(time_text()),
        prop::option::of(json_number()),
    )
        .prop_map(|(at, minutes)| {
            let mut o = Map::new();
            put(&mut o, "at", at.map(Value::from));
            put(&mut o, "minutes_before", minutes);
            Value::Object(o)
        })
}

fn put(o: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        o.insert(key.to_owned(), v);
    }
}

/// Any JSON value, nested a few levels, with strings from `hostile_text`.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        json_number(),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Names no tool takes, though a model (or an attacker) might try them.
const FOREIGN_ARGUMENTS: &[&str] = &["owner", "id"];

/// Every argument name of every tool (`TOOL_ARGUMENTS`), once each, and the foreign ones.
fn argument_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for name in TOOL_ARGUMENTS
        .iter()
        .flat_map(|a| a.iter())
        .chain(FOREIGN_ARGUMENTS)
    {
        if !names.contains(name) {
            names.push(name);
        }
    }
    names
}

/// A value for the argument `name`: usually of the right type with hostile content, sometimes
/// of any type.
fn argument_value(name: &'static str) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match name {
        "title" | "description" | "search" | "cursor" | "owner" => {
            prop_oneof![hostile_text().prop_map(Value::from), Just(Value::Null)].boxed()
        }
        "priority" => prop::sample::select(vec!["low", "medium", "high", "urgent", "HIGH", ""])
            .prop_map(Value::from)
            .boxed(),
        "status" => prop::sample::select(vec!["pending", "completed", "all", "done"])
            .prop_map(Value::from)
            .boxed(),
        "sort" => prop::sample::select(vec!["created", "due", "priority", "title", "size"])
            .prop_map(Value::from)
            .boxed(),
        "order" => prop::sample::select(vec!["asc", "desc", "up"])
            .prop_map(Value::from)
            .boxed(),
        "tags" => prop_oneof![
            prop::collection::vec(hostile_text(), 0..14).prop_map(|v| json!(v)),
            (0usize..3)
                .prop_map(|_| json!((0..10_000).map(|i| format!("t{i}")).collect::<Vec<_>>())),
        ]
        .boxed(),
        "due" | "due_before" | "due_after" | "at" => {
            prop_oneof![time_text().prop_map(Value::from), Just(Value::Null)].boxed()
        }
        "time_zone" => zone_text().prop_map(Value::from).boxed(),
        "recurrence" => prop_oneof![recurrence_json(), Just(Value::Null)].boxed(),
        "reminders" => prop::collection::vec(reminder_json(), 0..13)
            .prop_map(Value::Array)
            .boxed(),
        "limit" | "minutes_before" => json_number().boxed(),
        "overdue" | "unread_only" | "mark_read" => any::<bool>().prop_map(Value::from).boxed(),
        "task_id" | "reminder_id" | "id" => prop_oneof![
            Just(Value::from(Uuid::nil().to_string())),
            any::<u128>().prop_map(|n| Value::from(Uuid::from_u128(n).to_string())),
            hostile_text().prop_map(Value::from),
        ]
        .boxed(),
        _ => any_json().boxed(),
    };
    prop_oneof![6 => typed, 1 => any_json()].boxed()
}

/// An argument object: a random subset of argument names, each with a value from
/// `argument_value`, and sometimes a completely random key.
fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    let pairs = prop::sample::subsequence(argument_names(), 0..8).prop_flat_map(|names| {
        names
            .into_iter()
            .map(|n| argument_value(n).prop_map(move |v| (n.to_owned(), v)))
            .collect::<Vec<_>>()
    });
    (
        pairs,
        prop::option::of((hostile_text(), any_json())),
        any::<bool>(),
    )
        .prop_map(|(pairs, extra, with_title)| {
            let mut o: Map<String, Value> = pairs.into_iter().collect();
            if with_title && !o.contains_key("title") {
                o.insert("title".into(), json!("Pay rent"));
            }
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            o
        })
}

/// The arguments of each tool (`title` first where required).
const TOOL_ARGUMENTS: &[&[&str]] = &[
    &[
        "title",
        "description",
        "priority",
        "tags",
        "due",
        "time_zone",
        "recurrence",
        "reminders",
    ],
    &[
        "status",
        "priority",
        "tags",
        "search",
        "due_before",
        "due_after",
        "overdue",
        "time_zone",
        "sort",
        "order",
        "limit",
        "cursor",
    ],
    &[
        "task_id",
        "title",
        "description",
        "priority",
        "tags",
        "due",
        "time_zone",
        "recurrence",
    ],
    &["task_id", "at", "minutes_before"],
    &["task_id", "reminder_id"],
    &["unread_only", "mark_read", "limit"],
];

/// An argument object for one tool: its required arguments (usually valid) and a random subset
/// of its optional ones, with hostile values.
fn tool_arguments() -> impl Strategy<Value = Map<String, Value>> {
    prop::sample::select(TOOL_ARGUMENTS.to_vec())
        .prop_flat_map(|names| {
            let required: Vec<&'static str> = names
                .iter()
                .copied()
                .filter(|n| matches!(*n, "title" | "task_id"))
                .collect();
            (
                Just(required),
                prop::sample::subsequence(names.to_vec(), 0..=names.len()),
            )
        })
        .prop_flat_map(|(required, optional)| {
            let values: Vec<_> = optional
                .into_iter()
                .map(|n| argument_value(n).prop_map(move |v| (n.to_owned(), v)))
                .collect();
            (Just(required), values, any::<bool>())
        })
        .prop_map(|(required, pairs, plain)| {
            let mut o: Map<String, Value> = Map::new();
            for r in required {
                o.insert(
                    r.to_owned(),
                    if r == "title" {
                        json!("Pay rent")
                    } else {
                        json!(Uuid::nil())
                    },
                );
            }
            for (k, v) in pairs {
                // Keep the required arguments valid in most cases.
                if !(plain && o.contains_key(&k)) {
                    o.insert(k, v);
                }
            }
            o
        })
}

// --- tool arguments -----------------------------------------------------------------------------

/// A rejection must say which argument is at fault and what is wrong, briefly, whatever the size
/// of the input.
fn check_rejection(e: &ValidationError) -> Result<(), TestCaseError> {
    prop_assert!(!e.field.is_empty());
    prop_assert!(!e.message.trim().is_empty(), "{}: empty message", e.field);
    prop_assert!(
        e.message.len() < 1_000,
        "{}: message of {} bytes: {}…",
        e.field,
        e.message.len(),
        e.message.chars().take(200).collect::<String>()
    );
    Ok(())
}

fn deserialize<T: DeserializeOwned>(o: &Map<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(o.clone())).ok()
}

fn check_text(s: &str, max: usize, newlines: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(s, s.trim());
    prop_assert!(!s.is_empty());
    prop_assert!(s.chars().count() <= max, "{} chars", s.chars().count());
    prop_assert!(
        !s.chars()
            .any(|c| c.is_control() && !(newlines && matches!(c, '\n' | '\r' | '\t'))),
        "control character in {:?}",
        s
    );
    Ok(())
}

fn check_tags<'a>(tags: impl Iterator<Item = &'a str>) -> Result<(), TestCaseError> {
    let tags: Vec<&str> = tags.collect();
    prop_assert!(tags.len() <= 10);
    for (i, t) in tags.iter().enumerate() {
        check_text(t, 50, false)?;
        prop_assert_eq!(t.to_lowercase(), *t);
        prop_assert!(!tags[..i].contains(t), "duplicate tag {}", t);
    }
    Ok(())
}

fn check_new_task(task: &NewTask) -> Result<(), TestCaseError> {
    check_text(task.title.as_str(), 200, false)?;
    if let Some(d) = &task.description {
        check_text(d.as_str(), 2_000, true)?;
    }
    check_tags(task.tags.iter().map(|t| t.as_str()))?;
    if let Some(due) = task.due {
        prop_assert_eq!(due.timestamp_subsec_nanos() % 1_000, 0);
    }
    prop_assert!(task.recurrence.is_none() || task.due.is_some());
    if let (Some(rule), Some(due)) = (&task.recurrence, task.due) {
        prop_assert!(rule.check_start(due, task.zone.tz()).is_ok());
    }
    prop_assert!(task.reminders.len() <= 10);
    for (trigger, at) in &task.reminders {
        prop_assert!(*at > now(), "reminder at {} is not in the future", at);
        prop_assert_eq!(trigger.fire_at(task.due), Some(*at));
    }
    Ok(())
}

fn check_list_query(q: &ListQuery) -> Result<(), TestCaseError> {
    prop_assert!((1..=200).contains(&q.limit));
    if let Some(s) = &q.filter.search {
        check_text(s, 200, false)?;
        prop_assert_eq!(&s.to_lowercase(), s);
    }
    check_tags(q.filter.tags.iter().map(|t| t.as_str()))?;
    prop_assert!(q.after.is_none(), "a cursor from nowhere was accepted");
    Ok(())
}

fn check_patch(p: &TaskPatch) -> Result<(), TestCaseError> {
    if let Some(t) = &p.title {
        check_text(t.as_str(), 200, false)?;
    }
    if let Some(Some(d)) = &p.description {
        check_text(d.as_str(), 2_000, true)?;
    }
    if let Some(tags) = &p.tags {
        check_tags(tags.iter().map(|t| t.as_str()))?;
    }
    Ok(())
}

/// How many argument objects reached each outcome, so that a run that never gets past
/// deserialisation is noticed.
#[derive(Default)]
struct Reached {
    parsed: std::cell::Cell<usize>,
    rejected: std::cell::Cell<usize>,
}

impl Reached {
    fn count<T>(&self, r: &Result<T, ValidationError>) {
        let c = if r.is_ok() {
            &self.parsed
        } else {
            &self.rejected
        };
        c.set(c.get() + 1);
    }

    fn assert_both(&self, at_least: usize) {
        assert!(
            self.parsed.get() >= at_least && self.rejected.get() >= at_least,
            "parsed {}, rejected {}",
            self.parsed.get(),
            self.rejected.get()
        );
    }
}

/// Runs one argument object through every tool's argument type and, where it fits, through the
/// tool's parsing; checks the result.
fn check_arguments(o: &Map<String, Value>, reached: &Reached) -> Result<(), TestCaseError> {
    if let Some(args) = deserialize::<AddTaskArgs>(o) {
        let r = AddTaskArgs::parse(args, now(), Zone::UTC);
        reached.count(&r);
        match r {
            Ok(task) => check_new_task(&task)?,
            Err(e) => check_rejection(&e)?,
        }
    }
    if let Some(args) = deserialize::<ListTasksArgs>(o) {
        let r = ListTasksArgs::parse(args, Zone::UTC);
        reached.count(&r);
        match r {
            Ok(q) => check_list_query(&q)?,
            Err(e) => check_rejection(&e)?,
        }
    }
    if let Some(args) = deserialize::<UpdateTaskArgs>(o) {
        for zone in [Zone::UTC, Zone::from(chrono_tz::America::New_York)] {
            // Parsed as the tool does, then read in the zone as the update does.
            let r = args.parse().and_then(|p| p.in_zone(zone).map(|_| p));
            reached.count(&r);
            match r {
                Ok(p) => check_patch(&p)?,
                Err(e) => check_rejection(&e)?,
            }
        }
    }
    if let Some(args) = deserialize::<SetReminderArgs>(o) {
        let input = todo_shared::reminder::ReminderInput {
            at: args.at,
            minutes_before: args.minutes_before,
        };
        let due = Some(now() + TimeDelta::days(30));
        match todo_shared::reminder::parse_reminders(
            std::slice::from_ref(&input),
            due,
            chrono_tz::UTC,
            now(),
        ) {
            Ok(r) => prop_assert!(r.iter().all(|(_, at)| *at > now())),
            Err(e) => check_rejection(&e)?,
        }
    }
    if let Some(args) = deserialize::<ListNotificationsArgs>(o) {
        match mcp_server::app::commands::parse_limit(args.limit) {
            Ok(limit) => prop_assert!((1..=200).contains(&limit)),
            Err(e) => check_rejection(&e)?,
        }
    }
    let _ = deserialize::<TaskIdArgs>(o);
    let _ = deserialize::<CancelReminderArgs>(o);
    Ok(())
}

#[test]
fn tool_arguments_never_panic_and_parse_only_into_valid_commands() {
    let reached = Reached::default();
    TestRunner::new(config(1024))
        .run(&tool_arguments(), |o| check_arguments(&o, &reached))
        .unwrap();
    reached.assert_both(30);
    // Arguments meant for other tools, or mixed up between them.
    TestRunner::new(config(256))
        .run(&arguments(), |o| check_arguments(&o, &Reached::default()))
        .unwrap();
}

#[test]
fn arbitrary_json_never_panics_any_tool() {
    let objects = prop::collection::btree_map(
        prop_oneof![
            prop::sample::select(argument_names()).prop_map(str::to_owned),
            hostile_text()
        ],
        any_json(),
        0..8,
    )
    .prop_map(|m| m.into_iter().collect::<Map<String, Value>>());
    let reached = Reached::default();
    TestRunner::new(config(512))
        .run(&objects, |o| check_arguments(&o, &reached))
        .unwrap();
    // Mostly refused by shape; some near-empty objects parse (e.g. `list_tasks {}`) and go on to
    // the domain parsers.
    assert!(
        reached.parsed.get() >= 10,
        "parsed {}",
        reached.parsed.get()
    );
}

/// Unknown arguments are refused by every tool, naming the argument.
#[test]
fn unknown_arguments_are_refused_by_name() {
    let name = "[a-z_]{1,12}".prop_filter("not an argument", |n| {
        !argument_names().contains(&n.as_str()) && n != "interval"
    });
    fn refused<T: DeserializeOwned>(
        base: Value,
        name: &str,
        value: &Value,
    ) -> Result<(), TestCaseError> {
        let mut o = base.as_object().cloned().unwrap_or_default();
        o.insert(name.to_owned(), value.clone());
        let e = serde_json::from_value::<T>(Value::Object(o))
            .err()
            .map(|e| e.to_string());
        prop_assert!(
            e.as_deref()
                .is_some_and(|e| e.contains(&format!("unknown field `{name}`"))),
            "{}: {:?}",
            std::any::type_name::<T>(),
            e
        );
        Ok(())
    }
    let id = json!(Uuid::nil());
    TestRunner::new(config(128))
        .run(&(name, any_json()), |(name, value)| {
            refused::<AddTaskArgs>(json!({"title": "x"}), &name, &value)?;
            refused::<ListTasksArgs>(json!({}), &name, &value)?;
            refused::<TaskIdArgs>(json!({"task_id": id}), &name, &value)?;
            refused::<UpdateTaskArgs>(json!({"task_id": id}), &name, &value)?;
            refused::<SetReminderArgs>(json!({"task_id": id}), &name, &value)?;
            refused::<CancelReminderArgs>(
                json!({"task_id": id, "reminder_id": id}),
                &name,
                &value,
            )?;
            refused::<ListNotificationsArgs>(json!({}), &name, &value)?;
            Ok(())
        })
        .unwrap();
}

/// `%`, `_` and `\` in search text match themselves: the LIKE pattern built from a search
/// matches exactly the texts that contain it.
#[test]
fn search_wildcards_match_literally() {
    let alphabet = "[%_\\\\ab]{0,8}";
    TestRunner::new(config(1024))
        .run(
            &(alphabet, alphabet, alphabet, any::<bool>()),
            |(needle, before, after, embed)| {
                let text = if embed {
                    format!("{before}{needle}{after}")
                } else {
                    before.clone()
                };
                let pattern = like_pattern(&needle);
                prop_assert_eq!(
                    like(&pattern, &text),
                    text.contains(&needle),
                    "pattern {:?} on {:?}",
                    pattern,
                    text
                );
                Ok(())
            },
        )
        .unwrap();
}

/// SQL `LIKE` with `ESCAPE '\'`, as both databases evaluate it (case-sensitively; the search
/// column and the search text are both lower-cased).
fn like(pattern: &str, text: &str) -> bool {
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // matches[j]: the tokens so far match text[..j].
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            match token {
                Token::Any => next[j] = matches[..=j].iter().any(|&m| m),
                Token::One => next[j] = j > 0 && matches[j - 1],
                Token::Char(c) => next[j] = j > 0 && matches[j - 1] && text[j - 1] == *c,
            }
        }
        matches = next;
    }
    matches[text.len()]
}

#[test]
fn search_text_is_normalised_or_refused() {
    TestRunner::new(config(512))
        .run(&hostile_text(), |s| {
            match parse_search(&s) {
                Ok(None) => prop_assert!(s.trim().is_empty()),
                Ok(Some(q)) => {
                    prop_assert_eq!(&q, &s.trim().to_lowercase());
                    check_text(&q, 200, false)?;
                }
                Err(e) => {
                    prop_assert_eq!(e.field, "search");
                    check_rejection(&e)?;
                }
            }
            Ok(())
        })
        .unwrap();
}

fn list_args(sort: &str, search: Option<String>) -> ListTasksArgs {
    serde_json::from_value(json!({"status": "all", "sort": sort, "search": search}))
        .expect("valid arguments")
}

type RowKeyParts = (u128, i64, Option<i64>, i16, String);

/// The parts of a `RowKey` (which is not `Debug`, so proptest cannot show it).
fn row_key() -> impl Strategy<Value = RowKeyParts> {
    (
        any::<u128>(),
        -2_208_988_800i64..253_402_300_799,
        prop::option::of(-2_208_988_800i64..253_402_300_799),
        // Stored priorities are ranks 1 to 3.
        1i16..=3,
        // Title keys are folded titles, which hold no control characters.
        hostile_text().prop_map(|t| t.chars().filter(|c| !c.is_control()).collect()),
    )
}

fn build_row_key((id, created, due, priority, title_key): RowKeyParts) -> RowKey {
    RowKey {
        id: Uuid::from_u128(id),
        created_at: DateTime::from_timestamp(created, 0).expect("in range"),
        due_at: due.map(|d| DateTime::from_timestamp(d, 0).expect("in range")),
        priority,
        title_key,
    }
}

/// Any text as a cursor: refused with a message about the cursor, or (only a cursor the same
/// listing made) accepted. A cursor made by one listing is refused by a listing with other
/// filters or sorting.
#[test]
fn cursors_are_checked() {
    let sorts = prop::sample::select(vec!["created", "due", "priority", "title"]);
    TestRunner::new(config(512))
        .run(
            &(
                sorts.clone(),
                sorts,
                row_key(),
                hostile_text(),
                prop::option::of("[a-z%_]{1,5}"),
            ),
            |(sort, other_sort, key, garbage, search)| {
                let query = ListTasksArgs::parse(list_args(sort, search.clone()), Zone::UTC)
                    .expect("valid");
                let cursor = query.encode_cursor(&build_row_key(key));
                let mut args = list_args(sort, search.clone());
                args.cursor = Some(cursor.clone());
                let resumed = ListTasksArgs::parse(args, Zone::UTC).expect("its own cursor");
                prop_assert!(resumed.after.is_some());

                let mut other =
                    list_args(other_sort, Some(format!("{}x", search.unwrap_or_default())));
                other.cursor = Some(cursor);
                let e =
                    ListTasksArgs::parse(other, Zone::UTC).expect_err("another listing's cursor");
                prop_assert_eq!(e.field, "cursor");

                let mut args = list_args(sort, None);
                args.cursor = Some(garbage);
                if let Err(e) = ListTasksArgs::parse(args, Zone::UTC) {
                    prop_assert_eq!(e.field, "cursor");
                    check_rejection(&e)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn megabyte_inputs_are_refused_with_short_messages() {
    let huge = "x".repeat(1024 * 1024);
    let cases = [
        json!({"title": huge}),
        json!({"title": "x", "description": huge}),
        json!({"title": "x", "tags": [huge]}),
        json!({"title": "x", "tags": (0..10_000).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
        json!({"title": "x", "due": huge}),
        json!({"title": "x", "time_zone": huge}),
        json!({"title": "x", "due": "2027-01-01", "recurrence": {"frequency": "cron", "cron": huge}}),
        json!({"title": "x", "due": "2027-01-01", "recurrence": {"frequency": "daily", "until": huge}}),
        json!({"title": "x", "due": "2027-01-01", "reminders": [{"at": huge}]}),
    ];
    for case in cases {
        let args: AddTaskArgs = serde_json::from_value(case).expect("the right shape");
        let e = AddTaskArgs::parse(args, now(), Zone::UTC).expect_err("too large");
        assert!(
            e.message.len() < 1_000,
            "{}: {} bytes",
            e.field,
            e.message.len()
        );
    }
    let search: ListTasksArgs = serde_json::from_value(json!({"search": huge})).expect("shape");
    assert_eq!(
        ListTasksArgs::parse(search, Zone::UTC)
            .expect_err("too long")
            .field,
        "search"
    );
    let cursor: ListTasksArgs = serde_json::from_value(json!({"cursor": huge})).expect("shape");
    assert_eq!(
        ListTasksArgs::parse(cursor, Zone::UTC)
            .expect_err("garbage")
            .field,
        "cursor"
    );
}

// --- with a database ----------------------------------------------------------------------------

/// Runs `test` on a fresh SQLite database, and on a fresh PostgreSQL database when
/// `TODO_TEST_DATABASE_URL` is set.
fn on_each_backend(test: impl Fn(&tokio::runtime::Runtime, &Db)) {
    let backends: Vec<&str> = if std::env::var_os("TODO_TEST_DATABASE_URL").is_some() {
        vec!["sqlite", "postgres"]
    } else {
        eprintln!("TODO_TEST_DATABASE_URL is not set: SQLite only");
        vec!["sqlite"]
    };
    for backend in backends {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let db = rt.block_on(async {
            if backend == "sqlite" {
                common::sqlite().await
            } else {
                common::postgres().await
            }
        });
        // The SQLite file lives as long as `db`.
        test(&rt, &db.db);
    }
}

/// Row counts of every table an event could touch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts([i64; 5]);

async fn counts(db: &Db) -> Counts {
    let mut n = [0; 5];
    for (i, table) in [
        "tasks",
        "reminders",
        "notifications",
        "processed_events",
        "outbox",
    ]
    .iter()
    .enumerate()
    {
        n[i] = common::count(db, table).await;
    }
    Counts(n)
}

/// Store errors that well-formed events are known to cause on PostgreSQL (NUL in text, times
/// outside PostgreSQL's range), which the consumers answer RETRY although retrying cannot help.
/// See `poison_events_are_dropped_not_retried`.
const KNOWN_POISON: [&str; 2] = [
    "invalid byte sequence for encoding \"UTF8\": 0x00",
    "timestamp out of range",
];

const REMINDER_TYPE: &str = "com.todo.reminder.triggered";
const RECURRING_TYPE: &str = "com.todo.recurring.scheduled";

/// A time as a publisher may write it, from the far past to the far future.
fn event_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (1_700_000_000i64..1_900_000_000).prop_map(|s| json!(DateTime::from_timestamp(s, 0).expect("in range"))),
        1 => (-300_000_000_000i64..300_000_000_000).prop_map(|s| json!(DateTime::from_timestamp(s, 0).expect("in range"))),
        1 => prop::sample::select(vec![
            "0001-01-01T00:00:00Z", "-4713-11-24T00:00:00Z", "-9999-01-01T00:00:00Z",
            "+100000-01-01T00:00:00Z", "+262142-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z", "not a time",
        ]).prop_map(Value::from),
    ]
}

fn event_id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => any::<u128>().prop_map(|n| Some(json!(Uuid::from_u128(n)))),
        1 => hostile_text().prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!(""))),
        1 => Just(Some(json!("i".repeat(201)))),
        1 => Just(Some(json!(42))),
        1 => Just(None),
    ]
}

/// `data` of a reminder event: well-formed with hostile values, or malformed.
fn reminder_data(known_task: Uuid) -> impl Strategy<Value = Value> {
    let owner = prop_oneof![3 => Just("alice".to_owned()), 1 => hostile_text()];
    let title = prop_oneof![2 => Just("Pay rent".to_owned()), 1 => hostile_text()];
    let task_id = prop_oneof![Just(known_task), any::<u128>().prop_map(Uuid::from_u128)];
    (
        owner,
        task_id,
        any::<u128>(),
        title,
        event_time(),
        prop::option::of(event_time()),
        prop::option::of(zone_text()),
    )
        .prop_map(|(owner, task_id, reminder, title, fire_at, due, zone)| {
            json!({
                "owner": owner, "task_id": task_id, "reminder_id": Uuid::from_u128(reminder),
                "title": title, "fire_at": fire_at, "due": due, "time_zone": zone,
            })
        })
}

/// `data` of a recurrence event: usually with the derived task id, for a template that exists
/// or not.
fn recurring_data(template: Uuid, series: Uuid) -> impl Strategy<Value = Value> {
    let owner = prop_oneof![3 => Just("alice".to_owned()), 1 => Just("bob".to_owned()), 1 => hostile_text()];
    (
        owner,
        prop_oneof![Just(series), any::<u128>().prop_map(Uuid::from_u128)],
        prop_oneof![Just(template), any::<u128>().prop_map(Uuid::from_u128)],
        event_time(),
        prop_oneof![3 => Just(None), 1 => any::<u128>().prop_map(|n| Some(Uuid::from_u128(n)))],
    )
        .prop_map(|(owner, series_id, previous, due, forged_id)| {
            let derived = serde_json::from_value::<DateTime<Utc>>(due.clone())
                .ok()
                .map(|d| occurrence_task_id(series_id, d));
            json!({
                "owner": owner, "series_id": series_id, "previous_task_id": previous,
                "task_id": forged_id.or(derived).unwrap_or_else(Uuid::nil), "due": due,
            })
        })
}

/// An envelope: any JSON, or a CloudEvent-like object whose type, id and data vary.
fn envelope(template: Uuid, series: Uuid) -> impl Strategy<Value = Value> {
    let ty = prop_oneof![
        3 => Just(Some(json!(REMINDER_TYPE))),
        3 => Just(Some(json!(RECURRING_TYPE))),
        1 => prop::sample::select(EventType::ALL.to_vec()).prop_map(|t| Some(json!(t.as_str()))),
        1 => hostile_text().prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!(7))),
        1 => Just(None),
    ];
    let data = prop_oneof![
        3 => reminder_data(template).prop_map(Some),
        3 => recurring_data(template, series).prop_map(Some),
        1 => reminder_data(template).prop_map(|d| Some(json!(d.to_string()))),
        1 => recurring_data(template, series).prop_map(|d| Some(json!(d.to_string()))),
        1 => any_json().prop_map(Some),
        1 => hostile_text().prop_map(|s| Some(json!(s))),
        1 => Just(None),
    ];
    let source = prop_oneof![
        6 => Just(Some(json!(SCHEDULER_SOURCE))),
        1 => Just(Some(json!(TASKS_SOURCE))),
        1 => hostile_text().prop_map(|s| Some(json!(s))),
        1 => Just(None),
    ];
    let shaped = (ty, event_id(), source, data).prop_map(|(ty, id, source, data)| {
        let mut o = Map::new();
        put(&mut o, "type", ty);
        put(&mut o, "id", id);
        put(&mut o, "source", source);
        put(&mut o, "data", data);
        o.insert("specversion".into(), json!("1.0"));
        Value::Object(o)
    });
    // Events of each consumer's own type with matching data, so that many get past the envelope
    // checks and meet the database.
    let consistent = prop_oneof![
        reminder_data(template).prop_map(|d| (REMINDER_TYPE, d)),
        recurring_data(template, series).prop_map(|d| (RECURRING_TYPE, d)),
    ];
    let consistent =
        (consistent, any::<u128>(), any::<bool>()).prop_map(|((ty, data), id, as_string)| {
            let data = if as_string {
                json!(data.to_string())
            } else {
                data
            };
            json!({
                "specversion": "1.0", "type": ty, "source": SCHEDULER_SOURCE,
                "id": Uuid::from_u128(id), "data": data,
            })
        });
    prop_oneof![4 => consistent, 4 => shaped, 1 => any_json()]
}

/// What a consumer of events of type `expected` must answer, judged from the envelope alone;
/// `None` when the envelope is well-formed and the answer depends on the data's meaning.
fn expected_answer<T: DeserializeOwned>(envelope: &Value, expected: &str) -> Option<&'static str> {
    let Some(ty) = envelope.get("type").and_then(Value::as_str) else {
        return Some("DROP");
    };
    let topic = EventType::parse(expected).map(EventType::topic);
    if EventType::parse(ty).is_some_and(|t| Some(t.topic()) != topic) {
        return Some("DROP");
    }
    if ty != expected {
        return Some("SUCCESS");
    }
    let source_ok = envelope.get("source").and_then(Value::as_str) == Some(SCHEDULER_SOURCE);
    let id_ok = envelope
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.len() == 36 && Uuid::try_parse(id).is_ok());
    let data_ok = match envelope.get("data") {
        None => false,
        Some(Value::String(s)) => serde_json::from_str::<T>(s).is_ok(),
        Some(other) => serde_json::from_value::<T>(other.clone()).is_ok(),
    };
    (!source_ok || !id_ok || !data_ok).then_some("DROP")
}

/// Any envelope, to either consumer: no panic; no `type` → DROP; another type → SUCCESS; a
/// malformed id or data → DROP; and in those cases nothing is written. A well-formed event is
/// never answered RETRY on a healthy database (it would be redelivered forever): it is processed
/// (SUCCESS) or refused (DROP), and processing it again changes nothing.
#[test]
fn consumers_classify_every_envelope_and_write_only_for_their_own_events() {
    on_each_backend(|rt, db| {
        let tasks = TaskService::new(db.clone());
        let (template, series) = rt.block_on(async {
            let args: AddTaskArgs = serde_json::from_value(json!({
                "title": "Template", "due": "2026-07-01T09:00:00Z",
                "recurrence": {"frequency": "daily"}, "reminders": [{"minutes_before": 10}],
            }))
            .expect("valid");
            let task = tasks
                .create(
                    &common::user("alice"),
                    AddTaskArgs::parse(args, now(), Zone::UTC).expect("valid"),
                    now(),
                )
                .await
                .expect("created");
            (task.id, task.recurrence.expect("recurring").series_id)
        });
        let notifications = NotificationConsumer {
            notifications: NotificationService::new(db.clone()),
        };
        let recurrences = RecurrenceConsumer { tasks };
        let retried = std::cell::RefCell::new(Vec::new());
        // Guards against a vacuous run: some well-formed events must be processed.
        let processed = std::cell::Cell::new(0usize);
        TestRunner::new(config(256))
            .run(&envelope(template, series), |envelope| {
                rt.block_on(async {
                    for (name, ty) in [
                        ("notifications", REMINDER_TYPE),
                        ("recurring", RECURRING_TYPE),
                    ] {
                        let before = counts(db).await;
                        let answer = if ty == REMINDER_TYPE {
                            notifications.handle_envelope(&envelope).await
                        } else {
                            recurrences.handle_envelope(&envelope).await
                        };
                        let after = counts(db).await;
                        let expected = if ty == REMINDER_TYPE {
                            expected_answer::<todo_shared::events::ReminderTriggered>(&envelope, ty)
                        } else {
                            expected_answer::<todo_shared::events::RecurringScheduled>(
                                &envelope, ty,
                            )
                        };
                        match expected {
                            Some(status) => {
                                prop_assert_eq!(
                                    answer.status(),
                                    status,
                                    "{}: {:?} for {}",
                                    name,
                                    answer,
                                    envelope
                                );
                                prop_assert_eq!(&before, &after, "{} wrote for {}", name, envelope);
                            }
                            None => {
                                if let Disposition::Retry(reason) = &answer {
                                    prop_assert_eq!(&before, &after, "{} retried but wrote", name);
                                    // Known, reported, and pinned by
                                    // `poison_events_are_dropped_not_retried`; anything else fails.
                                    if !KNOWN_POISON.iter().any(|p| reason.contains(p)) {
                                        retried.borrow_mut().push((
                                            format!("{name}: {reason}"),
                                            envelope.to_string(),
                                        ));
                                    }
                                    continue;
                                }
                                if let Disposition::Drop(reason) = &answer {
                                    prop_assert_eq!(
                                        &before,
                                        &after,
                                        "{} dropped ({}) but wrote",
                                        name,
                                        reason
                                    );
                                    prop_assert!(!reason.is_empty());
                                }
                                if answer == Disposition::Success {
                                    processed.set(processed.get() + 1);
                                }
                                let again = if ty == REMINDER_TYPE {
                                    notifications.handle_envelope(&envelope).await
                                } else {
                                    recurrences.handle_envelope(&envelope).await
                                };
                                prop_assert_eq!(
                                    again.status(),
                                    answer.status(),
                                    "{}: redelivery",
                                    name
                                );
                                prop_assert_eq!(
                                    counts(db).await,
                                    after,
                                    "{}: redelivery wrote",
                                    name
                                );
                            }
                        }
                    }
                    Ok(())
                })
            })
            .unwrap();
        let written = rt.block_on(counts(db));
        assert!(
            processed.get() > 20,
            "only {} events processed",
            processed.get()
        );
        assert!(
            written.0[2] > 5,
            "only {} notifications recorded",
            written.0[2]
        );
        // One example per distinct reason.
        let mut reasons = std::collections::BTreeMap::new();
        for (reason, example) in retried.into_inner() {
            reasons.entry(reason).or_insert(example);
        }
        assert!(
            reasons.is_empty(),
            "well-formed events answered RETRY on a healthy {:?} database (poison messages, \
             redelivered forever):\n{}",
            db.backend(),
            reasons
                .iter()
                .map(|(reason, example)| format!("- {reason}\n  e.g. {example}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    });
}

/// Lists one user's tasks with `args` and the cursor `cursor`, as `list_tasks` does.
async fn list_with_cursor(
    tasks: &TaskService,
    sort: &str,
    search: Option<String>,
    cursor: String,
) -> Result<usize, mcp_server::error::AppError> {
    let mut args = list_args(sort, search);
    args.cursor = Some(cursor);
    let query = ListTasksArgs::parse(args, Zone::UTC)?;
    Ok(tasks
        .list(&common::user("alice"), &query, now())
        .await?
        .tasks
        .len())
}

/// A listing resumed from any cursor the listing itself could have made (any last key, id and
/// title key, and any search text): a page or a caller error, never a store failure, and the
/// page holds only tasks after the cursor.
#[test]
fn listing_from_any_well_formed_cursor_answers() {
    on_each_backend(|rt, db| {
        let tasks = TaskService::new(db.clone());
        rt.block_on(async {
            for (title, tags) in [
                ("Alpha 50% off", vec!["a_b"]),
                ("beta_1", vec![]),
                ("Gamma \\ 'q'", vec!["x"]),
            ] {
                let args: AddTaskArgs = serde_json::from_value(
                    json!({"title": title, "tags": tags, "due": "2027-01-01"}),
                )
                .expect("valid");
                tasks
                    .create(
                        &common::user("alice"),
                        AddTaskArgs::parse(args, now(), Zone::UTC).expect("valid"),
                        now(),
                    )
                    .await
                    .expect("created");
            }
        });
        let store_failures = std::cell::RefCell::new(std::collections::BTreeMap::new());
        let sorts = prop::sample::select(vec!["created", "due", "priority", "title"]);
        TestRunner::new(config(128))
            .run(
                &(sorts, row_key(), prop::option::of(hostile_text())),
                |(sort, key, search)| {
                    let query =
                        match ListTasksArgs::parse(list_args(sort, search.clone()), Zone::UTC) {
                            Ok(q) => q,
                            Err(e) => return check_rejection(&e),
                        };
                    // Known and pinned by `a_cursor_with_nul_in_its_title_key_is_refused`.
                    let known_bug = sort == "title" && key.4.contains('\0');
                    let cursor = query.encode_cursor(&build_row_key(key));
                    match rt.block_on(list_with_cursor(&tasks, sort, search, cursor)) {
                        Ok(n) => prop_assert!(n <= 3),
                        Err(e) if e.is_caller_error() => {}
                        Err(_) if known_bug => {}
                        Err(e) => {
                            store_failures
                                .borrow_mut()
                                .entry(e.to_string())
                                .or_insert_with(|| format!("sort {sort}"));
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
        let failures = store_failures.into_inner();
        assert!(failures.is_empty(), "{:?}: {failures:?}", db.backend());
    });
}

/// The cursor is opaque but not signed, and its filter fingerprint is a public hash, so a caller
/// can write one whose title key holds U+0000. It is refused as a cursor error (PostgreSQL would
/// refuse the bound text, which must not read as a store outage).
#[test]
fn a_cursor_with_nul_in_its_title_key_is_refused() {
    on_each_backend(|rt, db| {
        let tasks = TaskService::new(db.clone());
        let query = ListTasksArgs::parse(list_args("title", None), Zone::UTC).expect("valid");
        let cursor = query.encode_cursor(&build_row_key((1, 0, None, 2, "a\u{0}b".into())));
        let e = rt
            .block_on(list_with_cursor(&tasks, "title", None, cursor))
            .expect_err("a cursor with NUL in its key");
        assert!(e.is_caller_error(), "{:?}: {e}", db.backend());
        assert!(e.to_string().contains("cursor"), "{:?}: {e}", db.backend());
    });
}

/// croner's error text repeats the whole invalid field; the tool error stays short however long
/// the expression.
#[test]
fn cron_errors_stay_short_however_long_the_expression() {
    let long_field = "x".repeat(100_000);
    let args: AddTaskArgs = serde_json::from_value(json!({
        "title": "x", "due": "2027-01-01",
        "recurrence": {"frequency": "cron", "cron": format!("{long_field} * * * *")},
    }))
    .expect("the right shape");
    let e = AddTaskArgs::parse(args, now(), Zone::UTC).expect_err("invalid cron");
    assert_eq!(e.field, "recurrence.cron");
    assert!(
        e.message.len() < 1_000,
        "message of {} bytes",
        e.message.len()
    );
}

/// A well-formed event whose reminder `title` holds U+0000, or whose `fire_at`/`due` lies
/// before 4713 BC, fails on PostgreSQL with a data exception on every delivery: it is answered
/// DROP (to the dead-letter topic), not RETRY forever. SQLite stores such values, so there it
/// succeeds. (An `id` holding U+0000 is not a UUID, refused before any write.)
#[test]
fn poison_events_are_dropped_not_retried() {
    on_each_backend(|rt, db| {
        let tasks = TaskService::new(db.clone());
        let (template, series) = rt.block_on(async {
            let args: AddTaskArgs = serde_json::from_value(json!({
                "title": "Template", "due": "2026-07-01T09:00:00Z", "recurrence": {"frequency": "daily"},
            }))
            .expect("valid");
            let task = tasks
                .create(&common::user("alice"), AddTaskArgs::parse(args, now(), Zone::UTC).expect("valid"), now())
                .await
                .expect("created");
            (task.id, task.recurrence.expect("recurring").series_id)
        });
        let reminder = |id: &str, title: &str, fire_at: &str| {
            json!({"type": REMINDER_TYPE, "id": id, "source": SCHEDULER_SOURCE, "data": {
                "owner": "alice", "task_id": template, "reminder_id": Uuid::now_v7(),
                "title": title, "fire_at": fire_at, "due": null,
            }})
        };
        let recurring = |id: &str, due: &str| {
            let at: DateTime<Utc> = serde_json::from_value(json!(due)).expect("a chrono time");
            json!({"type": RECURRING_TYPE, "id": id, "source": SCHEDULER_SOURCE, "data": {
                "owner": "alice", "series_id": series, "previous_task_id": template,
                "task_id": occurrence_task_id(series, at), "due": due,
            }})
        };
        let cases = [
            (
                "NUL in the event id",
                reminder("evt-\u{0}", "Pay rent", "2027-01-01T09:00:00Z"),
            ),
            (
                "NUL in the title",
                reminder(
                    &Uuid::now_v7().to_string(),
                    "Pay\u{0}rent",
                    "2027-01-01T09:00:00Z",
                ),
            ),
            (
                "fire_at in 9999 BC",
                reminder(
                    &Uuid::now_v7().to_string(),
                    "Pay rent",
                    "-9999-01-01T00:00:00Z",
                ),
            ),
            (
                "NUL in a recurrence event id",
                recurring("evt-\u{0}-r", "2026-07-02T09:00:00Z"),
            ),
            (
                "occurrence due in 9999 BC",
                recurring(&Uuid::now_v7().to_string(), "-9999-01-01T00:00:00Z"),
            ),
        ];
        let notifications = NotificationConsumer {
            notifications: NotificationService::new(db.clone()),
        };
        let recurrences = RecurrenceConsumer { tasks };
        let mut retried = Vec::new();
        for (case, envelope) in cases {
            let answer = rt.block_on(async {
                if envelope["type"] == REMINDER_TYPE {
                    notifications.handle_envelope(&envelope).await
                } else {
                    recurrences.handle_envelope(&envelope).await
                }
            });
            if let Disposition::Retry(reason) = answer {
                retried.push(format!("{case}: RETRY ({reason})"));
            }
        }
        assert!(
            retried.is_empty(),
            "{:?}:\n{}",
            db.backend(),
            retried.join("\n")
        );
    });
}
