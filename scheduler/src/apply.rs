//! How task events change the scheduler's state: their reminders armed, moved, disarmed or
//! cancelled, their series started, moved or ended, and every armed item entered in the sweep's
//! index and its due slot.
//!
//! Events delivered together are applied together: one read of every key they touch (and one
//! more for what their tasks had), one state transaction, the job calls of slots this replica
//! has not scheduled yet (all at once) and one write of their task records. The task records go
//! last: each is its event's commit point. A transaction that lost a race (on Redis, perhaps
//! half applied) is started over from what it left, which converges, because every write moves
//! its entry toward what the event says, and reminder records never go back to an older event's
//! version.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use todo_shared::events::EventType;
use todo_shared::incoming::Disposition;
use uuid::Uuid;

use todo_dapr::telemetry;

use crate::engine::Engine;
use crate::incoming::TaskChange;
use crate::ports::PortError;
use crate::records::{
    Batch, MAX_ATTEMPTS, ReminderRecord, ReminderState, SeriesRecord, TaskRecord, WATERMARK_KEY,
    reminder_key, series_key, task_key,
};
use crate::slots::Arming;

/// A task event ready to apply, with the trace what it arms continues.
struct Applying {
    change: TaskChange,
    trace: Option<String>,
    /// The event's `consume` span, open until the event is applied.
    span: tracing::Span,
}

impl Engine {
    /// Handles one event of the `tasks` topic, answering as a Dapr subscriber: other event types
    /// are acknowledged and ignored, malformed ones dropped, and failures retried.
    pub async fn handle_event(
        &self,
        envelope: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Disposition {
        let mut answers = self
            .handle_events(std::slice::from_ref(envelope), now)
            .await;
        answers.pop().unwrap_or(Disposition::Success)
    }

    /// Handles events of the `tasks` topic together (those delivered at the same time): one
    /// read, one state transaction and one write of their task records for all of them. Answers
    /// each as [`Engine::handle_event`] does, in order. When they fail together for a reason
    /// other than a lost race, each is tried alone, so that one event that cannot be applied
    /// holds back no other.
    pub async fn handle_events(
        &self,
        envelopes: &[serde_json::Value],
        now: DateTime<Utc>,
    ) -> Vec<Disposition> {
        let mut answers = vec![Disposition::Success; envelopes.len()];
        let mut applying = Vec::new();
        let mut positions = Vec::new();
        for (i, envelope) in envelopes.iter().enumerate() {
            match TaskChange::parse(envelope) {
                Ok(Some(change)) => {
                    applying.push(Applying::new(change));
                    positions.push(i);
                }
                Ok(None) => {}
                Err(reason) => answers[i] = Disposition::Drop(reason),
            }
        }
        let outcome = self.apply_with_retries(&applying, now).await;
        let outcomes = match outcome {
            Err(PortError::Unavailable(_)) if applying.len() > 1 => {
                let alone = applying
                    .chunks(1)
                    .map(|one| self.apply_with_retries(one, now));
                futures::future::join_all(alone).await
            }
            outcome => vec![outcome; applying.len()],
        };
        for ((i, outcome), event) in positions.into_iter().zip(outcomes).zip(&applying) {
            if let Err(e) = outcome {
                answers[i] = Disposition::Retry(match e {
                    PortError::Conflict => format!(
                        "the state of task {} kept changing under concurrent writers",
                        event.change.task_id
                    ),
                    PortError::Unavailable(reason) => reason,
                });
            }
        }
        answers
    }

    /// Applies the events, starting over on lost races (at most [`MAX_ATTEMPTS`] times).
    async fn apply_with_retries(
        &self,
        events: &[Applying],
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut outcome = Err(PortError::Conflict);
        for _ in 0..MAX_ATTEMPTS {
            outcome = self.apply(events, now).await;
            if !matches!(outcome, Err(PortError::Conflict)) {
                break;
            }
        }
        outcome
    }

    /// Applies the events once, in order; [`PortError::Conflict`] asks to start over.
    async fn apply(&self, events: &[Applying], now: DateTime<Utc>) -> Result<(), PortError> {
        let store = &*self.store;
        let mut batch = Batch::default();
        // In order, a task's first event is its creation, and a task that never had anything to
        // schedule has no record: neither needs one now.
        let events: Vec<&Applying> = events
            .iter()
            .filter(|e| {
                !(self.nothing_to_schedule(&e.change) && e.change.kind == EventType::TaskCreated)
            })
            .collect();

        // One read for what the events name, with the index buckets and slots their times fall
        // in, and then one for what the tasks had and the events no longer name.
        let armed: Vec<(String, DateTime<Utc>)> = events
            .iter()
            .flat_map(|e| self.indexed(&e.change))
            .collect();
        let mut keys: Vec<String> = events.iter().flat_map(|e| named_keys(&e.change)).collect();
        if !armed.is_empty() {
            keys.push(WATERMARK_KEY.to_owned());
        }
        keys.extend(
            armed.iter().flat_map(|(item, at)| {
                [self.bucket_for(item, *at, None), self.slot_for(item, *at)]
            }),
        );
        batch.read(store, keys).await?;
        let mut had = Vec::new();
        for event in &events {
            if let Some(previous) = batch.get::<TaskRecord>(&task_key(event.change.task_id))? {
                had.extend(previous.reminders.iter().map(|id| reminder_key(*id)));
                had.extend(previous.series_id.map(series_key));
            }
        }
        batch.read(store, had).await?;

        // Each event in turn; a later event of the same task sees what an earlier one decided.
        let mut records: BTreeMap<String, (TaskRecord, Option<std::time::Duration>)> =
            BTreeMap::new();
        let mut index = Vec::new();
        let settled = Settled {
            ttl: self.settings.settled_ttl,
            now,
        };
        for event in events {
            let key = task_key(event.change.task_id);
            let previous = match records.get(&key) {
                Some((record, _)) => Some(record.clone()),
                None => batch.get::<TaskRecord>(&key)?,
            };
            if self.nothing_to_schedule(&event.change) && previous.is_none() {
                continue;
            }
            if let Some(record) = self.decide(&mut batch, &mut index, event, previous, settled)? {
                let ttl = settled.task_ttl(&event.change);
                records.insert(key, (record, ttl));
            }
        }
        let armed_reminders = index
            .iter()
            .filter(|(k, _)| k.starts_with("reminder:"))
            .count();
        let mut arming = Arming::default();
        self.plan_index(&mut batch, &index, now).await?;
        self.plan_slots(&mut batch, &index, &mut arming, now)
            .await?;

        batch.commit(store).await?;
        self.arm(arming, now).await?;
        metrics::counter!("todo_reminders_armed_total").increment(armed_reminders as u64);
        // The task records last, together: each is its event's commit point.
        let mut commits = Batch::default();
        for (key, (record, ttl)) in &records {
            commits.put_over(key, record, batch.etag(key).cloned(), *ttl)?;
        }
        commits.commit(store).await
    }

    /// Whether a task event has nothing to schedule and, delivered in order, can be skipped
    /// when its task has no record.
    fn nothing_to_schedule(&self, change: &TaskChange) -> bool {
        self.settings.ordered_delivery && change.reminders.is_empty() && change.series.is_none()
    }

    /// Decides what one event changes, into the batch, and returns its task's new record, or
    /// `None` when the event is stale or applied already.
    fn decide(
        &self,
        batch: &mut Batch,
        index: &mut Vec<(String, DateTime<Utc>)>,
        event: &Applying,
        previous: Option<TaskRecord>,
        settled: Settled,
    ) -> Result<Option<TaskRecord>, PortError> {
        let change = &event.change;
        let _entered = event.span.enter();
        let deleted = change.kind == EventType::TaskDeleted;
        let record = TaskRecord {
            event_id: Some(change.event_id.clone()),
            updated_at: change.version.updated_at,
            version_number: change.version.number,
            deleted,
            reminders: change.reminders.iter().map(|(id, _)| *id).collect(),
            series_id: change.series.as_ref().map(|s| s.series_id),
        };
        match &previous {
            Some(cur) if cur.version().supersedes(&change.version) || (cur.deleted && !deleted) => {
                tracing::debug!(task = %change.task_id, "skipped a stale task event");
                return Ok(None);
            }
            Some(cur) if cur.event_id == record.event_id => return Ok(None),
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

        let trace = event.trace.as_deref();
        for id in dropped {
            cancel_reminder(batch, change, id, Cancel::Forget)?;
        }
        for &(id, at) in &change.reminders {
            if deleted {
                cancel_reminder(batch, change, id, Cancel::Forget)?;
            } else if change.is_active() {
                arm_reminder(batch, index, change, trace, id, at, settled)?;
            } else {
                cancel_reminder(batch, change, id, Cancel::KeepFired)?;
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
                template_task_id: None,
                traceparent: None,
            });
            series.rule = spec.rule.clone();
            series.time_zone = spec.time_zone.name().to_owned();
            series.series_start = spec.series_start;
            // Only the newest occurrence moves the series; older ones may still change its rule.
            // An occurrence made ahead of its time (its predecessor completed early) is the
            // newest as soon as it is made, as is the one a resync replays: the series goes on
            // from it.
            let made_ahead = matches!(
                change.kind,
                EventType::TaskCreated | EventType::TaskResynced
            ) && due > series.current_due;
            if made_ahead {
                series.current_task_id = change.task_id;
            }
            if series.current_task_id == change.task_id {
                // Its event shows it was made: its template no longer matters.
                series.template_task_id = None;
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
            // The newest occurrence, or the one the newest is still to be made from (which
            // `todo-mcp` then cannot make): either way nothing follows. Should the newest have
            // been made after all, its event starts the series again from it.
            let current = batch.get::<SeriesRecord>(&key)?;
            let ends = |c: &SeriesRecord| {
                c.current_task_id == change.task_id || c.template_task_id == Some(change.task_id)
            };
            if current.as_ref().is_some_and(ends) {
                tracing::info!(series = %series_id, "the series has ended");
                batch.delete(&key);
            }
        }
        Ok(Some(record))
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

impl Applying {
    fn new(change: TaskChange) -> Self {
        let span = tracing::info_span!(
            "consume",
            otel.name = %format_args!("consume {}", change.kind.as_str()),
            task = %change.task_id,
        );
        telemetry::continue_trace(&span, change.traceparent.as_deref());
        // What the event arms continues this span's trace (or, not exporting, the event's).
        let trace = telemetry::traceparent(&span).or_else(|| change.traceparent.clone());
        Self {
            change,
            trace,
            span,
        }
    }
}

/// The keys an event names: its task's record, its reminders and its series.
fn named_keys(change: &TaskChange) -> impl Iterator<Item = String> + '_ {
    let reminders = change.reminders.iter().map(|(id, _)| reminder_key(*id));
    let series = change.series.iter().map(|s| series_key(s.series_id));
    std::iter::once(task_key(change.task_id))
        .chain(reminders)
        .chain(series)
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
    settled: Settled,
) -> Result<(), PortError> {
    let key = reminder_key(id);
    let current = batch.get::<ReminderRecord>(&key)?;
    if newer(current.as_ref(), change) {
        return Ok(());
    }
    if current.is_none() && at < settled.horizon() {
        // Fired long ago, its record since expired: not to fire again.
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
        updated_at: Some(change.version.updated_at),
        version_number: change.version.number,
        traceparent: trace.map(str::to_owned),
    };
    if current.as_ref() != Some(&record) {
        let ttl = (state == ReminderState::Fired).then_some(settled.ttl);
        batch.put(&key, &record, ttl)?;
    }
    if state == ReminderState::Pending {
        index.push((key, at));
    }
    Ok(())
}

/// How long what has settled is kept ([`crate::Settings::settled_ttl`]), as of one application.
#[derive(Clone, Copy)]
struct Settled {
    ttl: std::time::Duration,
    now: DateTime<Utc>,
}

impl Settled {
    /// A reminder due before this with no record fired long ago.
    fn horizon(&self) -> DateTime<Utc> {
        chrono::TimeDelta::from_std(self.ttl).map_or(DateTime::<Utc>::MIN_UTC, |t| self.now - t)
    }

    /// How long the task's record is kept: for good while it has a series; otherwise until
    /// its last reminder is due, and then as long as late events may still come.
    fn task_ttl(&self, change: &TaskChange) -> Option<std::time::Duration> {
        let now = self.now;
        if !change.is_active() {
            return Some(self.ttl);
        }
        if change.series.is_some() {
            return None;
        }
        let last = change.reminders.iter().map(|(_, at)| *at).max();
        let left = last.map_or(Ok(std::time::Duration::ZERO), |at| (at - now).to_std());
        Some(self.ttl + left.unwrap_or_default())
    }
}

/// Whether a later event of the task wrote the reminder.
fn newer(record: Option<&ReminderRecord>, change: &TaskChange) -> bool {
    record
        .and_then(ReminderRecord::written_by)
        .is_some_and(|v| v.is_after(&change.version))
}
