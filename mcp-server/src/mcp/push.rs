//! Pushing new notifications to a connected client.
//!
//! A reminder that fires while a client is connected over stdio reaches it at once as an MCP log
//! message (`notifications/message`, logger `todo.reminders`, the notification as `data`): the
//! one server-initiated notification that clients display or record. MCP 2026-07-28 deprecates
//! logging (SEP-2577) in favour of subscriptions that clients do not widely support yet; the
//! notifications stay readable with `list_notifications` either way.
#![allow(deprecated)]

use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use todo_shared::task::UserId;

/// Pushes the user's new notifications to the client as MCP log messages (logger
/// `todo.reminders`), the notification every client displays or records.
pub async fn push_notifications(
    mut feed: tokio::sync::broadcast::Receiver<crate::app::notifications::Announcement>,
    peer: rmcp::Peer<rmcp::RoleServer>,
    user: UserId,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let announcement = match feed.recv().await {
            Ok(a) => a,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "notifications came faster than the client took them"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if announcement.owner != user {
            continue;
        }
        let data = serde_json::to_value(&announcement.notification).unwrap_or_default();
        let sent = peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(LoggingLevel::Notice, data)
                    .with_logger("todo.reminders"),
            )
            .await;
        if sent.is_err() {
            return; // The client has gone.
        }
    }
}
