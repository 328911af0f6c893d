//! Due slots: everything due within one second, fired by one job.
//!
//! One Dapr job per reminder made the Jobs API the scheduler's bound: scheduling a job costs
//! several times a state call, and 10,000 reminders due at one instant were 10,000 job
//! callbacks. Instead every armed item is also entered in its slot, `slot:{unix second}:{shard}`
//! (item key → due time, sharded like the sweep's index), and one job per slot,
//! `due-{unix second}`, fires it: one read of the slot, then per chunk of reminders one read of
//! their records, one bulk publish and one state transaction. The job holds until each item's
//! exact time within its second, so nothing fires early.
//!
//! Items due in a later hour are not slotted when armed: they are in the sweep's hourly index
//! already, and one job per hour, `hour-{unix hour}`, [`HOUR_LEAD`] before it, enters that
//! hour's items in their slots and schedules the slots' jobs (a timing wheel of two levels).
//! Arming a reminder for tomorrow costs no job call of its own, however many are armed.
//!
//! A replica schedules each hour's and slot's job once, and remembers the jobs it has scheduled
//! until they pass (scheduling again would only replace a job with the same one). Cancelling or
//! moving an item needs no job call: the job finds the item no longer due at that time and
//! passes over it. An item due within [`SLOT_MARGIN`] gets a job of its own instead, as one
//! whose hour's job has run or is about to gets its slot: those jobs may be firing already and
//! would miss it. Slot buckets expire a day after their second, so a slot whose job was lost
//! (the sweep fires its items) leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::engine::{Engine, JobName};
use crate::ports::{Etag, PortError, Write};
use crate::records::{
    Batch, DueBucket, MAX_ATTEMPTS, ReminderRecord, ReminderState, WATERMARK_KEY, decode,
    hour_buckets, hour_of, shard_of, slot_key, slot_of, slot_time,
};

/// Items due sooner than this after they are armed get a job of their own rather than their
/// slot's (see the module docs).
pub const SLOT_MARGIN: TimeDelta = TimeDelta::seconds(3);

/// How long before its hour an hour's job enters the hour's items in their slots.
pub const HOUR_LEAD: TimeDelta = TimeDelta::minutes(5);

/// An item is left to its hour's job only if that job is at least this far off when the item
/// is armed: the job must read the index after the arming's transaction.
const HOUR_MARGIN: TimeDelta = TimeDelta::minutes(1);

/// How long a slot's job waits for the items of its second that are not due yet.
const MAX_HOLD: TimeDelta = TimeDelta::seconds(2);

/// Job calls made at once (an hour's job schedules up to 3,600 slots).
const JOB_CALLS_IN_FLIGHT: usize = 16;

/// How long a slot's bucket outlives its second, should its job never come.
const SLOT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Reminders fired per read, bulk publish and transaction.
const CHUNK: usize = 250;

/// Chunks of one slot fired at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Series of one slot fired at once (each is a read, a publish and a write of its own).
const SERIES_IN_FLIGHT: usize = 16;

/// The jobs an arming needs once its writes are committed: hours, slots, and items due too
/// soon for theirs.
#[derive(Debug, Default)]
pub(crate) struct Arming {
    /// Hour and slot jobs: scheduled once per replica.
    shared: BTreeSet<(DateTime<Utc>, String)>,
    own_jobs: BTreeMap<String, DateTime<Utc>>,
}

impl Engine {
    /// Enters one item in the sweep's index and its slot, in a transaction of its own, and
    /// schedules what fires it.
    pub(crate) async fn index_add(
        &self,
        item: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let arming = self.enter(&[(item.to_owned(), at)], true, now).await?;
        self.arm(arming, now).await
    }

    /// Enters the items in the sweep's index (with `index`) and in their slots, in a
    /// transaction of their own, started over on conflicts; returns the jobs that fire them.
    async fn enter(
        &self,
        items: &[(String, DateTime<Utc>)],
        index: bool,
        now: DateTime<Utc>,
    ) -> Result<Arming, PortError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut batch = Batch::default();
            let mut arming = Arming::default();
            if index {
                // Every key the plans read, in one call.
                let keys = items.iter().flat_map(|(item, at)| {
                    [self.bucket_for(item, *at, None), self.slot_for(item, *at)]
                });
                let keys: Vec<String> = std::iter::once(WATERMARK_KEY.to_owned())
                    .chain(keys)
                    .collect();
                batch.read(&*self.store, keys).await?;
                self.plan_index(&mut batch, items, now).await?;
            }
            self.plan_slots(&mut batch, items, &mut arming, now).await?;
            match batch.commit(&*self.store).await {
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(arming),
            }
        }
        Err(PortError::Unavailable(
            "the index kept changing under concurrent writers".into(),
        ))
    }

    /// Leaves each item (a state key, due at its time, entered in the sweep's index) to its
    /// hour's job, or enters it in its slot, or, due too soon for that, notes a job of its own;
    /// reads the buckets the batch has not read.
    pub(crate) async fn plan_slots(
        &self,
        batch: &mut Batch,
        items: &[(String, DateTime<Utc>)],
        arming: &mut Arming,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let mut slotted = Vec::new();
        for (item, at) in items {
            let hour = hour_of(*at);
            if hour - HOUR_LEAD > now + HOUR_MARGIN {
                let job = JobName::Hour(hour.timestamp()).to_string();
                arming.shared.insert((hour - HOUR_LEAD, job));
            } else if *at > now + SLOT_MARGIN {
                slotted.push((item, *at, self.slot_for(item, *at)));
            } else if let Some(job) = JobName::for_item(item) {
                arming.own_jobs.insert(job.to_string(), *at);
            }
        }
        batch
            .read(&*self.store, slotted.iter().map(|(_, _, key)| key.clone()))
            .await?;
        for (item, at, key) in slotted {
            let mut bucket = batch.get::<DueBucket>(&key)?.unwrap_or_default();
            if bucket.get(item) != Some(&at) {
                bucket.insert(item.clone(), at);
                let ttl = (at - now).to_std().unwrap_or_default() + SLOT_TTL;
                batch.put(&key, &bucket, Some(ttl))?;
            }
            let slot = slot_of(at);
            let job = (slot_time(slot), JobName::Slot(slot).to_string());
            arming.shared.insert(job);
        }
        Ok(())
    }

    /// The bucket of `item`'s slot.
    pub(crate) fn slot_for(&self, item: &str, at: DateTime<Utc>) -> String {
        slot_key(slot_of(at), shard_of(item, self.settings.slot_shards))
    }

    /// Schedules the jobs `arming` needs, after its writes are committed (a job that fired
    /// before would not find them); hours and slots this replica scheduled before are skipped.
    pub(crate) async fn arm(&self, arming: Arming, now: DateTime<Utc>) -> Result<(), PortError> {
        let shared = self.jobs_scheduled.unscheduled(arming.shared, now);
        let own = arming.own_jobs.into_iter().map(|(name, due)| (due, name));
        let jobs: Vec<(DateTime<Utc>, String)> = shared.iter().cloned().chain(own).collect();
        futures::stream::iter(jobs)
            .map(|(due, name)| async move { self.jobs.schedule(&name, due).await })
            .buffer_unordered(JOB_CALLS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        self.jobs_scheduled.remember(&shared);
        Ok(())
    }

    /// Enters the items due in the hour (Unix time of its start) in their slots and schedules
    /// the slots' jobs. An error asks for the job to run again.
    pub async fn fire_hour(&self, hour: i64, now: DateTime<Utc>) -> Result<(), PortError> {
        let start = slot_time(hour);
        // Planned as of the job's time, should it come early: every item gets its slot.
        let now = now.max(start - HOUR_LEAD);
        let keys = hour_buckets(start, self.settings.index_shards);
        let mut items = Vec::new();
        for (key, entry) in keys.iter().zip(self.store.get_many(&keys).await?) {
            let Some((value, _)) = entry else { continue };
            match decode::<DueBucket>(key, value) {
                Ok(bucket) => {
                    items.extend(bucket.into_iter().filter(|(_, at)| hour_of(*at) == start))
                }
                Err(e) => tracing::warn!(error = %e, "passed over an index bucket"),
            }
        }
        let mut arming = Arming::default();
        for chunk in items.chunks(CHUNK) {
            let entered = self.enter(chunk, false, now).await?;
            arming.shared.extend(entered.shared);
            arming.own_jobs.extend(entered.own_jobs);
        }
        let slots = arming.shared.len();
        self.arm(arming, now).await?;
        tracing::info!(hour = %start, items = items.len(), slots, "entered an hour's items in their slots");
        Ok(())
    }

    /// Fires everything in the slot at its time, and removes the slot once all of it is
    /// settled; returns how many reminders it fired. An error asks for the job to run again.
    pub async fn fire_slot(&self, slot: i64, now: DateTime<Utc>) -> Result<usize, PortError> {
        let keys: Vec<String> = (0..self.settings.slot_shards)
            .map(|shard| slot_key(slot, shard))
            .collect();
        let started = Instant::now();
        // The caller's clock, moved on by the time spent here.
        let clock = move || now + TimeDelta::from_std(started.elapsed()).unwrap_or_default();
        let mut settled = HashSet::new();
        let mut fired = 0;
        for _ in 0..MAX_ATTEMPTS {
            let (mut items, buckets) = self.read_slot(&keys).await?;
            items.retain(|(item, _)| !settled.contains(item));
            if items
                .first()
                .is_some_and(|(_, first)| *first - clock() > MAX_HOLD)
            {
                // The job came well before its second (clocks differ): the items get jobs of
                // their own.
                let mut arming = Arming::default();
                for (item, at) in items {
                    if let Some(job) = JobName::for_item(&item) {
                        arming.own_jobs.insert(job.to_string(), at);
                    }
                }
                self.arm(arming, clock()).await?;
                return Ok(fired);
            }
            fired += self.fire_in_time(&items, &clock).await?;
            settled.extend(items.into_iter().map(|(item, _)| item));
            if buckets.is_empty() {
                return Ok(fired);
            }
            // A conflict means an item was added meanwhile: fire it too.
            match self.store.transact(&buckets).await {
                Err(PortError::Conflict) => continue,
                done => return done.map(|()| fired),
            }
        }
        Err(PortError::Unavailable(format!(
            "slot {slot} kept changing under concurrent writers"
        )))
    }

    /// The slot's items in time order, and the deletes of its buckets at the versions read.
    async fn read_slot(
        &self,
        keys: &[String],
    ) -> Result<(Vec<(String, DateTime<Utc>)>, Vec<Write>), PortError> {
        let mut items = Vec::new();
        let mut buckets = Vec::new();
        for (key, entry) in keys.iter().zip(self.store.get_many(keys).await?) {
            let Some((value, etag)) = entry else { continue };
            match decode::<DueBucket>(key, value) {
                Ok(bucket) => items.extend(bucket),
                // Not this version's: its items are in the sweep's index too.
                Err(e) => {
                    tracing::warn!(error = %e, "passed over a slot bucket");
                    continue;
                }
            }
            buckets.push(Write::Delete {
                key: key.clone(),
                etag: Some(etag),
            });
        }
        items.sort_by_key(|(_, at)| *at);
        Ok((items, buckets))
    }

    /// Fires the items (in time order) that are still pending at the time they were indexed
    /// with, each at that time: the reminders' records are read once, the notifications due
    /// together are published together, and the records are marked fired at the end (a
    /// firing cut short publishes again under the same ids).
    async fn fire_in_time(
        &self,
        items: &[(String, DateTime<Utc>)],
        clock: &impl Fn() -> DateTime<Utc>,
    ) -> Result<usize, PortError> {
        let mut pending = self.pending_reminders(items).await?;
        let mut published = Vec::new();
        let mut series = 0;
        let mut rest = items;
        while let Some((_, next)) = rest.first() {
            let now = clock();
            if *next > now {
                tokio::time::sleep((*next - now).to_std().unwrap_or_default()).await;
                continue;
            }
            let (due, later) = rest.split_at(rest.partition_point(|(_, at)| *at <= now));
            rest = later;
            let mut group = Vec::new();
            let mut occurrences = Vec::new();
            for (item, at) in due {
                if let Some((key, (id, record, etag))) = pending.remove_entry(item) {
                    group.push(Fired {
                        key,
                        id,
                        record,
                        etag,
                        at: now,
                    });
                } else if !item.starts_with("reminder:") {
                    occurrences.push((item.clone(), *at));
                }
            }
            // Series each on their own key, several at once, beside the reminders, which go
            // chunk by chunk, so that only a few chunks' notifications exist at once.
            let series_fired = futures::stream::iter(occurrences)
                .map(|(item, at)| async move { self.settle(&item, at, now).await })
                .buffer_unordered(SERIES_IN_FLIGHT)
                .try_fold(0, |sum, fired| async move { Ok(sum + usize::from(fired)) });
            let chunks = futures::stream::iter(in_chunks(group))
                .map(|chunk| async move { self.publish_fired(&chunk).await.map(|()| chunk) })
                .buffer_unordered(CHUNKS_IN_FLIGHT)
                .try_collect::<Vec<_>>();
            let (fired, chunks) = futures::future::try_join(series_fired, chunks).await?;
            series += fired;
            published.extend(chunks);
        }
        let marked = futures::stream::iter(published)
            .map(|chunk| async move { self.mark_fired(&chunk).await })
            .buffer_unordered(CHUNKS_IN_FLIGHT)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await?;
        Ok(series + marked)
    }

    /// The reminders among `items` that are pending at the time indexed, with their versions,
    /// by item key.
    async fn pending_reminders(
        &self,
        items: &[(String, DateTime<Utc>)],
    ) -> Result<HashMap<String, (Uuid, ReminderRecord, Etag)>, PortError> {
        let reminders: Vec<(String, Uuid, DateTime<Utc>)> = items
            .iter()
            .filter_map(|(item, at)| match JobName::for_item(item) {
                Some(JobName::Reminder(id)) => Some((item.clone(), id, *at)),
                _ => None,
            })
            .collect();
        let chunks: Vec<Vec<(String, Uuid, DateTime<Utc>)>> =
            reminders.chunks(CHUNK).map(<[_]>::to_vec).collect();
        let reads = futures::stream::iter(chunks)
            .map(|chunk| async move {
                let keys: Vec<String> = chunk.iter().map(|(key, _, _)| key.clone()).collect();
                let entries = self.store.get_many(&keys).await?;
                Ok::<_, PortError>((chunk, entries))
            })
            .buffered(CHUNKS_IN_FLIGHT);
        let mut pending = HashMap::new();
        let mut reads = std::pin::pin!(reads);
        while let Some((chunk, entries)) = reads.try_next().await? {
            for ((key, id, at), entry) in chunk.iter().zip(entries) {
                let Some((value, etag)) = entry else { continue };
                match decode::<ReminderRecord>(key, value) {
                    Ok(r) if r.state == ReminderState::Pending && r.fire_at == *at => {
                        pending.insert(key.clone(), (*id, r, etag));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "passed over a reminder"),
                }
            }
        }
        Ok(pending)
    }

    /// Publishes the notifications of reminders due now, each in the span of its firing.
    async fn publish_fired(&self, fired: &[Fired]) -> Result<(), PortError> {
        let notifications = fired
            .iter()
            .map(|f| self.notification(f.id, &f.record, f.at))
            .collect::<Result<Vec<_>, _>>()?;
        let (events, spans): (Vec<_>, Vec<_>) = notifications.into_iter().unzip();
        self.publisher.publish_all(&events).await?;
        drop(spans);
        Ok(())
    }

    /// Marks fired the reminders whose notifications went out, in one transaction; when one
    /// changed since it was read, each is settled on its own. Returns how many it marked.
    async fn mark_fired(&self, fired: &[Fired]) -> Result<usize, PortError> {
        let mut writes = Vec::with_capacity(fired.len());
        for f in fired {
            let record = ReminderRecord {
                state: ReminderState::Fired,
                ..f.record.clone()
            };
            let value = serde_json::to_value(&record)
                .map_err(|e| PortError::Unavailable(format!("encoding `{}`: {e}", f.key)))?;
            writes.push(Write::Put {
                key: f.key.clone(),
                value,
                etag: Some(f.etag.clone()),
                ttl: Some(self.settings.settled_ttl),
            });
        }
        match self.store.transact(&writes).await {
            Ok(()) => {
                for f in fired {
                    self.record_fired(f.id, f.record.task_id, f.record.fire_at, f.at);
                }
                Ok(fired.len())
            }
            Err(PortError::Conflict) => {
                let mut settled = 0;
                for f in fired {
                    settled += usize::from(self.settle(&f.key, f.record.fire_at, f.at).await?);
                }
                Ok(settled)
            }
            Err(e) => Err(e),
        }
    }
}

/// The items in chunks of [`CHUNK`], moved rather than copied.
fn in_chunks<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(CHUNK));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(CHUNK).collect());
    }
    chunks
}

/// A reminder whose notification went out, to be marked fired.
struct Fired {
    key: String,
    id: Uuid,
    /// As read, pending.
    record: ReminderRecord,
    /// The version read, which marking it fired is conditional on.
    etag: Etag,
    /// When it fired.
    at: DateTime<Utc>,
}
