//! The engine's ports on the Dapr sidecar: the state store, the Jobs API and pub/sub.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use todo_dapr::app::PUBSUB_NAME;
use todo_dapr::client::{BulkEntry, StateWrite, with_trace};
use todo_dapr::{DaprClient, DaprError};
use todo_shared::events::OutgoingEvent;

use crate::ports::{Etag, Jobs, PortError, Publisher, StateStore, Write};

/// How often the Dapr scheduler service retries a job whose call failed (once a second): about
/// an hour, after which the sweep takes over.
const JOB_MAX_RETRIES: u32 = 3600;

/// The sidecar, with the names of the components the scheduler uses.
#[derive(Clone)]
pub struct Sidecar {
    pub client: DaprClient,
    /// The state store component (`statestore`).
    pub state_store: String,
}

fn port_error(e: DaprError) -> PortError {
    match e {
        DaprError::EtagMismatch => PortError::Conflict,
        other => PortError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl StateStore for Sidecar {
    async fn get(&self, key: &str) -> Result<Option<(Value, Etag)>, PortError> {
        let entry = self.client.get_state(&self.state_store, key).await;
        Ok(entry
            .map_err(port_error)?
            .map(|(value, etag)| (value, Etag(etag))))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(Value, Etag)>>, PortError> {
        let entries = self.client.get_bulk_state(&self.state_store, keys).await;
        Ok(entries
            .map_err(port_error)?
            .into_iter()
            .map(|e| e.map(|(value, etag)| (value, Etag(etag))))
            .collect())
    }

    async fn put(
        &self,
        key: &str,
        value: &Value,
        etag: Option<&Etag>,
        ttl: Option<Duration>,
    ) -> Result<(), PortError> {
        self.client
            .save_state(
                &self.state_store,
                key,
                value,
                etag.map(|e| e.0.as_str()),
                ttl,
            )
            .await
            .map_err(port_error)
    }

    async fn delete(&self, key: &str, etag: Option<&Etag>) -> Result<(), PortError> {
        self.client
            .delete_state(&self.state_store, key, etag.map(|e| e.0.as_str()))
            .await
            .map_err(port_error)
    }

    async fn transact(&self, writes: &[Write]) -> Result<(), PortError> {
        let writes: Vec<StateWrite> = writes
            .iter()
            .map(|write| match write {
                Write::Put {
                    key,
                    value,
                    etag,
                    ttl,
                } => StateWrite::Save {
                    key,
                    value,
                    etag: etag.as_ref().map(|e| e.0.as_str()),
                    ttl: *ttl,
                },
                Write::Delete { key, etag } => StateWrite::Delete {
                    key,
                    etag: etag.as_ref().map(|e| e.0.as_str()),
                },
            })
            .collect();
        self.client
            .transact_state(&self.state_store, &writes)
            .await
            .map_err(port_error)
    }
}

#[async_trait]
impl Jobs for Sidecar {
    async fn schedule(&self, name: &str, due: DateTime<Utc>) -> Result<(), PortError> {
        // The job carries nothing the state does not: its name says what to fire.
        self.client
            .schedule_job(name, due, JOB_MAX_RETRIES)
            .await
            .map_err(port_error)
    }

    async fn cancel(&self, name: &str) -> Result<(), PortError> {
        self.client.delete_job(name).await.map_err(port_error)
    }
}

#[async_trait]
impl Publisher for Sidecar {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        self.client
            .publish(
                PUBSUB_NAME,
                event.event_type.topic(),
                &event.envelope,
                event.traceparent.as_deref(),
            )
            .await
            .map_err(port_error)
    }

    /// One bulk publish per topic. On Redis streams a failed call may have published some
    /// entries; the engine publishes them again under the same ids.
    async fn publish_all(&self, events: &[OutgoingEvent]) -> Result<(), PortError> {
        let mut by_topic: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for event in events {
            let envelope = with_trace(&event.envelope, event.traceparent.as_deref());
            by_topic
                .entry(event.event_type.topic())
                .or_default()
                .push(envelope);
        }
        for (topic, envelopes) in &by_topic {
            let entries = BulkEntry::numbered(envelopes);
            let failed = self
                .client
                .bulk_publish(PUBSUB_NAME, topic, &entries)
                .await
                .map_err(port_error)?;
            if let Some(first) = failed.first() {
                return Err(PortError::Unavailable(format!(
                    "{} of {} events to `{topic}` were not published: {}",
                    failed.len(),
                    entries.len(),
                    first.error
                )));
            }
        }
        Ok(())
    }
}
