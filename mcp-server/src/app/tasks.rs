//! The task operations behind the tools. Each runs in one transaction that also writes the
//! operation's lifecycle event to the outbox, so the change and its event commit together.
//!
//! An operation that changes nothing (completing a completed task, an update to the same values)
//! writes nothing and emits no event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use todo_shared::events::{
    EventType, OutgoingEvent, RecurringScheduled, TaskEventData, occurrence_task_id,
};
use todo_shared::reminder::{MAX_REMINDERS_PER_TASK, ReminderSpec, ReminderTrigger};
use todo_shared::snapshot::TaskSnapshot;
use todo_shared::task::{TaskStatus, UserId};
use todo_shared::time::Zone;
use tokio::sync::Notify;
use uuid::Uuid;

use super::commands::{NewTask, TaskPatch};
use super::listing::{ListQuery, RowKey};
use super::quotas::Quotas;
use crate::error::{AppError, AppResult};
use crate::store::processed::{self, EventKey};
use crate::store::reminders::{self, ReminderRow};
use crate::store::schedule;
use crate::store::tasks::{self, TaskRow};
use crate::store::{Db, Tx, outbox};

/// A task after an operation, and what the operation changed.
#[derive(Debug, Clone)]
pub struct Applied {
    pub task: TaskSnapshot,
    /// The names of the fields that changed; empty when the call changed nothing.
    pub changed: Vec<String>,
    /// The series' next occurrence, when completing this one made it.
    pub next_occurrence: Option<TaskSnapshot>,
}

/// One page of `list_tasks`.
#[derive(Debug, Clone)]
pub struct Page {
    pub tasks: Vec<TaskSnapshot>,
    /// How many tasks match the filters, on all pages.
    pub total: i64,
    pub next_cursor: Option<String>,
}

/// Task operations for one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TaskService {
    db: Db,
    /// How much each user may hold.
    quotas: Quotas,
    /// Signalled after every commit that wrote an event, so the outbox relay sends it at once.
    events_committed: Arc<Notify>,
}

impl TaskService {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            quotas: Quotas::default(),
            events_committed: Arc::new(Notify::new()),
        }
    }

    /// The service with other quotas than the defaults.
    pub fn with_quotas(self, quotas: Quotas) -> Self {
        Self { quotas, ..self }
    }

    /// The database the service works on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// What the outbox relay waits on between polls.
    pub fn events_committed(&self) -> Arc<Notify> {
        self.events_committed.clone()
    }

    /// Adds the operation's event to the outbox and commits: the change and its event together.
    async fn commit_with(
        &self,
        mut tx: Tx,
        event: EventType,
        data: &TaskEventData,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        outbox::enqueue(&mut tx, &OutgoingEvent::task(event, data, now)?).await?;
        tx.commit().await?;
        self.events_committed.notify_one();
        Ok(())
    }

    pub async fn create(
        &self,
        owner: &UserId,
        new: NewTask,
        now: DateTime<Utc>,
    ) -> AppResult<TaskSnapshot> {
        let mut created = self.create_many(owner, vec![new], now).await?;
        created
            .pop()
            .unwrap_or_else(|| Err(AppError::Internal("no task created".into())))
    }

    /// Creates the tasks in one transaction, each with its event. A task that would exceed a
    /// quota, or whose rule repeats too often, is refused on its own; the others are created.
    pub async fn create_many(
        &self,
        owner: &UserId,
        news: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<AppResult<TaskSnapshot>>> {
        let rows: Vec<(TaskRow, Vec<ReminderRow>, Zone)> = news
            .into_iter()
            .map(|new| new_row(owner, new, now))
            .collect();
        let mut tx = self.db.begin().await?;
        let mut room = self
            .quotas
            .room(&mut tx, owner.as_str(), rows.len())
            .await?;
        // Each task's refusal, or `None` where it is admitted and written with the others.
        let mut refusals = Vec::with_capacity(rows.len());
        let mut admitted = Vec::with_capacity(rows.len());
        for (row, reminders, zone) in rows {
            let fits = match (&row.recurrence, row.series_start) {
                (Some(Json(rule)), Some(start)) => self.quotas.check_rule(rule, start, zone.tz()),
                _ => Ok(()),
            }
            .and_then(|()| {
                let recurring = row.recurrence.is_some();
                self.quotas.take(&mut room, recurring, reminders.len())
            });
            match fits {
                Ok(()) => {
                    admitted.push((row, reminders));
                    refusals.push(None);
                }
                Err(e) => refusals.push(Some(e)),
            }
        }
        let mut written = write_new(&mut tx, admitted, now).await?.into_iter();
        tx.commit().await?;
        if written.len() > 0 {
            self.events_committed.notify_one();
        }
        let created = refusals
            .into_iter()
            .map(|refusal| match refusal {
                Some(e) => Err(e),
                None => written
                    .next()
                    .ok_or_else(|| AppError::Internal("a task was not written".into())),
            })
            .collect();
        Ok(created)
    }

    /// Writes a new task with its tags and reminders, announces it, and commits.
    async fn insert_new(
        &self,
        mut tx: Tx,
        row: TaskRow,
        reminders: Vec<ReminderRow>,
        now: DateTime<Utc>,
    ) -> AppResult<TaskSnapshot> {
        let task = write_one(&mut tx, row, reminders, now).await?;
        tx.commit().await?;
        self.events_committed.notify_one();
        Ok(task)
    }

    pub async fn get(&self, owner: &UserId, id: Uuid) -> AppResult<TaskSnapshot> {
        let (row, reminders) = tasks::load(&self.db, owner.as_str(), id).await?;
        row.snapshot(&reminders)
    }

    pub async fn list(
        &self,
        owner: &UserId,
        query: &ListQuery,
        now: DateTime<Utc>,
    ) -> AppResult<Page> {
        let owner = owner.as_str();
        // Two independent reads: on two pooled connections they overlap instead of queueing.
        let (total, mut rows) = tokio::try_join!(
            tasks::count(&self.db, owner, &query.filter, now),
            tasks::page(
                &self.db,
                owner,
                &query.filter,
                query.sort,
                query.limit,
                query.after.as_ref(),
                now
            ),
        )?;
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        let next_cursor = match rows.last() {
            Some(last) if more => Some(query.encode_cursor(&RowKey {
                id: last.id,
                created_at: last.created_at,
                due_at: last.due_at,
                priority: last.priority,
                title_key: last.title_key.clone(),
            })),
            _ => None,
        };
        let reminders: Vec<ReminderRow> = if rows.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            reminders::of_tasks(&self.db, &ids).await?
        };
        let tasks = rows
            .iter()
            .map(|row| {
                let own: Vec<ReminderRow> = reminders
                    .iter()
                    .filter(|r| r.task_id == row.id)
                    .cloned()
                    .collect();
                row.snapshot(&own)
            })
            .collect::<AppResult<_>>()?;
        Ok(Page {
            tasks,
            total,
            next_cursor,
        })
    }

    pub async fn update(
        &self,
        owner: &UserId,
        id: Uuid,
        patch: &TaskPatch,
        now: DateTime<Utc>,
    ) -> AppResult<Applied> {
        let mut tx = self.db.begin().await?;
        let (mut row, mut reminders) = tasks::load_for_update(&mut tx, owner.as_str(), id).await?;
        let zoned = patch.in_zone(row.zone()?)?;
        let before = row.snapshot(&reminders)?;

        if let Some(title) = &patch.title {
            row.set_title(title);
        }
        if let Some(description) = &patch.description {
            row.set_description(description.as_ref());
        }
        if let Some(priority) = patch.priority {
            row.set_priority(priority);
        }
        if let Some(tags) = &patch.tags {
            row.set_tags(tags);
        }
        if let Some(zone) = patch.zone {
            row.time_zone = zone.name().to_owned();
        }
        let series_before = row.series_id.filter(|_| row.recurrence.is_some());
        let rule_given = matches!(zoned.recurrence, Some(Some(_)));
        let due_before = row.due_at;
        let due_changed = matches!(zoned.due, Some(due) if due != row.due_at);
        if let Some(due) = zoned.due {
            row.due_at = due;
        }
        match zoned.recurrence {
            Some(rule) => row.set_recurrence(rule),
            // A new due time is where the series now starts: it goes on from there.
            None if due_changed && row.recurrence.is_some() => {
                row.series_start = row.due_at;
            }
            None => {}
        }
        check_due_dependents(&row, &reminders)?;
        if let (Some(Json(rule)), Some(start)) = (&row.recurrence, row.series_start) {
            rule.check_start(start, row.zone()?.tz())?;
        }
        match (series_before, row.series_id) {
            (Some(series), None) => {
                end_series_if_newest(&mut tx, series, &row, due_before, now).await?;
            }
            (None, Some(series)) => {
                self.quotas.check_series(&mut tx, &row.owner).await?;
                schedule::resume_series(&mut tx, series).await?;
            }
            _ => {}
        }
        if let (Some(Json(rule)), Some(start), true) =
            (&row.recurrence, row.series_start, rule_given)
        {
            self.quotas.check_rule(rule, start, row.zone()?.tz())?;
        }
        if due_changed {
            move_relative_reminders(&mut tx, &row, &mut reminders).await?;
        }
        row.touch(now);
        let after = row.snapshot(&sorted(reminders))?;
        let data = TaskEventData::change(&before, after);
        if data.changes.is_empty() {
            return Ok(Applied::unchanged(before));
        }
        row.update(&mut tx).await?;
        if patch.tags.is_some() {
            row.write_tags(&mut tx).await?;
        }
        self.finish(tx, EventType::TaskUpdated, data, now).await
    }

    pub async fn complete(
        &self,
        owner: &UserId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<Applied> {
        self.set_status(
            owner,
            id,
            TaskStatus::Completed,
            EventType::TaskCompleted,
            now,
        )
        .await
    }

    pub async fn reopen(&self, owner: &UserId, id: Uuid, now: DateTime<Utc>) -> AppResult<Applied> {
        self.set_status(owner, id, TaskStatus::Pending, EventType::TaskUpdated, now)
            .await
    }

    async fn set_status(
        &self,
        owner: &UserId,
        id: Uuid,
        status: TaskStatus,
        event: EventType,
        now: DateTime<Utc>,
    ) -> AppResult<Applied> {
        let mut tx = self.db.begin().await?;
        let (mut row, reminders) = tasks::load_for_update(&mut tx, owner.as_str(), id).await?;
        let before = row.snapshot(&reminders)?;
        if row.status()? == status {
            return Ok(Applied::unchanged(before));
        }
        row.set_status(status, now);
        row.touch(now);
        row.update(&mut tx).await?;
        let data = TaskEventData::change(&before, row.snapshot(&reminders)?);
        outbox::enqueue(&mut tx, &OutgoingEvent::task(event, &data, now)?).await?;
        let next_occurrence = match status {
            TaskStatus::Completed => {
                self.next_on_completion(&mut tx, &row, &reminders, now)
                    .await?
            }
            TaskStatus::Pending => None,
        };
        tx.commit().await?;
        self.events_committed.notify_one();
        Ok(Applied {
            changed: data.changes.into_keys().collect(),
            task: data.task,
            next_occurrence,
        })
    }

    /// Makes the next occurrence of the series `row` belongs to when `row`, just completed, is
    /// its newest: the task the scheduler would make at `row`'s due time, under the same id, so
    /// whichever of the two comes second finds it made (both lock `row` first).
    async fn next_on_completion(
        &self,
        tx: &mut Tx,
        row: &TaskRow,
        reminders: &[ReminderRow],
        now: DateTime<Utc>,
    ) -> AppResult<Option<TaskSnapshot>> {
        let (Some(series), Some(Json(rule)), Some(start), Some(due)) =
            (row.series_id, &row.recurrence, row.series_start, row.due_at)
        else {
            return Ok(None);
        };
        if schedule::has_ended(tx, series).await?
            || !schedule::is_newest(tx, series, row.id, Some(due)).await?
        {
            return Ok(None);
        }
        // As the scheduler does: occurrences already past are skipped.
        let Some(next) = rule.next_occurrence(start, due.max(now), row.zone()?.tz()) else {
            return Ok(None);
        };
        let id = occurrence_task_id(series, next);
        if tasks::exists(tx, id).await? || !self.room_for_occurrence(tx, series, &row.owner).await?
        {
            return Ok(None);
        }
        let (next_row, next_reminders) = occurrence_of(row, reminders, id, next, now);
        write_one(tx, next_row, next_reminders, now).await.map(Some)
    }

    /// Whether the owner may hold one more task; an occurrence beyond the quota is skipped.
    async fn room_for_occurrence(&self, tx: &mut Tx, series: Uuid, owner: &str) -> AppResult<bool> {
        match self.quotas.check_task(tx, owner).await {
            Ok(()) => Ok(true),
            Err(AppError::QuotaExceeded(reason)) => {
                tracing::warn!(%series, %reason, "skipped an occurrence: its user holds all the tasks allowed");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the task with its reminders, tags and recurrence; returns it as it was.
    pub async fn delete(
        &self,
        owner: &UserId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<TaskSnapshot> {
        let mut tx = self.db.begin().await?;
        let (mut row, reminders) = tasks::load_for_update(&mut tx, owner.as_str(), id).await?;
        let deleted = row.snapshot(&reminders)?;
        // The deletion is a change of its own: its event comes after every other of the task.
        row.touch(now);
        let data = TaskEventData::snapshot(row.snapshot(&reminders)?);
        if let (Some(series), Some(_)) = (row.series_id, &row.recurrence) {
            end_series_if_newest(&mut tx, series, &row, row.due_at, now).await?;
        }
        tasks::delete(&mut tx, owner.as_str(), id).await?;
        self.commit_with(tx, EventType::TaskDeleted, &data, now)
            .await?;
        Ok(deleted)
    }

    /// Adds a reminder; returns the task and the new reminder's id.
    pub async fn set_reminder(
        &self,
        owner: &UserId,
        id: Uuid,
        spec: &ReminderSpec,
        now: DateTime<Utc>,
    ) -> AppResult<(Applied, Uuid)> {
        let mut tx = self.db.begin().await?;
        let (mut row, mut reminders) = tasks::load_for_update(&mut tx, owner.as_str(), id).await?;
        if row.status()? == TaskStatus::Completed {
            return Err(AppError::Conflict(format!(
                "task {id} is completed; reopen_task it before setting a reminder"
            )));
        }
        if reminders.len() >= MAX_REMINDERS_PER_TASK {
            return Err(AppError::Conflict(format!(
                "task {id} already has {MAX_REMINDERS_PER_TASK} reminders, the most a task can have; cancel_reminder one first"
            )));
        }
        let trigger = spec.resolve(row.zone()?.tz())?;
        let at = trigger.check_future("reminder", row.due_at, now)?;
        self.quotas.check_reminders(&mut tx, &row.owner, 1).await?;
        let before = row.snapshot(&reminders)?;
        let reminder = new_reminder(id, trigger, at);
        reminders::insert(&mut tx, &row.owner, &reminder, now).await?;
        let reminder_id = reminder.id;
        reminders.push(reminder);
        row.touch(now);
        row.update(&mut tx).await?;
        let data = TaskEventData::change(&before, row.snapshot(&sorted(reminders))?);
        let applied = self.finish(tx, EventType::TaskUpdated, data, now).await?;
        Ok((applied, reminder_id))
    }

    pub async fn cancel_reminder(
        &self,
        owner: &UserId,
        id: Uuid,
        reminder_id: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<Applied> {
        let mut tx = self.db.begin().await?;
        let (mut row, mut reminders) = tasks::load_for_update(&mut tx, owner.as_str(), id).await?;
        let before = row.snapshot(&reminders)?;
        if !reminders::delete(&mut tx, id, reminder_id).await? {
            return Err(AppError::ReminderNotFound {
                task: id,
                reminder: reminder_id,
            });
        }
        reminders.retain(|r| r.id != reminder_id);
        row.touch(now);
        row.update(&mut tx).await?;
        let data = TaskEventData::change(&before, row.snapshot(&reminders)?);
        self.finish(tx, EventType::TaskUpdated, data, now).await
    }

    /// Creates the occurrence a `com.todo.recurring.scheduled` event announces, as a copy of the
    /// previous occurrence due at the new time, with its relative reminders moved along. Nothing
    /// happens when the event was processed before, the task already exists, or the series has
    /// since ended or changed: returns the new task only when it created one.
    pub async fn create_occurrence(
        &self,
        event: &RecurringScheduled,
        key: EventKey<'_>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<TaskSnapshot>> {
        let owner = UserId::parse(&event.owner)?;
        if event.task_id != occurrence_task_id(event.series_id, event.due) {
            return Err(AppError::Validation(todo_shared::ValidationError::new(
                "task_id",
                "is not the id derived from the series and the due time",
            )));
        }
        let mut tx = self.db.begin().await?;
        if !processed::claim(&mut tx, key, now).await? {
            return Ok(None);
        }
        // Lock the template first: a concurrent delivery of the same occurrence (under another
        // event id) waits here, and then sees the task the first one committed.
        let template =
            match tasks::load_for_update(&mut tx, owner.as_str(), event.previous_task_id).await {
                Ok(found) => Some(found),
                Err(AppError::TaskNotFound(_)) => None,
                Err(e) => return Err(e),
            };
        let exists = tasks::exists(&mut tx, event.task_id).await?;
        let ended = schedule::has_ended(&mut tx, event.series_id).await?;
        // An occurrence made ahead from the template (its completion) is the series' next one
        // even when the two clocks put it at another time: nothing is made beside it.
        let superseded = match &template {
            Some((t, _)) => !schedule::is_newest(&mut tx, event.series_id, t.id, t.due_at).await?,
            None => false,
        };
        let Some((template, reminders)) = template.filter(|(t, _)| {
            !exists && !ended && !superseded && t.series_id == Some(event.series_id)
        }) else {
            // Recorded as processed all the same: the event has had its (empty) effect.
            tx.commit().await?;
            return Ok(None);
        };
        if !self
            .room_for_occurrence(&mut tx, event.series_id, owner.as_str())
            .await?
        {
            tx.commit().await?;
            return Ok(None);
        }
        let (row, reminders) = occurrence_of(&template, &reminders, event.task_id, event.due, now);
        self.insert_new(tx, row, reminders, now).await.map(Some)
    }

    /// Commits a change with its event; returns what it applied.
    async fn finish(
        &self,
        tx: Tx,
        event: EventType,
        data: TaskEventData,
        now: DateTime<Utc>,
    ) -> AppResult<Applied> {
        self.commit_with(tx, event, &data, now).await?;
        Ok(Applied {
            changed: data.changes.into_keys().collect(),
            task: data.task,
            next_occurrence: None,
        })
    }
}

impl Applied {
    /// A call that found the task already as asked.
    fn unchanged(task: TaskSnapshot) -> Self {
        Self {
            task,
            changed: Vec::new(),
            next_occurrence: None,
        }
    }
}

/// The rows of a new task of `owner`'s, with its zone.
fn new_row(owner: &UserId, new: NewTask, now: DateTime<Utc>) -> (TaskRow, Vec<ReminderRow>, Zone) {
    let id = Uuid::now_v7();
    let mut row = TaskRow {
        id,
        owner: owner.as_str().to_owned(),
        title: String::new(),
        description: None,
        status: TaskStatus::Pending.as_str().to_owned(),
        priority: new.priority.rank(),
        tags: Json(new.tags.to_strings()),
        due_at: new.due,
        time_zone: new.zone.name().to_owned(),
        recurrence: None,
        series_id: None,
        series_start: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        title_key: String::new(),
        version: 1,
    };
    row.set_title(&new.title);
    row.set_description(new.description.as_ref());
    row.set_recurrence(new.recurrence);
    let reminders = new
        .reminders
        .iter()
        .map(|(trigger, at)| new_reminder(id, *trigger, *at))
        .collect();
    (row, reminders, new.zone)
}

/// Writes new tasks of one owner with their tags and reminders, and puts each one's
/// `task.created` in the outbox: one statement per table, however many tasks.
async fn write_new(
    tx: &mut Tx,
    new: Vec<(TaskRow, Vec<ReminderRow>)>,
    now: DateTime<Utc>,
) -> AppResult<Vec<TaskSnapshot>> {
    let Some(owner) = new.first().map(|(row, _)| row.owner.clone()) else {
        return Ok(Vec::new());
    };
    let rows: Vec<&TaskRow> = new.iter().map(|(row, _)| row).collect();
    tasks::insert_all(tx, &rows).await?;
    let reminders: Vec<&ReminderRow> = new.iter().flat_map(|(_, r)| r).collect();
    reminders::insert_all(tx, &owner, &reminders, now).await?;
    let mut created = Vec::with_capacity(new.len());
    let mut events = Vec::with_capacity(new.len());
    for (row, reminders) in new {
        let data = TaskEventData::snapshot(row.snapshot(&sorted(reminders))?);
        events.push(OutgoingEvent::task(EventType::TaskCreated, &data, now)?);
        created.push(data.task);
    }
    outbox::enqueue_all(tx, &events).await?;
    Ok(created)
}

/// [`write_new`] of one task.
async fn write_one(
    tx: &mut Tx,
    row: TaskRow,
    reminders: Vec<ReminderRow>,
    now: DateTime<Utc>,
) -> AppResult<TaskSnapshot> {
    let mut created = write_new(tx, vec![(row, reminders)], now).await?;
    created
        .pop()
        .ok_or_else(|| AppError::Internal("no task written".into()))
}

/// The occurrence `id` of a series due at `due`, copied from `template` (an earlier occurrence)
/// with the reminders it sets relative to its due time moved along, if still to come.
fn occurrence_of(
    template: &TaskRow,
    reminders: &[ReminderRow],
    id: Uuid,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (TaskRow, Vec<ReminderRow>) {
    let mut row = template.clone();
    row.id = id;
    row.due_at = Some(due);
    row.set_status(TaskStatus::Pending, now);
    row.created_at = now;
    row.updated_at = now;
    row.version = 1;
    let reminders = reminders
        .iter()
        .filter_map(|r| {
            let minutes = r.minutes_before?;
            let at = due - chrono::Duration::minutes(i64::from(minutes));
            (at > now).then(|| ReminderRow {
                id: Uuid::now_v7(),
                task_id: id,
                fire_at: at,
                minutes_before: Some(minutes),
            })
        })
        .collect();
    (row, reminders)
}

fn new_reminder(task_id: Uuid, trigger: ReminderTrigger, at: DateTime<Utc>) -> ReminderRow {
    ReminderRow {
        id: Uuid::now_v7(),
        task_id,
        fire_at: at,
        minutes_before: trigger.minutes_before().and_then(|m| i32::try_from(m).ok()),
    }
}

fn sorted(mut reminders: Vec<ReminderRow>) -> Vec<ReminderRow> {
    reminders.sort_by_key(|r| (r.fire_at, r.id));
    reminders
}

/// Ends the series when `row`, due at `due`, is its newest occurrence (the others are older):
/// what follows a series comes from its newest occurrence.
async fn end_series_if_newest(
    tx: &mut Tx,
    series: Uuid,
    row: &TaskRow,
    due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if schedule::is_newest(tx, series, row.id, due).await? {
        schedule::end_series(tx, series, &row.owner, now).await?;
    }
    Ok(())
}

/// A due time cannot be removed from under what depends on it.
fn check_due_dependents(row: &TaskRow, reminders: &[ReminderRow]) -> AppResult<()> {
    if row.due_at.is_some() {
        return Ok(());
    }
    if row.recurrence.is_some() {
        return Err(AppError::Conflict(
            "a recurring task needs a due time: give a new `due`, or also set `recurrence` to null"
                .into(),
        ));
    }
    if reminders.iter().any(|r| r.minutes_before.is_some()) {
        return Err(AppError::Conflict(
            "the task has reminders relative to its due time: give a new `due`, or cancel_reminder them first".into(),
        ));
    }
    Ok(())
}

/// Moves reminders given as "minutes before due" to the new due time.
async fn move_relative_reminders(
    tx: &mut Tx,
    row: &TaskRow,
    reminders: &mut [ReminderRow],
) -> AppResult<()> {
    let Some(due) = row.due_at else { return Ok(()) };
    for r in reminders.iter_mut() {
        let Some(minutes) = r.minutes_before else {
            continue;
        };
        r.fire_at = due - chrono::Duration::minutes(i64::from(minutes));
        reminders::reschedule(tx, r.id, r.fire_at).await?;
    }
    Ok(())
}
