//! The scheduling engine: applies task events to the scheduler's state ([`crate::apply`]), and
//! fires reminders and series occurrences when their jobs come due.
//!
//! Every read-modify-write goes through ETags and starts over on a conflict, so replicas can
//! share the work. Effects are idempotent rather than locked: a reminder firing publishes an
//! event whose id is derived from the reminder and its time, and an occurrence an event naming
//! the task id derived from the series and its due time, so a firing repeated by a race or a
//! crash produces one notification and one task downstream.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use todo_dapr::telemetry;
use todo_shared::events::{
    EventType, OutgoingEvent, RecurringScheduled, ReminderTriggered, notification_id,
    occurrence_task_id,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::ports::{Jobs, PortError, Publisher, StateStore};
use crate::records::{
    ReminderRecord, ReminderState, SeriesRecord, Step, reminder_key, series_key, update,
};

/// A job that arrives this much early still fires (clocks of hosts differ slightly).
const EARLY_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long what has settled is kept: a fired reminder's record, the record of a task with
    /// nothing left to fire (a deleted one's is its tombstone, against late events). Longer
    /// than any event can be late: a reminder this late with no record is taken as fired.
    pub settled_ttl: Duration,
    /// How long after its time the sweep takes over an item its job has not fired.
    pub sweep_grace: chrono::TimeDelta,
    /// Shards per hour of the sweep's index: spreads concurrent writes over more keys.
    pub index_shards: u32,
    /// Shards per second of the due slots ([`crate::slots`]), for the same reason.
    pub slot_shards: u32,
    /// Whether the events of one task arrive in the order they were committed (the embedded
    /// bus guarantees it; Dapr's concurrent delivery does not). Then a task that never had
    /// anything to schedule needs no record, which spares the database a write per event.
    pub ordered_delivery: bool,
    /// Failed attempts after which the sweep counts an entry as quarantined (it keeps trying
    /// it, hourly).
    pub sweep_max_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            settled_ttl: Duration::from_secs(7 * 24 * 3600),
            sweep_grace: chrono::TimeDelta::seconds(30),
            index_shards: 64,
            slot_shards: 64,
            ordered_delivery: false,
            sweep_max_attempts: 5,
        }
    }
}

/// What a job's name says it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobName {
    /// One reminder due within seconds of its arming (or a job of an earlier version).
    Reminder(Uuid),
    /// One series' occurrence due within seconds (or a job of an earlier version).
    Series(Uuid),
    /// Everything due in one second (Unix time): [`crate::slots`].
    Slot(i64),
    /// Enters the items due in one hour (Unix time of its start) in their slots.
    Hour(i64),
}

impl JobName {
    pub fn parse(name: &str) -> Option<JobName> {
        if let Some(id) = name.strip_prefix("reminder-") {
            return id.parse().ok().map(JobName::Reminder);
        }
        if let Some(slot) = name.strip_prefix("due-") {
            return slot.parse().ok().map(JobName::Slot);
        }
        if let Some(hour) = name.strip_prefix("hour-") {
            return hour.parse().ok().map(JobName::Hour);
        }
        name.strip_prefix("recurring-")?
            .parse()
            .ok()
            .map(JobName::Series)
    }

    /// The job of its own for an item of the index (a state key).
    pub(crate) fn for_item(item: &str) -> Option<JobName> {
        if let Some(id) = item.strip_prefix("reminder:") {
            return id.parse().ok().map(JobName::Reminder);
        }
        item.strip_prefix("recurring:")?
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
            JobName::Slot(second) => write!(f, "due-{second}"),
            JobName::Hour(start) => write!(f, "hour-{start}"),
        }
    }
}

/// The hour and slot jobs this replica has scheduled and that have not come yet, by due time.
#[derive(Default)]
pub(crate) struct ScheduledJobs(Mutex<BTreeSet<(DateTime<Utc>, String)>>);

impl ScheduledJobs {
    /// Of `jobs`, those this replica has not scheduled yet, forgetting the jobs before `now`.
    pub(crate) fn unscheduled(
        &self,
        jobs: BTreeSet<(DateTime<Utc>, String)>,
        now: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, String)> {
        let mut known = self.0.lock().expect("not poisoned");
        *known = known.split_off(&(now, String::new()));
        jobs.difference(&known).cloned().collect()
    }

    pub(crate) fn remember(&self, jobs: &[(DateTime<Utc>, String)]) {
        self.0
            .lock()
            .expect("not poisoned")
            .extend(jobs.iter().cloned());
    }
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) jobs: Arc<dyn Jobs>,
    pub(crate) publisher: Arc<dyn Publisher>,
    pub(crate) settings: Settings,
    /// The hour and slot jobs this replica has scheduled.
    pub(crate) jobs_scheduled: Arc<ScheduledJobs>,
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
            jobs_scheduled: Arc::default(),
        }
    }

    /// Runs the job `name` (a due slot, a reminder or a series' next occurrence). An error asks
    /// the caller to run it again later.
    pub async fn fire_job(&self, name: &str, now: DateTime<Utc>) -> Result<(), PortError> {
        match JobName::parse(name) {
            Some(JobName::Reminder(id)) => self.fire_reminder(id, now).await.map(drop),
            Some(JobName::Series(id)) => self.fire_series(id, now).await.map(drop),
            Some(JobName::Slot(second)) => self.fire_slot(second, now).await.map(drop),
            Some(JobName::Hour(start)) => self.fire_hour(start, now).await,
            None => {
                tracing::warn!(%name, "ignored a job that is not the scheduler's");
                Ok(())
            }
        }
    }

    /// Publishes the reminder's notification if it is pending and due; true when it did.
    pub async fn fire_reminder(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, PortError> {
        // A repeated publish (the record changed meanwhile: moved, or fired by another replica)
        // carries the same event id, which consumers deduplicate.
        let fired = update(
            &*self.store,
            &reminder_key(id),
            |current: Option<ReminderRecord>| async move {
                let Some(record) = current.filter(|r| r.state == ReminderState::Pending) else {
                    return Ok(Step::Keep(None));
                };
                if record.fire_at > now + EARLY_TOLERANCE {
                    // A job left from before the reminder moved: make sure the right one exists.
                    self.jobs
                        .schedule(&JobName::Reminder(id).to_string(), record.fire_at)
                        .await?;
                    return Ok(Step::Keep(None));
                }
                let (event, span) = self.notification(id, &record, now)?;
                self.publisher.publish(&event).instrument(span).await?;
                let done = Some((record.task_id, record.fire_at));
                let fired = ReminderRecord {
                    state: ReminderState::Fired,
                    ..record
                };
                Ok(Step::Put(fired, Some(self.settings.settled_ttl), done))
            },
        )
        .await?;
        let Some((task_id, fire_at)) = fired else {
            return Ok(false);
        };
        self.record_fired(id, task_id, fire_at, now);
        Ok(true)
    }

    /// Logs and counts a reminder fired.
    pub(crate) fn record_fired(
        &self,
        id: Uuid,
        task_id: Uuid,
        fire_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let late_ms = (now - fire_at).num_milliseconds();
        tracing::info!(reminder = %id, task = %task_id, late_ms, "reminder fired");
        metrics::counter!("todo_reminders_fired_total").increment(1);
        metrics::histogram!("todo_reminder_lateness_seconds")
            .record(late_ms.max(0) as f64 / 1000.0);
    }

    /// The notification of a due reminder, with the span of its firing, which continues the
    /// trace of the event that armed the reminder.
    pub(crate) fn notification(
        &self,
        id: Uuid,
        record: &ReminderRecord,
        now: DateTime<Utc>,
    ) -> Result<(OutgoingEvent, tracing::Span), PortError> {
        let data = ReminderTriggered {
            owner: record.owner.clone(),
            task_id: record.task_id,
            reminder_id: id,
            title: record.title.clone(),
            fire_at: record.fire_at,
            due: record.due,
            time_zone: record.time_zone.clone(),
        };
        self.derive(
            notification_id(id, record.fire_at),
            EventType::ReminderTriggered,
            record.task_id,
            &data,
            record.traceparent.as_deref(),
            now,
        )
    }

    /// Announces the series' next occurrence if its current one is due, and waits for that one;
    /// true when it announced one.
    pub async fn fire_series(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, PortError> {
        let key = series_key(id);
        let firing = update(
            &*self.store,
            &key,
            |current: Option<SeriesRecord>| async move {
                let Some(record) = current else {
                    return Ok(Step::Keep(SeriesFiring::Nothing));
                };
                if record.current_due > now + EARLY_TOLERANCE {
                    self.jobs
                        .schedule(&JobName::Series(id).to_string(), record.current_due)
                        .await?;
                    return Ok(Step::Keep(SeriesFiring::Nothing));
                }
                let Ok(zone) = record.time_zone.parse::<Tz>() else {
                    return Err(PortError::Unavailable(format!(
                        "series {id} has an unknown time zone {}",
                        record.time_zone
                    )));
                };
                // Occurrences missed while nothing ran are skipped: one new task, due next.
                let after = record.current_due.max(now);
                let Some(next) = record
                    .rule
                    .next_occurrence(record.series_start, after, zone)
                else {
                    return Ok(Step::Delete(SeriesFiring::Ended));
                };
                let task_id = occurrence_task_id(id, next);
                let data = RecurringScheduled {
                    owner: record.owner.clone(),
                    series_id: id,
                    previous_task_id: record.current_task_id,
                    task_id,
                    due: next,
                };
                let parent = record.traceparent.as_deref();
                let (event, span) = self.derive(
                    task_id,
                    EventType::RecurringScheduled,
                    task_id,
                    &data,
                    parent,
                    now,
                )?;
                self.publisher.publish(&event).instrument(span).await?;
                let moved = SeriesRecord {
                    template_task_id: Some(record.current_task_id),
                    current_task_id: task_id,
                    current_due: next,
                    traceparent: event.traceparent,
                    ..record
                };
                Ok(Step::Put(moved, None, SeriesFiring::Next(task_id, next)))
            },
        )
        .await?;
        match firing {
            SeriesFiring::Nothing => Ok(false),
            SeriesFiring::Ended => {
                tracing::info!(series = %id, "the series has no more occurrences");
                Ok(false)
            }
            SeriesFiring::Next(task_id, next) => {
                tracing::info!(series = %id, task = %task_id, due = %next, "scheduled the next occurrence");
                self.index_add(&key, next, now).await?;
                metrics::counter!("todo_series_fired_total").increment(1);
                Ok(true)
            }
        }
    }

    /// An event the engine derives, with the span of its making, which continues the trace
    /// `parent` names; the event carries its own trace, which what comes of it continues.
    fn derive(
        &self,
        id: Uuid,
        event_type: EventType,
        subject: Uuid,
        data: &impl serde::Serialize,
        parent: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(OutgoingEvent, tracing::Span), PortError> {
        let span = tracing::info_span!(
            "fire",
            otel.name = %format_args!("fire {}", event_type.as_str()),
            event_id = %id,
        );
        telemetry::continue_trace(&span, parent);
        let trace = telemetry::traceparent(&span).or_else(|| parent.map(str::to_owned));
        let data = serde_json::to_value(data)
            .map_err(|e| PortError::Unavailable(format!("encoding {event_type:?}: {e}")))?;
        let event = OutgoingEvent::new(id, event_type, subject, data, now)
            .map_err(|e| PortError::Unavailable(e.to_string()))?
            .traced(trace);
        Ok((event, span))
    }
}

/// What firing a series did.
enum SeriesFiring {
    /// Nothing was due (or the series is gone).
    Nothing,
    /// The series has no occurrence left and was removed.
    Ended,
    /// The occurrence (its task id and due time) was announced.
    Next(Uuid, DateTime<Utc>),
}

/// Names and explains the engine's metrics, and starts its counters at zero, so a scrape shows
/// them before the first reminder.
pub fn describe_metrics() {
    use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "todo_reminders_armed_total",
        "Reminders made pending with their job scheduled"
    );
    describe_counter!(
        "todo_reminders_fired_total",
        "Reminders whose notification was published"
    );
    describe_counter!(
        "todo_series_fired_total",
        "Occurrences of recurring tasks announced"
    );
    describe_histogram!(
        "todo_scheduler_batch_events",
        "Task events applied together, as delivered at the same time"
    );
    describe_counter!(
        "todo_sweep_quarantined_total",
        "Index entries the sweep quarantined after failing to settle them repeatedly"
    );
    describe_gauge!(
        "todo_sweep_failing_entries",
        "Index entries the sweep could not settle, tried again with backoff"
    );
    describe_gauge!(
        "todo_sweep_quarantined_entries",
        "Of the failing entries, those that failed the most attempts (tried hourly)"
    );
    describe_counter!(
        "todo_resyncs_requested_total",
        "Replays of the schedule asked of todo-mcp, the state having been found without its epoch"
    );
    describe_histogram!(
        "todo_reminder_lateness_seconds",
        Unit::Seconds,
        "How long after its time a reminder fired"
    );
    for name in [
        "todo_reminders_armed_total",
        "todo_reminders_fired_total",
        "todo_series_fired_total",
        "todo_sweep_quarantined_total",
        "todo_resyncs_requested_total",
    ] {
        counter!(name).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::slot_time;

    #[test]
    fn jobs_remembered_until_they_pass() {
        let jobs = ScheduledJobs::default();
        let at = |second: i64| (slot_time(second), format!("due-{second}"));
        let wanted: BTreeSet<_> = [at(999), at(1_000), at(1_005)].into();
        let now = slot_time(1_000);
        assert_eq!(jobs.unscheduled(wanted.clone(), now).len(), 3);
        jobs.remember(&[at(999), at(1_000), at(1_005)]);
        // Those before now are forgotten, and scheduled again if asked.
        assert_eq!(jobs.unscheduled(wanted.clone(), now), vec![at(999)]);
        assert_eq!(jobs.unscheduled(wanted, slot_time(1_006)).len(), 3);
    }
}
