//! What the engine needs from the world, as three small interfaces. The `todo-scheduler` service
//! implements them on the Dapr sidecar ([`crate::dapr`]); embedded `todo-mcp` implements them on
//! its own database, timers and in-process event bus.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use todo_shared::events::OutgoingEvent;

/// Why a port call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortError {
    /// A conditional write lost a race (the entry changed since it was read, or an insert found
    /// it present): read again and retry.
    #[error("the entry changed concurrently")]
    Conflict,
    /// The backing service is unreachable or failed; the work is retried later.
    #[error("{0}")]
    Unavailable(String),
}

/// A state entry's version, which a conditional write names (Dapr's ETags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag(pub String);

/// A key-value store with optimistic concurrency (Dapr's state API with first-write ETags).
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The entry and its version, or `None` when the key does not exist.
    async fn get(&self, key: &str) -> Result<Option<(Value, Etag)>, PortError>;

    /// Several entries at once, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(Value, Etag)>>, PortError>;

    /// Writes `value`: over version `etag` when given, otherwise only if the key does not exist
    /// ([`PortError::Conflict`] when the condition fails). With `ttl` the entry expires.
    async fn put(
        &self,
        key: &str,
        value: &Value,
        etag: Option<&Etag>,
        ttl: Option<Duration>,
    ) -> Result<(), PortError>;

    /// Deletes the entry (at version `etag` when given); a missing key is no error.
    async fn delete(&self, key: &str, etag: Option<&Etag>) -> Result<(), PortError>;

    /// Does several writes in one call, each under its own condition as [`StateStore::put`] and
    /// [`StateStore::delete`] have them; [`PortError::Conflict`] when any condition fails.
    ///
    /// Atomic where the store is (the database, memory). Dapr's Redis store does not roll back:
    /// the writes whose conditions held stay. A caller must therefore be able to start over from
    /// whatever a failed transaction left, as the engine's are (each write moves its entry
    /// toward the same end, and the task record, written last and alone, is the commit point).
    async fn transact(&self, writes: &[Write]) -> Result<(), PortError>;
}

/// One write of [`StateStore::transact`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Writes `value` over version `etag`, or creates the key when `etag` is `None` (only if it
    /// does not exist); with `ttl` the entry expires.
    Put {
        key: String,
        value: Value,
        etag: Option<Etag>,
        ttl: Option<Duration>,
    },
    /// Deletes the entry, at version `etag` when given.
    Delete { key: String, etag: Option<Etag> },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}

/// Durable one-shot timers, named so that scheduling a name again replaces its timer (the Dapr
/// Jobs API). A due job calls [`crate::Engine::fire_job`] with its name, until that succeeds.
#[async_trait]
pub trait Jobs: Send + Sync {
    async fn schedule(&self, name: &str, due: DateTime<Utc>) -> Result<(), PortError>;
    async fn cancel(&self, name: &str) -> Result<(), PortError>;
}

/// Where the engine's own events go: Dapr pub/sub, or the embedded outbox.
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError>;

    /// Publishes several events; where it fails, some may have gone out (their ids make a
    /// repeat harmless).
    async fn publish_all(&self, events: &[OutgoingEvent]) -> Result<(), PortError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }
}
