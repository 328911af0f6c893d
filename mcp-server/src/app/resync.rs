//! The schedule replayed to the scheduler: what `com.todo.resync.requested` and the operator's
//! `todo-mcp resync` do.
//!
//! Every task with something to schedule ([`crate::store::schedule::scheduled_page`]) gets a
//! `com.todo.task.resynced` event with its snapshot as it is, through the outbox like any change,
//! a page of tasks per transaction. The scheduler applies them as task events: over state that
//! survived, a replay changes nothing (the same version, the same decisions); over lost state, it
//! rebuilds it. A change committed during the replay is ordered by the task's version, so a
//! snapshot older than it is skipped wherever it lands.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use todo_shared::events::{EventType, OutgoingEvent, ResyncRequested, TaskEventData};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::AppResult;
use crate::store::processed::{self, EventKey};
use crate::store::reminders::{self, ReminderRow};
use crate::store::{Db, outbox, schedule};

/// Tasks replayed per transaction.
const PAGE: i64 = 500;

/// Replays the schedule. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResyncService {
    db: Db,
    /// Signalled after each page, so the outbox relay sends it at once.
    events_committed: Arc<Notify>,
}

impl ResyncService {
    pub fn new(db: Db, events_committed: Arc<Notify>) -> Self {
        Self {
            db,
            events_committed,
        }
    }

    /// Answers the scheduler's request: returns how many tasks were replayed (`None` when the
    /// request was answered before). A replay is harmless to repeat, and too large for one
    /// transaction: the request is claimed once it is done, and one that fails half way is
    /// replayed whole on its redelivery.
    pub async fn handle_request(
        &self,
        request: &ResyncRequested,
        key: EventKey<'_>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<usize>> {
        if processed::was_processed(&self.db, key).await? {
            return Ok(None);
        }
        tracing::warn!(epoch = %request.epoch, reason = %request.reason, "the scheduler asks for the schedule again: replaying it");
        let replayed = self.replay(now).await?;
        let mut tx = self.db.begin().await?;
        processed::claim(&mut tx, key, now).await?;
        tx.commit().await?;
        Ok(Some(replayed))
    }

    /// Replays every task with something to schedule; returns how many.
    pub async fn replay(&self, now: DateTime<Utc>) -> AppResult<usize> {
        let mut after = Uuid::nil();
        let mut replayed = 0;
        loop {
            let mut tx = self.db.begin().await?;
            let rows = schedule::scheduled_page(&mut tx, after, PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let all = reminders::of_tasks_in(&mut tx, &ids).await?;
            for row in &rows {
                let own: Vec<ReminderRow> = all
                    .iter()
                    .filter(|r| r.task_id == row.id)
                    .cloned()
                    .collect();
                let data = TaskEventData::snapshot(row.snapshot(&own)?);
                let event = OutgoingEvent::task(EventType::TaskResynced, &data, now)?;
                outbox::enqueue(&mut tx, &event).await?;
            }
            tx.commit().await?;
            self.events_committed.notify_one();
            replayed += rows.len();
        }
        tracing::info!(tasks = replayed, "replayed the schedule");
        Ok(replayed)
    }
}
