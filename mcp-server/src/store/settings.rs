//! The `user_settings` table: each user's preferences, one row per user who set any.

use chrono::{DateTime, Utc};

use super::{Db, Query};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    time_zone: Option<String>,
}

/// The IANA name of the user's preferred time zone, if they set one.
pub async fn time_zone(db: &Db, owner: &str) -> Result<Option<String>, sqlx::Error> {
    let q = Query::new("SELECT time_zone FROM user_settings WHERE owner = $1").bind(owner);
    Ok(db
        .fetch_optional::<Row>(&q)
        .await?
        .and_then(|r| r.time_zone))
}

/// Sets (or, with `None`, clears) the user's preferred time zone.
pub async fn set_time_zone(
    db: &Db,
    owner: &str,
    zone: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let q = Query::new(
        "INSERT INTO user_settings (owner, time_zone, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (owner) DO UPDATE SET time_zone = excluded.time_zone, \
         updated_at = excluded.updated_at",
    )
    .bind(owner)
    .bind(zone.map(str::to_owned))
    .bind(now);
    db.execute(&q).await.map(drop)
}
