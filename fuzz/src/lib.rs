//! The fuzz harness: one function per fuzz target, each taking the fuzzer's bytes and panicking
//! when a property of the hostile-input surface fails.
//!
//! - [`tool_arguments`]: bytes as a tool's JSON arguments (or as one string argument), through
//!   every tool's argument type and parsing (`NewTask`, `ListQuery`, `TaskPatch`, reminders).
//! - [`datetime`]: bytes as a due time or a time-zone name.
//! - [`recurrence`]: bytes as a recurrence rule (JSON) or a cron expression, then its series.
//! - [`Events::run`]: bytes as a delivered event body, through the MCP server's consumers (on a
//!   SQLite file) and the scheduler's `TaskChange::parse` and engine (on in-memory ports).
//!
//! This file has no fuzzer in it so that `mcp-server/tests/fuzz_corpus.rs` can include it and
//! replay the checked-in corpus (`fuzz/corpus/<target>/`) on stable in the ordinary test suite.
//! It names its dependencies by crate name only, for the same reason.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Datelike, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use mcp_server::app::commands::parse_limit;
use mcp_server::app::notifications::NotificationService;
use mcp_server::app::tasks::TaskService;
use mcp_server::events::consumers::{NotificationConsumer, RecurrenceConsumer};
use mcp_server::mcp::args::{
    AddTaskArgs, CancelReminderArgs, ListNotificationsArgs, ListTasksArgs, SetReminderArgs,
    TaskIdArgs, UpdateTaskArgs,
};
use mcp_server::store::{Db, Query};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use todo_scheduler::incoming::TaskChange;
use todo_scheduler::memory::{MemoryJobs, MemoryPublisher, MemoryStore};
use todo_scheduler::{Engine, Settings};
use todo_shared::ValidationError;
use todo_shared::events::EventType;
use todo_shared::incoming::Disposition;
use todo_shared::recurrence::{Frequency, Recurrence, RecurrenceInput};
use todo_shared::reminder::{ReminderInput, parse_reminders};
use todo_shared::time::{DateOnly, MAX_YEAR, MIN_YEAR, Zone, format_in_zone, parse_datetime};

/// Zones the string targets read local times in: no DST, northern and southern DST, a
/// half-hour DST, a gap at midnight, +14:00.
const ZONES: [Tz; 6] = [
    Tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Sydney,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::Santiago,
    chrono_tz::Pacific::Kiritimati,
];

/// The fixed "now" of the harness, so that "in the future" is reproducible.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("valid literal")
}

/// A rejection names a field and says something, briefly however large the input. (Cron errors
/// are exempt: they repeat an invalid field in full, a known bug pinned by
/// `cron_errors_stay_short_however_long_the_expression` in `mcp-server/tests/properties.rs`.)
fn check_rejection(e: &ValidationError) {
    assert!(!e.field.is_empty(), "a rejection without a field: {e:?}");
    assert!(!e.message.trim().is_empty(), "{}: empty message", e.field);
    if e.field != "recurrence.cron" {
        assert!(
            e.message.len() < 1_000,
            "{}: a message of {} bytes",
            e.field,
            e.message.len()
        );
    }
}

/// Panics unless `s` is trimmed, non-empty, at most `max` characters and free of control
/// characters (newlines and tabs allowed when `newlines`).
pub fn check_text(s: &str, max: usize, newlines: bool) {
    assert_eq!(s, s.trim(), "not trimmed");
    assert!(!s.is_empty(), "empty");
    assert!(s.chars().count() <= max, "{} chars", s.chars().count());
    assert!(
        !s.chars()
            .any(|c| c.is_control() && !(newlines && matches!(c, '\n' | '\r' | '\t'))),
        "control character in {s:?}"
    );
}

/// Panics unless the tags are at most ten distinct, lower-case, valid tags.
pub fn check_tags<'a>(tags: impl Iterator<Item = &'a str>) {
    let tags: Vec<&str> = tags.collect();
    assert!(tags.len() <= 10, "{} tags", tags.len());
    for (i, t) in tags.iter().enumerate() {
        check_text(t, 50, false);
        assert_eq!(t.to_lowercase(), *t);
        assert!(!tags[..i].contains(t), "duplicate tag {t}");
    }
}

fn from_object<T: DeserializeOwned>(o: &Map<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(o.clone())).ok()
}

// --- tool_arguments -----------------------------------------------------------------------------

/// Bytes as tool arguments: a JSON object goes to every tool; anything else is used as the text
/// of each string argument in turn.
pub fn tool_arguments(data: &[u8]) {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(o)) => check_arguments(&o),
        Ok(other) => {
            check_arguments(&Map::from_iter([("title".to_owned(), other.clone())]));
            check_arguments(&Map::from_iter([("tags".to_owned(), other)]));
        }
        Err(_) => {
            let s = String::from_utf8_lossy(data).into_owned();
            for name in [
                "title",
                "description",
                "due",
                "time_zone",
                "search",
                "cursor",
                "due_before",
                "due_after",
            ] {
                let mut o = Map::new();
                o.insert(name.to_owned(), json!(s));
                if name != "title"
                    && !name.starts_with("due_")
                    && name != "search"
                    && name != "cursor"
                {
                    o.insert("title".to_owned(), json!("x"));
                }
                check_arguments(&o);
            }
            let tags =
                Map::from_iter([("tags".to_owned(), json!(s.split(',').collect::<Vec<_>>()))]);
            check_arguments(&tags);
        }
    }
}

/// Runs one argument object through every tool's argument type and, where it fits, through the
/// tool's parsing; checks every accepted command and every rejection.
pub fn check_arguments(o: &Map<String, Value>) {
    if let Some(args) = from_object::<AddTaskArgs>(o) {
        match args.parse(now(), Zone::UTC) {
            Ok(task) => {
                check_text(task.title.as_str(), 200, false);
                if let Some(d) = &task.description {
                    check_text(d.as_str(), 2_000, true);
                }
                check_tags(task.tags.iter().map(|t| t.as_str()));
                assert!(
                    task.recurrence.is_none() || task.due.is_some(),
                    "recurrence without due"
                );
                assert!(task.reminders.len() <= 10);
                for (trigger, at) in &task.reminders {
                    assert!(*at > now(), "reminder at {at} in the past");
                    assert_eq!(trigger.fire_at(task.due), Some(*at));
                }
                if let Some(due) = task.due {
                    assert_eq!(due.timestamp_subsec_nanos() % 1_000, 0, "not whole µs");
                }
            }
            Err(e) => check_rejection(&e),
        }
    }
    if let Some(args) = from_object::<ListTasksArgs>(o) {
        match args.parse(Zone::UTC) {
            Ok(q) => {
                assert!((1..=200).contains(&q.limit));
                if let Some(s) = &q.filter.search {
                    check_text(s, 200, false);
                    assert_eq!(&s.to_lowercase(), s);
                }
                check_tags(q.filter.tags.iter().map(|t| t.as_str()));
            }
            Err(e) => check_rejection(&e),
        }
    }
    if let Some(args) = from_object::<UpdateTaskArgs>(o) {
        for zone in [Zone::UTC, Zone::from(chrono_tz::America::New_York)] {
            // Parsed as the tool does, then read in the zone as the update does.
            match args.parse().and_then(|p| p.in_zone(zone).map(|_| p)) {
                Ok(p) => {
                    if let Some(t) = &p.title {
                        check_text(t.as_str(), 200, false);
                    }
                    if let Some(tags) = &p.tags {
                        check_tags(tags.iter().map(|t| t.as_str()));
                    }
                }
                Err(e) => check_rejection(&e),
            }
        }
    }
    if let Some(args) = from_object::<SetReminderArgs>(o) {
        let input = ReminderInput {
            at: args.at,
            minutes_before: args.minutes_before,
        };
        let due = Some(now() + chrono::TimeDelta::days(30));
        match parse_reminders(std::slice::from_ref(&input), due, Tz::UTC, now()) {
            Ok(r) => assert!(r.iter().all(|(_, at)| *at > now())),
            Err(e) => check_rejection(&e),
        }
    }
    if let Some(args) = from_object::<ListNotificationsArgs>(o) {
        match parse_limit(args.limit) {
            Ok(limit) => assert!((1..=200).contains(&limit)),
            Err(e) => check_rejection(&e),
        }
    }
    let _ = from_object::<TaskIdArgs>(o);
    let _ = from_object::<CancelReminderArgs>(o);
}

// --- datetime -----------------------------------------------------------------------------------

/// Bytes as a time (the first byte picks the zone and how a bare date reads) and as a zone name.
pub fn datetime(data: &[u8]) {
    let (selector, rest) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let text = String::from_utf8_lossy(rest);
    let zone = ZONES[usize::from(selector) % ZONES.len()];
    let mode = if selector & 0x80 == 0 {
        DateOnly::StartOfDay
    } else {
        DateOnly::EndOfDay
    };
    for zone in [zone, Tz::UTC] {
        match parse_datetime("due", &text, zone, mode) {
            Ok(t) => {
                assert_eq!(
                    t.timestamp_subsec_nanos() % 1_000,
                    0,
                    "{text:?}: not whole µs"
                );
                // What the server shows parses back to the same instant, when the shown year is
                // in range and the offset is whole minutes (both known bugs otherwise, pinned by
                // `shown_times_parse_back_to_the_same_instant` in shared/tests/properties.rs).
                let local = t.with_timezone(&zone);
                let shown_ok = (MIN_YEAR..=MAX_YEAR).contains(&local.year())
                    && local.offset().fix().local_minus_utc() % 60 == 0;
                if shown_ok {
                    let shown = format_in_zone(t, zone);
                    assert_eq!(
                        parse_datetime("due", &shown, zone, mode),
                        Ok(t),
                        "{text:?} in {zone} shows as {shown}"
                    );
                }
            }
            Err(e) => {
                assert_eq!(e.field, "due");
                check_rejection(&e);
            }
        }
    }
    match Zone::parse("time_zone", &text) {
        Ok(z) => assert!(
            z.name().eq_ignore_ascii_case(text.trim()),
            "{text:?} -> {z}"
        ),
        Err(e) => {
            assert_eq!(e.field, "time_zone");
            check_rejection(&e);
        }
    }
}

// --- recurrence ---------------------------------------------------------------------------------

/// Bytes as a recurrence rule (JSON) or, when not JSON, as a cron expression; each accepted rule
/// is checked over the first occurrences of a series.
pub fn recurrence(data: &[u8]) {
    let inputs: Vec<RecurrenceInput> = match serde_json::from_slice::<Value>(data) {
        Ok(v) => serde_json::from_value(v).into_iter().collect(),
        Err(_) => vec![RecurrenceInput {
            frequency: Frequency::Cron,
            interval: None,
            weekdays: None,
            until: None,
            count: None,
            cron: Some(String::from_utf8_lossy(data).into_owned()),
        }],
    };
    for input in inputs {
        for zone in [
            Tz::UTC,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe,
        ] {
            match Recurrence::parse(input.clone(), zone) {
                Ok(rule) => check_series(&rule, zone),
                Err(e) => {
                    assert!(e.field.starts_with("recurrence."), "{e:?}");
                    check_rejection(&e);
                }
            }
        }
    }
}

fn check_series(rule: &Recurrence, zone: Tz) {
    let stored = serde_json::to_value(rule).expect("a rule serialises");
    assert_eq!(
        serde_json::from_value::<Recurrence>(stored.clone())
            .ok()
            .as_ref(),
        Some(rule),
        "stored as {stored}"
    );
    let shown_year = rule.until().map(|u| u.with_timezone(&zone).year());
    if shown_year.is_none_or(|y| (MIN_YEAR..=MAX_YEAR).contains(&y)) {
        assert_eq!(
            Recurrence::parse(rule.to_input(zone), zone).as_ref(),
            Ok(rule)
        );
    }
    let start = now();
    let mut previous = start;
    let mut n = 1u32;
    while n < 12 {
        let Some(next) = rule.next_occurrence(start, previous, zone) else {
            break;
        };
        assert!(next > previous, "{rule:?}: {next} after {previous}");
        if let Some(until) = rule.until() {
            assert!(next <= until, "{rule:?}: {next} past until {until}");
        }
        n += 1;
        previous = next;
    }
    if let Some(count) = rule.count() {
        assert!(n <= count, "{rule:?}: {n} occurrences, count {count}");
    }
}

// --- events -------------------------------------------------------------------------------------

const TASK_TYPES: [&str; 4] = [
    "com.todo.task.created",
    "com.todo.task.updated",
    "com.todo.task.completed",
    "com.todo.task.deleted",
];

/// The event consumers of both services, on a SQLite file and in-memory scheduler ports.
pub struct Events {
    rt: tokio::runtime::Runtime,
    db: Db,
    notifications: NotificationConsumer,
    recurrences: RecurrenceConsumer,
    engine: Engine,
    store: Arc<MemoryStore>,
}

impl Events {
    /// Consumers on the SQLite database at `path` (created and migrated).
    pub fn new(path: &Path) -> Events {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let db = rt
            .block_on(Db::connect(&format!("sqlite://{}", path.display()), 2))
            .expect("open SQLite");
        let store = Arc::new(MemoryStore::default());
        let engine = Engine::new(
            store.clone(),
            Arc::new(MemoryJobs::default()),
            Arc::new(MemoryPublisher::default()),
            Settings::default(),
        );
        Events {
            notifications: NotificationConsumer {
                notifications: NotificationService::new(db.clone()),
            },
            recurrences: RecurrenceConsumer {
                tasks: TaskService::new(db.clone()),
            },
            rt,
            db,
            engine,
            store,
        }
    }

    /// One instance per process for the fuzz target, on a file in the temporary directory.
    pub fn shared() -> &'static Events {
        static EVENTS: OnceLock<Events> = OnceLock::new();
        EVENTS.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("todo-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            Events::new(&dir.join("events.db"))
        })
    }

    /// Bytes as a delivered request body: one event, or a bulk delivery of several.
    pub fn run(&self, data: &[u8]) {
        let events = match todo_dapr::app::read_delivery(data) {
            Ok((events, _)) => events,
            Err(drop) => {
                // Not JSON, or `entries` that are not a bulk delivery's.
                let bulk = serde_json::from_slice::<Value>(data)
                    .map(|v| v.get("entries").is_some_and(Value::is_array));
                assert!(bulk.is_err() || bulk.is_ok_and(|b| b), "{drop:?}");
                assert_eq!(drop.status(), "DROP");
                return;
            }
        };
        for envelope in &events {
            self.run_event(envelope);
        }
    }

    /// One delivered event, through every consumer.
    fn run_event(&self, envelope: &Value) {
        let ty = envelope.get("type").and_then(Value::as_str);

        // The scheduler's reading: no type → Err; other types → ignored.
        let parsed = TaskChange::parse(envelope);
        match (&parsed, ty) {
            (Err(reason), _) => assert!(!reason.is_empty()),
            (Ok(None), Some(ty)) => assert!(!TASK_TYPES.contains(&ty), "{ty} ignored"),
            (Ok(None), None) => panic!("an event without a type was not refused"),
            (Ok(Some(change)), Some(ty)) => {
                assert_eq!(change.kind.as_str(), ty);
                assert_eq!(Some(change.event_id.as_str()), envelope["id"].as_str());
            }
            (Ok(Some(_)), None) => panic!("an event without a type was parsed"),
        }

        self.rt.block_on(async {
            // The scheduler's engine answers as the parse says (in-memory ports never fail), and
            // only an event it applies may change its state.
            let before = self.store.snapshot();
            let answer = self.engine.handle_event(envelope, now()).await;
            match (&parsed, &answer) {
                (Err(_), Disposition::Drop(_)) | (Ok(None), Disposition::Success) => {
                    assert_eq!(before, self.store.snapshot(), "engine: state changed");
                }
                (Ok(Some(_)), Disposition::Success) => {}
                (parsed, answer) => panic!(
                    "engine: {answer:?} for an event parsed as {:?}",
                    parsed.as_ref().map(Option::is_some)
                ),
            }

            // The MCP server's consumers, each on its topic: a known type of another topic is
            // refused there, any other ignored.
            for (consumer, own_type) in [
                ("notifications", EventType::ReminderTriggered),
                ("recurring", EventType::RecurringScheduled),
            ] {
                let foreign = ty
                    .and_then(EventType::parse)
                    .is_some_and(|t| t.topic() != own_type.topic());
                let own_type = own_type.as_str();
                let before = self.counts().await;
                let answer = if consumer == "notifications" {
                    self.notifications.handle_envelope(envelope).await
                } else {
                    self.recurrences.handle_envelope(envelope).await
                };
                let after = self.counts().await;
                match (ty, &answer) {
                    (None, Disposition::Drop(_)) => {}
                    (None, other) => panic!("{consumer}: {other:?} for an event without a type"),
                    (Some(_), Disposition::Drop(_)) if foreign => {}
                    (Some(t), Disposition::Success) if t != own_type && !foreign => {}
                    (Some(t), other) if t != own_type => {
                        panic!("{consumer}: {other:?} for another type {t}")
                    }
                    (_, Disposition::Retry(reason)) => {
                        panic!("{consumer}: RETRY ({reason}) on a healthy SQLite file")
                    }
                    (_, Disposition::Drop(_)) => {}
                    (_, Disposition::Success) => continue,
                }
                assert_eq!(before, after, "{consumer}: wrote for {answer:?}");
            }
        });
    }

    async fn counts(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for table in [
            "tasks",
            "reminders",
            "notifications",
            "processed_events",
            "outbox",
        ] {
            let row: Count = self
                .db
                .fetch_one(&Query::new(format!("SELECT COUNT(*) AS n FROM {table}")))
                .await
                .expect("count rows");
            out.push(row.n);
        }
        out
    }
}

#[derive(sqlx::FromRow)]
struct Count {
    n: i64,
}
