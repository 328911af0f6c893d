//! Reminder notifications kept for `list_notifications`.
//!
//! Rows are written when a reminder fires (`com.todo.reminder.triggered`, through
//! [`NotificationService::record_triggered`]); the tool reads them and marks them read. Each new
//! notification is also announced on a feed, from which connections that asked for them (stdio,
//! resource subscriptions) push it to the client. On PostgreSQL the announcement goes through
//! the database (NOTIFY in the recording transaction), so every replica's feed has it: the
//! replica that records a notification is rarely the one holding the user's connection.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use todo_shared::events::{ReminderTriggered, notification_id};
use todo_shared::task::UserId;
use todo_shared::time::format_in_zone;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::store::Db;
pub use crate::store::notifications::NewNotification;
use crate::store::notifications::{self, NotificationRow};
use crate::store::processed::{self, EventKey};
use crate::store::subscriptions;

/// A notification as `list_notifications` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationView {
    pub id: Uuid,
    /// The task the reminder was for (it may have been deleted since).
    pub task_id: Uuid,
    pub reminder_id: Option<Uuid>,
    /// The task's title when the reminder fired.
    pub title: String,
    pub message: String,
    /// When the reminder was due to fire (RFC 3339, UTC).
    pub fire_at: String,
    /// When the notification was recorded (RFC 3339, UTC).
    pub created_at: String,
    pub read: bool,
}

/// One answer of `list_notifications`.
#[derive(Debug, Clone)]
pub struct NotificationPage {
    pub notifications: Vec<NotificationView>,
    /// Unread notifications in total, after any marking.
    pub unread: i64,
}

impl From<NotificationRow> for NotificationView {
    fn from(r: NotificationRow) -> Self {
        Self {
            id: r.id,
            task_id: r.task_id,
            reminder_id: r.reminder_id,
            title: r.title,
            message: r.message,
            fire_at: r.fire_at.to_rfc3339(),
            created_at: r.created_at.to_rfc3339(),
            read: r.read_at.is_some(),
        }
    }
}

/// A notification just recorded, for the user it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    pub owner: UserId,
    pub notification: NotificationView,
}

/// How many announcements a slow listener may fall behind before it misses some (it can still
/// read them all with `list_notifications`).
const FEED_CAPACITY: usize = 256;

#[derive(Debug, Clone)]
pub struct NotificationService {
    db: Db,
    /// New notifications, for pushing to connected clients.
    feed: broadcast::Sender<Announcement>,
}

impl NotificationService {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            feed: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    /// Announcements of notifications recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Announcement> {
        self.feed.subscribe()
    }

    /// Records a notification once: recording the same id again changes nothing.
    pub async fn record(&self, n: &NewNotification, now: DateTime<Utc>) -> AppResult<bool> {
        let mut tx = self.db.begin().await?;
        let inserted = notifications::insert(&mut tx, n, now).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Records the notification of a fired reminder, once per event and once per firing.
    pub async fn record_triggered(
        &self,
        event: &ReminderTriggered,
        key: EventKey<'_>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<NewNotification>> {
        let owner = UserId::parse(&event.owner)?;
        let mut tx = self.db.begin().await?;
        if !processed::claim(&mut tx, key, now).await? {
            return Ok(None);
        }
        let message = match event.due {
            Some(due) => {
                let zone = event.time_zone.as_deref().and_then(|z| z.parse().ok());
                let due = format_in_zone(due, zone.unwrap_or(chrono_tz::UTC));
                format!("Reminder: \"{}\" is due {due}", event.title)
            }
            None => format!("Reminder: \"{}\"", event.title),
        };
        let n = NewNotification {
            id: notification_id(event.reminder_id, event.fire_at),
            owner,
            task_id: event.task_id,
            reminder_id: Some(event.reminder_id),
            title: event.title.clone(),
            message,
            fire_at: event.fire_at,
        };
        if !notifications::insert(&mut tx, &n, now).await? {
            tx.commit().await?;
            return Ok(None);
        }
        let announcement = Announcement {
            owner: n.owner.clone(),
            notification: NotificationView::from(NotificationRow {
                id: n.id,
                task_id: n.task_id,
                reminder_id: n.reminder_id,
                title: n.title.clone(),
                message: n.message.clone(),
                fire_at: n.fire_at,
                created_at: now,
                read_at: None,
            }),
        };
        // Every replica hears of it from the database, whichever holds the user's connection.
        let payload = serde_json::to_string(&announcement)
            .map_err(|e| AppError::Internal(format!("encoding an announcement: {e}")))?;
        let announced = notifications::announce(&mut tx, &payload).await?;
        tx.commit().await?;
        if !announced {
            // Nobody listening is fine: the notification is stored either way.
            let _ = self.feed.send(announcement);
        }
        Ok(Some(n))
    }

    /// Feeds this replica's listeners with the notifications every replica records, until
    /// `stop` (PostgreSQL; on SQLite the one process announces its own). Listens before it
    /// returns, so that nothing recorded afterwards is missed, and hears in `background`.
    pub async fn hear_announcements(
        &self,
        background: &mut JoinSet<()>,
        stop: CancellationToken,
    ) -> AppResult<()> {
        let Some(listener) = notifications::listen(&self.db).await? else {
            return Ok(());
        };
        let (db, feed) = (self.db.clone(), self.feed.clone());
        background.spawn(async move {
            let mut listener = Some(listener);
            loop {
                let Some(current) = listener.as_mut() else {
                    // A new connection after a failure: what was announced meanwhile is not
                    // pushed, and stays readable with list_notifications.
                    match notifications::listen(&db).await {
                        Ok(again) => listener = again,
                        Err(e) => tracing::warn!(error = %e, "cannot listen for notifications; retrying"),
                    }
                    if listener.is_none() {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        }
                    }
                    continue;
                };
                let heard = tokio::select! {
                    () = stop.cancelled() => return,
                    heard = current.recv() => heard,
                };
                match heard.map(|n| serde_json::from_str::<Announcement>(n.payload())) {
                    Ok(Ok(announcement)) => {
                        let _ = feed.send(announcement);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "ignored an announcement that does not decode")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the notifications listener; listening again");
                        listener = None;
                    }
                }
            }
        });
        Ok(())
    }

    /// Subscribes (or with `on` false unsubscribes) the user to the resource `uri` wherever
    /// they listen: for a connection that keeps no subscription of its own (stateless HTTP).
    pub async fn set_subscribed(
        &self,
        owner: &UserId,
        uri: &str,
        on: bool,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        match on {
            true => subscriptions::subscribe(&self.db, owner.as_str(), uri, now).await?,
            false => subscriptions::unsubscribe(&self.db, owner.as_str(), uri).await?,
        }
        Ok(())
    }

    /// Whether the user subscribed to `uri` over stateless HTTP.
    pub async fn is_subscribed(&self, owner: &UserId, uri: &str) -> AppResult<bool> {
        Ok(subscriptions::is_subscribed(&self.db, owner.as_str(), uri).await?)
    }

    /// The user's newest notifications, optionally only unread ones, optionally marking them read.
    pub async fn list(
        &self,
        owner: &UserId,
        unread_only: bool,
        limit: u32,
        mark_read: bool,
        now: DateTime<Utc>,
    ) -> AppResult<NotificationPage> {
        let rows = notifications::newest(&self.db, owner.as_str(), unread_only, limit).await?;
        if mark_read {
            let unread = rows.iter().filter(|r| r.read_at.is_none()).map(|r| r.id);
            notifications::mark_read(&self.db, owner.as_str(), unread.collect(), now).await?;
        }
        let unread = notifications::unread(&self.db, owner.as_str()).await?;
        let notifications = rows
            .into_iter()
            .map(|row| {
                let mut view = NotificationView::from(row);
                // Shown as read when this call marked it, so the answer matches the stored state.
                view.read |= mark_read;
                view
            })
            .collect();
        Ok(NotificationPage {
            notifications,
            unread,
        })
    }
}
