//! What the server keeps, and for how long: the tables that grow with use are pruned here, in
//! one pass the server runs every ten minutes on every replica (each delete is idempotent).
//! Published outbox rows have their own retention (`--outbox-retention-hours`, the relay). The
//! pass also folds the quota usage rows of ended database sessions ([`quotas`]).

use chrono::{DateTime, Utc};

use super::{Db, Query, quotas};

/// How long rows are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The ids of processed events: a redelivery later than this is applied again, which the
    /// consumers' derived ids make harmless (a notification or an occurrence exists once).
    pub processed_events: chrono::Duration,
    /// Notifications older than this are removed, read or not.
    pub notifications: chrono::Duration,
    /// Each user's newest notifications kept; older ones beyond this are removed.
    pub notifications_per_user: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            processed_events: chrono::Duration::hours(24),
            notifications: chrono::Duration::days(30),
            notifications_per_user: 1_000,
        }
    }
}

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub processed_events: u64,
    /// Notifications removed for their age, and beyond their user's allowance.
    pub old_notifications: u64,
    pub surplus_notifications: u64,
    /// Users whose usage rows of ended database sessions were folded into one.
    pub usage_folded: u64,
}

/// Removes what `retention` no longer keeps, as of `now`.
pub async fn prune(
    db: &Db,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Pruned, sqlx::Error> {
    let processed_events = db
        .execute(
            &Query::new("DELETE FROM processed_events WHERE processed_at < $1")
                .bind(now - retention.processed_events),
        )
        .await?;
    let old_notifications = db
        .execute(
            &Query::new("DELETE FROM notifications WHERE created_at < $1")
                .bind(now - retention.notifications),
        )
        .await?;
    // Ranked only for the users over their allowance, newest first as list_notifications shows.
    let keep = i64::from(retention.notifications_per_user);
    let surplus_notifications = db
        .execute(
            &Query::new(
                "DELETE FROM notifications WHERE id IN (\
                   SELECT id FROM (\
                     SELECT id, ROW_NUMBER() OVER (PARTITION BY owner ORDER BY created_at DESC, id DESC) AS n \
                     FROM notifications WHERE owner IN (\
                       SELECT owner FROM notifications GROUP BY owner HAVING COUNT(*) > $1)\
                   ) AS ranked WHERE n > $2)",
            )
            .bind(keep)
            .bind(keep),
        )
        .await?;
    let usage_folded = quotas::fold_ended_writers(db).await?;
    Ok(Pruned {
        processed_events,
        old_notifications,
        surplus_notifications,
        usage_folded,
    })
}
