//! The outbox relay and the event consumers, on both backends, delivering through the
//! in-process bus of embedded mode.

mod common;

use std::sync::{Arc, Mutex};
use todo_shared::time::Zone;

use chrono::{Duration, TimeZone, Utc};
use common::{TestDb, args, count, outbox, user};
use futures::FutureExt;
use futures::future::BoxFuture;
use mcp_server::app::notifications::NotificationService;
use mcp_server::app::tasks::TaskService;
use mcp_server::events::bus::{Disposition, EventBus, Subscriber};
use mcp_server::events::consumers::{NotificationConsumer, RecurrenceConsumer};
use mcp_server::events::relay::{OutboxRelay, RelaySettings};
use mcp_server::events::sink::Sink;
use mcp_server::mcp::args::AddTaskArgs;
use mcp_server::store::Db;
use serde_json::{Value, json};
use todo_shared::events::{
    EventType, OutgoingEvent, RecurringScheduled, ReminderTriggered, occurrence_task_id,
};
use todo_shared::time::now;
use tokio::sync::Notify;
use uuid::Uuid;

on_both_backends!(
    relays_every_event_once_in_order,
    a_failing_subscriber_holds_back_only_its_task,
    recurring_scheduled_creates_one_occurrence,
    reminder_triggered_records_one_notification,
    malformed_events_are_dropped,
    consumers_write_while_the_relay_delivers,
    a_poisoned_event_is_dead_lettered_and_its_task_goes_on,
    an_outage_counts_no_attempt,
    a_claim_holds_its_tasks_until_it_expires,
    dead_letters_are_retried_or_dropped,
);

// Replicas share one outbox on PostgreSQL; an embedded SQLite file has one process and one relay.
#[tokio::test]
async fn two_relays_share_the_work_without_doubles_on_postgres() {
    two_relays_share_the_work_without_doubles(common::postgres().await).await
}

/// Records what reaches it; fails while `failing` names the event's subject (or `"*"`).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Value>>,
    failing: Mutex<Option<String>>,
}

impl Recorder {
    fn fail(&self, subject: Option<&str>) {
        *self.failing.lock().unwrap() = subject.map(str::to_owned);
    }

    fn titles(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["data"]["task"]["title"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Subscriber for Recorder {
    fn topics(&self) -> &[&'static str] {
        &["tasks", "notifications"]
    }

    fn handle<'a>(&'a self, _topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition> {
        async move {
            let failing = self.failing.lock().unwrap().clone();
            if failing.as_deref() == Some("*") || failing.as_deref() == envelope["subject"].as_str()
            {
                return Disposition::Retry("subscriber down".into());
            }
            self.seen.lock().unwrap().push(envelope.clone());
            Disposition::Success
        }
        .boxed()
    }
}

fn relay(db: &Db, recorder: Arc<Recorder>) -> OutboxRelay {
    let settings = RelaySettings {
        batch: 3,
        // Retries are due at once, so that each round below is one attempt.
        first_retry: std::time::Duration::ZERO,
        max_attempts: 3,
        ..RelaySettings::default()
    };
    OutboxRelay::new(
        db.clone(),
        Sink::InProcess(EventBus::new(vec![recorder])),
        settings,
        Arc::new(Notify::new()),
    )
}

async fn add(svc: &TaskService, title: &str) -> Uuid {
    let now = now();
    svc.create(
        &user("alice"),
        AddTaskArgs::parse(args(json!({"title": title})), now, Zone::UTC).unwrap(),
        now,
    )
    .await
    .unwrap()
    .id
}

/// Renames task `id`: one `task.updated` event.
async fn rename(svc: &TaskService, id: Uuid, title: &str) {
    common::update(
        svc,
        &user("alice"),
        json!({"task_id": id, "title": title}),
        now(),
    )
    .await
    .unwrap();
}

async fn drain(relay: &OutboxRelay) {
    for _ in 0..100 {
        if relay.relay_once().await.unwrap().published == 0 {
            return;
        }
    }
    panic!("the relay never caught up");
}

async fn relays_every_event_once_in_order(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let a = add(&svc, "a").await;
    let b = add(&svc, "b").await;
    for i in 0..3 {
        rename(&svc, a, &format!("a{i}")).await;
    }
    svc.complete(&user("alice"), b, now()).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let relay = relay(&t.db, recorder.clone());
    let backlog = mcp_server::store::outbox::backlog(&t.db, Utc::now())
        .await
        .unwrap();
    assert_eq!(backlog.pending, 6);
    drain(&relay).await;

    let seen = recorder.seen.lock().unwrap().clone();
    let written: Vec<Value> = outbox(&t.db).await.into_iter().map(|(_, e)| e).collect();
    assert_eq!(seen.len(), 6, "every event once");
    let ids = |v: &[Value]| {
        v.iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let mut seen_ids = ids(&seen);
    seen_ids.sort();
    let mut written_ids = ids(&written);
    written_ids.sort();
    assert_eq!(seen_ids, written_ids);
    let titles_of_a: Vec<_> = seen
        .iter()
        .filter(|e| e["subject"] == a.to_string())
        .map(|e| e["data"]["task"]["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        titles_of_a,
        ["a", "a0", "a1", "a2"],
        "one task's events in commit order"
    );
    assert_eq!(
        mcp_server::store::outbox::backlog(&t.db, Utc::now())
            .await
            .unwrap()
            .pending,
        0
    );
    assert_eq!(
        relay.relay_once().await.unwrap().published,
        0,
        "nothing is published twice"
    );

    assert_eq!(
        relay.prune(Utc::now() + Duration::hours(25)).await.unwrap(),
        6
    );
    assert_eq!(count(&t.db, "outbox").await, 0);
}

async fn a_failing_subscriber_holds_back_only_its_task(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let a = add(&svc, "a").await;
    rename(&svc, a, "a2").await;
    let b = add(&svc, "b").await;
    let recorder = Arc::new(Recorder::default());
    recorder.fail(Some(&a.to_string()));
    let relay = relay(&t.db, recorder.clone());
    let round = relay.relay_once().await.unwrap();
    assert_eq!((round.published, round.failed), (1, 1));
    assert_eq!(recorder.seen.lock().unwrap()[0]["subject"], b.to_string());
    assert_eq!(
        mcp_server::store::outbox::backlog(&t.db, Utc::now())
            .await
            .unwrap()
            .pending,
        2,
        "a's events wait"
    );

    recorder.fail(None);
    drain(&relay).await;
    let seen = recorder.seen.lock().unwrap().clone();
    let titles: Vec<_> = seen
        .iter()
        .map(|e| e["data"]["task"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["b", "a", "a2"],
        "a's events still in order after the retry"
    );
}

fn envelope(event_type: EventType, data: Value) -> Value {
    OutgoingEvent::new(Uuid::now_v7(), event_type, Uuid::now_v7(), data, Utc::now())
        .unwrap()
        .envelope
}

async fn recurring_scheduled_creates_one_occurrence(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let now = now();
    let first = svc
        .create(
            &user("alice"),
            AddTaskArgs::parse(
                args(json!({"title": "Water plants", "due": "2030-01-01T09:00", "tags": ["home"],
                            "recurrence": {"frequency": "daily"}, "reminders": [{"minutes_before": 10}]})),
                now, Zone::UTC,
            )
            .unwrap(),
            now,
        )
        .await
        .unwrap();
    let due = Utc.with_ymd_and_hms(2030, 1, 2, 9, 0, 0).unwrap();
    let data = RecurringScheduled {
        owner: "alice".into(),
        series_id: first.id,
        previous_task_id: first.id,
        task_id: occurrence_task_id(first.id, due),
        due,
    };
    let consumer = RecurrenceConsumer { tasks: svc.clone() };
    let event = envelope(
        EventType::RecurringScheduled,
        serde_json::to_value(&data).unwrap(),
    );
    assert_eq!(consumer.handle_envelope(&event).await, Disposition::Success);
    assert_eq!(
        consumer.handle_envelope(&event).await,
        Disposition::Success,
        "redelivery"
    );
    let republished = envelope(
        EventType::RecurringScheduled,
        serde_json::to_value(&data).unwrap(),
    );
    assert_eq!(
        consumer.handle_envelope(&republished).await,
        Disposition::Success,
        "same occurrence, new event id"
    );

    let next = svc.get(&user("alice"), data.task_id).await.unwrap();
    assert_eq!(next.title, "Water plants");
    assert_eq!(next.tags, ["home"]);
    assert_eq!(next.due.as_deref(), Some("2030-01-02T09:00:00+00:00"));
    assert_eq!(next.recurrence.as_ref().unwrap().series_id, first.id);
    assert_eq!(next.reminders.len(), 1);
    assert_eq!(next.reminders[0].at, "2030-01-02T08:50:00+00:00");
    assert_eq!(count(&t.db, "tasks").await, 2, "one task per occurrence");
    let created = outbox(&t.db)
        .await
        .iter()
        .filter(|(ty, _)| ty == "com.todo.task.created")
        .count();
    assert_eq!(created, 2, "the new occurrence announces itself");

    // Events for other users' tasks, or with a forged id, change nothing.
    let mallory = RecurringScheduled {
        owner: "mallory".into(),
        task_id: occurrence_task_id(first.id, due + Duration::days(1)),
        due: due + Duration::days(1),
        ..data.clone()
    };
    let e = envelope(
        EventType::RecurringScheduled,
        serde_json::to_value(&mallory).unwrap(),
    );
    assert_eq!(consumer.handle_envelope(&e).await, Disposition::Success);
    let forged = RecurringScheduled {
        task_id: Uuid::now_v7(),
        ..data
    };
    let e = envelope(
        EventType::RecurringScheduled,
        serde_json::to_value(&forged).unwrap(),
    );
    assert!(matches!(
        consumer.handle_envelope(&e).await,
        Disposition::Drop(_)
    ));
    assert_eq!(count(&t.db, "tasks").await, 2);
}

async fn reminder_triggered_records_one_notification(t: TestDb) {
    let notifications = NotificationService::new(t.db.clone());
    let consumer = NotificationConsumer {
        notifications: notifications.clone(),
    };
    let data = ReminderTriggered {
        owner: "alice".into(),
        task_id: Uuid::now_v7(),
        reminder_id: Uuid::now_v7(),
        title: "Call mum".into(),
        fire_at: Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).unwrap(),
        due: Some(Utc.with_ymd_and_hms(2030, 1, 1, 10, 0, 0).unwrap()),
        time_zone: Some("Europe/Paris".into()),
    };
    let event = envelope(
        EventType::ReminderTriggered,
        serde_json::to_value(&data).unwrap(),
    );
    assert_eq!(consumer.handle_envelope(&event).await, Disposition::Success);
    assert_eq!(consumer.handle_envelope(&event).await, Disposition::Success);
    let again = envelope(
        EventType::ReminderTriggered,
        serde_json::to_value(&data).unwrap(),
    );
    assert_eq!(consumer.handle_envelope(&again).await, Disposition::Success);
    let page = notifications
        .list(&user("alice"), false, 50, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 1, "one notification per firing");
    assert_eq!(
        page.notifications[0].message, "Reminder: \"Call mum\" is due 2030-01-01T11:00:00+01:00",
        "the due time as the task's zone shows it"
    );
    assert_eq!(page.notifications[0].reminder_id, Some(data.reminder_id));
}

async fn malformed_events_are_dropped(t: TestDb) {
    let consumer = NotificationConsumer {
        notifications: NotificationService::new(t.db.clone()),
    };
    let mut no_data = envelope(EventType::ReminderTriggered, json!({}));
    no_data.as_object_mut().unwrap().remove("data");
    assert!(matches!(
        consumer.handle_envelope(&no_data).await,
        Disposition::Drop(_)
    ));
    let bad = envelope(EventType::ReminderTriggered, json!({"owner": 5}));
    assert!(matches!(
        consumer.handle_envelope(&bad).await,
        Disposition::Drop(_)
    ));
    let mut other = envelope(EventType::ReminderTriggered, json!({}));
    other["type"] = json!("com.example.other");
    assert_eq!(
        consumer.handle_envelope(&other).await,
        Disposition::Success,
        "not ours: acknowledged"
    );
    let misplaced = envelope(EventType::TaskCreated, json!({}));
    assert!(
        matches!(consumer.handle_envelope(&misplaced).await, Disposition::Drop(r) if r.contains("never published on `notifications`")),
        "a task event on the notifications topic is refused"
    );
    assert_eq!(count(&t.db, "notifications").await, 0);
}

async fn two_relays_share_the_work_without_doubles(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(add(&svc, &format!("t{i}")).await);
    }
    for id in &ids {
        svc.complete(&user("alice"), *id, now()).await.unwrap();
    }
    let recorder = Arc::new(Recorder::default());
    let (one, two) = (
        relay(&t.db, recorder.clone()),
        relay(&t.db, recorder.clone()),
    );
    let (a, b) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..50 {
                n += one.relay_once().await.unwrap().published;
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..50 {
                n += two.relay_once().await.unwrap().published;
            }
            n
        }
    );
    assert_eq!(a + b, 40, "every event published");
    let seen = recorder.seen.lock().unwrap().clone();
    let mut event_ids: Vec<_> = seen
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 40, "none twice");
    for id in ids {
        let types: Vec<_> = seen
            .iter()
            .filter(|e| e["subject"] == id.to_string())
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["com.todo.task.created", "com.todo.task.completed"],
            "order per task"
        );
    }
}

async fn consumers_write_while_the_relay_delivers(t: TestDb) {
    // The embedded path end to end: an event in the outbox, the relay, the in-process consumer
    // writing its notification (on SQLite this must not wait on the relay's own write lock).
    let notifications = NotificationService::new(t.db.clone());
    let data = ReminderTriggered {
        owner: "alice".into(),
        task_id: Uuid::now_v7(),
        reminder_id: Uuid::now_v7(),
        title: "Stretch".into(),
        fire_at: Utc::now(),
        due: None,
        time_zone: None,
    };
    let event = OutgoingEvent::new(
        Uuid::now_v7(),
        EventType::ReminderTriggered,
        data.task_id,
        serde_json::to_value(&data).unwrap(),
        Utc::now(),
    )
    .unwrap();
    let mut tx = t.db.begin().await.unwrap();
    mcp_server::store::outbox::enqueue(&mut tx, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let consumer = Arc::new(NotificationConsumer {
        notifications: notifications.clone(),
    });
    let relay = OutboxRelay::new(
        t.db.clone(),
        Sink::InProcess(EventBus::new(vec![consumer])),
        RelaySettings::default(),
        Arc::new(Notify::new()),
    );
    let round = tokio::time::timeout(std::time::Duration::from_secs(5), relay.relay_once())
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!((round.published, round.failed), (1, 0));
    let page = notifications
        .list(&user("alice"), false, 10, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.notifications[0].title, "Stretch");
}

async fn a_poisoned_event_is_dead_lettered_and_its_task_goes_on(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let a = add(&svc, "a").await;
    let recorder = Arc::new(Recorder::default());
    recorder.fail(Some(&a.to_string()));
    let relay = relay(&t.db, recorder.clone());
    rename(&svc, a, "a2").await;
    add(&svc, "b").await;

    let first = relay.relay_once().await.unwrap();
    assert_eq!((first.published, first.failed, first.outage), (1, 1, false));
    add(&svc, "c").await;
    let second = relay.relay_once().await.unwrap();
    assert_eq!(
        (second.published, second.failed),
        (1, 1),
        "c flows, a still fails"
    );
    assert_eq!(
        recorder.titles(),
        ["b", "c"],
        "a's later event waits behind it"
    );

    let third = relay.relay_once().await.unwrap();
    assert_eq!(
        (third.failed, third.dead_lettered),
        (0, 1),
        "given up at the third attempt"
    );
    let backlog = mcp_server::store::outbox::backlog(&t.db, Utc::now())
        .await
        .unwrap();
    assert_eq!((backlog.pending, backlog.dead_letters), (1, 1));
    let letters = mcp_server::store::dead_letters::list(&t.db, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject, a);
    assert_eq!(letters[0].event_type, "com.todo.task.created");
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].last_error.as_deref(), Some("subscriber down"));

    // The task goes on: its next event is delivered once the subscriber takes it again.
    recorder.fail(None);
    drain(&relay).await;
    assert_eq!(recorder.titles(), ["b", "c", "a2"]);
    let retried = mcp_server::store::dead_letters::retry(
        &t.db,
        &mcp_server::store::dead_letters::Selection::Ids(vec![letters[0].id]),
    )
    .await
    .unwrap();
    assert_eq!(retried, 1);
    drain(&relay).await;
    assert_eq!(recorder.titles(), ["b", "c", "a2", "a"], "re-driven, once");
    let backlog = mcp_server::store::outbox::backlog(&t.db, Utc::now())
        .await
        .unwrap();
    assert_eq!((backlog.pending, backlog.dead_letters), (0, 0));
}

async fn an_outage_counts_no_attempt(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    add(&svc, "a").await;
    add(&svc, "b").await;
    let recorder = Arc::new(Recorder::default());
    recorder.fail(Some("*"));
    let relay = relay(&t.db, recorder.clone());
    for _ in 0..5 {
        let round = relay.relay_once().await.unwrap();
        assert!(round.outage, "nothing of several tasks went out: {round:?}");
        assert_eq!((round.failed, round.dead_lettered), (0, 0));
    }
    let attempts: Vec<i64> = outbox_attempts(&t.db).await;
    assert_eq!(attempts, [0, 0], "no event was counted against");
    recorder.fail(None);
    drain(&relay).await;
    assert_eq!(recorder.titles(), ["a", "b"]);
}

async fn outbox_attempts(db: &Db) -> Vec<i64> {
    #[derive(sqlx::FromRow)]
    struct Row {
        attempts: i64,
    }
    let rows: Vec<Row> = db
        .fetch_all(&mcp_server::store::Query::new(
            "SELECT CAST(attempts AS BIGINT) AS attempts FROM outbox ORDER BY seq",
        ))
        .await
        .unwrap();
    rows.into_iter().map(|r| r.attempts).collect()
}

async fn a_claim_holds_its_tasks_until_it_expires(t: TestDb) {
    use mcp_server::store::outbox::{claim, settle};
    let svc = TaskService::new(t.db.clone());
    let a = add(&svc, "a").await;
    rename(&svc, a, "a2").await;
    let lease = Duration::seconds(30);
    let t0 = now();
    let held = claim(&t.db, 10, 100, lease, t0).await.unwrap();
    assert_eq!(held.events.len(), 2, "the head and the event behind it");

    // Another relay (or worker) finds nothing while the claim lives, even new events of the task.
    rename(&svc, a, "a3").await;
    let b = add(&svc, "b").await;
    let other = claim(&t.db, 10, 100, lease, t0 + Duration::seconds(29))
        .await
        .unwrap();
    let subjects: Vec<Uuid> = other.events.iter().map(|e| e.subject).collect();
    assert_eq!(subjects, [b], "only the unclaimed task");
    settle(&t.db, other.id, &[other.events[0].seq], &[], &[], now())
        .await
        .unwrap();

    // The first relay stopped answering: its claim expires and the task is taken over, in order.
    let later = claim(&t.db, 10, 100, lease, t0 + Duration::seconds(31))
        .await
        .unwrap();
    let titles: Vec<&str> = later
        .events
        .iter()
        .map(|e| e.envelope.0["data"]["task"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["a", "a2", "a3"]);

    // The stale claim, settling late, cannot release what is no longer its own.
    settle(&t.db, held.id, &[], &[], &[held.events[0].seq], now())
        .await
        .unwrap();
    let again = claim(&t.db, 10, 100, lease, t0 + Duration::seconds(32))
        .await
        .unwrap();
    assert!(again.events.is_empty(), "still held by the live claim");
}

async fn dead_letters_are_retried_or_dropped(t: TestDb) {
    use mcp_server::store::dead_letters::{Selection, drop, list, retry};
    let svc = TaskService::new(t.db.clone());
    for title in ["a", "b", "c"] {
        add(&svc, title).await;
    }
    let recorder = Arc::new(Recorder::default());
    let relay = OutboxRelay::new(
        t.db.clone(),
        Sink::InProcess(EventBus::new(vec![recorder.clone()])),
        RelaySettings {
            first_retry: std::time::Duration::ZERO,
            max_attempts: 1,
            ..RelaySettings::default()
        },
        Arc::new(Notify::new()),
    );
    // One task fails while others are published: counted, and with one attempt allowed, given up.
    let first = {
        let svc_events = outbox(&t.db).await;
        svc_events[0].1["subject"].as_str().unwrap().to_owned()
    };
    recorder.fail(Some(&first));
    let round = relay.relay_once().await.unwrap();
    assert_eq!((round.published, round.dead_lettered), (2, 1));
    assert_eq!(list(&t.db, 10).await.unwrap().len(), 1);
    assert_eq!(drop(&t.db, &Selection::All).await.unwrap(), 1);
    assert!(list(&t.db, 10).await.unwrap().is_empty());
    assert_eq!(
        retry(&t.db, &Selection::All).await.unwrap(),
        0,
        "nothing left to retry"
    );
    recorder.fail(None);
    drain(&relay).await;
    assert_eq!(
        recorder.titles(),
        ["b", "c"],
        "the dropped event is gone for good"
    );
}
