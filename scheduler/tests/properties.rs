//! Property tests of the scheduler's intake: `TaskChange::parse` over arbitrary envelopes, and
//! the engine over hostile but well-formed task events, on in-memory ports.
//!
//! Every envelope must be answered without a panic: no `type` or a malformed task event → DROP,
//! another event type → SUCCESS, and neither touches the scheduler's state. A well-formed event
//! (whatever its times, zones and rules) is applied, redelivering it changes nothing, and firing
//! whatever it scheduled publishes only well-formed, due notifications and strictly later
//! occurrences.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use todo_scheduler::Settings;
use todo_scheduler::incoming::TaskChange;
use todo_scheduler::memory::InMemory;
use todo_shared::events::{
    EventType, OutgoingEvent, RecurringScheduled, ReminderTriggered, TASKS_SOURCE, TaskEventData,
    occurrence_task_id,
};
use todo_shared::incoming::Disposition;
use todo_shared::recurrence::{Recurrence, RecurrenceInput};
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

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("valid literal")
}

/// The engine on in-memory ports, with what the checks read of them.
struct World(InMemory);

impl std::ops::Deref for World {
    type Target = InMemory;
    fn deref(&self) -> &InMemory {
        &self.0
    }
}

impl World {
    fn new() -> World {
        World(InMemory::new(Settings::default()))
    }

    fn jobs(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.0.jobs.scheduled()
    }

    fn published(&self) -> Vec<OutgoingEvent> {
        self.0.published.published()
    }
}

// --- strategies ---------------------------------------------------------------------------------

fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        1 => "[%_'\"\\\\a-z0-9\u{0}\u{7}\n ]{0,16}",
        1 => prop::sample::select(vec![String::new(), "\u{0}".into(), "x".repeat(10_000)]),
    ]
    .boxed()
}

/// A few ids, so that events of one case touch the same tasks, reminders and series.
fn one_of_few_ids(salt: u128) -> impl Strategy<Value = Uuid> {
    (0u128..3).prop_map(move |n| Uuid::from_u128((salt << 64) | (n + 1)))
}

/// A time as a task event carries it: RFC 3339 with an offset, usually near now, sometimes at
/// the ends of the four-digit years, sometimes not a time at all.
fn time_text() -> BoxedStrategy<String> {
    let offset = prop_oneof![
        Just("Z".to_owned()),
        (-1439i32..=1439).prop_map(|m| format!(
            "{}{:02}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        )),
    ];
    let near = (-86_400i64 * 30..86_400 * 400, offset.clone()).prop_map(|(s, offset)| {
        let t = now() + TimeDelta::seconds(s);
        format!("{}{offset}", t.format("%Y-%m-%dT%H:%M:%S"))
    });
    let anywhere = (-62_167_219_200i64..253_402_300_799, offset).prop_map(|(s, offset)| {
        let t = DateTime::from_timestamp(s, 0).expect("in range");
        format!("{}{offset}", t.format("%Y-%m-%dT%H:%M:%S"))
    });
    prop_oneof![
        6 => near,
        2 => anywhere,
        1 => prop::sample::select(vec![
            "0000-01-01T00:00:00+23:59", "0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "+10000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z", "2026-06-01", "2026-06-01T12:00", "yesterday", "",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn zone_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "UTC", "America/New_York", "Europe/Berlin", "Pacific/Kiritimati", "Australia/Lord_Howe",
            "America/Santiago",
        ])
        .prop_map(str::to_owned),
        1 => prop::sample::select(vec!["america/new_york", "Mars/Base", "+05:00", ""]).prop_map(str::to_owned),
        1 => hostile_text(),
    ]
    .boxed()
}

fn rule_json() -> BoxedStrategy<Value> {
    let calendar = (
        prop::sample::select(vec!["daily", "weekly", "monthly", "yearly"]),
        prop_oneof![Just(None), (0u32..5).prop_map(Some), Just(Some(1000)), Just(Some(1001))],
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["mo", "we", "su"]),
            0..3,
        )),
        prop::option::of(time_text()),
        prop_oneof![Just(None), (0u32..5).prop_map(Some), Just(Some(10_000)), Just(Some(10_001))],
    )
        .prop_map(|(frequency, interval, weekdays, until, count)| {
            json!({"frequency": frequency, "interval": interval, "weekdays": weekdays, "until": until, "count": count})
        });
    let cron = (
        prop::sample::select(vec![
            "* * * * *",
            "0 9 * * 1-5",
            "30 2 * * *",
            "0 0 31 2 *",
            "0 0 29 2 *",
            "61 * * * *",
            "* * * * * *",
            "@daily",
        ]),
        prop_oneof![Just(None), (0u32..5).prop_map(Some), Just(Some(10_000))],
    )
        .prop_map(|(cron, count)| json!({"frequency": "cron", "cron": cron, "count": count}));
    prop_oneof![3 => calendar, 2 => cron, 1 => Just(json!({"frequency": "hourly"}))]
        .prop_map(|mut rule| {
            // Absent rather than null, as the server writes them.
            if let Value::Object(o) = &mut rule {
                o.retain(|_, v| !v.is_null());
            }
            rule
        })
        .boxed()
}

/// A task snapshot as the MCP server publishes it, with hostile values in every field.
fn task_json() -> BoxedStrategy<Value> {
    let reminder = (one_of_few_ids(2), time_text(), prop::option::of(0u32..600))
        .prop_map(|(id, at, minutes)| json!({"id": id, "at": at, "minutes_before": minutes}));
    let series = (rule_json(), one_of_few_ids(3), time_text()).prop_map(|(rule, id, start)| {
        json!({"rule": rule, "summary": "every day", "series_id": id, "series_start": start})
    });
    (
        one_of_few_ids(1),
        prop_oneof![3 => Just("alice".to_owned()), 1 => hostile_text()],
        hostile_text(),
        prop::sample::select(vec!["pending", "pending", "completed"]),
        prop::option::of(time_text()),
        zone_text(),
        prop::option::of(series),
        prop::collection::vec(reminder, 0..4),
        time_text(),
    )
        .prop_map(
            |(id, owner, title, status, due, zone, series, reminders, updated)| {
                json!({
                    "id": id, "owner": owner, "title": title, "description": null,
                    "status": status, "priority": "medium", "tags": [], "due": due,
                    "time_zone": zone, "recurrence": series, "reminders": reminders,
                    "created_at": "2026-06-01T00:00:00Z", "updated_at": updated, "completed_at": null,
                })
            },
        )
    .boxed()
}

fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec!["type", "id", "data", "task", "changes"])
                        .prop_map(str::to_owned),
                    hostile_text()
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

const TASK_TYPES: [&str; 4] = [
    "com.todo.task.created",
    "com.todo.task.updated",
    "com.todo.task.completed",
    "com.todo.task.deleted",
];

fn envelope() -> BoxedStrategy<Value> {
    let ty = prop_oneof![
        8 => prop::sample::select(TASK_TYPES.to_vec()).prop_map(|t| Some(json!(t))),
        1 => prop::sample::select(vec!["com.todo.reminder.triggered", "com.todo.recurring.scheduled", "com.todo.task.CREATED"])
            .prop_map(|t| Some(json!(t))),
        1 => hostile_text().prop_map(|t| Some(json!(t))),
        1 => Just(Some(json!(["com.todo.task.created"]))),
        1 => Just(None),
    ];
    let id = prop_oneof![
        8 => any::<u128>().prop_map(|n| Some(json!(Uuid::from_u128(n)))),
        // The same few ids again and again: redeliveries.
        2 => (0u128..3).prop_map(|n| Some(json!(Uuid::from_u128(n)))),
        1 => any::<u128>().prop_map(|n| Some(json!(Uuid::from_u128(n).simple().to_string()))),
        1 => hostile_text().prop_map(|t| Some(json!(t))),
        1 => Just(Some(json!(12))),
        1 => Just(None),
    ];
    let source = prop_oneof![
        8 => Just(Some(json!(TASKS_SOURCE))),
        1 => Just(Some(json!("/scheduler"))),
        1 => Just(None),
    ];
    let data = prop_oneof![
        8 => task_json().prop_map(|t| Some(json!({"task": t}))),
        2 => task_json().prop_map(|t| Some(json!(json!({"task": t}).to_string()))),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ];
    let shaped = (ty, id, source, data).prop_map(|(ty, id, source, data)| {
        let mut o = Map::new();
        for (k, v) in [("type", ty), ("id", id), ("source", source), ("data", data)] {
            if let Some(v) = v {
                o.insert(k.to_owned(), v);
            }
        }
        o.insert("specversion".into(), json!("1.0"));
        Value::Object(o)
    });
    prop_oneof![6 => shaped, 1 => any_json()].boxed()
}

// --- the oracle ---------------------------------------------------------------------------------

fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What `TaskChange::parse` must return, worked out independently: `Err` for no type or a
/// reminder (never published on `tasks`), `Ok(None)` for other types than the four task events,
/// `Err` for another source than todo-mcp's, an id other than a hyphenated UUID, or bad data,
/// else `Ok(Some)`.
fn expected(envelope: &Value) -> Result<Option<()>, ()> {
    let ty = envelope.get("type").and_then(Value::as_str).ok_or(())?;
    if ty == "com.todo.reminder.triggered" {
        return Err(());
    }
    if !TASK_TYPES.contains(&ty) {
        return Ok(None);
    }
    if envelope.get("source").and_then(Value::as_str) != Some(TASKS_SOURCE) {
        return Err(());
    }
    let id = envelope.get("id").and_then(Value::as_str).ok_or(())?;
    let hyphenated = id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4;
    if !hyphenated || Uuid::try_parse(id).is_err() {
        return Err(());
    }
    let data: TaskEventData = match envelope.get("data").ok_or(())? {
        Value::String(s) => serde_json::from_str(s).map_err(drop)?,
        other => serde_json::from_value(other.clone()).map_err(drop)?,
    };
    let task = data.task;
    let zone: Tz = task.time_zone.parse().map_err(drop)?;
    rfc3339(&task.updated_at).ok_or(())?;
    if let Some(due) = &task.due {
        rfc3339(due).ok_or(())?;
    }
    for r in &task.reminders {
        rfc3339(&r.at).ok_or(())?;
    }
    if let Some(s) = task.recurrence {
        rfc3339(&s.series_start).ok_or(())?;
        Recurrence::parse(s.rule, zone).map_err(drop)?;
    }
    Ok(Some(()))
}

fn check_change(envelope: &Value, change: &TaskChange) -> Result<(), TestCaseError> {
    let data: TaskEventData = match &envelope["data"] {
        Value::String(s) => serde_json::from_str(s).expect("checked by the oracle"),
        other => serde_json::from_value(other.clone()).expect("checked by the oracle"),
    };
    prop_assert_eq!(Some(change.event_id.as_str()), envelope["id"].as_str());
    prop_assert_eq!(Some(change.kind.as_str()), envelope["type"].as_str());
    prop_assert_eq!(change.task_id, data.task.id);
    prop_assert_eq!(&change.owner, &data.task.owner);
    prop_assert_eq!(change.time_zone.name(), data.task.time_zone.as_str());
    prop_assert_eq!(
        Some(change.version.updated_at),
        rfc3339(&data.task.updated_at)
    );
    prop_assert_eq!(change.version.number, data.task.version);
    prop_assert_eq!(change.due, data.task.due.as_deref().and_then(rfc3339));
    let reminders: Vec<_> = data
        .task
        .reminders
        .iter()
        .map(|r| (r.id, rfc3339(&r.at).expect("checked")))
        .collect();
    prop_assert_eq!(&change.reminders, &reminders);
    prop_assert_eq!(
        change.series.as_ref().map(|s| s.series_id),
        data.task.recurrence.as_ref().map(|s| s.series_id)
    );
    prop_assert_eq!(
        change.is_active(),
        change.kind != EventType::TaskDeleted && data.task.status.as_str() == "pending"
    );
    Ok(())
}

// --- properties ---------------------------------------------------------------------------------

/// Any envelope: no panic, and the answer the oracle predicts; a parsed change carries exactly
/// the envelope's values; the data as a JSON string (binary content mode) reads the same.
#[test]
fn task_change_parse_classifies_every_envelope() {
    TestRunner::new(config(1024))
        .run(&envelope(), |envelope| {
            let got = TaskChange::parse(&envelope);
            match (expected(&envelope), &got) {
                (Err(()), Err(reason)) => prop_assert!(!reason.is_empty()),
                (Ok(None), Ok(None)) => {}
                (Ok(Some(())), Ok(Some(change))) => check_change(&envelope, change)?,
                (want, got) => prop_assert!(
                    false,
                    "expected {:?}, got {:?} for {}",
                    want,
                    got.as_ref().map(Option::is_some),
                    envelope
                ),
            }
            if let Some(data) = envelope.get("data").filter(|d| d.is_object()) {
                let mut as_string = envelope.clone();
                as_string["data"] = json!(data.to_string());
                let again = TaskChange::parse(&as_string);
                prop_assert_eq!(
                    again.as_ref().map(|c| c.as_ref().map(|c| c.task_id)).ok(),
                    got.as_ref().map(|c| c.as_ref().map(|c| c.task_id)).ok()
                );
            }
            Ok(())
        })
        .unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The engine, fed a sequence of hostile events: each is answered as `TaskChange::parse`
/// predicts (never RETRY on ports that never fail), dropped and ignored events leave the state
/// and the jobs alone, and a redelivered event changes nothing. Then every job it scheduled is
/// fired at its time: reminders publish a well-formed notification no earlier than due, series
/// publish an occurrence after their current one with the derived task id, and firing a job
/// again publishes nothing more.
#[test]
fn engine_answers_hostile_events_and_fires_only_what_is_due() {
    let rt = rt();
    // Guards against a vacuous run: some events must be applied and some firings published.
    let applied = std::cell::Cell::new(0usize);
    let published = std::cell::Cell::new(0usize);
    TestRunner::new(config(256))
        .run(&prop::collection::vec(envelope(), 1..6), |envelopes| {
            rt.block_on(async {
                let world = World::new();
                for envelope in &envelopes {
                    let before = (world.store.snapshot(), world.jobs());
                    let answer = world.engine.handle_event(envelope, now()).await;
                    let after = (world.store.snapshot(), world.jobs());
                    match (expected(envelope), &answer) {
                        (Err(()), Disposition::Drop(_)) | (Ok(None), Disposition::Success) => {
                            prop_assert_eq!(&before, &after, "state changed for {}", envelope);
                        }
                        (Ok(Some(())), Disposition::Success) => {
                            applied.set(applied.get() + 1);
                            let again = world.engine.handle_event(envelope, now()).await;
                            prop_assert_eq!(again, Disposition::Success);
                            prop_assert_eq!(
                                (world.store.snapshot(), world.jobs()),
                                after,
                                "redelivery changed the state"
                            );
                        }
                        (want, got) => {
                            prop_assert!(
                                false,
                                "expected {:?}, got {:?} for {}",
                                want,
                                got,
                                envelope
                            )
                        }
                    }
                }
                fire_everything(&world).await?;
                published.set(published.get() + world.published().len());
                Ok(())
            })
        })
        .unwrap();
    assert!(applied.get() > 50, "only {} events applied", applied.get());
    assert!(
        published.get() > 10,
        "only {} events published",
        published.get()
    );
}

/// Events delivered together and applied together (as `todo-scheduler`'s intake does) are
/// answered as they are one at a time, and leave the same state and jobs.
#[test]
fn events_applied_together_do_what_they_do_one_by_one() {
    let rt = rt();
    TestRunner::new(config(256))
        .run(&prop::collection::vec(envelope(), 1..8), |envelopes| {
            rt.block_on(async {
                let alone = World::new();
                let mut answers = Vec::new();
                for envelope in &envelopes {
                    answers.push(alone.engine.handle_event(envelope, now()).await);
                }
                let together = World::new();
                let batched = together.engine.handle_events(&envelopes, now()).await;
                prop_assert_eq!(batched, answers);
                prop_assert_eq!(sweepless(&together), sweepless(&alone));
                let swept_together = swept(&together);
                prop_assert_eq!(&swept_together, &swept(&alone));
                for (item, record) in together.store.snapshot() {
                    let pending = record.get("state").is_none_or(|s| s == "pending");
                    if item.starts_with("reminder:") && pending || item.starts_with("recurring:") {
                        prop_assert!(
                            swept_together.contains_key(&item),
                            "{} is not indexed",
                            item
                        );
                    }
                }
                prop_assert_eq!(together.jobs(), alone.jobs());
                Ok(())
            })
        })
        .unwrap();
}

/// The store but for the sweep's index and watermark, where the first event to arm something
/// sets the watermark and so which hour's bucket an item earlier than it goes into.
fn sweepless(world: &World) -> BTreeMap<String, Value> {
    let mut snapshot = world.store.snapshot();
    snapshot.retain(|key, _| !key.starts_with("due:") && !key.starts_with("sweep:"));
    snapshot
}

/// The sweep's live entries, item → time, whichever hour's bucket the watermark put them in:
/// those whose item is still due at that time. An item moved to another hour leaves its old
/// entry behind, which the sweep passes over (`Engine::settle`), and where it moved from
/// depends on how the events were grouped.
fn swept(world: &World) -> BTreeMap<String, Value> {
    let snapshot = world.store.snapshot();
    let due = |item: &str| {
        let record = snapshot.get(item)?;
        record.get("fire_at").or_else(|| record.get("current_due"))
    };
    snapshot
        .iter()
        .filter(|(key, _)| key.starts_with("due:"))
        .flat_map(|(_, bucket)| bucket.as_object().cloned().unwrap_or_default())
        .filter(|(item, at)| due(item) == Some(at))
        .collect()
}

/// Fires each scheduled job at its due time (those beyond 2100 at `now`, which must only
/// reschedule them), checking what gets published.
async fn fire_everything(world: &World) -> Result<(), TestCaseError> {
    let horizon = Utc
        .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    for _round in 0..3 {
        for (name, due) in world.jobs() {
            let at = if due > horizon { now() } else { due.max(now()) };
            let published_before = world.published().len();
            let before = world.store.snapshot();
            world
                .engine
                .fire_job(&name, at)
                .await
                .map_err(|e| TestCaseError::fail(format!("{name} at {at}: {e}")))?;
            let published = world.published();
            for event in &published[published_before..] {
                check_published(event, at, &before)?;
            }
            // Firing again at the same time publishes nothing more.
            let count = published.len();
            world
                .engine
                .fire_job(&name, at)
                .await
                .map_err(|e| TestCaseError::fail(format!("{name} again: {e}")))?;
            prop_assert_eq!(world.published().len(), count, "{} fired twice", name);
        }
    }
    // The sweep at several times finds nothing it cannot handle.
    for at in [now(), now() + TimeDelta::days(400), horizon] {
        world
            .engine
            .sweep(at)
            .await
            .map_err(|e| TestCaseError::fail(format!("sweep at {at}: {e}")))?;
    }
    Ok(())
}

/// The current due time of a series in a snapshot of the store.
fn series_due(snapshot: &BTreeMap<String, Value>, series: Uuid) -> Option<DateTime<Utc>> {
    let record = snapshot.get(&format!("recurring:{series}"))?;
    serde_json::from_value(record.get("current_due")?.clone()).ok()
}

fn check_published(
    event: &OutgoingEvent,
    at: DateTime<Utc>,
    before: &BTreeMap<String, Value>,
) -> Result<(), TestCaseError> {
    let data = event.envelope.get("data").cloned().unwrap_or(Value::Null);
    match event.event_type {
        EventType::ReminderTriggered => {
            let r: ReminderTriggered = serde_json::from_value(data)
                .map_err(|e| TestCaseError::fail(format!("malformed notification: {e}")))?;
            prop_assert!(
                r.fire_at <= at + TimeDelta::seconds(1),
                "fired at {} before its time {}",
                at,
                r.fire_at
            );
        }
        EventType::RecurringScheduled => {
            let r: RecurringScheduled = serde_json::from_value(data)
                .map_err(|e| TestCaseError::fail(format!("malformed occurrence: {e}")))?;
            prop_assert_eq!(r.task_id, occurrence_task_id(r.series_id, r.due));
            if let Some(previous) = series_due(before, r.series_id) {
                prop_assert!(
                    r.due > previous,
                    "occurrence {} not after {}",
                    r.due,
                    previous
                );
            }
        }
        other => prop_assert!(false, "the engine published {:?}", other),
    }
    Ok(())
}

/// A task event with the rules a hostile caller would pick (a cron that fires every minute with
/// the largest count, a series that started in 1900, one due at the end of 9999) is applied, and
/// its first firing publishes only well-formed occurrences in the future.
#[test]
fn extreme_series_are_applied_and_fired() {
    let rt = rt();
    let cases: [(Value, &str, &str); 4] = [
        (
            json!({"frequency": "cron", "cron": "* * * * *", "count": 10_000}),
            "2026-06-01T11:00:00Z",
            "2026-06-01T11:00:00Z",
        ),
        (
            json!({"frequency": "daily"}),
            "1900-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z",
        ),
        (
            json!({"frequency": "cron", "cron": "0 0 29 2 *"}),
            "9999-12-31T00:00:00Z",
            "9999-12-31T00:00:00Z",
        ),
        (
            json!({"frequency": "yearly", "interval": 1000, "count": 10_000}),
            "0000-01-01T00:00:00+23:59",
            "0000-01-01T00:00:00+23:59",
        ),
    ];
    for (rule, start, due) in cases {
        let parsed: RecurrenceInput = serde_json::from_value(rule.clone()).expect("valid input");
        assert!(Recurrence::parse(parsed, Tz::UTC).is_ok(), "{rule}");
        rt.block_on(async {
            let world = World::new();
            let series = Uuid::now_v7();
            let envelope = json!({
                "type": "com.todo.task.created", "id": Uuid::now_v7(), "source": TASKS_SOURCE,
                "data": {"task": {
                    "id": Uuid::now_v7(), "owner": "alice", "title": "x", "description": null,
                    "status": "pending", "priority": "medium", "tags": [], "due": due,
                    "time_zone": "UTC", "recurrence": {"rule": rule, "summary": "", "series_id": series, "series_start": start},
                    "reminders": [], "created_at": start, "updated_at": "2026-06-01T00:00:00Z",
                    "completed_at": null,
                }},
            });
            assert_eq!(world.engine.handle_event(&envelope, now()).await, Disposition::Success, "{rule}");
            world
                .engine
                .fire_job(&format!("recurring-{series}"), now())
                .await
                .expect("fires");
            for event in world.published() {
                let r: RecurringScheduled =
                    serde_json::from_value(event.envelope["data"].clone()).expect("well-formed");
                assert!(r.due > now(), "{rule}: an occurrence in the past, {}", r.due);
            }
        });
    }
}
