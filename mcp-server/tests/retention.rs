//! Retention on both backends: one pass removes the processed-event ids and notifications that
//! are too old, and each user's notifications beyond their allowance (the oldest first); a
//! second pass finds nothing more.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use mcp_server::store::Query;
use mcp_server::store::retention::{Pruned, Retention, prune};
use uuid::Uuid;

on_both_backends!(a_pass_removes_what_is_no_longer_kept);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

async fn processed(t: &TestDb, hours_ago: i64) {
    let q = Query::new(
        "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3)",
    )
    .bind("mcp-server:notifications")
    .bind(Uuid::now_v7().to_string())
    .bind(now() - Duration::hours(hours_ago));
    t.db.execute(&q).await.unwrap();
}

/// A notification of `owner`'s, made `days_ago`; returns its id.
async fn notification(t: &TestDb, owner: &str, days_ago: i64) -> Uuid {
    let id = Uuid::now_v7();
    let at = now() - Duration::days(days_ago);
    let q = Query::new(
        "INSERT INTO notifications (id, owner, task_id, reminder_id, title, message, fire_at, created_at) \
         VALUES ($1, $2, $3, NULL, 'x', 'Reminder: x', $4, $4)",
    )
    .bind(id)
    .bind(owner)
    .bind(Uuid::now_v7())
    .bind(at);
    t.db.execute(&q).await.unwrap();
    id
}

async fn notification_ids(t: &TestDb) -> Vec<Uuid> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
    }
    let rows: Vec<Row> =
        t.db.fetch_all(&Query::new("SELECT id FROM notifications ORDER BY id"))
            .await
            .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn a_pass_removes_what_is_no_longer_kept(t: TestDb) {
    for hours_ago in [1, 5, 23, 25, 48] {
        processed(&t, hours_ago).await;
    }
    let mut alice = Vec::new();
    for days_ago in [40, 31, 3, 2, 1] {
        alice.push(notification(&t, "alice", days_ago).await);
    }
    let bob = notification(&t, "bob", 1).await;
    let retention = Retention {
        processed_events: Duration::hours(24),
        notifications: Duration::days(30),
        notifications_per_user: 2,
    };

    let pruned = prune(&t.db, &retention, now()).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            processed_events: 2,
            old_notifications: 2,
            surplus_notifications: 1,
            usage_folded: 0,
        }
    );
    assert_eq!(common::count(&t.db, "processed_events").await, 3);
    let mut kept = vec![alice[3], alice[4], bob];
    kept.sort();
    assert_eq!(
        notification_ids(&t).await,
        kept,
        "alice's two newest, and bob's"
    );

    assert_eq!(
        prune(&t.db, &retention, now()).await.unwrap(),
        Pruned::default()
    );
}
