//! The `resource_subscriptions` table: the resources each user subscribed to over stateless
//! streamable HTTP, read by every replica's event streams of that user.

use chrono::{DateTime, Utc};

use super::{Count, Db, Query};

/// Subscribes `owner` to `uri` (again: no change).
pub async fn subscribe(
    db: &Db,
    owner: &str,
    uri: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let q = Query::new(
        "INSERT INTO resource_subscriptions (owner, uri, subscribed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (owner, uri) DO NOTHING",
    )
    .bind(owner)
    .bind(uri)
    .bind(now);
    db.execute(&q).await.map(drop)
}

pub async fn unsubscribe(db: &Db, owner: &str, uri: &str) -> Result<(), sqlx::Error> {
    let q = Query::new("DELETE FROM resource_subscriptions WHERE owner = $1 AND uri = $2")
        .bind(owner)
        .bind(uri);
    db.execute(&q).await.map(drop)
}

pub async fn is_subscribed(db: &Db, owner: &str, uri: &str) -> Result<bool, sqlx::Error> {
    let q = Query::new(
        "SELECT COUNT(*) AS total FROM resource_subscriptions WHERE owner = $1 AND uri = $2",
    )
    .bind(owner)
    .bind(uri);
    Ok(db.fetch_one::<Count>(&q).await?.total > 0)
}
