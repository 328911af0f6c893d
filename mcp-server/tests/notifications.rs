//! `list_notifications` storage, run against both SQLite and PostgreSQL.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{TestDb, user};
use mcp_server::app::notifications::{NewNotification, NotificationService};
use uuid::Uuid;

on_both_backends!(
    newest_first_unread_filter_and_marking,
    recording_is_idempotent_and_scoped
);

fn notification(owner: &str, message: &str) -> NewNotification {
    NewNotification {
        id: Uuid::now_v7(),
        owner: user(owner),
        task_id: Uuid::now_v7(),
        reminder_id: Some(Uuid::now_v7()),
        title: "Pay rent".into(),
        message: message.into(),
        fire_at: Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap(),
    }
}

async fn newest_first_unread_filter_and_marking(t: TestDb) {
    let svc = NotificationService::new(t.db.clone());
    let alice = user("alice");
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    for i in 0..3 {
        let n = notification("alice", &format!("reminder {i}"));
        assert!(svc.record(&n, start + Duration::minutes(i)).await.unwrap());
    }
    let page = svc.list(&alice, false, 50, false, start).await.unwrap();
    let messages: Vec<_> = page
        .notifications
        .iter()
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(messages, ["reminder 2", "reminder 1", "reminder 0"]);
    assert_eq!(page.unread, 3);
    assert!(page.notifications.iter().all(|n| !n.read));

    let page = svc.list(&alice, true, 2, true, start).await.unwrap();
    assert_eq!(page.notifications.len(), 2);
    assert!(page.notifications.iter().all(|n| n.read), "shown as marked");
    assert_eq!(page.unread, 1);

    let page = svc.list(&alice, true, 50, false, start).await.unwrap();
    let messages: Vec<_> = page
        .notifications
        .iter()
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(messages, ["reminder 0"]);
    let all = svc.list(&alice, false, 50, false, start).await.unwrap();
    let read: Vec<_> = all.notifications.iter().map(|n| n.read).collect();
    assert_eq!(read, [true, true, false]);
}

async fn recording_is_idempotent_and_scoped(t: TestDb) {
    let svc = NotificationService::new(t.db.clone());
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let n = notification("alice", "once");
    assert!(svc.record(&n, now).await.unwrap());
    assert!(
        !svc.record(&n, now).await.unwrap(),
        "a redelivery records nothing"
    );
    assert_eq!(common::count(&t.db, "notifications").await, 1);

    let bob = svc.list(&user("bob"), false, 50, true, now).await.unwrap();
    assert!(bob.notifications.is_empty());
    assert_eq!(bob.unread, 0);
    let alice = svc
        .list(&user("alice"), false, 50, false, now)
        .await
        .unwrap();
    assert_eq!(alice.unread, 1, "bob's marking did not touch alice's");
}
