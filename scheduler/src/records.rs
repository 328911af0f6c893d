//! What the scheduler keeps in its state store, one JSON document per key, and the two ways it
//! changes them: [`update`], a read-modify-write of one key, and [`Batch`], several keys read in
//! one call and written in one transaction.
//!
//! | key                          | document            | why                                   |
//! |------------------------------|---------------------|---------------------------------------|
//! | `task:{task_id}`             | [`TaskRecord`]      | order of events, reminders to cancel  |
//! | `reminder:{reminder_id}`     | [`ReminderRecord`]  | what a reminder job fires, and if yet |
//! | `recurring:{series_id}`      | [`SeriesRecord`]    | a series' rule and next occurrence    |
//! | `due:{hour}:{shard}`         | [`DueBucket`]       | the sweep's index: no key listing     |
//! | `slot:{second}:{shard}`      | [`DueBucket`]       | what a due slot's job fires           |
//! | `sweep:watermark`            | [`Watermark`]       | the first hour not yet fully swept    |
//! | `sweep:failing`              | [`FailingEntries`]  | entries the sweep could not settle    |
//!
//! A series is keyed by its series id, which is the id of its first task (the design's
//! `recurring:{task_id}`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hasher;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use todo_shared::recurrence::Recurrence;
use uuid::Uuid;

use crate::incoming::TaskVersion;
use crate::ports::{Etag, PortError, StateStore, Write};

pub fn task_key(id: Uuid) -> String {
    format!("task:{id}")
}
pub fn reminder_key(id: Uuid) -> String {
    format!("reminder:{id}")
}
pub fn series_key(id: Uuid) -> String {
    format!("recurring:{id}")
}
pub const WATERMARK_KEY: &str = "sweep:watermark";
pub const FAILING_KEY: &str = "sweep:failing";
/// The marker of the state's epoch ([`crate::resync`]).
pub const EPOCH_KEY: &str = "scheduler:epoch";

/// The start of the hour an instant falls in: its bucket in the sweep's index.
pub(crate) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// A stable spread of keys over shards: FNV-1a, where the std hasher is seeded per process.
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(key.as_bytes());
    (hasher.finish() % u64::from(shards.max(1))) as u32
}

pub(crate) fn bucket_key(hour: DateTime<Utc>, shard: u32) -> String {
    format!("due:{}:{shard:02}", hour.format("%Y%m%d%H"))
}

/// The keys of the hour's buckets, every shard.
pub(crate) fn hour_buckets(hour: DateTime<Utc>, shards: u32) -> Vec<String> {
    (0..shards).map(|s| bucket_key(hour, s)).collect()
}

/// The second an instant falls in (Unix time): its due slot.
pub fn slot_of(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// The start of a slot.
pub fn slot_time(slot: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(slot, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub fn slot_key(slot: i64, shard: u32) -> String {
    format!("slot:{slot}:{shard:02}")
}

/// The scheduler's view of a task, from the newest event applied. Written after everything else
/// the event changes, it is the event's commit point: an event that finds its own id here was
/// applied already (a redelivery), and one that finds a newer version is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The id of the event applied. Absent in records of earlier versions.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The task's `updated_at` in the event applied.
    #[serde(rename = "version")]
    pub updated_at: DateTime<Utc>,
    /// The task's version number in the event applied (0 in records of earlier versions):
    /// events of earlier versions are stale and skipped.
    #[serde(default)]
    pub version_number: u64,
    /// Set by `task.deleted`; kept for a while as a tombstone so that a late event cannot
    /// bring the task's reminders back.
    pub deleted: bool,
    /// The task's reminders, so that one removed by an update can be cancelled.
    pub reminders: Vec<Uuid>,
    /// The series the task belongs to, so that clearing its recurrence can end the series.
    pub series_id: Option<Uuid>,
}

impl TaskRecord {
    /// The version of the event applied.
    pub fn version(&self) -> TaskVersion {
        TaskVersion {
            number: self.version_number,
            updated_at: self.updated_at,
        }
    }
}

/// Whether a reminder is still to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderState {
    Pending,
    Fired,
}

/// One reminder: everything its notification needs, so that firing reads one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReminderRecord {
    pub owner: String,
    pub task_id: Uuid,
    pub reminder_id: Uuid,
    pub title: String,
    pub fire_at: DateTime<Utc>,
    pub due: Option<DateTime<Utc>>,
    /// The task's IANA zone, for showing `due` in the notification.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Fired stays fired for this `fire_at`: moving the reminder makes it pending again.
    pub state: ReminderState,
    /// The `updated_at` of the task event that wrote it (absent in records of earlier
    /// versions); see [`ReminderRecord::written_by`].
    #[serde(default, rename = "version")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The task's version number in that event (0 in records of earlier versions).
    #[serde(default)]
    pub version_number: u64,
    /// The trace of the event that armed it, which its firing continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl ReminderRecord {
    /// The version of the task event that wrote it: an older event never overwrites it, even
    /// one that raced past the task record's check.
    pub fn written_by(&self) -> Option<TaskVersion> {
        self.updated_at.map(|updated_at| TaskVersion {
            number: self.version_number,
            updated_at,
        })
    }
}

/// A recurring series and the occurrence it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub owner: String,
    pub series_id: Uuid,
    pub rule: Recurrence,
    /// The IANA zone the rule is computed in (DST-correct local times).
    pub time_zone: String,
    /// The series' first occurrence: `count` and the calendar rules are anchored on it.
    pub series_start: DateTime<Utc>,
    /// The newest occurrence's task: the template of the next one.
    pub current_task_id: Uuid,
    /// When the newest occurrence is due: then the next occurrence is created.
    pub current_due: DateTime<Utc>,
    /// The occurrence the newest one is being made from, until an event of the newest one shows
    /// it was made: should this one be deleted or stop recurring first, the newest can never be
    /// made, and the series ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_task_id: Option<Uuid>,
    /// The trace of the event or firing that last moved it, which its next firing continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Items due within one hour or one second (one shard of it): item key → when it is due.
pub type DueBucket = BTreeMap<String, DateTime<Utc>>;

/// The start of the first hour whose bucket may still hold work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    pub hour: DateTime<Utc>,
}

/// An index entry the sweep could not settle, taken out of its bucket (so that the watermark
/// moves on) and tried again with backoff. After `Settings::sweep_max_attempts` failures it is
/// quarantined: still tried, hourly, and reported until it settles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failing {
    /// When the item was due, as its index entry said.
    pub at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
    /// When it first failed.
    pub since: DateTime<Utc>,
    /// When the sweep tries it next; `None` for what no retry can settle (an index bucket that
    /// does not decode, kept whole in `content`).
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// The sweep's failing entries: item key (or bucket key) → [`Failing`].
pub type FailingEntries = BTreeMap<String, Failing>;

/// A document read with its version.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: Etag,
}

/// Reads and decodes one document. A document that does not decode was not written by this
/// version of the scheduler: it is reported rather than overwritten.
pub async fn read<T: DeserializeOwned>(
    store: &dyn StateStore,
    key: &str,
) -> Result<Option<Versioned<T>>, PortError> {
    match store.get(key).await? {
        None => Ok(None),
        Some((value, etag)) => decode(key, value).map(|value| Some(Versioned { value, etag })),
    }
}

pub fn decode<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, PortError> {
    serde_json::from_value(value)
        .map_err(|e| PortError::Unavailable(format!("the state at `{key}` is unreadable: {e}")))
}

/// How many times a read-modify-write starts over on conflicts before giving up (the caller
/// retries later).
pub(crate) const MAX_ATTEMPTS: usize = 32;

/// What a read-modify-write does with the document it read, and what it then returns.
pub enum Step<T, R> {
    /// Leave it as it is.
    Keep(R),
    /// Write this over the version read (or create the key if there was none); with a TTL, the
    /// store expires it.
    Put(T, Option<std::time::Duration>, R),
    /// Delete the version read.
    Delete(R),
}

/// Reads the document at `key`, lets `decide` say what to do with it, and does that only if the
/// document has not changed since: when another writer got there first, it starts over with what
/// that writer left. This is how replicas share the state without locks. After [`MAX_ATTEMPTS`]
/// lost races it gives up with [`PortError::Unavailable`], and the work is retried later.
pub async fn update<T, R, Fut>(
    store: &dyn StateStore,
    key: &str,
    mut decide: impl FnMut(Option<T>) -> Fut,
) -> Result<R, PortError>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<Step<T, R>, PortError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        let (current, etag) = match read::<T>(store, key).await? {
            Some(Versioned { value, etag }) => (Some(value), Some(etag)),
            None => (None, None),
        };
        let etag = etag.as_ref();
        let (done, result) = match decide(current).await? {
            Step::Keep(result) => return Ok(result),
            Step::Put(value, ttl, result) => (write(store, key, &value, etag, ttl).await, result),
            Step::Delete(result) => (store.delete(key, etag).await, result),
        };
        match done {
            Ok(()) => return Ok(result),
            Err(PortError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::Unavailable(format!(
        "`{key}` kept changing under concurrent writers; retrying later"
    )))
}

/// Writes a document over `etag` (or as a new key when `None`).
pub async fn write<T: Serialize>(
    store: &dyn StateStore,
    key: &str,
    value: &T,
    etag: Option<&Etag>,
    ttl: Option<std::time::Duration>,
) -> Result<(), PortError> {
    let json = serde_json::to_value(value)
        .map_err(|e| PortError::Unavailable(format!("encoding `{key}`: {e}")))?;
    store.put(key, &json, etag, ttl).await
}

/// Several documents read in one call, and the writes decided on them, done in one transaction
/// with each write conditional on the version read: how an event that touches a task's record,
/// its reminders and the sweep's index costs two round trips rather than ten. A conflict means
/// another writer got there first: start over with a new batch.
#[derive(Default)]
pub struct Batch {
    /// Each key read, with its value and version, or `None` where it did not exist.
    read: HashMap<String, Option<(Value, Etag)>>,
    /// The writes decided so far, one per key.
    writes: BTreeMap<String, Write>,
}

impl Batch {
    /// Reads, in one call, those of `keys` not read yet.
    pub async fn read(
        &mut self,
        store: &dyn StateStore,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), PortError> {
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| !self.read.contains_key(k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let entries = store.get_many(&keys).await?;
        self.read.extend(keys.into_iter().zip(entries));
        Ok(())
    }

    /// The document at `key` as this batch leaves it: what it decided to write, or else what it
    /// read. A key neither read nor written reads as missing.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, PortError> {
        let value = match self.writes.get(key) {
            Some(Write::Put { value, .. }) => Some(value.clone()),
            Some(Write::Delete { .. }) => None,
            None => self
                .read
                .get(key)
                .cloned()
                .flatten()
                .map(|(value, _)| value),
        };
        value.map(|v| decode(key, v)).transpose()
    }

    /// The version of `key` as read, `None` when it did not exist (or was not read).
    pub fn etag(&self, key: &str) -> Option<&Etag> {
        self.read.get(key)?.as_ref().map(|(_, etag)| etag)
    }

    /// Writes `value` at `key`, over the version read (or as a new key).
    pub fn put<T: Serialize>(
        &mut self,
        key: &str,
        value: &T,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), PortError> {
        let etag = self.etag(key).cloned();
        self.put_over(key, value, etag, ttl)
    }

    /// Writes `value` at `key` over version `etag` (or as a new key), whatever was read.
    pub fn put_over<T: Serialize>(
        &mut self,
        key: &str,
        value: &T,
        etag: Option<Etag>,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), PortError> {
        let value = serde_json::to_value(value)
            .map_err(|e| PortError::Unavailable(format!("encoding `{key}`: {e}")))?;
        let write = Write::Put {
            key: key.to_owned(),
            value,
            etag,
            ttl,
        };
        self.writes.insert(key.to_owned(), write);
        Ok(())
    }

    /// Deletes `key` at the version read; a key read as missing needs nothing, one not read is
    /// deleted whatever its version.
    pub fn delete(&mut self, key: &str) {
        match self.read.get(key) {
            Some(None) => {
                self.writes.remove(key);
            }
            read => {
                let etag = read.cloned().flatten().map(|(_, etag)| etag);
                let write = Write::Delete {
                    key: key.to_owned(),
                    etag,
                };
                self.writes.insert(key.to_owned(), write);
            }
        }
    }

    /// Does the writes decided, in one transaction (none when there are none).
    pub async fn commit(&self, store: &dyn StateStore) -> Result<(), PortError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes: Vec<Write> = self.writes.values().cloned().collect();
        store.transact(&writes).await
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
