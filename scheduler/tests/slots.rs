//! Due slots and hour jobs on the in-memory ports: what a slot's job fires and when, and how an
//! hour's job hands its items to their slots.

mod common;

use std::time::Instant;

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};
use todo_scheduler::Settings;
use todo_scheduler::memory::InMemory;
use todo_shared::events::ReminderTriggered;
use todo_shared::incoming::Disposition;
use uuid::Uuid;

fn world() -> InMemory {
    InMemory::new(Settings::default())
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// A new task's event with one reminder at `at`.
fn created(at: DateTime<Utc>) -> Value {
    common::task_created(Uuid::now_v7(), at, noon())
}

fn notifications(world: &InMemory) -> Vec<(ReminderTriggered, DateTime<Utc>)> {
    world
        .published
        .published()
        .into_iter()
        .map(|event| {
            let data = serde_json::from_value(event.envelope["data"].clone()).unwrap();
            let time = serde_json::from_value(event.envelope["time"].clone()).unwrap();
            (data, time)
        })
        .collect()
}

fn slot_keys(world: &InMemory) -> usize {
    let snapshot = world.store.snapshot();
    snapshot.keys().filter(|k| k.starts_with("slot:")).count()
}

#[tokio::test]
async fn a_slot_fires_each_of_its_reminders_at_its_time_and_once() {
    let w = world();
    let second = noon() + TimeDelta::seconds(30);
    let times: Vec<_> = [0, 400, 800]
        .map(|ms| second + TimeDelta::milliseconds(ms))
        .into();
    let events: Vec<Value> = times.iter().map(|at| created(*at)).collect();
    let answers = w.engine.handle_events(&events, noon()).await;
    assert_eq!(answers, vec![Disposition::Success; 3]);
    // One job for the three: the second they fall in.
    let slot_job = format!("due-{}", second.timestamp());
    assert_eq!(
        w.jobs.scheduled().into_iter().collect::<Vec<_>>(),
        [(slot_job.clone(), second)]
    );

    let started = Instant::now();
    w.engine.fire_job(&slot_job, second).await.unwrap();
    assert!(
        started.elapsed().as_millis() >= 800,
        "held until the last one's time"
    );
    let fired = notifications(&w);
    assert_eq!(fired.len(), 3);
    for (notification, published_at) in &fired {
        assert!(
            *published_at >= notification.fire_at.trunc_subsecs(3),
            "{} published at {published_at}, before its time",
            notification.fire_at
        );
    }
    assert_eq!(slot_keys(&w), 0, "a fired slot is removed");

    // The job again (a retry): nothing more.
    w.engine.fire_job(&slot_job, second).await.unwrap();
    assert_eq!(notifications(&w).len(), 3);
}

#[tokio::test]
async fn a_later_hour_is_handed_to_its_slots_by_its_hours_job() {
    let w = world();
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 15, 10, 0).unwrap();
    let cancelled_at = at + TimeDelta::minutes(20);
    let events = [created(at), created(at), created(cancelled_at)];
    w.engine.handle_events(&events, noon()).await;
    // Nothing but the hour's job, five minutes before the hour; no slot yet.
    let hour = Utc.with_ymd_and_hms(2026, 6, 1, 15, 0, 0).unwrap();
    let hour_job = format!("hour-{}", hour.timestamp());
    let lead = hour - TimeDelta::minutes(5);
    assert_eq!(
        w.jobs.scheduled().into_iter().collect::<Vec<_>>(),
        [(hour_job.clone(), lead)]
    );
    assert_eq!(slot_keys(&w), 0);

    // The third task is deleted: its reminder is cancelled, with no job call.
    let mut deleted = events[2].clone();
    deleted["type"] = json!("com.todo.task.deleted");
    deleted["id"] = json!(Uuid::now_v7());
    deleted["data"]["task"]["updated_at"] = json!(noon() + TimeDelta::seconds(1));
    assert_eq!(
        w.engine.handle_event(&deleted, noon()).await,
        Disposition::Success
    );

    w.engine.fire_job(&hour_job, lead).await.unwrap();
    let jobs = w.jobs.scheduled();
    let slot_job = format!("due-{}", at.timestamp());
    assert_eq!(jobs.get(&slot_job), Some(&at));
    assert!(slot_keys(&w) > 0);
    assert!(
        notifications(&w).is_empty(),
        "nothing fires at the hour's job"
    );

    for (name, due) in jobs {
        w.engine.fire_job(&name, due).await.unwrap();
    }
    let fired: Vec<DateTime<Utc>> = notifications(&w).iter().map(|(n, _)| n.fire_at).collect();
    assert_eq!(
        fired,
        [at, at],
        "the two pending reminders, not the cancelled one"
    );
}
