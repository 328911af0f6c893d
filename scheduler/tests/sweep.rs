//! The reconciliation sweep on the in-memory ports: an entry it cannot settle leaves the index
//! for `sweep:failing`, so the watermark moves on and the sweep still reaches the present; the
//! entry is tried again with backoff, counted as quarantined after `sweep_max_attempts`, and
//! leaves once it settles.

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};
use todo_scheduler::memory::InMemory;
use todo_scheduler::records::{FAILING_KEY, FailingEntries};
use todo_scheduler::sweep::FailingReport;
use todo_scheduler::{Settings, StateStore};
use todo_shared::events::EventType;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 10, 12, 30, 0).unwrap()
}

/// A new task's event with one reminder at `at`; returns it with the reminder's id.
fn created(at: DateTime<Utc>) -> (Value, Uuid) {
    let reminder = Uuid::now_v7();
    (common::task_created(reminder, at, at), reminder)
}

/// Arms a reminder at `at`, as of `at`, and loses its job (as when the Dapr scheduler service
/// drops it): only the sweep can fire it.
async fn armed_and_lost(w: &InMemory, at: DateTime<Utc>) -> Uuid {
    let (event, reminder) = created(at);
    w.engine.handle_event(&event, at).await;
    for name in w.jobs.scheduled().into_keys() {
        use todo_scheduler::Jobs;
        w.jobs.cancel(&name).await.unwrap();
    }
    reminder
}

/// Overwrites a document with one no version of the scheduler reads.
async fn corrupt(w: &InMemory, key: &str) {
    let (_, etag) = w
        .store
        .get(key)
        .await
        .unwrap()
        .expect("the document exists");
    let old_shape = json!({"shape": "from another version"});
    w.store
        .put(key, &old_shape, Some(&etag), None)
        .await
        .unwrap();
}

fn fired(w: &InMemory) -> Vec<Uuid> {
    w.published
        .published()
        .iter()
        .filter(|e| e.event_type == EventType::ReminderTriggered)
        .map(|e| serde_json::from_value(e.envelope["data"]["reminder_id"].clone()).unwrap())
        .collect()
}

async fn failing(w: &InMemory) -> FailingEntries {
    match w.store.get(FAILING_KEY).await.unwrap() {
        Some((value, _)) => serde_json::from_value(value).unwrap(),
        None => FailingEntries::default(),
    }
}

#[tokio::test]
async fn an_entry_that_never_settles_cannot_keep_the_sweep_from_the_present() {
    let w = InMemory::new(Settings::default());
    // Sixty hours ago: further back than one sweep reads (48 hours), and then unreadable.
    let poisoned = armed_and_lost(&w, now() - TimeDelta::hours(60)).await;
    corrupt(&w, &format!("reminder:{poisoned}")).await;
    let lost = armed_and_lost(&w, now() - TimeDelta::minutes(10)).await;

    let first = w.engine.sweep(now()).await.unwrap();
    assert_eq!((first.checked, first.fired, first.failed), (1, 0, 1));
    let second = w.engine.sweep(now()).await.unwrap();
    assert_eq!((second.fired, second.failed), (1, 0), "{second:?}");
    assert_eq!(fired(&w), [lost]);

    // The poisoned entry waits out its backoff, a minute doubling, and counts as quarantined
    // at its fifth failure.
    let entry = format!("reminder:{poisoned}");
    let report = |failing, quarantined| FailingReport {
        failing,
        quarantined,
    };
    assert_eq!(w.engine.failing_report().await.unwrap(), report(1, 0));
    let mut at = now();
    for attempts in 2..=5 {
        let retry_at = failing(&w).await[&entry].retry_at.unwrap();
        assert_eq!(retry_at - at, TimeDelta::minutes(1 << (attempts - 2)));
        assert_eq!(
            w.engine
                .sweep(retry_at - TimeDelta::seconds(1))
                .await
                .unwrap()
                .failed,
            0
        );
        at = retry_at;
        assert_eq!(w.engine.sweep(at).await.unwrap().failed, 1);
        assert_eq!(failing(&w).await[&entry].attempts, attempts);
    }
    assert_eq!(w.engine.failing_report().await.unwrap(), report(1, 1));
    let kept = &failing(&w).await[&entry];
    assert!(kept.error.contains("unreadable"), "{}", kept.error);
    assert_eq!(kept.at, now() - TimeDelta::hours(60));

    // Once it can be read, it fires (late, as the sweep does) and leaves.
    let readable = json!({
        "owner": "alice", "task_id": Uuid::now_v7(), "reminder_id": poisoned, "title": "x",
        "fire_at": kept.at, "due": null, "time_zone": "UTC", "state": "pending",
    });
    let (_, etag) = w.store.get(&entry).await.unwrap().unwrap();
    w.store
        .put(&entry, &readable, Some(&etag), None)
        .await
        .unwrap();
    let hourly = kept.retry_at.unwrap();
    assert_eq!(hourly - at, TimeDelta::minutes(16));
    let report_after = w.engine.sweep(hourly).await.unwrap();
    assert_eq!((report_after.fired, report_after.failed), (1, 0));
    assert_eq!(fired(&w), [lost, poisoned]);
    assert_eq!(w.engine.failing_report().await.unwrap(), report(0, 0));
    assert!(w.store.get(FAILING_KEY).await.unwrap().is_none());
}

#[tokio::test]
async fn an_index_bucket_that_does_not_decode_is_kept_aside_whole() {
    let w = InMemory::new(Settings::default());
    armed_and_lost(&w, now() - TimeDelta::hours(3)).await;
    let bucket = w
        .store
        .snapshot()
        .into_keys()
        .find(|k| k.starts_with("due:"))
        .expect("the reminder is indexed");
    corrupt(&w, &bucket).await;
    let lost = armed_and_lost(&w, now() - TimeDelta::minutes(10)).await;

    let report = w.engine.sweep(now()).await.unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(fired(&w), [lost], "the rest of the index is swept");
    let kept = &failing(&w).await[&bucket];
    assert_eq!(kept.content, Some(json!({"shape": "from another version"})));
    assert_eq!(kept.retry_at, None, "no retry can read it");
    assert!(w.store.get(&bucket).await.unwrap().is_none());
    assert_eq!(
        w.engine.failing_report().await.unwrap(),
        FailingReport {
            failing: 1,
            quarantined: 1
        }
    );
    // The watermark moved past it.
    let watermark = w.store.get("sweep:watermark").await.unwrap().unwrap().0;
    assert_eq!(watermark["hour"], json!(now() - TimeDelta::minutes(30)));
}
