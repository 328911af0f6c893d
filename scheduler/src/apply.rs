//! How a task event changes the scheduler's state: its reminders armed, moved, disarmed or
//! cancelled, its series started, moved or ended, and every armed item entered in the sweep's
//! index.
//!
//! An event costs one read of every key it touches, one state transaction, the job calls of
//! slots this replica has not scheduled yet (all at once) and the write of its task record. The task record goes last, alone: it is the
//! event's commit point. A transaction that lost a race (on Redis, perhaps half applied) is
//! started over from what it left, which converges, because every write moves its entry toward
//! what the event says, and reminder records never go back to an older event's version.

use chrono::{DateTime, Utc};
use todo_shared::events::EventType;
use todo_shared::incoming::Disposition;
use uuid::Uuid;

use todo_dapr::telemetry;
use tracing::Instrument;

use crate::engine::Engine;
use crate::incoming::TaskChange;
use crate::ports::PortError;
use crate::records::{
    Batch, MAX_ATTEMPTS, ReminderRecord, ReminderState, SeriesRecord, TaskRecord, WATERMARK_KEY,
    reminder_key, series_key, task_key, write,
};
use crate::slots::Arming;

impl Engine {
    /// Handles one event of the `tasks` topic, answering as a Dapr subscriber: other event types
    /// are acknowledged and ignored, malformed ones dropped, and failures retried.
    pub async fn handle_event(
        &self,
        envelope: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Disposition {
        let change = match TaskChange::parse(envelope) {
            Ok(Some(change)) => change,
            Ok(None) => return Disposition::Success,
            Err(reason) => return Disposition::Drop(reason),
        };
        let span = tracing::info_span!(
            "consume",
            otel.name = %format_args!("consume {}", change.kind.as_str()),
            task = %change.task_id,
        );
        telemetry::continue_trace(&span, change.traceparent.as_deref());
        // What the event arms continues this span's trace (or, not exporting, the event's).
        let trace = telemetry::traceparent(&span).or_else(|| change.traceparent.clone());
        let attempts = async {
            for _ in 0..MAX_ATTEMPTS {
                match self.apply(&change, trace.as_deref(), now).await {
                    Ok(()) => return Disposition::Success,
                    Err(PortError::Conflict) => continue,
                    Err(e) => return Disposition::Retry(e.to_string()),
                }
            }
            Disposition::Retry(format!(
                "the state of task {} kept changing under concurrent writers",
                change.task_id
            ))
        };
        attempts.instrument(span).await
    }

    /// Applies the event once, in trace `trace`; [`PortError::Conflict`] asks to start over.
    async fn apply(
        &self,
        change: &TaskChange,
        trace: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let store = &*self.store;
        let key = task_key(change.task_id);
        let deleted = change.kind == EventType::TaskDeleted;
        let record = TaskRecord {
            event_id: Some(change.event_id.clone()),
            version: change.version,
            deleted,
            reminders: change.reminders.iter().map(|(id, _)| *id).collect(),
            series_id: change.series.as_ref().map(|s| s.series_id),
        };
        let mut batch = Batch::default();
        if self.settings.ordered_delivery && change.reminders.is_empty() && change.series.is_none()
        {
            // In order, a task's first event is its creation, and a task that never had anything
            // to schedule has no record: neither needs one now.
            if change.kind == EventType::TaskCreated {
                return Ok(());
            }
            batch.read(store, [key.clone()]).await?;
            if batch.get::<TaskRecord>(&key)?.is_none() {
                return Ok(());
            }
        }

        // One read for what the event names, with the index buckets its times fall in.
        let armed = self.indexed(change);
        let mut keys = vec![key.clone(), WATERMARK_KEY.to_owned()];
        keys.extend(change.reminders.iter().map(|(id, _)| reminder_key(*id)));
        keys.extend(change.series.iter().map(|s| series_key(s.series_id)));
        keys.extend(
            armed.iter().flat_map(|(item, at)| {
                [self.bucket_for(item, *at, None), self.slot_for(item, *at)]
            }),
        );
        batch.read(store, keys).await?;

        let previous: Option<TaskRecord> = batch.get(&key)?;
        match &previous {
            Some(cur) if cur.version > change.version || (cur.deleted && !deleted) => {
                tracing::debug!(task = %change.task_id, "skipped a stale task event");
                return Ok(());
            }
            Some(cur) if cur.event_id == record.event_id => return Ok(()),
            _ => {}
        }
        // What the task had and the event no longer names.
        let (had_reminders, had_series) = previous
            .as_ref()
            .map_or((&[][..], None), |p| (&p.reminders[..], p.series_id));
        let listed = |id: &Uuid| change.reminders.iter().any(|(r, _)| r == id);
        let dropped: Vec<Uuid> = had_reminders
            .iter()
            .filter(|id| deleted || !listed(id))
            .copied()
            .collect();
        let kept_series = change.series.as_ref().filter(|_| !deleted);
        let ended_series = if deleted {
            change.series.as_ref().map(|s| s.series_id).or(had_series)
        } else {
            had_series.filter(|b| kept_series.is_none_or(|k| k.series_id != *b))
        };
        batch
            .read(
                store,
                dropped
                    .iter()
                    .map(|id| reminder_key(*id))
                    .chain(ended_series.map(series_key)),
            )
            .await?;

        let mut index = Vec::new();
        for id in dropped {
            cancel_reminder(&mut batch, change, id, Cancel::Forget)?;
        }
        for &(id, at) in &change.reminders {
            if deleted {
                cancel_reminder(&mut batch, change, id, Cancel::Forget)?;
            } else if change.is_active() {
                arm_reminder(&mut batch, &mut index, change, trace, id, at)?;
            } else {
                cancel_reminder(&mut batch, change, id, Cancel::KeepFired)?;
            }
        }
        if let (Some(spec), Some(due)) = (kept_series, change.due) {
            let key = series_key(spec.series_id);
            let before = batch.get::<SeriesRecord>(&key)?;
            let mut series = before.clone().unwrap_or_else(|| SeriesRecord {
                owner: change.owner.clone(),
                series_id: spec.series_id,
                rule: spec.rule.clone(),
                time_zone: spec.time_zone.name().to_owned(),
                series_start: spec.series_start,
                current_task_id: change.task_id,
                current_due: due,
                traceparent: None,
            });
            series.rule = spec.rule.clone();
            series.time_zone = spec.time_zone.name().to_owned();
            series.series_start = spec.series_start;
            // Only the newest occurrence moves the series; older ones may still change its rule.
            if series.current_task_id == change.task_id {
                series.current_due = due;
                series.traceparent = trace.map(str::to_owned);
                index.push((key.clone(), due));
            }
            if before.as_ref() != Some(&series) {
                batch.put(&key, &series, None)?;
            }
        }
        if let Some(series_id) = ended_series {
            let key = series_key(series_id);
            let current = batch.get::<SeriesRecord>(&key)?;
            if current.is_some_and(|c| c.current_task_id == change.task_id) {
                tracing::info!(series = %series_id, "the series has ended");
                batch.delete(&key);
            }
        }
        let armed_reminders = index
            .iter()
            .filter(|(k, _)| k.starts_with("reminder:"))
            .count();
        let mut arming = Arming::default();
        self.plan_index(&mut batch, &index, &mut arming, now)
            .await?;

        batch.commit(store).await?;
        self.arm(arming, now).await?;
        metrics::counter!("todo_reminders_armed_total").increment(armed_reminders as u64);
        let ttl = deleted.then_some(self.settings.tombstone_ttl);
        write(store, &key, &record, batch.etag(&key), ttl).await
    }

    /// The items the event arms, with their times: what its index buckets are read for.
    fn indexed(&self, change: &TaskChange) -> Vec<(String, DateTime<Utc>)> {
        let mut items = Vec::new();
        if change.is_active() {
            items.extend(
                change
                    .reminders
                    .iter()
                    .map(|(id, at)| (reminder_key(*id), *at)),
            );
        }
        if let (Some(spec), Some(due), false) = (
            &change.series,
            change.due,
            change.kind == EventType::TaskDeleted,
        ) {
            items.push((series_key(spec.series_id), due));
        }
        items
    }
}

/// What cancelling a reminder does with its record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// Forgets it, whatever its state (the reminder or its task is gone).
    Forget,
    /// Forgets it only while pending: a completed task's fired reminder stays fired, so that
    /// reopening the task does not notify twice.
    KeepFired,
}

/// Cancels the reminder, unless a newer event of its task wrote it. Its job needs no call: a
/// job finds nothing pending to fire.
fn cancel_reminder(
    batch: &mut Batch,
    change: &TaskChange,
    id: Uuid,
    how: Cancel,
) -> Result<(), PortError> {
    let key = reminder_key(id);
    let current = batch.get::<ReminderRecord>(&key)?;
    if newer(current.as_ref(), change) {
        return Ok(());
    }
    if how == Cancel::Forget || current.is_some_and(|c| c.state == ReminderState::Pending) {
        batch.delete(&key);
    }
    Ok(())
}

/// Makes the reminder pending at `at` (unless it already fired at that time), to be indexed,
/// which schedules what fires it.
fn arm_reminder(
    batch: &mut Batch,
    index: &mut Vec<(String, DateTime<Utc>)>,
    change: &TaskChange,
    trace: Option<&str>,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), PortError> {
    let key = reminder_key(id);
    let current = batch.get::<ReminderRecord>(&key)?;
    if newer(current.as_ref(), change) {
        return Ok(());
    }
    let state = match &current {
        Some(c) if c.fire_at == at => c.state,
        _ => ReminderState::Pending,
    };
    let record = ReminderRecord {
        owner: change.owner.clone(),
        task_id: change.task_id,
        reminder_id: id,
        title: change.title.clone(),
        fire_at: at,
        due: change.due,
        time_zone: Some(change.time_zone.name().to_owned()),
        state,
        version: Some(change.version),
        traceparent: trace.map(str::to_owned),
    };
    if current.as_ref() != Some(&record) {
        batch.put(&key, &record, None)?;
    }
    if state == ReminderState::Pending {
        index.push((key, at));
    }
    Ok(())
}

/// Whether a later event of the task wrote the reminder.
fn newer(record: Option<&ReminderRecord>, change: &TaskChange) -> bool {
    record
        .and_then(|r| r.version)
        .is_some_and(|v| v > change.version)
}
