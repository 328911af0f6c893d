//! Pushing new notifications to connected clients, each in the way it can take them:
//!
//! - `subscriptions/listen` (2026-07-28, any transport, stateless HTTP included):
//!   `notifications/resources/updated` for [`NOTIFICATIONS_URI`] on the listen stream
//!   ([`listen`]); the client then reads the resource.
//! - A lasting connection (stdio, an HTTP+SSE session), [`push`]: the same update once the
//!   client subscribed to the resource (`resources/subscribe`), and an MCP log message
//!   (`notifications/message`, logger `todo.reminders`, the notification as `data`), the one
//!   server notification that clients display or record: always over stdio, over HTTP+SSE once
//!   the client set a logging level. MCP 2026-07-28 deprecates logging (SEP-2577) in favour of
//!   subscriptions, which many clients do not support yet.
//!
//! Stateless streamable HTTP keeps no connection per client: a handshake-era client's `GET /mcp`
//! stream is its user's (`crate::http::user_stream`), built from [`reminder_log`] and
//! [`updated`]. `list_notifications` is the durable record for every client.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParam,
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerNotification,
};
use rmcp::service::SubscriptionContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use todo_shared::task::UserId;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::app::notifications::Announcement;

/// The resource that holds the user's unread notifications, updated as reminders fire.
pub const NOTIFICATIONS_URI: &str = "todo://notifications";

/// How often a pusher with nothing to push checks that its client is still there.
const CHECK_CONNECTION: Duration = Duration::from_secs(30);

/// The most event streams (`GET /mcp`, `subscriptions/listen`) one user holds open at once in
/// a process: each holds a task and a connection.
pub const MAX_STREAMS_PER_USER: usize = 16;

/// The event streams open per user in this process.
#[derive(Debug, Clone, Default)]
pub struct OpenStreams(Arc<Mutex<HashMap<UserId, usize>>>);

/// One open stream, counted against its user until dropped.
#[derive(Debug)]
pub struct StreamSlot {
    open: OpenStreams,
    user: UserId,
}

impl OpenStreams {
    /// A slot for one more stream of `user`; `None` when they hold the most allowed.
    pub fn enter(&self, user: &UserId) -> Option<StreamSlot> {
        let mut open = self.0.lock().expect("not poisoned");
        let n = open.entry(user.clone()).or_default();
        if *n >= MAX_STREAMS_PER_USER {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            open: self.clone(),
            user: user.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().expect("not poisoned");
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// What one lasting connection pushes to its client.
#[derive(Debug, Default)]
pub struct Pushes {
    /// `resources/updated` for [`NOTIFICATIONS_URI`]: the client subscribed to it.
    resource: AtomicBool,
    /// Log messages: stdio always, HTTP+SSE once the client set a logging level.
    logging: AtomicBool,
    /// Whether the connection's pusher runs (one per connection).
    started: AtomicBool,
}

impl Pushes {
    /// A stdio connection's: log messages from the start.
    pub fn logging() -> Self {
        Self {
            logging: AtomicBool::new(true),
            ..Self::default()
        }
    }

    pub fn set_resource(&self, on: bool) {
        self.resource.store(on, Ordering::Relaxed);
    }

    pub fn set_logging(&self) {
        self.logging.store(true, Ordering::Relaxed);
    }

    /// True the first time only: the caller starts the pusher.
    pub fn start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }
}

/// Pushes `user`'s new notifications to `peer` as `pushes` says, until the client goes.
pub async fn push(
    mut feed: Receiver<Announcement>,
    peer: Peer<RoleServer>,
    user: UserId,
    pushes: Arc<Pushes>,
) {
    let mut check = tokio::time::interval(CHECK_CONNECTION);
    loop {
        let heard = tokio::select! {
            heard = feed.recv() => heard,
            _ = check.tick() => {
                if peer.is_transport_closed() {
                    return;
                }
                continue;
            }
        };
        let announcement = match heard_by(heard, &user) {
            Heard::Mine(announcement) => announcement,
            Heard::Skip => continue,
            Heard::Closed => return,
        };
        if pushes.resource.load(Ordering::Relaxed)
            && peer.send_notification(updated()).await.is_err()
        {
            return; // The client has gone.
        }
        if pushes.logging.load(Ordering::Relaxed)
            && peer
                .send_notification(reminder_log(&announcement))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Sends `resources/updated` for [`NOTIFICATIONS_URI`] on a `subscriptions/listen` stream for
/// each of `user`'s new notifications, until the client ends the subscription.
/// `closed` is the end of the HTTP exchange carrying it, where there is one.
pub async fn listen(
    mut feed: Receiver<Announcement>,
    context: SubscriptionContext,
    user: UserId,
    closed: CancellationToken,
) -> Result<(), McpError> {
    loop {
        let heard = tokio::select! {
            () = context.cancelled() => return Ok(()),
            () = closed.cancelled() => return Ok(()),
            heard = feed.recv() => heard,
        };
        match heard_by(heard, &user) {
            Heard::Skip => continue,
            Heard::Closed => return Ok(()),
            Heard::Mine(_) => {
                if context
                    .sink()
                    .notify_resource_updated(NOTIFICATIONS_URI)
                    .await
                    .is_err()
                {
                    return Ok(()); // The subscription has closed.
                }
            }
        }
    }
}

/// `notifications/resources/updated` for [`NOTIFICATIONS_URI`].
pub fn updated() -> ServerNotification {
    ServerNotification::ResourceUpdatedNotification(ResourceUpdatedNotification::new(
        ResourceUpdatedNotificationParam::new(NOTIFICATIONS_URI),
    ))
}

/// The log message of a new notification (logger `todo.reminders`, the notification as data).
pub fn reminder_log(announcement: &Announcement) -> ServerNotification {
    let data = serde_json::to_value(&announcement.notification).unwrap_or_default();
    let message = LoggingMessageNotificationParam::new(LoggingLevel::Notice, data)
        .with_logger("todo.reminders");
    ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(message))
}

/// What a feed gave, as one user's connection sees it.
pub enum Heard {
    /// A notification of the user's.
    Mine(Announcement),
    /// Another user's, or a gap (missed ones stay readable with `list_notifications`).
    Skip,
    /// The feed has closed.
    Closed,
}

/// What the feed gave, for `user`.
pub fn heard_by(heard: Result<Announcement, RecvError>, user: &UserId) -> Heard {
    match heard {
        Ok(announcement) if &announcement.owner == user => Heard::Mine(announcement),
        Ok(_) => Heard::Skip,
        Err(RecvError::Lagged(missed)) => {
            tracing::warn!(
                missed,
                "notifications came faster than the client took them"
            );
            Heard::Skip
        }
        Err(RecvError::Closed) => Heard::Closed,
    }
}
