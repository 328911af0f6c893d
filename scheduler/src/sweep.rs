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

use chrono::{DateTime, TimeDelta, Utc};

use crate::engine::Engine;
use crate::ports::{PortError, StateStore};
use crate::records::{
    Batch, DueBucket, ReminderRecord, ReminderState, SeriesRecord, WATERMARK_KEY, Watermark,
    bucket_key, decode, hour_buckets, hour_of, read, shard_of, write,
};

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

    /// Enters each item (a state key) in the batch as due at its time, reading the buckets the
    /// batch has not read. Items due before the watermark go into the watermark's hour, which
    /// the next sweep still reads.
    pub(crate) async fn plan_index(
        &self,
        batch: &mut Batch,
        items: &[(String, DateTime<Utc>)],
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
        Ok(())
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
