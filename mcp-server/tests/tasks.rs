//! The behaviour of task operations, run against both SQLite and PostgreSQL.

mod common;

use common::{TestDb, add, args, count, now, outbox, user};
use mcp_server::app::quotas::Quotas;
use mcp_server::app::tasks::TaskService;
use mcp_server::error::AppError;
use mcp_server::mcp::args::{AddTaskArgs, ListTasksArgs};
use serde_json::{Value, json};
use todo_shared::reminder::ReminderInput;
use todo_shared::snapshot::TaskSnapshot;
use todo_shared::time::Zone;
use uuid::Uuid;

on_both_backends!(
    create_returns_the_task_and_emits_created,
    get_and_every_write_are_scoped_to_the_owner,
    update_is_partial_and_null_clears,
    moving_due_moves_relative_reminders_and_keeps_the_series,
    an_update_that_changes_nothing_emits_nothing,
    due_cannot_be_removed_from_under_its_dependents,
    complete_and_reopen_are_idempotent,
    delete_removes_everything_and_emits_deleted,
    reminders_are_bounded_and_must_lie_ahead,
    failed_operations_leave_no_trace,
    list_filters,
    list_sorts_in_every_order,
    list_pages_stay_correct_while_tasks_are_added,
    concurrent_writes_lose_nothing,
    what_a_write_returns_is_what_a_read_returns,
    each_user_holds_at_most_their_quotas,
    a_batch_creates_each_task_that_fits_with_its_event,
);

async fn list(svc: &TaskService, owner: &str, a: Value) -> (Vec<String>, i64, Option<String>) {
    let q = ListTasksArgs::parse(args(a), Zone::UTC).expect("valid query");
    let page = svc.list(&user(owner), &q, now()).await.expect("list");
    (
        page.tasks.into_iter().map(|t| t.title).collect(),
        page.total,
        page.next_cursor,
    )
}

async fn create_returns_the_task_and_emits_created(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(
        &svc,
        "alice",
        json!({
            "title": "  Pay rent ",
            "description": "flat 3",
            "priority": "high",
            "tags": ["Home", "money", "home"],
            "due": "2026-07-01",
            "time_zone": "Europe/Paris",
            "reminders": [{"minutes_before": 60}, {"at": "2026-06-30T09:00"}],
            "recurrence": {"frequency": "monthly"}
        }),
    )
    .await;
    assert_eq!(task.title, "Pay rent");
    assert_eq!(task.owner, "alice");
    assert_eq!(task.tags, ["home", "money"]);
    assert_eq!(task.due.as_deref(), Some("2026-07-01T23:59:59+02:00"));
    assert_eq!(task.time_zone, "Europe/Paris");
    let at: Vec<_> = task.reminders.iter().map(|r| r.at.as_str()).collect();
    assert_eq!(
        at,
        ["2026-06-30T09:00:00+02:00", "2026-07-01T22:59:59+02:00"]
    );
    assert_eq!(task.reminders[1].minutes_before, Some(60));
    let series = task.recurrence.clone().expect("recurring");
    assert_eq!(series.series_id, task.id);
    assert_eq!(series.series_start, "2026-07-01T23:59:59+02:00");

    let fetched = svc.get(&user("alice"), task.id).await.unwrap();
    assert_eq!(fetched, task, "get returns what create returned");

    let events = outbox(&t.db).await;
    assert_eq!(events.len(), 1);
    let (ty, e) = &events[0];
    assert_eq!(ty, "com.todo.task.created");
    assert_eq!(e["type"], "com.todo.task.created");
    assert_eq!(e["source"], "/mcp-server/tasks");
    assert_eq!(e["subject"], task.id.to_string());
    assert_eq!(e["specversion"], "1.0");
    let data: TaskSnapshot = serde_json::from_value(e["data"]["task"].clone()).unwrap();
    assert_eq!(data, task, "the event carries the full snapshot");
}

async fn get_and_every_write_are_scoped_to_the_owner(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(
        &svc,
        "alice",
        json!({"title": "secret", "due": "2026-07-01"}),
    )
    .await;
    let bob = user("bob");
    let not_found =
        |r: Result<_, AppError>| matches!(r, Err(AppError::TaskNotFound(id)) if id == task.id);

    assert!(not_found(svc.get(&bob, task.id).await.map(drop)));
    assert!(not_found(
        common::update(
            &svc,
            &bob,
            json!({"task_id": task.id, "title": "mine"}),
            now()
        )
        .await
        .map(drop)
    ));
    assert!(not_found(
        svc.complete(&bob, task.id, now()).await.map(drop)
    ));
    assert!(not_found(svc.reopen(&bob, task.id, now()).await.map(drop)));
    assert!(not_found(svc.delete(&bob, task.id, now()).await.map(drop)));
    let reminder = ReminderInput {
        at: None,
        minutes_before: Some(5),
    };
    assert!(not_found(
        svc.set_reminder(&bob, task.id, &common::spec(&reminder), now())
            .await
            .map(drop)
    ));
    assert!(not_found(
        svc.cancel_reminder(&bob, task.id, Uuid::now_v7(), now())
            .await
            .map(drop)
    ));
    let (titles, total, _) = list(&svc, "bob", json!({"status": "all", "search": "secret"})).await;
    assert!(titles.is_empty() && total == 0);

    assert_eq!(
        svc.get(&user("alice"), task.id).await.unwrap(),
        task,
        "unchanged"
    );
    assert_eq!(outbox(&t.db).await.len(), 1, "only alice's create");
}

async fn update_is_partial_and_null_clears(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(
        &svc,
        "alice",
        json!({"title": "Draft", "description": "notes", "tags": ["a"], "due": "2026-07-01",
               "recurrence": {"frequency": "daily"}}),
    )
    .await;
    let out = common::update(
        &svc,
        &user("alice"),
        json!({"task_id": task.id, "priority": "low"}),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(out.changed, ["priority"]);
    assert_eq!(out.task.title, "Draft");
    assert_eq!(out.task.description.as_deref(), Some("notes"));
    assert_eq!(out.task.tags, ["a"]);

    let out = common::update(&svc, &user("alice"), json!({"task_id": task.id, "description": null, "recurrence": null, "due": null, "tags": []}), now())
        .await
        .unwrap();
    assert_eq!(out.changed, ["description", "due", "recurrence", "tags"]);
    assert_eq!(out.task.description, None);
    assert_eq!(out.task.due, None);
    assert_eq!(out.task.recurrence, None);
    assert!(out.task.tags.is_empty());
    let (titles, _, _) = list(&svc, "alice", json!({"tags": ["a"]})).await;
    assert!(titles.is_empty(), "tag index follows the task's tags");

    let events = outbox(&t.db).await;
    let types: Vec<_> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "com.todo.task.created",
            "com.todo.task.updated",
            "com.todo.task.updated"
        ]
    );
    assert_eq!(
        events[1].1["data"]["changes"],
        json!({"priority": {"from": "medium", "to": "low"}})
    );
}

async fn moving_due_moves_relative_reminders_and_keeps_the_series(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(
        &svc,
        "alice",
        json!({"title": "Standup", "due": "2026-07-01T09:00", "time_zone": "America/New_York",
               "recurrence": {"frequency": "weekly", "weekdays": ["we"]},
               "reminders": [{"minutes_before": 15}, {"at": "2026-06-30T18:00"}]}),
    )
    .await;
    let out = common::update(
        &svc,
        &user("alice"),
        json!({"task_id": task.id, "due": "2026-07-08T10:00"}),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(out.task.due.as_deref(), Some("2026-07-08T10:00:00-04:00"));
    let at: Vec<_> = out.task.reminders.iter().map(|r| r.at.as_str()).collect();
    assert_eq!(
        at,
        ["2026-06-30T18:00:00-04:00", "2026-07-08T09:45:00-04:00"],
        "absolute stays, relative moves"
    );
    let series = out.task.recurrence.expect("recurrence kept");
    assert_eq!(
        series.series_start, "2026-07-08T10:00:00-04:00",
        "the series continues from the new due"
    );
    assert_eq!(series.series_id, task.id);
}

async fn an_update_that_changes_nothing_emits_nothing(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(&svc, "alice", json!({"title": "Same", "priority": "high"})).await;
    let out = common::update(
        &svc,
        &user("alice"),
        json!({"task_id": task.id, "title": " Same ", "priority": "high"}),
        now(),
    )
    .await
    .unwrap();
    assert!(out.changed.is_empty());
    assert_eq!(out.task, task);
    assert_eq!(outbox(&t.db).await.len(), 1);
}

async fn due_cannot_be_removed_from_under_its_dependents(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let recurring = add(
        &svc,
        "alice",
        json!({"title": "r", "due": "2026-07-01", "recurrence": {"frequency": "daily"}}),
    )
    .await;
    let reminded = add(
        &svc,
        "alice",
        json!({"title": "m", "due": "2026-07-01", "reminders": [{"minutes_before": 5}]}),
    )
    .await;
    for id in [recurring.id, reminded.id] {
        let err = common::update(
            &svc,
            &user("alice"),
            json!({"task_id": id, "due": null}),
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AppError::Conflict(_)), "{err}");
    }
    assert_eq!(
        svc.get(&user("alice"), recurring.id).await.unwrap(),
        recurring
    );
    assert_eq!(
        svc.get(&user("alice"), reminded.id).await.unwrap(),
        reminded
    );
    assert_eq!(outbox(&t.db).await.len(), 2, "no event for refused updates");
}

async fn complete_and_reopen_are_idempotent(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let alice = user("alice");
    let task = add(&svc, "alice", json!({"title": "Done soon"})).await;
    let done = svc.complete(&alice, task.id, now()).await.unwrap();
    assert_eq!(done.changed, ["completed_at", "status"]);
    assert!(done.task.completed_at.is_some());
    assert!(
        svc.complete(&alice, task.id, now())
            .await
            .unwrap()
            .changed
            .is_empty()
    );
    let open = svc.reopen(&alice, task.id, now()).await.unwrap();
    assert_eq!(open.changed, ["completed_at", "status"]);
    assert_eq!(open.task.completed_at, None);
    assert!(
        svc.reopen(&alice, task.id, now())
            .await
            .unwrap()
            .changed
            .is_empty()
    );
    let types: Vec<_> = outbox(&t.db).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "com.todo.task.created",
            "com.todo.task.completed",
            "com.todo.task.updated"
        ]
    );
}

async fn delete_removes_everything_and_emits_deleted(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let alice = user("alice");
    let task = add(
        &svc,
        "alice",
        json!({"title": "Gone", "tags": ["x"], "due": "2026-07-01", "reminders": [{"minutes_before": 1}],
               "recurrence": {"frequency": "daily"}}),
    )
    .await;
    let deleted = svc.delete(&alice, task.id, now()).await.unwrap();
    assert_eq!(deleted, task);
    assert!(matches!(
        svc.get(&alice, task.id).await,
        Err(AppError::TaskNotFound(_))
    ));
    assert!(matches!(
        svc.delete(&alice, task.id, now()).await,
        Err(AppError::TaskNotFound(_))
    ));
    for table in ["tasks", "reminders", "task_tags"] {
        assert_eq!(count(&t.db, table).await, 0, "{table} is empty");
    }
    let events = outbox(&t.db).await;
    assert_eq!(events.last().unwrap().0, "com.todo.task.deleted");
    assert_eq!(events.last().unwrap().1["data"]["task"]["title"], "Gone");
    // The task as it was, at a version of its own: the deletion orders after every other change.
    assert_eq!(
        events.last().unwrap().1["data"]["task"]["version"],
        json!(task.version + 1)
    );
}

async fn reminders_are_bounded_and_must_lie_ahead(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let alice = user("alice");
    let task = add(
        &svc,
        "alice",
        json!({"title": "Call", "due": "2026-07-01T10:00"}),
    )
    .await;
    let mut ids = Vec::new();
    for m in 1..=10 {
        let input = ReminderInput {
            at: None,
            minutes_before: Some(m),
        };
        let (out, id) = svc
            .set_reminder(&alice, task.id, &common::spec(&input), now())
            .await
            .unwrap();
        assert_eq!(out.changed, ["reminders"]);
        ids.push(id);
    }
    let eleventh = ReminderInput {
        at: None,
        minutes_before: Some(11),
    };
    assert!(matches!(
        svc.set_reminder(&alice, task.id, &common::spec(&eleventh), now())
            .await,
        Err(AppError::Conflict(_))
    ));

    let out = svc
        .cancel_reminder(&alice, task.id, ids[0], now())
        .await
        .unwrap();
    assert_eq!(out.task.reminders.len(), 9);
    assert!(matches!(
        svc.cancel_reminder(&alice, task.id, ids[0], now()).await,
        Err(AppError::ReminderNotFound { .. })
    ));

    let past = ReminderInput {
        at: Some("2026-05-01T10:00".into()),
        minutes_before: None,
    };
    assert!(matches!(
        svc.set_reminder(&alice, task.id, &common::spec(&past), now())
            .await,
        Err(AppError::Validation(_))
    ));

    svc.complete(&alice, task.id, now()).await.unwrap();
    let later = ReminderInput {
        at: Some("2026-06-20".into()),
        minutes_before: None,
    };
    assert!(matches!(
        svc.set_reminder(&alice, task.id, &common::spec(&later), now())
            .await,
        Err(AppError::Conflict(_))
    ));
    assert_eq!(count(&t.db, "reminders").await, 9);
}

async fn failed_operations_leave_no_trace(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let alice = user("alice");
    let task = add(&svc, "alice", json!({"title": "Keep"})).await;
    let bad_updates = [
        json!({"task_id": task.id, "title": ""}),
        json!({"task_id": task.id, "due": "yesterday"}),
        json!({"task_id": task.id, "time_zone": "Mars/Olympus"}),
        json!({"task_id": task.id, "recurrence": {"frequency": "daily"}}),
        json!({"task_id": task.id, "tags": ["x".repeat(51)]}),
    ];
    for update in bad_updates {
        assert!(
            common::update(&svc, &alice, update.clone(), now())
                .await
                .is_err(),
            "{update}"
        );
    }
    assert_eq!(svc.get(&alice, task.id).await.unwrap(), task);
    assert_eq!(count(&t.db, "outbox").await, 1);
    assert_eq!(count(&t.db, "tasks").await, 1);
}

async fn list_filters(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    add(&svc, "alice", json!({"title": "Buy MILK", "tags": ["home", "shop"], "priority": "high", "due": "2026-05-30"})).await;
    add(&svc, "alice", json!({"title": "50% off sale", "description": "under_score", "tags": ["shop"], "due": "2026-06-15"})).await;
    add(&svc, "alice", json!({"title": "Read", "priority": "low"})).await;
    let done = add(
        &svc,
        "alice",
        json!({"title": "Old milk", "tags": ["home"]}),
    )
    .await;
    svc.complete(&user("alice"), done.id, now()).await.unwrap();
    add(
        &svc,
        "bob",
        json!({"title": "Bob's milk", "tags": ["home"]}),
    )
    .await;

    let titles = |v: (Vec<String>, i64, Option<String>)| {
        let mut t = v.0;
        t.sort();
        t
    };
    assert_eq!(
        titles(list(&svc, "alice", json!({})).await),
        ["50% off sale", "Buy MILK", "Read"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"status": "completed"})).await),
        ["Old milk"]
    );
    assert_eq!(list(&svc, "alice", json!({"status": "all"})).await.1, 4);
    assert_eq!(
        titles(list(&svc, "alice", json!({"priority": "high"})).await),
        ["Buy MILK"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"tags": ["SHOP", "home"]})).await),
        ["Buy MILK"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"tags": ["shop"]})).await),
        ["50% off sale", "Buy MILK"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"status": "all", "search": "milk"})).await),
        ["Buy MILK", "Old milk"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"search": "%"})).await),
        ["50% off sale"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"search": "_"})).await),
        ["50% off sale"],
        "description searched, _ literal"
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"search": "0% o"})).await),
        ["50% off sale"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"due_before": "2026-06-01"})).await),
        ["Buy MILK"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"due_after": "2026-06-01"})).await),
        ["50% off sale"]
    );
    assert_eq!(
        titles(list(&svc, "alice", json!({"overdue": true})).await),
        ["Buy MILK"]
    );
}

async fn list_sorts_in_every_order(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    for (title, priority, due) in [
        ("banana", "low", Some("2026-06-03")),
        ("Apple", "high", None),
        ("cherry", "medium", Some("2026-06-02")),
        ("date", "high", Some("2026-06-04")),
    ] {
        let mut a = json!({"title": title, "priority": priority});
        if let Some(due) = due {
            a["due"] = json!(due);
        }
        add(&svc, "alice", a).await;
    }
    let order = |sort: &str, order: Option<&str>| {
        let mut a = json!({"sort": sort});
        if let Some(o) = order {
            a["order"] = json!(o);
        }
        a
    };
    let cases = [
        (
            order("title", None),
            vec!["Apple", "banana", "cherry", "date"],
        ),
        (
            order("title", Some("desc")),
            vec!["date", "cherry", "banana", "Apple"],
        ),
        (
            order("due", None),
            vec!["cherry", "banana", "date", "Apple"],
        ),
        (
            order("due", Some("desc")),
            vec!["date", "banana", "cherry", "Apple"],
        ),
        (
            order("created", None),
            vec!["date", "cherry", "Apple", "banana"],
        ),
        (
            order("created", Some("asc")),
            vec!["banana", "Apple", "cherry", "date"],
        ),
    ];
    for (a, expected) in cases {
        // Page by one to exercise every cursor position, including NULL due times.
        let mut a = a.clone();
        a["limit"] = json!(1);
        let mut seen = Vec::new();
        loop {
            let (titles, total, cursor) = list(&svc, "alice", a.clone()).await;
            assert_eq!(total, 4);
            seen.extend(titles);
            match cursor {
                Some(c) => a["cursor"] = json!(c),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{a}");
    }
    let (titles, _, _) = list(&svc, "alice", json!({"sort": "priority"})).await;
    assert_eq!(&titles[2..], ["cherry", "banana"], "most urgent first");
}

async fn list_pages_stay_correct_while_tasks_are_added(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    for i in 0..25 {
        add(&svc, "alice", json!({"title": format!("task {i:02}")})).await;
    }
    let mut a = json!({"sort": "title", "limit": 10});
    let mut seen = Vec::new();
    let mut added = 0;
    loop {
        let (titles, _, cursor) = list(&svc, "alice", a.clone()).await;
        seen.extend(titles);
        // New tasks before and after the page boundary must neither shift nor repeat rows.
        add(&svc, "alice", json!({"title": format!("a new {added}")})).await;
        add(&svc, "alice", json!({"title": format!("zz new {added}")})).await;
        added += 1;
        match cursor {
            Some(c) => a["cursor"] = json!(c),
            None => break,
        }
    }
    let old: Vec<_> = seen
        .iter()
        .filter(|t| t.starts_with("task"))
        .cloned()
        .collect();
    let expected: Vec<_> = (0..25).map(|i| format!("task {i:02}")).collect();
    assert_eq!(old, expected, "every original task exactly once, in order");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no duplicates");

    assert!(
        ListTasksArgs::parse(
            args(json!({"sort": "due", "cursor": a["cursor"]})),
            Zone::UTC
        )
        .is_err(),
        "cursor bound to its query"
    );
}

async fn concurrent_writes_lose_nothing(t: TestDb) {
    let svc = TaskService::new(t.db.clone());
    let task = add(&svc, "alice", json!({"title": "Busy", "due": "2026-07-01"})).await;
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let input = ReminderInput {
                    at: None,
                    minutes_before: Some(i + 1),
                };
                svc.set_reminder(&user("alice"), task.id, &common::spec(&input), now())
                    .await
                    .map(drop)
            })
        })
        .collect();
    let mut ok = 0;
    let mut conflicts = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(()) => ok += 1,
            Err(AppError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(
        (ok, conflicts),
        (10, 2),
        "the limit holds under concurrency"
    );
    assert_eq!(
        svc.get(&user("alice"), task.id)
            .await
            .unwrap()
            .reminders
            .len(),
        10
    );
    assert_eq!(
        count(&t.db, "outbox").await,
        11,
        "one event per committed change"
    );
}

async fn what_a_write_returns_is_what_a_read_returns(t: TestDb) {
    // The real clock has nanoseconds; the databases keep microseconds.
    let svc = TaskService::new(t.db.clone());
    let alice = user("alice");
    let now = todo_shared::time::now();
    let created = svc
        .create(
            &alice,
            AddTaskArgs::parse(args(json!({"title": "Now"})), now, Zone::UTC).unwrap(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(svc.get(&alice, created.id).await.unwrap(), created);
    let done = svc
        .complete(&alice, created.id, todo_shared::time::now())
        .await
        .unwrap();
    assert_eq!(svc.get(&alice, created.id).await.unwrap(), done.task);
}

async fn each_user_holds_at_most_their_quotas(t: TestDb) {
    let svc = TaskService::new(t.db.clone()).with_quotas(Quotas {
        tasks_per_user: 4,
        series_per_user: 1,
        reminders_per_user: 3,
        min_recurrence_interval: chrono::TimeDelta::minutes(60),
    });
    let alice = user("alice");
    let attempt = |owner: &str, a: Value| {
        let svc = svc.clone();
        let owner = user(owner);
        async move {
            svc.create(
                &owner,
                AddTaskArgs::parse(args(a), now(), Zone::UTC).unwrap(),
                now(),
            )
            .await
        }
    };

    // One series; a second is refused, and so is a cron rule more frequent than the minimum.
    add(&svc, "alice", json!({"title": "Standup", "due": "2026-06-02T09:00", "recurrence": {"frequency": "daily"}})).await;
    quota_error(
        attempt("alice", json!({"title": "Gym", "due": "2026-06-02T18:00", "recurrence": {"frequency": "weekly"}})).await,
        "1 recurring tasks",
    );
    let every_15 = json!({"title": "Water", "due": "2026-06-02T09:00", "recurrence": {"frequency": "cron", "cron": "*/15 * * * *"}});
    match attempt("bob", every_15).await {
        Err(AppError::Validation(e)) => assert!(e.to_string().contains("60 minutes"), "{e}"),
        other => panic!("expected the minimum interval, got {other:?}"),
    }
    let hourly = json!({"title": "Stretch", "due": "2026-06-02T09:00", "recurrence": {"frequency": "cron", "cron": "0 9-17 * * *"}});
    attempt("bob", hourly).await.expect("hourly is allowed");

    // Reminders: three in all.
    let call = add(&svc, "alice", json!({"title": "Call", "due": "2026-07-01T10:00", "reminders": [{"minutes_before": 5}, {"minutes_before": 10}]})).await;
    let one_more = ReminderInput {
        at: None,
        minutes_before: Some(15),
    };
    svc.set_reminder(&alice, call.id, &common::spec(&one_more), now())
        .await
        .unwrap();
    let over = ReminderInput {
        at: None,
        minutes_before: Some(20),
    };
    quota_error(
        svc.set_reminder(&alice, call.id, &common::spec(&over), now())
            .await,
        "at most 3",
    );
    quota_error(
        attempt("alice", json!({"title": "Ping", "reminders": [{"minutes_before": 1}], "due": "2026-07-01T10:00"})).await,
        "at most 3",
    );

    // Tasks: four in all, whatever their state; a deletion makes room. Bob's are his own.
    add(&svc, "alice", json!({"title": "Three"})).await;
    add(&svc, "alice", json!({"title": "Four"})).await;
    quota_error(attempt("alice", json!({"title": "Five"})).await, "4 tasks");
    attempt("bob", json!({"title": "Bob's"}))
        .await
        .expect("another user's quota");
    svc.delete(&alice, call.id, now()).await.unwrap();
    attempt("alice", json!({"title": "Five"}))
        .await
        .expect("room again");
    assert_eq!(count(&t.db, "tasks WHERE owner = 'alice'").await, 4);
}

/// One transaction for the batch, one event per created task; a task that exceeds a quota or
/// repeats too often is refused on its own, in its place, and the ones after it still fit.
async fn a_batch_creates_each_task_that_fits_with_its_event(t: TestDb) {
    let svc = TaskService::new(t.db.clone()).with_quotas(Quotas {
        tasks_per_user: 5,
        series_per_user: 1,
        reminders_per_user: 2,
        min_recurrence_interval: chrono::TimeDelta::minutes(60),
    });
    let alice = user("alice");
    add(&svc, "alice", json!({"title": "Already there"})).await;
    let batch = [
        json!({"title": "Standup", "due": "2026-06-02T09:00", "recurrence": {"frequency": "daily"}}),
        json!({"title": "Gym", "due": "2026-06-02T18:00", "recurrence": {"frequency": "weekly"}}),
        json!({"title": "Call", "due": "2026-07-01T10:00", "reminders": [{"minutes_before": 5}, {"minutes_before": 10}]}),
        json!({"title": "Ping", "due": "2026-07-01T10:00", "reminders": [{"minutes_before": 1}]}),
        json!({"title": "Water", "due": "2026-06-02T09:00", "recurrence": {"frequency": "cron", "cron": "*/15 * * * *"}}),
        json!({"title": "Read", "tags": ["home"]}),
        json!({"title": "Write"}),
        json!({"title": "One too many"}),
    ];
    let news = batch
        .iter()
        .map(|a| AddTaskArgs::parse(args(a.clone()), now(), Zone::UTC).unwrap())
        .collect();
    let before = outbox(&t.db).await.len();
    let results = svc
        .create_many(&alice, news, now())
        .await
        .expect("the batch ran");
    let titles: Vec<Result<&str, String>> = results
        .iter()
        .map(|r| match r {
            Ok(task) => Ok(task.title.as_str()),
            Err(e) => Err(e.public_message()),
        })
        .collect();
    assert_eq!(titles[0], Ok("Standup"));
    assert!(
        titles[1]
            .as_ref()
            .is_err_and(|e| e.contains("1 recurring tasks")),
        "{:?}",
        titles[1]
    );
    assert_eq!(titles[2], Ok("Call"));
    assert!(
        titles[3].as_ref().is_err_and(|e| e.contains("at most 2")),
        "{:?}",
        titles[3]
    );
    assert!(
        titles[4].as_ref().is_err_and(|e| e.contains("60 minutes")),
        "{:?}",
        titles[4]
    );
    assert_eq!(titles[5..7], [Ok("Read"), Ok("Write")]);
    assert!(
        titles[7].as_ref().is_err_and(|e| e.contains("5 tasks")),
        "{:?}",
        titles[7]
    );

    let events = outbox(&t.db).await;
    let created: Vec<&str> = events[before..]
        .iter()
        .map(|(ty, data)| {
            assert_eq!(ty, "com.todo.task.created");
            data["data"]["task"]["title"].as_str().unwrap()
        })
        .collect();
    assert_eq!(created, ["Standup", "Call", "Read", "Write"]);
    assert_eq!(count(&t.db, "tasks WHERE owner = 'alice'").await, 5);
    assert_eq!(count(&t.db, "reminders WHERE owner = 'alice'").await, 2);
    assert_eq!(count(&t.db, "task_tags WHERE owner = 'alice'").await, 1);
}

/// Asserts a quota error, for a caller to act on, that says `names`.
fn quota_error<T: std::fmt::Debug>(result: Result<T, AppError>, names: &str) {
    match result {
        Err(e @ AppError::QuotaExceeded(_)) => {
            assert!(e.is_caller_error());
            assert!(e.public_message().contains(names), "{e}");
        }
        other => panic!("expected a quota error, got {other:?}"),
    }
}
