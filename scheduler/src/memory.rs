//! The engine's ports in memory, with nothing behind them: for property tests and the fuzz
//! harness, which drive the engine with hostile events thousands of times a second. They keep
//! the ports' contracts (first-write ETags, named jobs that replace each other) so that the
//! engine behaves as it does on Dapr or the embedded database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use todo_shared::events::OutgoingEvent;

use crate::engine::{Engine, Settings};
use crate::ports::{Etag, Jobs, PortError, Publisher, StateStore, Write};

/// A state store: each write gets a new version, which is the entry's ETag; transactions are
/// atomic. TTLs are ignored.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, (Value, u64)>>,
    /// The last version handed out, shared by all keys so that a deleted and re-created entry
    /// never gets its old ETag back.
    version: Mutex<u64>,
}

impl MemoryStore {
    /// Every entry, ordered by key.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    fn next_version(&self) -> u64 {
        let mut v = self.version.lock().expect("not poisoned");
        *v += 1;
        *v
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<(Value, Etag)>, PortError> {
        let entries = self.entries.lock().expect("not poisoned");
        Ok(entries
            .get(key)
            .map(|(v, version)| (v.clone(), Etag(version.to_string()))))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(Value, Etag)>>, PortError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    async fn put(
        &self,
        key: &str,
        value: &Value,
        etag: Option<&Etag>,
        ttl: Option<Duration>,
    ) -> Result<(), PortError> {
        self.transact(&[Write::Put {
            key: key.to_owned(),
            value: value.clone(),
            etag: etag.cloned(),
            ttl,
        }])
        .await
    }

    async fn delete(&self, key: &str, etag: Option<&Etag>) -> Result<(), PortError> {
        self.transact(&[Write::Delete {
            key: key.to_owned(),
            etag: etag.cloned(),
        }])
        .await
    }

    async fn transact(&self, writes: &[Write]) -> Result<(), PortError> {
        let mut entries = self.entries.lock().expect("not poisoned");
        // All conditions first, so that a failed transaction changes nothing.
        for write in writes {
            let current = entries.get(write.key()).map(|(_, v)| v.to_string());
            let holds = match write {
                Write::Put { etag, .. } => etag.as_ref().map(|e| &e.0) == current.as_ref(),
                Write::Delete { etag: None, .. } => true,
                Write::Delete { etag: Some(e), .. } => current.is_none_or(|c| c == e.0),
            };
            if !holds {
                return Err(PortError::Conflict);
            }
        }
        for write in writes {
            match write {
                Write::Put { key, value, .. } => {
                    let version = self.next_version();
                    entries.insert(key.clone(), (value.clone(), version));
                }
                Write::Delete { key, .. } => {
                    entries.remove(key);
                }
            }
        }
        Ok(())
    }
}

/// Jobs by name with their due times; nothing fires them by itself (the caller does, with
/// [`crate::Engine::fire_job`], when it chooses).
#[derive(Default)]
pub struct MemoryJobs(Mutex<BTreeMap<String, DateTime<Utc>>>);

impl MemoryJobs {
    /// The scheduled jobs, by name.
    pub fn scheduled(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl Jobs for MemoryJobs {
    async fn schedule(&self, name: &str, due: DateTime<Utc>) -> Result<(), PortError> {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), due);
        Ok(())
    }

    async fn cancel(&self, name: &str) -> Result<(), PortError> {
        self.0.lock().expect("not poisoned").remove(name);
        Ok(())
    }
}

/// Keeps every published event, in order.
#[derive(Default)]
pub struct MemoryPublisher(Mutex<Vec<OutgoingEvent>>);

impl MemoryPublisher {
    /// What was published so far.
    pub fn published(&self) -> Vec<OutgoingEvent> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        self.0.lock().expect("not poisoned").push(event.clone());
        Ok(())
    }
}

/// An engine on fresh in-memory ports, the ports kept to look at.
pub struct InMemory {
    pub store: Arc<MemoryStore>,
    pub jobs: Arc<MemoryJobs>,
    pub published: Arc<MemoryPublisher>,
    pub engine: Engine,
}

impl InMemory {
    pub fn new(settings: Settings) -> Self {
        let store = Arc::new(MemoryStore::default());
        let jobs = Arc::new(MemoryJobs::default());
        let published = Arc::new(MemoryPublisher::default());
        let engine = Engine::new(store.clone(), jobs.clone(), published.clone(), settings);
        Self {
            store,
            jobs,
            published,
            engine,
        }
    }
}
