//! What the quotas read of a user (`usage`, kept by triggers) is what the user holds: after
//! every kind of change, on databases that had tasks before the table existed, and on
//! PostgreSQL after the sessions that wrote it have ended.

mod common;

use common::{TestDb, add, args, now, user};
use mcp_server::app::tasks::TaskService;
use mcp_server::mcp::args::AddTaskArgs;
use mcp_server::store::quotas::{self, Held};
use mcp_server::store::retention::{Retention, prune};
use mcp_server::store::{Backend, Db, Query};
use serde_json::{Value, json};
use todo_shared::reminder::ReminderInput;
use todo_shared::time::Zone;
use uuid::Uuid;

on_both_backends!(usage_follows_every_change);

/// What the quotas read of `owner`.
async fn read(db: &Db, owner: &str) -> Held {
    let mut tx = db.begin().await.unwrap();
    quotas::held(&mut tx, owner).await.unwrap()
}

/// What `owner` holds, counted row by row.
async fn counted(db: &Db, owner: &str) -> Held {
    let q = Query::new(
        "SELECT (SELECT COUNT(*) FROM tasks WHERE owner = $1) AS tasks, \
                (SELECT COUNT(*) FROM tasks WHERE owner = $1 AND status = 'pending' \
                   AND recurrence IS NOT NULL) AS live_series, \
                (SELECT COUNT(*) FROM reminders WHERE owner = $1) AS reminders",
    )
    .bind(owner);
    db.fetch_one(&q).await.unwrap()
}

/// Asserts that the quotas read what `owner` holds, and that it is `expected`.
async fn holds(db: &Db, owner: &str, expected: (i64, i64, i64), after: &str) {
    let (tasks, live_series, reminders) = expected;
    let expected = Held {
        tasks,
        live_series,
        reminders,
    };
    assert_eq!(counted(db, owner).await, expected, "{owner} holds, {after}");
    assert_eq!(read(db, owner).await, expected, "usage of {owner}, {after}");
}

async fn usage_follows_every_change(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let (alice, db) = (user("alice"), &t.db);
    holds(db, "alice", (0, 0, 0), "at first").await;

    let daily = json!({"title": "Standup", "due": "2026-06-02T09:00",
        "recurrence": {"frequency": "daily"}, "reminders": [{"minutes_before": 5}]});
    let standup = add(&svc, "alice", daily).await;
    holds(db, "alice", (1, 1, 1), "after add_task").await;

    let batch = [
        json!({"title": "Call", "due": "2026-07-01T10:00",
            "reminders": [{"minutes_before": 5}, {"minutes_before": 10}]}),
        json!({"title": "Gym", "due": "2026-06-02T18:00", "recurrence": {"frequency": "weekly"}}),
        json!({"title": "Read"}),
    ]
    .map(|a| AddTaskArgs::parse(args(a), now(), Zone::UTC).unwrap());
    let created = svc.create_many(&alice, batch.into(), now()).await.unwrap();
    let call = created[0].as_ref().unwrap().clone();
    let gym = created[1].as_ref().unwrap().clone();
    holds(db, "alice", (4, 2, 3), "after add_tasks").await;
    add(
        &svc,
        "bob",
        json!({"title": "Bob's", "recurrence": {"frequency": "daily"}, "due": "2026-06-02T09:00"}),
    )
    .await;
    holds(db, "bob", (1, 1, 0), "after bob's add_task").await;

    svc.complete(&alice, gym.id, now()).await.unwrap();
    holds(
        db,
        "alice",
        (5, 2, 3),
        "after completing a series (its next occurrence made)",
    )
    .await;
    svc.complete(&alice, gym.id, now()).await.unwrap();
    holds(db, "alice", (5, 2, 3), "after completing it again").await;
    svc.reopen(&alice, gym.id, now()).await.unwrap();
    holds(db, "alice", (5, 3, 3), "after reopening it").await;
    common::update(
        &svc,
        &alice,
        json!({"task_id": gym.id, "recurrence": null}),
        now(),
    )
    .await
    .unwrap();
    holds(db, "alice", (5, 2, 3), "after ending its recurrence").await;
    common::update(
        &svc,
        &alice,
        json!({"task_id": gym.id, "title": "Gym!"}),
        now(),
    )
    .await
    .unwrap();
    holds(db, "alice", (5, 2, 3), "after renaming it").await;

    let later = ReminderInput {
        at: None,
        minutes_before: Some(30),
    };
    let (_, reminder) = svc
        .set_reminder(&alice, call.id, &common::spec(&later), now())
        .await
        .unwrap();
    holds(db, "alice", (5, 2, 4), "after set_reminder").await;
    svc.cancel_reminder(&alice, call.id, reminder, now())
        .await
        .unwrap();
    holds(db, "alice", (5, 2, 3), "after cancel_reminder").await;

    svc.delete(&alice, call.id, now()).await.unwrap();
    holds(
        db,
        "alice",
        (4, 2, 1),
        "after deleting a task with two reminders",
    )
    .await;
    svc.delete(&alice, standup.id, now()).await.unwrap();
    holds(db, "alice", (3, 1, 0), "after deleting a live series").await;
    holds(db, "bob", (1, 1, 0), "after alice's changes").await;
}

mod usage_counts_what_was_there_before_it {
    #[tokio::test]
    async fn sqlite() {
        super::usage_counts_what_was_there_before_it(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::usage_counts_what_was_there_before_it(super::Backend::Postgres).await
    }
}

/// The migration that adds `usage` counts the tasks and reminders already there.
async fn usage_counts_what_was_there_before_it(backend: Backend) {
    let (url, dir) = common::empty(backend).await;
    let before = Db::connect_unmigrated(&url).await.unwrap();
    let mut migrator = match backend {
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
    };
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 10)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    match &before {
        Db::Postgres(pool) => migrator.run(pool).await,
        Db::Sqlite(pool) => migrator.run(pool).await,
    }
    .expect("the migrations before usage");
    // As the previous version wrote them: alice has a live series with two reminders and a
    // completed one, bob a task with a reminder.
    let series = Some(json!({"frequency": "daily"}));
    let standup = task(&before, "alice", "pending", series.clone()).await;
    task(&before, "alice", "completed", series).await;
    let bobs = task(&before, "bob", "pending", None).await;
    for (task, owner) in [(standup, "alice"), (standup, "alice"), (bobs, "bob")] {
        let q = Query::new(
            "INSERT INTO reminders (id, task_id, owner, fire_at, created_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(task)
        .bind(owner)
        .bind(now());
        before.execute(&q).await.unwrap();
    }
    before.close().await;

    let t = common::migrated((url, dir)).await;
    holds(&t.db, "alice", (2, 1, 2), "as migrated").await;
    holds(&t.db, "bob", (1, 0, 1), "as migrated").await;
    add(
        &TaskService::new(t.db.clone()),
        "alice",
        json!({"title": "New"}),
    )
    .await;
    holds(&t.db, "alice", (3, 1, 2), "after the migration").await;
}

/// Inserts a task as the schema before `usage` allows; returns its id.
async fn task(db: &Db, owner: &str, status: &str, recurrence: Option<Value>) -> Uuid {
    let id = Uuid::now_v7();
    let series = recurrence.as_ref().map(|_| Uuid::now_v7());
    let q = Query::new(
        "INSERT INTO tasks (id, owner, title, title_key, search_text, status, priority, \
           time_zone, recurrence, series_id, series_start, due_at, created_at, updated_at) \
         VALUES ($1, $2, 't', 't', 't', $3, 2, 'UTC', $4, $5, $6, $6, $6, $6)",
    )
    .bind(id)
    .bind(owner)
    .bind(status)
    .bind(recurrence)
    .bind(series)
    .bind(now());
    db.execute(&q).await.unwrap();
    id
}

#[derive(Debug, sqlx::FromRow)]
struct Rows {
    n: i64,
}

/// How many usage rows `owner` has.
async fn rows(db: &Db, owner: &str) -> i64 {
    let q = Query::new("SELECT COUNT(*) AS n FROM usage WHERE owner = $1").bind(owner);
    db.fetch_one::<Rows>(&q).await.unwrap().n
}

/// On PostgreSQL each session writes a usage row of its own; the retention pass folds those of
/// ended sessions into one, and what the user holds stays as it was.
#[tokio::test]
async fn ended_sessions_fold_into_one_row() {
    let t = common::postgres().await;
    for i in 0..3 {
        // A pool of its own: another session each time, as replicas and reconnects make.
        let db = Db::connect(&t.url, 1).await.unwrap();
        let task = json!({"title": format!("Task {i}"), "due": "2026-06-02T09:00",
            "reminders": [{"minutes_before": 5}]});
        add(&TaskService::new(db.clone()), "alice", task).await;
        db.close().await;
    }
    assert_eq!(rows(&t.db, "alice").await, 3, "a row per session");

    // A session still open keeps its row until it ends.
    let open = Db::connect(&t.url, 1).await.unwrap();
    add(
        &TaskService::new(open.clone()),
        "alice",
        json!({"title": "Open"}),
    )
    .await;
    fold_until(&t.db, "alice", 2).await;
    holds(&t.db, "alice", (4, 0, 3), "after folding").await;

    open.close().await;
    fold_until(&t.db, "alice", 1).await;
    holds(&t.db, "alice", (4, 0, 3), "after folding again").await;
}

/// Runs retention passes until `owner` has `left` usage rows: a closed session leaves
/// `pg_stat_activity` a moment after its connection closes.
async fn fold_until(db: &Db, owner: &str, left: i64) {
    for _ in 0..100 {
        prune(db, &Retention::default(), now()).await.unwrap();
        if rows(db, owner).await == left {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{owner} still has {} usage rows, not {left}",
        rows(db, owner).await
    );
}
