//! Rebuilding the scheduler's state when it was lost.
//!
//! The database behind `todo-mcp` is the source of truth; the scheduler's state is a projection of
//! it. The state holds a marker, its epoch, written when the state began. A state without one was
//! lost (a Redis restarted without persistence, wiped, or replaced) or has never been: the first
//! replica to notice writes a new epoch and publishes `com.todo.resync.requested`, and `todo-mcp`
//! replays every task that has something to schedule as `com.todo.task.resynced`. The engine
//! applies those as any task event, so a replay over state that survived changes nothing, and
//! whatever fell due while the state was gone fires when its event arrives (once: a notification
//! and an occurrence have ids derived from what they are for).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use todo_shared::events::{EventType, OutgoingEvent, ResyncRequested};
use uuid::Uuid;

use crate::engine::Engine;
use crate::ports::PortError;
use crate::records::EPOCH_KEY;

/// The marker of the state's epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    /// Names the epoch; the resync request is for it.
    pub id: Uuid,
    /// When the state began (when its loss was noticed).
    pub started_at: DateTime<Utc>,
}

impl Engine {
    /// Checks that the state has its epoch; when it has none, begins one and asks `todo-mcp` to
    /// replay the schedule. Returns whether it asked. Cheap (one read): the sweep calls it every
    /// time.
    pub async fn check_epoch(&self, now: DateTime<Utc>) -> Result<bool, PortError> {
        let store = &*self.store;
        if store.get(EPOCH_KEY).await?.is_some() {
            return Ok(false);
        }
        let epoch = Epoch {
            id: Uuid::new_v4(),
            started_at: now,
        };
        let marker = serde_json::to_value(&epoch).expect("an epoch serialises");
        // Written only where absent: of replicas noticing together, one asks.
        match store.put(EPOCH_KEY, &marker, None, None).await {
            Err(PortError::Conflict) => return Ok(false),
            written => written?,
        }
        let request = ResyncRequested {
            epoch: epoch.id,
            reason: "the scheduler's state has no epoch marker: it was lost, or is new".into(),
        };
        let event = serde_json::to_value(&request)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                OutgoingEvent::new(
                    Uuid::now_v7(),
                    EventType::ResyncRequested,
                    epoch.id,
                    data,
                    now,
                )
                .map_err(|e| e.to_string())
            })
            .map_err(PortError::Unavailable)?;
        if let Err(e) = self.publisher.publish(&event).await {
            // Without the marker the next check asks again.
            if let Err(undo) = store.delete(EPOCH_KEY, None).await {
                tracing::error!(error = %undo, "could not remove the epoch marker of an unsent resync request");
            }
            return Err(e);
        }
        tracing::warn!(epoch = %epoch.id, "the scheduler's state had no epoch marker (lost, or new): asked todo-mcp to replay the schedule");
        metrics::counter!("todo_resyncs_requested_total").increment(1);
        Ok(true)
    }
}
