//! The reconciliation sweep and its index.
//!
//! Jobs fire reminders and occurrences on time (through their due slots, [`crate::slots`]); the
//! sweep, driven by the cron bindings, catches whatever a job did not (e.g. jobs lost while the Dapr scheduler service was down). The Dapr
//! state API cannot list keys, so everything armed is also entered in an index of hourly
//! buckets, `due:{YYYYMMDDHH}:{shard}` (item key → due time), sharded so that concurrent writers
//! rarely meet on one key. A sweep reads the buckets from the watermark (the first hour not yet
//! fully settled) to the current hour, settles each entry whose time is past the grace period
//! (firing it if it is still pending), removes settled entries, and moves the watermark past
//! hours left empty.

use std::hash::Hasher;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::engine::Engine;
use crate::ports::{PortError, StateStore};
use crate::records::{
    Batch, DueBucket, MAX_ATTEMPTS, ReminderRecord, ReminderState, SeriesRecord, WATERMARK_KEY,
    Watermark, decode, read, write,
};
use crate::slots::Arming;

/// At most this many hours are swept in one run (a long outage is caught up over several).
const MAX_HOURS_PER_SWEEP: i64 = 48;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries looked at whose time had passed.
    pub checked: usize,
    /// Reminders and occurrences the sweep fired itself (their jobs had not).
    pub fired: usize,
    /// Entries that could not be settled this time (tried again next sweep).
    pub failed: usize,
}

pub(crate) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// A stable spread of keys over shards: FNV-1a, where the std hasher is seeded per process.
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(key.as_bytes());
    (hasher.finish() % u64::from(shards.max(1))) as u32
}

fn bucket_key(hour: DateTime<Utc>, shard: u32) -> String {
    format!("due:{}:{shard:02}", hour.format("%Y%m%d%H"))
}

/// The keys of the hour's buckets, every shard.
pub(crate) fn hour_buckets(hour: DateTime<Utc>, shards: u32) -> Vec<String> {
    (0..shards).map(|s| bucket_key(hour, s)).collect()
}

impl Engine {
    /// The bucket that holds `item` due at `at`, given the watermark (`None`: as if it were
    /// earlier, the usual case, which lets a caller read the bucket before the watermark).
    pub(crate) fn bucket_for(
        &self,
        item: &str,
        at: DateTime<Utc>,
        watermark: Option<DateTime<Utc>>,
    ) -> String {
        let hour = hour_of(at).max(watermark.unwrap_or(DateTime::<Utc>::MIN_UTC));
        bucket_key(hour, shard_of(item, self.settings.index_shards))
    }

    /// Enters each item (a state key) in the batch as due at its time, in the sweep's index and
    /// in its due slot (noting in `arming` the jobs to schedule once the batch is committed),
    /// reading the buckets the batch has not read. Items due before the watermark go into the
    /// watermark's hour, which the next sweep still reads.
    pub(crate) async fn plan_index(
        &self,
        batch: &mut Batch,
        items: &[(String, DateTime<Utc>)],
        arming: &mut Arming,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let Some(earliest) = items.iter().map(|(_, at)| *at).min() else {
            return Ok(());
        };
        let store = &*self.store;
        batch.read(store, [WATERMARK_KEY.to_owned()]).await?;
        let watermark = match batch.get::<Watermark>(WATERMARK_KEY)? {
            Some(w) => w.hour,
            None => {
                let hour = hour_of(earliest.min(now));
                batch.put(WATERMARK_KEY, &Watermark { hour }, None)?;
                hour
            }
        };
        let keys: Vec<String> = items
            .iter()
            .map(|(item, at)| self.bucket_for(item, *at, Some(watermark)))
            .collect();
        batch.read(store, keys.iter().cloned()).await?;
        for ((item, at), key) in items.iter().zip(&keys) {
            let mut bucket = batch.get::<DueBucket>(key)?.unwrap_or_default();
            if bucket.get(item) != Some(at) {
                bucket.insert(item.clone(), *at);
                batch.put(key, &bucket, None)?;
            }
        }
        self.plan_slots(batch, items, arming, now).await
    }

    /// Enters one item in the index, in a transaction of its own, and schedules what fires it.
    pub(crate) async fn index_add(
        &self,
        item: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let items = [(item.to_owned(), at)];
        for _ in 0..MAX_ATTEMPTS {
            let mut batch = Batch::default();
            let mut arming = Arming::default();
            let speculative = [
                WATERMARK_KEY.to_owned(),
                self.bucket_for(item, at, None),
                self.slot_for(item, at),
            ];
            batch.read(&*self.store, speculative).await?;
            self.plan_index(&mut batch, &items, &mut arming, now)
                .await?;
            match batch.commit(&*self.store).await {
                Err(PortError::Conflict) => continue,
                Err(e) => return Err(e),
                Ok(()) => return self.arm(arming, now).await,
            }
        }
        Err(PortError::Unavailable(format!(
            "the index kept changing under concurrent writers while adding `{item}`"
        )))
    }

    /// Settles every indexed item whose time is more than the grace period past.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, PortError> {
        let store = &*self.store;
        let Some(watermark) = read::<Watermark>(store, WATERMARK_KEY).await? else {
            return Ok(SweepReport::default());
        };
        let cutoff = now - self.settings.sweep_grace;
        let current_hour = hour_of(now);
        let mut report = SweepReport::default();
        let mut hour = watermark.value.hour;
        let mut settled_through = None;
        let mut contiguous = true;
        for _ in 0..MAX_HOURS_PER_SWEEP {
            if hour > current_hour {
                break;
            }
            let keys = hour_buckets(hour, self.settings.index_shards);
            let mut empty = true;
            for (key, entry) in keys.iter().zip(store.get_many(&keys).await?) {
                let Some((value, etag)) = entry else { continue };
                let bucket: DueBucket = decode(key, value)?;
                let mut remaining = bucket.clone();
                for (item, at) in bucket.iter().filter(|(_, at)| **at <= cutoff) {
                    report.checked += 1;
                    match self.settle(item, *at, now).await {
                        Ok(fired) => {
                            report.fired += usize::from(fired);
                            remaining.remove(item);
                        }
                        Err(e) => {
                            report.failed += 1;
                            tracing::warn!(%item, error = %e, "the sweep could not settle an item");
                        }
                    }
                }
                // A conflict means an item was added meanwhile: leave the bucket to next sweep.
                let written = if remaining.is_empty() {
                    store.delete(key, Some(&etag)).await
                } else if remaining.len() < bucket.len() {
                    write(store, key, &remaining, Some(&etag), None).await
                } else {
                    Ok(())
                };
                match written {
                    Ok(()) => empty &= remaining.is_empty(),
                    Err(PortError::Conflict) => empty = false,
                    Err(e) => return Err(e),
                }
            }
            contiguous &= empty && hour < current_hour;
            if contiguous {
                settled_through = Some(hour);
            }
            hour += TimeDelta::hours(1);
        }
        if let Some(last) = settled_through {
            let next = Watermark {
                hour: last + TimeDelta::hours(1),
            };
            // Losing this race to another replica's sweep is fine: it moved the mark too.
            match write(store, WATERMARK_KEY, &next, Some(&watermark.etag), None).await {
                Ok(()) | Err(PortError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        if report.fired > 0 {
            tracing::warn!(
                fired = report.fired,
                "the sweep fired items their jobs had missed"
            );
        }
        Ok(report)
    }

    /// Brings one index entry to rest: fires it if it is still pending, otherwise notes that
    /// it needs nothing. Returns whether it fired.
    pub(crate) async fn settle(
        &self,
        item: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let store: &dyn StateStore = &*self.store;
        if let Some(id) = item.strip_prefix("reminder:").and_then(|s| s.parse().ok()) {
            return match read::<ReminderRecord>(store, item).await? {
                Some(r) if r.value.state == ReminderState::Pending && r.value.fire_at == at => {
                    self.fire_reminder(id, now).await
                }
                _ => Ok(false),
            };
        }
        if let Some(id) = item.strip_prefix("recurring:").and_then(|s| s.parse().ok()) {
            return match read::<SeriesRecord>(store, item).await? {
                Some(s) if s.value.current_due == at => self.fire_series(id, now).await,
                _ => Ok(false),
            };
        }
        tracing::warn!(%item, "removed an index entry the scheduler does not know");
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_are_hourly_and_shards_stable() {
        let t = Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 59).unwrap();
        assert_eq!(bucket_key(hour_of(t), 7), "due:2026030806:07");
        let key = "reminder:0190b7e0-0000-7000-8000-000000000001";
        assert_eq!(shard_of(key, 64), shard_of(key, 64));
        assert!(shard_of(key, 64) < 64);
        // FNV-1a's published vector for "a": items stay in the shards earlier versions chose.
        assert_eq!(u64::from(shard_of("a", 64)), 0xaf63_dc4c_8601_ec8c % 64);
        // Keys spread over the shards.
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| shard_of(&format!("reminder:{i}"), 64))
            .collect();
        assert!(used.len() > 50, "only {} shards used", used.len());
    }
}
