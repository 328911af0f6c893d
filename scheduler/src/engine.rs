//! The scheduling engine: applies task events to the scheduler's state, and fires reminders and
//! series occurrences when their jobs come due.
//!
//! Every read-modify-write goes through ETags and starts over on a conflict, so replicas can
//! share the work. Effects are idempotent rather than locked: a reminder firing publishes an
//! event whose id is derived from the reminder and its time, and an occurrence an event naming
//! the task id derived from the series and its due time, so a firing repeated by a race or a
//! crash produces one notification and one task downstream.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use todo_shared::events::{
    EventType, OutgoingEvent, RecurringScheduled, ReminderTriggered, notification_id,
    occurrence_task_id,
};
use todo_shared::incoming::Disposition;
use uuid::Uuid;

use crate::incoming::{SeriesSpec, TaskChange};
use crate::ports::{Jobs, PortError, Publisher, StateStore};
use crate::records::{
    ReminderRecord, ReminderState, SeriesRecord, TaskRecord, Versioned, processed_key, read,
    reminder_key, series_key, task_key, write,
};

/// The CloudEvents `source` of the events the scheduler publishes.
pub const SOURCE: &str = "/scheduler";

/// How many times a read-modify-write starts over on conflicts before giving up (the caller
/// retries later).
const MAX_ATTEMPTS: usize = 32;

/// A job that arrives this much early still fires (clocks of hosts differ slightly).
const EARLY_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long processed event ids are remembered (design §3: 24 h).
    pub processed_ttl: Duration,
    /// How long a deleted task's tombstone is kept, against late events.
    pub tombstone_ttl: Duration,
    /// How long after its time the sweep takes over an item its job has not fired.
    pub sweep_grace: chrono::TimeDelta,
    /// Shards per hour of the sweep's index: spreads concurrent writes over more keys.
    pub index_shards: u32,
    /// Whether the events of one task arrive in the order they were committed (the embedded
    /// bus guarantees it; Dapr's concurrent delivery does not). Then a task that never had
    /// anything to schedule needs no record, which spares the database a write per event.
    pub ordered_delivery: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            processed_ttl: Duration::from_secs(24 * 3600),
            tombstone_ttl: Duration::from_secs(7 * 24 * 3600),
            sweep_grace: chrono::TimeDelta::seconds(30),
            index_shards: 64,
            ordered_delivery: false,
        }
    }
}

/// What a job's name says it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobName {
    Reminder(Uuid),
    Series(Uuid),
}

impl JobName {
    pub fn parse(name: &str) -> Option<JobName> {
        if let Some(id) = name.strip_prefix("reminder-") {
            return id.parse().ok().map(JobName::Reminder);
        }
        name.strip_prefix("recurring-")?
            .parse()
            .ok()
            .map(JobName::Series)
    }
}

impl std::fmt::Display for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobName::Reminder(id) => write!(f, "reminder-{id}"),
            JobName::Series(id) => write!(f, "recurring-{id}"),
        }
    }
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) store: Arc<dyn StateStore>,
    jobs: Arc<dyn Jobs>,
    publisher: Arc<dyn Publisher>,
    pub(crate) settings: Settings,
}

impl Engine {
    pub fn new(
        store: Arc<dyn StateStore>,
        jobs: Arc<dyn Jobs>,
        publisher: Arc<dyn Publisher>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            jobs,
            publisher,
            settings,
        }
    }

    /// Handles one event of the `tasks` topic, answering as a Dapr subscriber: other event types
    /// are acknowledged and ignored, malformed ones dropped, and failures retried.
    pub async fn handle_event(&self, envelope: &Value, now: DateTime<Utc>) -> Disposition {
        let change = match TaskChange::parse(envelope) {
            Ok(Some(change)) => change,
            Ok(None) => return Disposition::Success,
            Err(reason) => return Disposition::Drop(reason),
        };
        if self.settings.ordered_delivery && change.reminders.is_empty() && change.series.is_none()
        {
            // In order, a task's first event is its creation: nothing can be recorded yet.
            if change.kind == EventType::TaskCreated {
                return Disposition::Success;
            }
            match read::<TaskRecord>(&*self.store, &task_key(change.task_id)).await {
                Ok(None) => return Disposition::Success,
                Ok(Some(_)) => {}
                Err(e) => return Disposition::Retry(e.to_string()),
            }
        }
        let marker = processed_key(&change.event_id);
        match self.store.get(&marker).await {
            Ok(Some(_)) => return Disposition::Success,
            Ok(None) => {}
            Err(e) => return Disposition::Retry(e.to_string()),
        }
        if let Err(e) = self.apply(&change, now).await {
            return Disposition::Retry(e.to_string());
        }
        // The effect is idempotent, so the marker need not be atomic with it: it only spares a
        // redelivery the work.
        let ttl = Some(self.settings.processed_ttl);
        match write(&*self.store, &marker, &true, None, ttl).await {
            Ok(()) | Err(PortError::Conflict) => Disposition::Success,
            Err(e) => Disposition::Retry(e.to_string()),
        }
    }

    async fn apply(&self, change: &TaskChange, now: DateTime<Utc>) -> Result<(), PortError> {
        let Some(previous) = self.record_task(change).await? else {
            tracing::debug!(task = %change.task_id, "skipped a stale task event");
            return Ok(());
        };
        let deleted = change.kind == EventType::TaskDeleted;

        // Reminders the task no longer has, then the ones it has.
        let listed = |id: &Uuid| change.reminders.iter().any(|(r, _)| r == id);
        for id in previous
            .as_ref()
            .map_or(&[][..], |p| &p.reminders[..])
            .iter()
            .filter(|id| deleted || !listed(id))
        {
            self.cancel_reminder(*id).await?;
        }
        for &(id, at) in &change.reminders {
            if deleted {
                self.cancel_reminder(id).await?;
            } else if change.is_active() {
                self.arm_reminder(change, id, at, now).await?;
            } else {
                // Completed: pending reminders are cancelled, fired ones stay fired (a reopened
                // task must not notify twice).
                self.disarm_reminder(id).await?;
            }
        }

        // The series: upserted while the task has one; ended when the current occurrence is
        // deleted or its recurrence cleared (or replaced by another series).
        let kept = change.series.as_ref().filter(|_| !deleted);
        if let (Some(spec), Some(due)) = (kept, change.due) {
            self.upsert_series(change, spec, due, now).await?;
        }
        let before = previous.as_ref().and_then(|p| p.series_id);
        let ended = if deleted {
            change.series.as_ref().map(|s| s.series_id).or(before)
        } else {
            before.filter(|b| kept.is_none_or(|k| k.series_id != *b))
        };
        if let Some(series_id) = ended {
            self.end_series(series_id, change.task_id).await?;
        }
        Ok(())
    }

    /// Records the event in `task:{id}`. Returns the record it replaced (`Some(None)` for a new
    /// task), or `None` when the event is older than what was applied, or the task is deleted.
    async fn record_task(
        &self,
        change: &TaskChange,
    ) -> Result<Option<Option<TaskRecord>>, PortError> {
        let key = task_key(change.task_id);
        let deleted = change.kind == EventType::TaskDeleted;
        let record = TaskRecord {
            version: change.version,
            deleted,
            reminders: change.reminders.iter().map(|(id, _)| *id).collect(),
            series_id: change.series.as_ref().map(|s| s.series_id),
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = read::<TaskRecord>(&*self.store, &key).await?;
            if let Some(Versioned { value: cur, .. }) = &current
                && (cur.version > change.version || (cur.deleted && !deleted))
            {
                return Ok(None);
            }
            if current.as_ref().is_some_and(|c| c.value == record) {
                return Ok(Some(current.map(|c| c.value)));
            }
            let ttl = deleted.then_some(self.settings.tombstone_ttl);
            let etag = current.as_ref().map(|c| &c.etag);
            match write(&*self.store, &key, &record, etag, ttl).await {
                Ok(()) => return Ok(Some(current.map(|c| c.value))),
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(contention(&key))
    }

    /// Makes the reminder pending at `at` (unless it already fired at that time) and schedules
    /// its job. Scheduling again is harmless: a job's name is its identity.
    async fn arm_reminder(
        &self,
        change: &TaskChange,
        id: Uuid,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let key = reminder_key(id);
        for _ in 0..MAX_ATTEMPTS {
            let current = read::<ReminderRecord>(&*self.store, &key).await?;
            let state = match &current {
                Some(c) if c.value.fire_at == at => c.value.state,
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
            };
            if current.as_ref().is_none_or(|c| c.value != record) {
                let etag = current.as_ref().map(|c| &c.etag);
                match write(&*self.store, &key, &record, etag, None).await {
                    Ok(()) => {}
                    Err(PortError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            }
            if state == ReminderState::Pending {
                self.index_add(&key, at, now).await?;
                self.jobs
                    .schedule(&JobName::Reminder(id).to_string(), at)
                    .await?;
            }
            return Ok(());
        }
        Err(contention(&key))
    }

    /// Forgets the reminder, whatever its state.
    async fn cancel_reminder(&self, id: Uuid) -> Result<(), PortError> {
        self.store.delete(&reminder_key(id), None).await?;
        self.jobs.cancel(&JobName::Reminder(id).to_string()).await
    }

    /// Cancels the reminder if it is still pending; a fired one is kept as fired.
    async fn disarm_reminder(&self, id: Uuid) -> Result<(), PortError> {
        let key = reminder_key(id);
        for _ in 0..MAX_ATTEMPTS {
            match read::<ReminderRecord>(&*self.store, &key).await? {
                Some(c) if c.value.state == ReminderState::Pending => {
                    match self.store.delete(&key, Some(&c.etag)).await {
                        Ok(()) => {}
                        Err(PortError::Conflict) => continue,
                        Err(e) => return Err(e),
                    }
                }
                _ => {}
            }
            return self.jobs.cancel(&JobName::Reminder(id).to_string()).await;
        }
        Err(contention(&key))
    }

    async fn upsert_series(
        &self,
        change: &TaskChange,
        spec: &SeriesSpec,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let key = series_key(spec.series_id);
        for _ in 0..MAX_ATTEMPTS {
            let current = read::<SeriesRecord>(&*self.store, &key).await?;
            let mut record = match &current {
                Some(c) => c.value.clone(),
                None => SeriesRecord {
                    owner: change.owner.clone(),
                    series_id: spec.series_id,
                    rule: spec.rule.clone(),
                    time_zone: spec.time_zone.name().to_owned(),
                    series_start: spec.series_start,
                    current_task_id: change.task_id,
                    current_due: due,
                },
            };
            record.rule = spec.rule.clone();
            record.time_zone = spec.time_zone.name().to_owned();
            record.series_start = spec.series_start;
            // Only the newest occurrence moves the series; older ones may still change its rule.
            let is_current = record.current_task_id == change.task_id;
            if is_current {
                record.current_due = due;
            }
            if current.as_ref().is_none_or(|c| c.value != record) {
                let etag = current.as_ref().map(|c| &c.etag);
                match write(&*self.store, &key, &record, etag, None).await {
                    Ok(()) => {}
                    Err(PortError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            }
            if is_current {
                self.index_add(&key, record.current_due, now).await?;
                self.jobs
                    .schedule(
                        &JobName::Series(spec.series_id).to_string(),
                        record.current_due,
                    )
                    .await?;
            }
            return Ok(());
        }
        Err(contention(&key))
    }

    /// Ends the series if `task_id` is its newest occurrence.
    async fn end_series(&self, series_id: Uuid, task_id: Uuid) -> Result<(), PortError> {
        let key = series_key(series_id);
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = read::<SeriesRecord>(&*self.store, &key).await? else {
                return Ok(());
            };
            if current.value.current_task_id != task_id {
                return Ok(());
            }
            match self.store.delete(&key, Some(&current.etag)).await {
                Ok(()) => {
                    tracing::info!(series = %series_id, "the series has ended");
                    return self
                        .jobs
                        .cancel(&JobName::Series(series_id).to_string())
                        .await;
                }
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(contention(&key))
    }

    /// Runs the job `name` (a reminder or a series' next occurrence). An error asks the caller
    /// to run it again later.
    pub async fn fire_job(&self, name: &str, now: DateTime<Utc>) -> Result<(), PortError> {
        match JobName::parse(name) {
            Some(JobName::Reminder(id)) => self.fire_reminder(id, now).await.map(drop),
            Some(JobName::Series(id)) => self.fire_series(id, now).await.map(drop),
            None => {
                tracing::warn!(%name, "ignored a job that is not the scheduler's");
                Ok(())
            }
        }
    }

    /// Publishes the reminder's notification if it is pending and due; true when it did.
    pub async fn fire_reminder(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, PortError> {
        let key = reminder_key(id);
        for _ in 0..MAX_ATTEMPTS {
            let Some(Versioned { mut value, etag }) =
                read::<ReminderRecord>(&*self.store, &key).await?
            else {
                return Ok(false);
            };
            if value.state != ReminderState::Pending {
                return Ok(false);
            }
            if value.fire_at > now + EARLY_TOLERANCE {
                // A job left from before the reminder moved: make sure the right one exists.
                self.jobs
                    .schedule(&JobName::Reminder(id).to_string(), value.fire_at)
                    .await?;
                return Ok(false);
            }
            let data = ReminderTriggered {
                owner: value.owner.clone(),
                task_id: value.task_id,
                reminder_id: id,
                title: value.title.clone(),
                fire_at: value.fire_at,
                due: value.due,
                time_zone: value.time_zone.clone(),
            };
            let event_id = notification_id(id, value.fire_at);
            self.publish(
                event_id,
                EventType::ReminderTriggered,
                value.task_id,
                &data,
                now,
            )
            .await?;
            value.state = ReminderState::Fired;
            match write(&*self.store, &key, &value, Some(&etag), None).await {
                Ok(()) => {
                    let late_ms = (now - value.fire_at).num_milliseconds();
                    tracing::info!(reminder = %id, task = %value.task_id, late_ms, "reminder fired");
                    return Ok(true);
                }
                // Changed meanwhile (moved, or fired by another replica): look again. A repeated
                // publish carries the same event id, which consumers deduplicate.
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(contention(&key))
    }

    /// Announces the series' next occurrence if its current one is due, and waits for that one;
    /// true when it announced one.
    pub async fn fire_series(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, PortError> {
        let key = series_key(id);
        for _ in 0..MAX_ATTEMPTS {
            let Some(Versioned { mut value, etag }) =
                read::<SeriesRecord>(&*self.store, &key).await?
            else {
                return Ok(false);
            };
            if value.current_due > now + EARLY_TOLERANCE {
                self.jobs
                    .schedule(&JobName::Series(id).to_string(), value.current_due)
                    .await?;
                return Ok(false);
            }
            let Ok(zone) = value.time_zone.parse::<Tz>() else {
                return Err(PortError::Unavailable(format!(
                    "series {id} has an unknown time zone {}",
                    value.time_zone
                )));
            };
            // Occurrences missed while nothing ran are skipped: one new task, due next.
            let after = value.current_due.max(now);
            let Some(next) = value.rule.next_occurrence(value.series_start, after, zone) else {
                match self.store.delete(&key, Some(&etag)).await {
                    Ok(()) => {
                        tracing::info!(series = %id, "the series has no more occurrences");
                        return Ok(false);
                    }
                    Err(PortError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            };
            let task_id = occurrence_task_id(id, next);
            let data = RecurringScheduled {
                owner: value.owner.clone(),
                series_id: id,
                previous_task_id: value.current_task_id,
                task_id,
                due: next,
            };
            self.publish(task_id, EventType::RecurringScheduled, task_id, &data, now)
                .await?;
            value.current_task_id = task_id;
            value.current_due = next;
            match write(&*self.store, &key, &value, Some(&etag), None).await {
                Ok(()) => {}
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
            }
            tracing::info!(series = %id, task = %task_id, due = %next, "scheduled the next occurrence");
            self.index_add(&key, next, now).await?;
            self.jobs
                .schedule(&JobName::Series(id).to_string(), next)
                .await?;
            return Ok(true);
        }
        Err(contention(&key))
    }

    async fn publish(
        &self,
        id: Uuid,
        event_type: EventType,
        subject: Uuid,
        data: &impl serde::Serialize,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let data = serde_json::to_value(data)
            .map_err(|e| PortError::Unavailable(format!("encoding {event_type:?}: {e}")))?;
        let event = OutgoingEvent::new(id, event_type, SOURCE, subject, data, now)
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        self.publisher.publish(&event).await
    }
}

fn contention(key: &str) -> PortError {
    PortError::Unavailable(format!(
        "`{key}` kept changing under concurrent writers; retrying later"
    ))
}
