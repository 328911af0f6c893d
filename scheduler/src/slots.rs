//! Due slots: everything due within one second, fired by one job.
//!
//! One Dapr job per reminder made the Jobs API the scheduler's bound: scheduling a job costs
//! several times a state call, and 10,000 reminders due at one instant were 10,000 job
//! callbacks. Instead every armed item is also entered in its slot, `slot:{unix second}:{shard}`
//! (item key → due time, sharded like the sweep's index), and one job per slot,
//! `due-{unix second}`, fires it: one read of the slot, then per chunk of reminders one read of
//! their records, one bulk publish and one state transaction.
//!
//! A replica schedules a slot's job once, and remembers the slots it has scheduled until they
//! pass (scheduling again would only replace the job with the same one). Cancelling or moving
//! an item needs no job call: the slot's job finds the item no longer due at that time and
//! passes over it. An item due within [`SLOT_MARGIN`] gets a job of its own instead: its slot's
//! job may be firing already and would miss it. Buckets expire a day after their second, so a
//! slot whose job was lost (the sweep fires its items) leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::engine::{Engine, JobName};
use crate::ports::{PortError, Write};
use crate::records::{
    Batch, DueBucket, MAX_ATTEMPTS, ReminderRecord, ReminderState, decode, reminder_key,
};
use crate::sweep::shard_of;

/// Items due sooner than this after they are armed get a job of their own rather than their
/// slot's (see the module docs).
const SLOT_MARGIN: TimeDelta = TimeDelta::seconds(3);

/// How long a slot's bucket outlives its second, should its job never come.
const SLOT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Reminders fired per read, bulk publish and transaction.
const CHUNK: usize = 250;

/// Chunks of one slot fired at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The second an instant falls in.
pub fn slot_of(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn slot_time(slot: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(slot, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn slot_key(slot: i64, shard: u32) -> String {
    format!("slot:{slot}:{shard:02}")
}

/// The slots this replica has scheduled jobs for and that have not passed.
#[derive(Default)]
pub struct ScheduledSlots(Mutex<BTreeSet<i64>>);

impl ScheduledSlots {
    /// Of `slots`, those with no job from this replica yet, forgetting the slots before `now`.
    fn unscheduled(&self, slots: &BTreeSet<i64>, now: DateTime<Utc>) -> Vec<i64> {
        let mut known = self.0.lock().expect("not poisoned");
        *known = known.split_off(&slot_of(now));
        slots.difference(&known).copied().collect()
    }

    fn remember(&self, slots: &[i64]) {
        self.0.lock().expect("not poisoned").extend(slots);
    }
}

/// The jobs an arming needs once its writes are committed: slots, and items due too soon for
/// theirs.
#[derive(Debug, Default)]
pub(crate) struct Arming {
    slots: BTreeSet<i64>,
    own_jobs: BTreeMap<String, DateTime<Utc>>,
}

impl Engine {
    /// Enters each item (a state key, due at its time) in its slot, or, due too soon for that,
    /// notes a job of its own; reads the buckets the batch has not read.
    pub(crate) async fn plan_slots(
        &self,
        batch: &mut Batch,
        items: &[(String, DateTime<Utc>)],
        arming: &mut Arming,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let mut slotted = Vec::new();
        for (item, at) in items {
            if *at > now + SLOT_MARGIN {
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
            arming.slots.insert(slot_of(at));
        }
        Ok(())
    }

    /// The bucket of `item`'s slot.
    pub(crate) fn slot_for(&self, item: &str, at: DateTime<Utc>) -> String {
        slot_key(slot_of(at), shard_of(item, self.settings.slot_shards))
    }

    /// Schedules the jobs `arming` needs, after its writes are committed (a job that fired
    /// before would not find them); slots this replica scheduled before are skipped.
    pub(crate) async fn arm(&self, arming: Arming, now: DateTime<Utc>) -> Result<(), PortError> {
        let slots = self.slots_scheduled.unscheduled(&arming.slots, now);
        let slot_jobs = slots
            .iter()
            .map(|&slot| (JobName::Slot(slot).to_string(), slot_time(slot)));
        let jobs: Vec<(String, DateTime<Utc>)> = slot_jobs.chain(arming.own_jobs).collect();
        try_join_all(
            jobs.iter()
                .map(|(name, due)| self.jobs.schedule(name, *due)),
        )
        .await?;
        self.slots_scheduled.remember(&slots);
        Ok(())
    }

    /// Fires everything due in the slot, and removes the slot once all of it is settled;
    /// returns how many reminders it fired. An error asks for the job to run again.
    pub async fn fire_slot(&self, slot: i64, now: DateTime<Utc>) -> Result<usize, PortError> {
        let store = &*self.store;
        let keys: Vec<String> = (0..self.settings.slot_shards)
            .map(|shard| slot_key(slot, shard))
            .collect();
        let mut fired = 0;
        for _ in 0..MAX_ATTEMPTS {
            let mut items = DueBucket::new();
            let mut read = Vec::new();
            for (key, entry) in keys.iter().zip(store.get_many(&keys).await?) {
                let Some((value, etag)) = entry else { continue };
                match decode::<DueBucket>(key, value) {
                    Ok(bucket) => items.extend(bucket),
                    // Not this version's: its items are in the sweep's index too.
                    Err(e) => {
                        tracing::warn!(error = %e, "passed over a slot bucket");
                        continue;
                    }
                }
                read.push(Write::Delete {
                    key: key.clone(),
                    etag: Some(etag),
                });
            }
            let (due, early): (Vec<_>, Vec<_>) = items
                .into_iter()
                .partition(|(_, at)| *at <= now + crate::engine::EARLY_TOLERANCE);
            fired += self.fire_items(&due, now).await?;
            if !early.is_empty() {
                // The job came before its second (clocks differ): the rest fire at their time.
                let mut arming = Arming::default();
                for (item, at) in early {
                    if let Some(job) = JobName::for_item(&item) {
                        arming.own_jobs.insert(job.to_string(), at);
                    }
                }
                self.arm(arming, now).await?;
                return Ok(fired);
            }
            if read.is_empty() {
                return Ok(fired);
            }
            // A conflict means an item was added meanwhile: fire it too.
            match store.transact(&read).await {
                Err(PortError::Conflict) => continue,
                done => return done.map(|()| fired),
            }
        }
        Err(PortError::Unavailable(format!(
            "slot {slot} kept changing under concurrent writers"
        )))
    }

    /// Fires the items that are still pending at the time they were indexed with.
    async fn fire_items(
        &self,
        items: &[(String, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<usize, PortError> {
        let mut reminders = Vec::new();
        let mut fired = 0;
        for (item, at) in items {
            match JobName::for_item(item) {
                Some(JobName::Reminder(id)) => reminders.push((id, *at)),
                _ => fired += usize::from(self.settle(item, *at, now).await?),
            }
        }
        let chunks: Vec<Vec<(Uuid, DateTime<Utc>)>> =
            reminders.chunks(CHUNK).map(<[_]>::to_vec).collect();
        let chunks = futures::stream::iter(chunks)
            .map(|chunk| async move { self.fire_reminders(&chunk, now).await })
            .buffer_unordered(CHUNKS_IN_FLIGHT);
        chunks
            .try_fold(fired, |sum, n| async move { Ok(sum + n) })
            .await
    }

    /// Fires a chunk of reminders: one read, one bulk publish and one transaction marking them
    /// fired. When a reminder changed between the read and the transaction, each is settled on
    /// its own (what was published is published again under the same ids).
    async fn fire_reminders(
        &self,
        chunk: &[(Uuid, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<usize, PortError> {
        let store = &*self.store;
        let keys: Vec<String> = chunk.iter().map(|(id, _)| reminder_key(*id)).collect();
        let mut notifications = Vec::new();
        let mut writes = Vec::new();
        let mut fired = Vec::new();
        for ((key, (id, at)), entry) in keys.iter().zip(chunk).zip(store.get_many(&keys).await?) {
            let Some((value, etag)) = entry else { continue };
            let record: ReminderRecord = match decode(key, value) {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(error = %e, "passed over a reminder this version cannot read");
                    continue;
                }
            };
            if record.state != ReminderState::Pending || record.fire_at != *at {
                continue;
            }
            notifications.push(self.notification(*id, &record, now)?);
            fired.push((*id, record.task_id, record.fire_at));
            let record = ReminderRecord {
                state: ReminderState::Fired,
                ..record
            };
            let value = serde_json::to_value(&record)
                .map_err(|e| PortError::Unavailable(format!("encoding `{key}`: {e}")))?;
            writes.push(Write::Put {
                key: key.clone(),
                value,
                etag: Some(etag),
                ttl: None,
            });
        }
        if writes.is_empty() {
            return Ok(0);
        }
        let (events, spans): (Vec<_>, Vec<_>) = notifications.into_iter().unzip();
        self.publisher.publish_all(&events).await?;
        drop(spans);
        match store.transact(&writes).await {
            Ok(()) => {
                for (id, task_id, fire_at) in &fired {
                    self.record_fired(*id, *task_id, *fire_at, now);
                }
                Ok(fired.len())
            }
            Err(PortError::Conflict) => {
                let mut settled = 0;
                for (id, at) in chunk {
                    settled += usize::from(self.settle(&reminder_key(*id), *at, now).await?);
                }
                Ok(settled)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_remembered_until_they_pass() {
        let slots = ScheduledSlots::default();
        let now = slot_time(1_000);
        let wanted: BTreeSet<i64> = [999, 1_000, 1_005].into();
        assert_eq!(slots.unscheduled(&wanted, now), vec![999, 1_000, 1_005]);
        slots.remember(&[999, 1_000, 1_005]);
        assert_eq!(slots.unscheduled(&wanted, now), vec![999]);
        // Once a slot has passed it is forgotten, and scheduled again if asked.
        assert_eq!(
            slots.unscheduled(&wanted, slot_time(1_006)),
            vec![999, 1_000, 1_005]
        );
    }
}
