//! The scheduler's engine, embedded on both database backends, driven on a controlled clock:
//! the test plays the relay (handing each outbox event to the engine and the consumers) and the
//! job timer (running the jobs due at the test's time), so that days and DST changes pass in
//! milliseconds.

mod common;

use std::sync::Arc;
use todo_shared::time::Zone;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{TestDb, args, user};
use mcp_server::app::notifications::NotificationService;
use mcp_server::app::resync::ResyncService;
use mcp_server::app::tasks::TaskService;
use mcp_server::mcp::args::AddTaskArgs;
use mcp_server::scheduling::EmbeddedScheduler;
use mcp_server::store::Query;
use mcp_server::store::processed::EventKey;
use mcp_server::store::retention::{Retention, prune};
use mcp_server::store::scheduler_state::SqlStateStore;
use serde_json::{Value, json};
use sqlx::types::Json;
use todo_scheduler::{Engine, StateStore};
use todo_shared::events::{RecurringScheduled, ReminderTriggered, ResyncRequested};
use todo_shared::incoming::Disposition;
use todo_shared::reminder::ReminderInput;
use todo_shared::snapshot::TaskSnapshot;
use tokio::sync::Notify;

on_both_backends!(
    a_reminder_fires_once_at_its_time,
    a_daily_series_keeps_its_local_time_across_dst,
    completing_cancels_pending_reminders_and_the_series_goes_on,
    completing_an_occurrence_makes_the_next_at_once,
    completion_and_firing_racing_make_one_occurrence,
    deleting_cancels_reminders_and_ends_the_series,
    a_series_ends_when_its_template_goes_before_the_next_occurrence_is_made,
    moving_the_due_time_moves_relative_reminders,
    a_restarted_engine_fires_what_fell_due,
    the_sweep_fires_what_a_lost_job_missed,
    stale_and_foreign_events_change_nothing,
    a_tasks_events_are_ordered_by_its_version_not_by_clocks,
    a_lost_state_is_rebuilt_from_the_database,
    a_soak_leaves_rows_and_keys_flat,
    tasks_with_nothing_to_schedule_leave_no_state,
    the_database_state_store_keeps_the_contract,
);

/// Everything the embedded pipeline has, with the test in charge of time.
struct World {
    t: TestDb,
    tasks: TaskService,
    notifications: NotificationService,
    engine: Engine,
    /// The last outbox `seq` handed out.
    delivered: i64,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    envelope: Json<Value>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    name: String,
    due_at: DateTime<Utc>,
}

impl World {
    fn new(t: TestDb) -> Self {
        let engine = EmbeddedScheduler::new(t.db.clone(), Arc::new(Notify::new())).engine;
        Self {
            tasks: TaskService::new(t.db.clone()),
            notifications: NotificationService::new(t.db.clone()),
            engine,
            t,
            delivered: 0,
        }
    }

    async fn add(&self, at: DateTime<Utc>, task: Value) -> TaskSnapshot {
        let new = AddTaskArgs::parse(args(task), at, Zone::UTC).expect("valid task");
        self.tasks
            .create(&user("alice"), new, at)
            .await
            .expect("created")
    }

    /// Delivers new outbox events and runs due jobs until nothing is left to do at `now`.
    async fn run_until_idle(&mut self, now: DateTime<Utc>) {
        loop {
            let events: Vec<OutboxRow> = self
                .t
                .db
                .fetch_all(
                    &Query::new("SELECT seq, envelope FROM outbox WHERE seq > $1 ORDER BY seq")
                        .bind(self.delivered),
                )
                .await
                .unwrap();
            let jobs = self.due_jobs(now).await;
            if events.is_empty() && jobs.is_empty() {
                return;
            }
            for e in events {
                self.deliver(&e.envelope.0, now).await;
                self.delivered = e.seq;
            }
            self.fire(jobs, now).await;
        }
    }

    /// Runs the jobs due at `now`, and those they schedule for then, delivering no event.
    async fn run_jobs_until_idle(&self, now: DateTime<Utc>) {
        loop {
            let jobs = self.due_jobs(now).await;
            if jobs.is_empty() {
                return;
            }
            self.fire(jobs, now).await;
        }
    }

    async fn due_jobs(&self, now: DateTime<Utc>) -> Vec<JobRow> {
        let due = Query::new("SELECT name, due_at FROM scheduler_jobs WHERE due_at <= $1");
        self.t.db.fetch_all(&due.bind(now)).await.unwrap()
    }

    async fn fire(&self, jobs: Vec<JobRow>, now: DateTime<Utc>) {
        for job in jobs {
            self.engine
                .fire_job(&job.name, now)
                .await
                .expect("job runs");
            self.t
                .db
                .execute(
                    &Query::new("DELETE FROM scheduler_jobs WHERE name = $1 AND due_at = $2")
                        .bind(job.name)
                        .bind(job.due_at),
                )
                .await
                .unwrap();
        }
    }

    /// What the in-process bus does with one event, at the test's time.
    async fn deliver(&self, envelope: &Value, now: DateTime<Utc>) {
        let id = envelope["id"].as_str().unwrap();
        match envelope["type"].as_str().unwrap() {
            "com.todo.recurring.scheduled" => {
                let data: RecurringScheduled =
                    serde_json::from_value(envelope["data"].clone()).unwrap();
                let key = EventKey {
                    consumer: "mcp-server:recurring",
                    event_id: id,
                };
                self.tasks.create_occurrence(&data, key, now).await.unwrap();
            }
            "com.todo.reminder.triggered" => {
                let data: ReminderTriggered =
                    serde_json::from_value(envelope["data"].clone()).unwrap();
                let key = EventKey {
                    consumer: "mcp-server:notifications",
                    event_id: id,
                };
                self.notifications
                    .record_triggered(&data, key, now)
                    .await
                    .unwrap();
            }
            "com.todo.resync.requested" => {
                let data: ResyncRequested =
                    serde_json::from_value(envelope["data"].clone()).unwrap();
                let key = EventKey {
                    consumer: "mcp-server:resync",
                    event_id: id,
                };
                ResyncService::new(self.t.db.clone(), self.tasks.events_committed())
                    .handle_request(&data, key, now)
                    .await
                    .unwrap();
            }
            _ => {}
        }
        // The engine subscribes to `tasks`, as in-process and beside Dapr.
        if envelope["type"] != "com.todo.reminder.triggered" {
            assert_eq!(
                self.engine.handle_event(envelope, now).await,
                Disposition::Success,
                "the engine takes every event of `tasks`"
            );
        }
    }

    async fn notifications(&self) -> Vec<(String, DateTime<Utc>)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            title: String,
            fire_at: DateTime<Utc>,
        }
        let rows: Vec<Row> = self
            .t
            .db
            .fetch_all(&Query::new(
                "SELECT title, fire_at FROM notifications ORDER BY fire_at",
            ))
            .await
            .unwrap();
        rows.into_iter().map(|r| (r.title, r.fire_at)).collect()
    }

    async fn jobs(&self) -> Vec<(String, DateTime<Utc>)> {
        let rows: Vec<JobRow> = self
            .t
            .db
            .fetch_all(&Query::new(
                "SELECT name, due_at FROM scheduler_jobs ORDER BY due_at",
            ))
            .await
            .unwrap();
        rows.into_iter().map(|r| (r.name, r.due_at)).collect()
    }

    /// Due times of alice's tasks, as shown (RFC 3339 in the task's zone), oldest first.
    async fn dues(&self) -> Vec<String> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: uuid::Uuid,
        }
        let rows: Vec<Row> = self
            .t
            .db
            .fetch_all(&Query::new("SELECT id FROM tasks ORDER BY due_at"))
            .await
            .unwrap();
        let mut out = Vec::new();
        for r in rows {
            let task = self.tasks.get(&user("alice"), r.id).await.unwrap();
            out.push(task.due.unwrap_or_default());
        }
        out
    }

    /// The newest task of the series.
    async fn current_occurrence(&self, series: uuid::Uuid) -> uuid::Uuid {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: uuid::Uuid,
        }
        let q =
            Query::new("SELECT id FROM tasks WHERE series_id = $1 ORDER BY due_at DESC LIMIT 1")
                .bind(series);
        self.t.db.fetch_one::<Row>(&q).await.unwrap().id
    }

    async fn counts(&self) -> Counts {
        let q = Query::new(
            "SELECT (SELECT COUNT(*) FROM tasks) AS tasks, \
                    (SELECT COUNT(*) FROM reminders) AS reminders, \
                    (SELECT COUNT(*) FROM outbox) AS outbox, \
                    (SELECT COUNT(*) FROM processed_events) AS processed_events, \
                    (SELECT COUNT(*) FROM notifications) AS notifications, \
                    (SELECT COUNT(*) FROM scheduler_state WHERE expires_at IS NULL) AS state_kept, \
                    (SELECT COUNT(*) FROM scheduler_state WHERE expires_at IS NOT NULL) \
                      AS state_expiring, \
                    (SELECT COUNT(*) FROM scheduler_jobs) AS jobs",
        );
        self.t.db.fetch_one(&q).await.unwrap()
    }

    async fn latest_expiry(&self) -> Option<DateTime<Utc>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            expires_at: DateTime<Utc>,
        }
        let q = Query::new(
            "SELECT expires_at FROM scheduler_state WHERE expires_at IS NOT NULL \
             ORDER BY expires_at DESC LIMIT 1",
        );
        self.t
            .db
            .fetch_optional::<Row>(&q)
            .await
            .unwrap()
            .map(|r| r.expires_at)
    }

    async fn outbox_types(&self) -> Vec<String> {
        common::outbox(&self.t.db)
            .await
            .into_iter()
            .map(|(ty, _)| ty)
            .collect()
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

async fn a_reminder_fires_once_at_its_time(t: TestDb) {
    let mut w = World::new(t);
    w.add(
            t0(),
            json!({"title": "Call mum", "due": "2026-06-01T10:00:00Z", "reminders": [{"minutes_before": 30}]}),
        )
        .await;
    let fire_at = Utc.with_ymd_and_hms(2026, 6, 1, 9, 30, 0).unwrap();
    w.run_until_idle(t0()).await;
    // Its hour's job, five minutes before the hour, enters it in its slot, whose job fires it.
    let hour = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let hour_job = format!("hour-{}", hour.timestamp());
    assert_eq!(w.jobs().await, [(hour_job, hour - Duration::minutes(5))]);
    assert!(w.notifications().await.is_empty());

    w.run_until_idle(hour - Duration::minutes(5)).await;
    let slot_job = format!("due-{}", fire_at.timestamp());
    assert_eq!(w.jobs().await, [(slot_job.clone(), fire_at)]);
    w.run_until_idle(fire_at - Duration::seconds(2)).await;
    assert!(w.notifications().await.is_empty(), "not before its time");

    w.run_until_idle(fire_at).await;
    assert_eq!(w.notifications().await, [("Call mum".to_owned(), fire_at)]);
    assert!(w.jobs().await.is_empty());

    // The job runs again (a retry after a crash), and every event is delivered again.
    let before = w.outbox_types().await.len();
    w.engine.fire_job(&slot_job, fire_at).await.unwrap();
    w.delivered = 0;
    w.run_until_idle(fire_at + Duration::minutes(5)).await;
    assert_eq!(
        w.outbox_types().await.len(),
        before,
        "nothing published again"
    );
    assert_eq!(w.notifications().await.len(), 1, "one notification");
}

async fn a_daily_series_keeps_its_local_time_across_dst(t: TestDb) {
    let mut w = World::new(t);
    // DST starts in New York on 2026-03-08 at 02:00.
    let start = Utc.with_ymd_and_hms(2026, 3, 6, 12, 0, 0).unwrap();
    w.add(
        start,
        json!({
            "title": "Stand-up",
            "due": "2026-03-07T09:00",
            "time_zone": "America/New_York",
            "recurrence": {"frequency": "daily"},
            "reminders": [{"minutes_before": 15}]
        }),
    )
    .await;
    w.run_until_idle(start).await;
    // Each occurrence falls due; then the next one exists.
    for day in 7..=10 {
        // Each job at its time (the hours', the slots'), until the occurrence is announced.
        let before = w.dues().await.len();
        for _ in 0..10 {
            if w.dues().await.len() > before {
                break;
            }
            let next = w
                .jobs()
                .await
                .into_iter()
                .map(|(_, due)| due)
                .min()
                .unwrap();
            w.run_until_idle(next).await;
        }
        assert_eq!(
            w.dues().await.len(),
            day - 5,
            "after the occurrence of March {day}"
        );
    }
    assert_eq!(
        w.dues().await,
        [
            "2026-03-07T09:00:00-05:00",
            "2026-03-08T09:00:00-04:00",
            "2026-03-09T09:00:00-04:00",
            "2026-03-10T09:00:00-04:00",
            "2026-03-11T09:00:00-04:00",
        ]
    );
    // The reminders came along, 15 minutes before each local 09:00.
    let fired: Vec<String> = w
        .notifications()
        .await
        .iter()
        .map(|(_, at)| at.to_rfc3339())
        .collect();
    assert_eq!(
        fired,
        [
            "2026-03-07T13:45:00+00:00",
            "2026-03-08T12:45:00+00:00",
            "2026-03-09T12:45:00+00:00",
            "2026-03-10T12:45:00+00:00",
        ]
    );
}

async fn completing_cancels_pending_reminders_and_the_series_goes_on(t: TestDb) {
    let mut w = World::new(t);
    let task = w
        .add(
            t0(),
            json!({"title": "Water plants", "due": "2026-06-01T18:00:00Z",
                   "recurrence": {"frequency": "daily"}, "reminders": [{"minutes_before": 60}]}),
        )
        .await;
    w.run_until_idle(t0()).await;
    w.tasks
        .complete(&user("alice"), task.id, t0())
        .await
        .unwrap();
    w.run_until_idle(t0() + Duration::minutes(1)).await;
    let due = Utc.with_ymd_and_hms(2026, 6, 1, 18, 0, 0).unwrap();
    w.run_until_idle(due).await;
    assert!(
        w.notifications().await.is_empty(),
        "the completed occurrence's reminder was cancelled"
    );
    assert_eq!(
        w.dues().await,
        ["2026-06-01T18:00:00+00:00", "2026-06-02T18:00:00+00:00"],
    );
    // The next occurrence's reminder fires, and the series goes on at its due time.
    w.run_until_idle(due + Duration::days(1)).await;
    let fired: Vec<DateTime<Utc>> = w.notifications().await.iter().map(|n| n.1).collect();
    assert_eq!(fired, [due + Duration::hours(23)]);
    assert_eq!(w.dues().await.len(), 3);
}

/// Completing the newest occurrence makes the next one at once, under the id the series'
/// firing would give it, so that the firing later finds it made; an occurrence left open gets
/// its next one at its due time as before.
async fn completing_an_occurrence_makes_the_next_at_once(t: TestDb) {
    let mut w = World::new(t);
    let alice = user("alice");
    let at = |day: u32| Utc.with_ymd_and_hms(2026, 6, day, 18, 0, 0).unwrap();
    let first = w
        .add(
            t0(),
            json!({"title": "Standup", "due": at(1).to_rfc3339(), "recurrence": {"frequency": "daily"},
                   "reminders": [{"minutes_before": 30}]}),
        )
        .await;
    let series = first.recurrence.as_ref().unwrap().series_id;
    w.run_until_idle(t0()).await;

    let done = w.tasks.complete(&alice, first.id, t0()).await.unwrap();
    let next = done
        .next_occurrence
        .expect("the next occurrence is made at once");
    assert_eq!(
        next.id,
        todo_shared::events::occurrence_task_id(series, at(2))
    );
    assert_eq!(next.due.as_deref(), Some("2026-06-02T18:00:00+00:00"));
    assert_eq!(next.reminders.len(), 1, "relative reminders come along");
    assert_eq!(w.dues().await.len(), 2);
    // Completing it again, or completing an older occurrence, makes nothing more.
    let again = w.tasks.complete(&alice, first.id, t0()).await.unwrap();
    assert!(again.next_occurrence.is_none() && again.changed.is_empty());

    // The series' firing at the first due time finds the occurrence made.
    w.run_until_idle(at(1)).await;
    assert_eq!(w.dues().await.len(), 2);
    // The series goes on from the occurrence made ahead: the first can go without ending it,
    // and the second, left open, gets its next at its due time.
    w.tasks.delete(&alice, first.id, at(1)).await.unwrap();
    w.run_until_idle(at(2)).await;
    let third = w.current_occurrence(series).await;
    assert_eq!(
        third,
        todo_shared::events::occurrence_task_id(series, at(3))
    );

    // Completed early, the third makes the fourth at once; completing it again makes nothing.
    let done = w.tasks.complete(&alice, third, at(2)).await.unwrap();
    let fourth = done.next_occurrence.expect("the fourth is made at once");
    assert_eq!(fourth.due.as_deref(), Some("2026-06-04T18:00:00+00:00"));
    w.tasks.reopen(&alice, third, at(2)).await.unwrap();
    let redone = w.tasks.complete(&alice, third, at(2)).await.unwrap();
    assert!(
        redone.next_occurrence.is_none(),
        "the fourth already exists"
    );
    for day in 3..=4 {
        w.run_until_idle(at(day)).await;
    }
    assert_eq!(
        w.dues().await,
        [
            "2026-06-02T18:00:00+00:00",
            "2026-06-03T18:00:00+00:00",
            "2026-06-04T18:00:00+00:00",
            "2026-06-05T18:00:00+00:00",
        ],
        "one task per occurrence"
    );
    // Reminders fired for the occurrences left open only.
    let fired: Vec<DateTime<Utc>> = w.notifications().await.iter().map(|n| n.1).collect();
    let half_hour = Duration::minutes(30);
    assert_eq!(fired, [at(2) - half_hour, at(4) - half_hour]);
}

/// The series fires at the moment the user completes its occurrence: whichever comes second
/// finds the next occurrence made, on either database.
async fn completion_and_firing_racing_make_one_occurrence(t: TestDb) {
    let mut w = World::new(t);
    let alice = user("alice");
    for n in 0..8i64 {
        let due = t0() + Duration::days(10 * n) + Duration::hours(1);
        let task = w
            .add(
                due - Duration::hours(1),
                json!({"title": format!("Race {n}"), "due": due.to_rfc3339(),
                       "recurrence": {"frequency": "weekly", "count": 2}}),
            )
            .await;
        w.run_until_idle(due - Duration::hours(1)).await;
        // The series fires; its announcement waits in the outbox.
        w.run_jobs_until_idle(due).await;
        let announced: Vec<OutboxRow> =
            w.t.db
                .fetch_all(
                    &Query::new(
                        "SELECT seq, envelope FROM outbox WHERE seq > $1 \
                     AND event_type = 'com.todo.recurring.scheduled' ORDER BY seq",
                    )
                    .bind(w.delivered),
                )
                .await
                .unwrap();
        assert_eq!(announced.len(), 1, "race {n}");
        let (_, done) = tokio::join!(
            w.deliver(&announced[0].envelope.0, due),
            w.tasks.complete(&alice, task.id, due)
        );
        done.unwrap();
        w.run_until_idle(due).await;
        let series = task.recurrence.unwrap().series_id;
        let next = todo_shared::events::occurrence_task_id(series, due + Duration::weeks(1));
        let made = w
            .tasks
            .get(&alice, next)
            .await
            .expect("the next occurrence exists");
        assert_eq!(made.status, todo_shared::task::TaskStatus::Pending);
        assert_eq!(
            w.dues().await.len() as i64,
            2 * (n + 1),
            "race {n}: one task per occurrence"
        );
    }
}

async fn deleting_cancels_reminders_and_ends_the_series(t: TestDb) {
    let mut w = World::new(t);
    let task = w
        .add(
            t0(),
            json!({"title": "Gym", "due": "2026-06-01T18:00:00Z",
                   "recurrence": {"frequency": "weekly"}, "reminders": [{"minutes_before": 60}]}),
        )
        .await;
    w.run_until_idle(t0()).await;
    assert_eq!(w.jobs().await.len(), 2);
    w.tasks.delete(&user("alice"), task.id, t0()).await.unwrap();
    w.run_until_idle(t0()).await;
    w.run_until_idle(t0() + Duration::days(30)).await;
    assert!(w.notifications().await.is_empty());
    assert!(
        w.dues().await.is_empty(),
        "no occurrence after the series was deleted"
    );
    assert_eq!(
        w.engine
            .sweep(t0() + Duration::days(30))
            .await
            .unwrap()
            .fired,
        0
    );
}

/// The newest occurrence deleted, or made one-off, after its series announced the next one but
/// before that one was made: nothing can be made from it any more, so the series ends rather
/// than fire every day with no effect.
async fn a_series_ends_when_its_template_goes_before_the_next_occurrence_is_made(t: TestDb) {
    let mut w = World::new(t);
    let count = |types: &[String], ty: &str| types.iter().filter(|t| *t == ty).count();
    for (n, change) in ["deleted", "made one-off"].into_iter().enumerate() {
        let start = t0() + Duration::days(40 * n as i64);
        let due = start + Duration::hours(2);
        let task = w
            .add(
                start,
                json!({"title": "Standup", "due": due.to_rfc3339(), "recurrence": {"frequency": "daily"}}),
            )
            .await;
        w.run_until_idle(start).await;
        // The series fires: the next occurrence is announced, not yet made.
        w.run_jobs_until_idle(due).await;
        let types = w.outbox_types().await;
        assert_eq!(
            count(&types, "com.todo.recurring.scheduled"),
            n + 1,
            "{change}"
        );
        if change == "deleted" {
            w.tasks.delete(&user("alice"), task.id, due).await.unwrap();
        } else {
            let one_off = json!({"task_id": task.id, "recurrence": null});
            common::update(&w.tasks, &user("alice"), one_off, due)
                .await
                .unwrap();
        }
        w.run_until_idle(due).await;
        w.run_until_idle(due + Duration::days(30)).await;
        let types = w.outbox_types().await;
        assert_eq!(
            count(&types, "com.todo.recurring.scheduled"),
            n + 1,
            "{change}: the series fired again after it could not go on"
        );
        let series = format!("recurring:{}", task.recurrence.unwrap().series_id);
        let store = SqlStateStore { db: w.t.db.clone() };
        assert_eq!(store.get(&series).await.unwrap(), None, "{change}");
    }
    assert_eq!(
        w.dues().await.len(),
        1,
        "only the task made one-off is left"
    );
}

async fn moving_the_due_time_moves_relative_reminders(t: TestDb) {
    let mut w = World::new(t);
    let task = w
        .add(
            t0(),
            json!({"title": "Dentist", "due": "2026-06-01T15:00:00Z", "reminders": [{"minutes_before": 60}]}),
        )
        .await;
    w.run_until_idle(t0()).await;
    common::update(
        &w.tasks,
        &user("alice"),
        json!({"task_id": task.id, "due": "2026-06-01T17:00:00Z", "title": "Dentist (moved)"}),
        t0(),
    )
    .await
    .unwrap();
    w.run_until_idle(t0()).await;
    let moved = Utc.with_ymd_and_hms(2026, 6, 1, 16, 0, 0).unwrap();
    let hour_job = |start: DateTime<Utc>| {
        (
            format!("hour-{}", start.timestamp()),
            start - Duration::minutes(5),
        )
    };
    assert_eq!(
        w.jobs().await,
        [hour_job(moved - Duration::hours(2)), hour_job(moved)]
    );
    w.run_until_idle(moved - Duration::minutes(61)).await;
    assert!(w.notifications().await.is_empty(), "not at the old time");
    w.run_until_idle(moved).await;
    assert_eq!(
        w.notifications().await,
        [("Dentist (moved)".to_owned(), moved)]
    );
}

async fn a_restarted_engine_fires_what_fell_due(t: TestDb) {
    let mut w = World::new(t);
    w.add(
        t0(),
        json!({"title": "Stretch", "due": "2026-06-01T12:00:00Z", "reminders": [{"minutes_before": 30}, {"minutes_before": 10}]}),
    )
    .await;
    w.run_until_idle(t0()).await;
    // A new process on the same database, started after both reminders' times.
    w.engine = EmbeddedScheduler::new(w.t.db.clone(), Arc::new(Notify::new())).engine;
    w.run_until_idle(t0() + Duration::hours(5)).await;
    assert_eq!(w.notifications().await.len(), 2);
    w.engine = EmbeddedScheduler::new(w.t.db.clone(), Arc::new(Notify::new())).engine;
    w.run_until_idle(t0() + Duration::hours(6)).await;
    assert_eq!(w.notifications().await.len(), 2, "nothing fires twice");
}

async fn the_sweep_fires_what_a_lost_job_missed(t: TestDb) {
    let mut w = World::new(t);
    w.add(
        t0(),
        json!({"title": "Backup", "due": "2026-06-01T09:00:00Z", "reminders": [{"minutes_before": 5}]}),
    )
    .await;
    w.run_until_idle(t0()).await;
    w.t.db
        .execute(&Query::new("DELETE FROM scheduler_jobs"))
        .await
        .unwrap();
    let fire_at = Utc.with_ymd_and_hms(2026, 6, 1, 8, 55, 0).unwrap();
    w.run_until_idle(fire_at + Duration::minutes(5)).await;
    assert!(w.notifications().await.is_empty(), "the job is lost");

    // Within the grace period the sweep leaves the item to its job.
    assert_eq!(
        w.engine
            .sweep(fire_at + Duration::seconds(10))
            .await
            .unwrap()
            .fired,
        0
    );
    let report = w
        .engine
        .sweep(fire_at + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((report.checked, report.fired), (1, 1));
    w.run_until_idle(fire_at + Duration::minutes(1)).await;
    assert_eq!(w.notifications().await.len(), 1);
    // Settled entries leave the index; a later sweep finds nothing, hours later too.
    let report = w.engine.sweep(fire_at + Duration::hours(3)).await.unwrap();
    assert_eq!((report.checked, report.fired), (0, 0));
}

async fn stale_and_foreign_events_change_nothing(t: TestDb) {
    let mut w = World::new(t);
    let task = w
        .add(
            t0(),
            json!({"title": "Report", "due": "2026-06-01T12:00:00Z", "reminders": [{"minutes_before": 60}]}),
        )
        .await;
    let created = common::outbox(&w.t.db).await.remove(0).1;
    w.tasks
        .cancel_reminder(
            &user("alice"),
            task.id,
            task.reminders[0].id,
            t0() + Duration::seconds(1),
        )
        .await
        .unwrap();
    w.run_until_idle(t0() + Duration::seconds(1)).await;
    // The created event again, under a new id (a replay): older than what was applied.
    let mut replay = created.clone();
    replay["id"] = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(
        w.engine.handle_event(&replay, t0()).await,
        Disposition::Success
    );
    let reminder = format!("reminder:{}", task.reminders[0].id);
    assert_eq!(
        SqlStateStore { db: w.t.db.clone() }
            .get(&reminder)
            .await
            .unwrap(),
        None,
        "a stale event re-arms nothing"
    );
    // The reminder's slot job comes and finds nothing to fire.
    w.run_until_idle(t0() + Duration::hours(4)).await;
    assert!(w.notifications().await.is_empty());

    // Events the scheduler does not act on are acknowledged; malformed ones dropped.
    let other = json!({"id": "x", "type": "com.example.other", "data": {}});
    assert_eq!(
        w.engine.handle_event(&other, t0()).await,
        Disposition::Success
    );
    let mut broken = created;
    broken["id"] = json!(uuid::Uuid::now_v7().to_string());
    broken["data"]["task"]["time_zone"] = json!("Mars/Olympus");
    assert!(matches!(
        w.engine.handle_event(&broken, t0()).await,
        Disposition::Drop(reason) if reason.contains("Mars/Olympus")
    ));
    // Nor does it take a task event from another service, or under an id that is not a UUID.
    let mut forged = replay.clone();
    forged["source"] = json!("/scheduler");
    let mut traversal = replay;
    traversal["id"] = json!("../../v1.0/invoke/scheduler/method/job/x");
    for (event, reason) in [(forged, "come from"), (traversal, "not a UUID")] {
        assert!(matches!(
            w.engine.handle_event(&event, t0()).await,
            Disposition::Drop(r) if r.contains(reason)
        ));
    }
}

async fn a_tasks_events_are_ordered_by_its_version_not_by_clocks(t: TestDb) {
    let mut w = World::new(t);
    let task = w
        .add(
            t0(),
            json!({"title": "Report", "due": "2026-06-01T12:00:00Z", "reminders": [{"minutes_before": 60}]}),
        )
        .await;
    // The cancel comes from a replica whose clock is a minute behind the one that created it.
    let lagging = t0() - Duration::minutes(1);
    w.tasks
        .cancel_reminder(&user("alice"), task.id, task.reminders[0].id, lagging)
        .await
        .unwrap();
    let events = common::outbox(&w.t.db).await;
    let versions: Vec<&Value> = events
        .iter()
        .map(|e| &e.1["data"]["task"]["version"])
        .collect();
    assert_eq!(versions, [&json!(1), &json!(2)]);
    w.run_until_idle(t0()).await;
    let reminder = format!("reminder:{}", task.reminders[0].id);
    let state = SqlStateStore { db: w.t.db.clone() };
    assert_eq!(
        state.get(&reminder).await.unwrap(),
        None,
        "the cancel applies"
    );

    // Delivered again out of order, the creation is older by version, though newer by clock.
    let mut late = events[0].1.clone();
    late["id"] = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(
        w.engine.handle_event(&late, t0()).await,
        Disposition::Success
    );
    assert_eq!(
        state.get(&reminder).await.unwrap(),
        None,
        "a stale event re-arms nothing"
    );
    w.run_until_idle(t0() + Duration::hours(4)).await;
    assert!(w.notifications().await.is_empty());
}

/// The scheduler's state wiped (its jobs kept, as Dapr's are when Redis is lost): the sweep
/// finds no epoch, asks for a resync, and what the database schedules fires once, no more;
/// a series that ended stays ended.
async fn a_lost_state_is_rebuilt_from_the_database(t: TestDb) {
    let mut w = World::new(t);
    let count = |types: &[String], ty: &str| types.iter().filter(|t| *t == ty).count();
    w.add(
        t0(),
        json!({"title": "Call", "reminders": [{"at": "2026-06-01T09:00:00Z"}]}),
    )
    .await;
    w.add(
        t0(),
        json!({"title": "Standup", "due": "2026-06-01T10:00:00Z", "recurrence": {"frequency": "daily"}}),
    )
    .await;
    let ended = w
        .add(
            t0(),
            json!({"title": "Gym", "due": "2026-06-01T11:00:00Z", "recurrence": {"frequency": "daily"}}),
        )
        .await;
    w.tasks
        .delete(&user("alice"), ended.id, t0())
        .await
        .unwrap();
    let done = w
        .add(
            t0(),
            json!({"title": "Done", "reminders": [{"at": "2026-06-01T09:30:00Z"}]}),
        )
        .await;
    w.tasks
        .complete(&user("alice"), done.id, t0())
        .await
        .unwrap();
    w.run_until_idle(t0()).await;

    // A new state asks once (replicas that notice together write one epoch), and the replay
    // over what is intact changes nothing.
    w.engine.sweep(t0()).await.unwrap();
    w.engine.sweep(t0()).await.unwrap();
    w.run_until_idle(t0()).await;
    let types = w.outbox_types().await;
    assert_eq!(count(&types, "com.todo.resync.requested"), 1);
    assert_eq!(
        count(&types, "com.todo.task.resynced"),
        2,
        "the pending reminder and the live series, not the ended series or the completed task"
    );

    // Lost: every key, the epoch with them.
    w.t.db
        .execute(&Query::new("DELETE FROM scheduler_state"))
        .await
        .unwrap();
    let later = t0() + Duration::minutes(5);
    w.engine.sweep(later).await.unwrap();
    w.run_until_idle(later).await;
    let types = w.outbox_types().await;
    assert_eq!(count(&types, "com.todo.resync.requested"), 2);
    assert_eq!(count(&types, "com.todo.task.resynced"), 4);

    for hour in 9..=12 {
        w.run_until_idle(t0() + Duration::hours(hour - 8)).await;
    }
    assert_eq!(
        w.notifications().await,
        [("Call".to_owned(), t0() + Duration::hours(1))],
        "the reminder fires once; the completed task's does not"
    );
    let dues: Vec<String> = w
        .dues()
        .await
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(
        dues,
        ["2026-06-01T10:00:00+00:00", "2026-06-02T10:00:00+00:00"],
        "the series goes on once; the ended one does not"
    );
}

/// Three weeks of one user's days: ten tasks with a reminder each, completed or deleted, and a
/// daily series whose occurrences are completed and then deleted. With retention passes at the
/// end of each day, every table and every state key that would live for good stays flat once
/// the retention periods have passed; what grows expires (the state's TTLs run on the real clock,
/// so here they are checked, not waited for). The counts are printed.
async fn a_soak_leaves_rows_and_keys_flat(t: TestDb) {
    let mut w = World::new(t);
    let retention = Retention {
        processed_events: Duration::hours(24),
        notifications: Duration::days(3),
        notifications_per_user: 1_000,
    };
    let alice = user("alice");
    let standup = w
        .add(
            t0(),
            json!({"title": "Standup", "due": "2026-06-01T09:00:00Z", "recurrence": {"frequency": "daily"}}),
        )
        .await;
    let mut occurrence = standup.id;
    let mut days = Vec::new();
    for day in 0..21 {
        let morning = t0() + Duration::days(day);
        let mut ids = Vec::new();
        for i in 0..10 {
            let at = (morning + Duration::hours(1)).to_rfc3339();
            let task = w
                .add(
                    morning,
                    json!({"title": format!("Task {day}-{i}"), "reminders": [{"at": at}]}),
                )
                .await;
            ids.push(task.id);
        }
        w.run_until_idle(morning).await;
        w.run_until_idle(morning + Duration::hours(1)).await;
        let evening = morning + Duration::hours(10);
        for (i, id) in ids.into_iter().enumerate() {
            if i % 2 == 0 {
                w.tasks.complete(&alice, id, evening).await.unwrap();
            }
            w.tasks.delete(&alice, id, evening).await.unwrap();
        }
        // Today's standup is done; yesterday's goes.
        let today = w
            .current_occurrence(standup.recurrence.as_ref().unwrap().series_id)
            .await;
        w.tasks.complete(&alice, today, evening).await.unwrap();
        if occurrence != today {
            w.tasks.delete(&alice, occurrence, evening).await.unwrap();
            occurrence = today;
        }
        w.run_until_idle(evening).await;
        w.engine.sweep(evening).await.unwrap();
        w.run_until_idle(evening).await;
        // The relay would have published everything by now; the retention passes run.
        w.t.db
            .execute(
                &Query::new("UPDATE outbox SET published_at = $1 WHERE published_at IS NULL")
                    .bind(evening),
            )
            .await
            .unwrap();
        mcp_server::store::outbox::prune(&w.t.db, evening - Duration::hours(24))
            .await
            .unwrap();
        prune(&w.t.db, &retention, evening).await.unwrap();
        days.push(w.counts().await);
    }
    eprintln!("day  {}", Counts::HEADER);
    for (day, counts) in days.iter().enumerate() {
        eprintln!("{day:>3}  {counts}");
    }
    assert_eq!(days[0].notifications, 10, "the soak does what it says");
    let steady = &days[5];
    for (day, counts) in days.iter().enumerate().skip(5) {
        assert_eq!(
            counts.for_good(),
            steady.for_good(),
            "day {day} against day 5"
        );
    }
    let ttl = chrono::Duration::days(7) + Duration::hours(1);
    let latest = w.latest_expiry().await.expect("fired reminders expire");
    assert!(
        latest <= Utc::now() + ttl,
        "state expires within the settled retention: {latest}"
    );
}

/// What a soak counts.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Counts {
    tasks: i64,
    reminders: i64,
    outbox: i64,
    processed_events: i64,
    notifications: i64,
    /// Scheduler state kept for good, and with a TTL.
    state_kept: i64,
    state_expiring: i64,
    jobs: i64,
}

impl Counts {
    const HEADER: &str =
        "tasks reminders outbox processed notifications state(kept) state(expiring) jobs";

    /// What must not grow: everything but the state that expires.
    fn for_good(&self) -> Counts {
        Counts {
            state_expiring: 0,
            ..*self
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>5} {:>9} {:>6} {:>9} {:>13} {:>11} {:>15} {:>4}",
            self.tasks,
            self.reminders,
            self.outbox,
            self.processed_events,
            self.notifications,
            self.state_kept,
            self.state_expiring,
            self.jobs
        )
    }
}

async fn tasks_with_nothing_to_schedule_leave_no_state(t: TestDb) {
    let mut w = World::new(t);
    let plain = w
        .add(t0(), json!({"title": "Plain", "due": "2026-06-02"}))
        .await;
    w.tasks
        .complete(&user("alice"), plain.id, t0())
        .await
        .unwrap();
    w.tasks
        .delete(&user("alice"), plain.id, t0())
        .await
        .unwrap();
    w.run_until_idle(t0()).await;
    assert_eq!(common::count(&w.t.db, "scheduler_state").await, 0);

    // A reminder added later is armed all the same.
    let task = w.add(t0(), json!({"title": "Later"})).await;
    w.run_until_idle(t0()).await;
    let at = t0() + Duration::hours(1);
    let reminder: ReminderInput = args(json!({"at": at.to_rfc3339()}));
    w.tasks
        .set_reminder(&user("alice"), task.id, &common::spec(&reminder), t0())
        .await
        .unwrap();
    w.run_until_idle(at).await;
    assert_eq!(w.notifications().await, [("Later".to_owned(), at)]);
}

async fn the_database_state_store_keeps_the_contract(t: TestDb) {
    let store = SqlStateStore { db: t.db.clone() };
    todo_scheduler::contract::check(&store, "contract").await;
}
