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
    Batch, DueBucket, FAILING_KEY, Failing, FailingEntries, ReminderRecord, ReminderState,
    SeriesRecord, Step, WATERMARK_KEY, Watermark, bucket_key, decode, hour_buckets, hour_of, read,
    shard_of, update, write,
};

/// At most this many hours are swept in one run (a long outage is caught up over several).
const MAX_HOURS_PER_SWEEP: i64 = 48;

/// At most this many failing entries are tried again in one sweep, oldest first: after a
/// publishing outage, the entries it failed are caught up at this many a minute.
const MAX_RETRIES_PER_SWEEP: usize = 1_000;

/// The longest wait between two tries of a failing entry: how often a quarantined one is tried.
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries looked at whose time had passed.
    pub checked: usize,
    /// Reminders and occurrences the sweep fired itself (their jobs had not).
    pub fired: usize,
    /// Entries that could not be settled this time (tried again later, with backoff).
    pub failed: usize,
}

/// The entries the sweep could not settle, as `/readyz` and the metrics report them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FailingReport {
    /// Entries out of the index, tried again with backoff.
    pub failing: usize,
    /// Those of them that failed `Settings::sweep_max_attempts` times or more.
    pub quarantined: usize,
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

    /// Settles every indexed item whose time is more than the grace period past, and tries
    /// again the failing entries whose backoff has passed. An entry that fails leaves the index
    /// for [`FAILING_KEY`], so that one entry that never settles cannot hold the watermark (and
    /// the sweep would, 48 hours later, no longer reach the present).
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, PortError> {
        let store = &*self.store;
        let mut report = SweepReport::default();
        // A state that was lost has nothing to sweep: first ask for it again.
        if let Err(e) = self.check_epoch(now).await {
            tracing::warn!(error = %e, "could not check the state's epoch; the next sweep tries again");
        }
        self.retry_failing(now, &mut report).await?;
        let Some(watermark) = read::<Watermark>(store, WATERMARK_KEY).await? else {
            return Ok(report);
        };
        let cutoff = now - self.settings.sweep_grace;
        let current_hour = hour_of(now);
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
                let bucket: DueBucket = match decode(key, value.clone()) {
                    Ok(bucket) => bucket,
                    Err(e) => {
                        // No retry can settle it: kept whole, for an operator to look at.
                        tracing::error!(bucket = %key, error = %e, "the sweep quarantined an index bucket it cannot read");
                        let kept = Failing {
                            at: hour,
                            attempts: self.settings.sweep_max_attempts,
                            error: e.to_string(),
                            since: now,
                            retry_at: None,
                            content: Some(value),
                        };
                        self.add_failing(vec![(key.clone(), kept)]).await?;
                        report.failed += 1;
                        match store.delete(key, Some(&etag)).await {
                            Ok(()) => {}
                            Err(PortError::Conflict) => empty = false,
                            Err(e) => return Err(e),
                        }
                        continue;
                    }
                };
                let mut remaining = bucket.clone();
                let mut failed = Vec::new();
                for (item, at) in bucket.iter().filter(|(_, at)| **at <= cutoff) {
                    report.checked += 1;
                    match self.settle(item, *at, now).await {
                        Ok(fired) => report.fired += usize::from(fired),
                        Err(e) => {
                            tracing::warn!(%item, error = %e, "the sweep could not settle an item; it is tried again later");
                            failed.push((item.clone(), failed_once(*at, &e, now)));
                        }
                    }
                    remaining.remove(item);
                }
                report.failed += failed.len();
                // Kept before they leave the bucket, so that none is lost between the two.
                if !failed.is_empty() {
                    self.add_failing(failed).await?;
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

    /// The sweep's failing entries, counted (one read).
    pub async fn failing_report(&self) -> Result<FailingReport, PortError> {
        let failing = read::<FailingEntries>(&*self.store, FAILING_KEY).await?;
        Ok(self.count_failing(failing.map(|f| f.value).as_ref()))
    }

    /// Counts the failing entries, and sets the metrics' gauges to those counts.
    fn count_failing(&self, failing: Option<&FailingEntries>) -> FailingReport {
        let failing = failing
            .map(|f| f.values().collect::<Vec<_>>())
            .unwrap_or_default();
        let max = self.settings.sweep_max_attempts;
        let report = FailingReport {
            failing: failing.len(),
            quarantined: failing.iter().filter(|f| f.attempts >= max).count(),
        };
        metrics::gauge!("todo_sweep_failing_entries").set(report.failing as f64);
        metrics::gauge!("todo_sweep_quarantined_entries").set(report.quarantined as f64);
        report
    }

    /// Adds entries to [`FAILING_KEY`]; one failing already at the same time fails once more.
    async fn add_failing(&self, entries: Vec<(String, Failing)>) -> Result<(), PortError> {
        let failing =
            update::<FailingEntries, FailingEntries, _>(&*self.store, FAILING_KEY, |current| {
                let mut failing = current.unwrap_or_default();
                for (item, entry) in &entries {
                    let again = failing
                        .get(item)
                        .filter(|old| old.at == entry.at && entry.retry_at.is_some())
                        .map(|old| failed_again(old, &entry.error, entry.since));
                    failing.insert(item.clone(), again.unwrap_or_else(|| entry.clone()));
                }
                std::future::ready(Ok(Step::Put(failing.clone(), None, failing)))
            })
            .await?;
        self.note_failing(&failing, entries.iter().map(|(item, _)| item));
        Ok(())
    }

    /// Says which of the `touched` entries this sweep quarantined, and counts them all.
    fn note_failing<'a>(
        &self,
        failing: &FailingEntries,
        touched: impl Iterator<Item = &'a String>,
    ) {
        for item in touched {
            let Some(entry) = failing.get(item) else {
                continue;
            };
            if entry.attempts != self.settings.sweep_max_attempts {
                continue;
            }
            metrics::counter!("todo_sweep_quarantined_total").increment(1);
            if entry.retry_at.is_some() {
                tracing::error!(%item, attempts = entry.attempts, error = %entry.error, "the sweep quarantined an entry it cannot settle: it is tried hourly and counted on /readyz");
            }
        }
        self.count_failing(Some(failing));
    }

    /// Tries again the failing entries whose backoff has passed (the oldest first, at most
    /// [`MAX_RETRIES_PER_SWEEP`]); those that settle leave [`FAILING_KEY`].
    async fn retry_failing(
        &self,
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), PortError> {
        let store = &*self.store;
        let Some(failing) = read::<FailingEntries>(store, FAILING_KEY).await? else {
            return Ok(());
        };
        let mut due: Vec<(&String, &Failing)> = failing
            .value
            .iter()
            .filter(|(_, f)| f.retry_at.is_some_and(|at| at <= now))
            .collect();
        due.sort_by_key(|(_, f)| f.retry_at);
        let mut outcomes = Vec::new();
        for (item, entry) in due.into_iter().take(MAX_RETRIES_PER_SWEEP) {
            report.checked += 1;
            match self.settle(item, entry.at, now).await {
                Ok(fired) => {
                    report.fired += usize::from(fired);
                    outcomes.push((item.clone(), entry.at, None));
                }
                Err(e) => {
                    report.failed += 1;
                    outcomes.push((item.clone(), entry.at, Some(e.to_string())));
                }
            }
        }
        if outcomes.is_empty() {
            self.count_failing(Some(&failing.value));
            return Ok(());
        }
        let left = update::<FailingEntries, FailingEntries, _>(store, FAILING_KEY, |current| {
            let mut left = current.unwrap_or_default();
            for (item, at, error) in &outcomes {
                let Some(entry) = left.get(item).filter(|f| f.at == *at) else {
                    continue;
                };
                match error {
                    None => {
                        left.remove(item);
                    }
                    Some(error) => {
                        let again = failed_again(entry, error, now);
                        left.insert(item.clone(), again);
                    }
                }
            }
            let step = if left.is_empty() {
                Step::Delete(left)
            } else {
                Step::Put(left.clone(), None, left)
            };
            std::future::ready(Ok(step))
        })
        .await?;
        self.note_failing(&left, outcomes.iter().map(|(item, _, _)| item));
        Ok(())
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

/// How long a failing entry waits after its `attempts`-th failure: a minute, doubling, at most
/// [`MAX_BACKOFF`].
fn backoff(attempts: u32) -> TimeDelta {
    let minutes = 1i64 << attempts.saturating_sub(1).min(10);
    TimeDelta::minutes(minutes).min(MAX_BACKOFF)
}

/// An entry's first failure.
fn failed_once(at: DateTime<Utc>, error: &PortError, now: DateTime<Utc>) -> Failing {
    Failing {
        at,
        attempts: 1,
        error: error.to_string(),
        since: now,
        retry_at: Some(now + backoff(1)),
        content: None,
    }
}

/// `entry` after one more failure.
fn failed_again(entry: &Failing, error: &str, now: DateTime<Utc>) -> Failing {
    let attempts = entry.attempts.saturating_add(1);
    Failing {
        attempts,
        error: error.to_owned(),
        retry_at: Some(now + backoff(attempts)),
        ..entry.clone()
    }
}
