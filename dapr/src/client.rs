//! The Dapr sidecar's API over gRPC, with the `dapr` crate: readiness, pub/sub (one event or a
//! bulk), secrets, state with ETags and TTLs, and jobs.
//!
//! The sidecar announces itself through `DAPR_GRPC_ENDPOINT` or `DAPR_GRPC_PORT` (the crate's
//! [`ClientOptions`] reads them, with `DAPR_API_TOKEN`); without either a service runs embedded.
//!
//! Every call goes through the crate's generated client on one HTTP/2 channel, rather than its
//! high-level `dapr::Client`: that one connects when it is built (our services start before their
//! sidecar and wait for it), keeps its channel to itself (bulk publish, which it lacks, would need
//! a second connection), and has no deadline per call. The channel connects lazily and reconnects
//! on its own when the sidecar restarts.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dapr::client::{
    ApiTokenInterceptor, ClientOptions, DAPR_GRPC_ENDPOINT_ENV, DAPR_GRPC_PORT_ENV,
    TonicClientWithAuth,
};
use dapr::dapr::proto::common::v1::{
    Etag, JobFailurePolicy, JobFailurePolicyConstant, StateItem, StateOptions,
    job_failure_policy::Policy,
    state_options::{StateConcurrency, StateConsistency},
};
use dapr::dapr::proto::runtime::v1::{
    BulkPublishRequest, BulkPublishRequestEntry, DeleteJobRequest, DeleteStateRequest,
    ExecuteStateTransactionRequest, GetBulkStateRequest, GetMetadataRequest, GetSecretRequest,
    GetStateRequest, Job, PublishEventRequest, SaveStateRequest, ScheduleJobRequest,
    TransactionalStateOperation, dapr_client::DaprClient as Grpc,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Endpoint;

/// The content type of every event we publish: Dapr keeps our envelope as it is, adding only its
/// tracing and routing attributes.
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// The longest a sidecar call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sidecar call failed.
#[derive(Debug, thiserror::Error)]
pub enum DaprError {
    /// The sidecar did not answer (not started, restarting, or too slow): try again later.
    #[error("cannot reach the Dapr sidecar: {0}")]
    Unreachable(String),
    /// The sidecar answered with an error.
    #[error("the Dapr sidecar answered {code:?}: {message}")]
    Status { code: Code, message: String },
    #[error("the secret store answered without the key `{0}`")]
    MissingKey(String),
    /// A first-write save or delete lost a race: the key changed since it was read (or, for an
    /// insert, exists already). Read again and retry.
    #[error("the state changed concurrently (ETag mismatch)")]
    EtagMismatch,
    /// A state entry holds something other than JSON (written by someone else).
    #[error("state entry `{key}` is not JSON: {error}")]
    NotJson { key: String, error: String },
    #[error("the Dapr client is misconfigured: {0}")]
    Config(String),
}

impl From<tonic::Status> for DaprError {
    fn from(status: tonic::Status) -> Self {
        let message: String = status.message().chars().take(500).collect();
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                DaprError::Unreachable(message)
            }
            code => DaprError::Status { code, message },
        }
    }
}

/// One entry of a state read: the value and its ETag, or `None` for a key that does not exist.
pub type StateEntry = Option<(Value, String)>;

/// One event of a bulk publish.
#[derive(Debug, Clone)]
pub struct BulkEntry<'a> {
    /// Names the entry in the sidecar's answer (unique within the call).
    pub id: String,
    /// The CloudEvent, published as is.
    pub envelope: &'a Value,
}

impl<'a> BulkEntry<'a> {
    /// One entry per envelope, named by its index, which a failed entry's id gives back.
    pub fn numbered(envelopes: &'a [Value]) -> Vec<BulkEntry<'a>> {
        envelopes
            .iter()
            .enumerate()
            .map(|(i, envelope)| BulkEntry {
                id: i.to_string(),
                envelope,
            })
            .collect()
    }
}

/// A bulk entry the sidecar did not publish, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub error: String,
}

/// One write of [`DaprClient::transact_state`].
#[derive(Debug, Clone, Copy)]
pub enum StateWrite<'a> {
    Save {
        key: &'a str,
        value: &'a Value,
        etag: Option<&'a str>,
        ttl: Option<Duration>,
    },
    Delete {
        key: &'a str,
        etag: Option<&'a str>,
    },
}

/// The sidecar's gRPC API. Cheap to clone: clones share one channel.
#[derive(Debug, Clone)]
pub struct DaprClient {
    grpc: TonicClientWithAuth,
}

impl DaprClient {
    /// A client of the sidecar at `address` (`http://host:port`), connecting on first use.
    pub fn new(address: &str, api_token: Option<String>) -> Result<Self, DaprError> {
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| DaprError::Config(format!("bad sidecar address `{address}`: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        let token = ApiTokenInterceptor::try_new(api_token)
            .map_err(|e| DaprError::Config(format!("DAPR_API_TOKEN: {e}")))?;
        Ok(Self {
            grpc: Grpc::with_interceptor(endpoint.connect_lazy(), token),
        })
    }

    /// The sidecar of this process, if one announced itself (`DAPR_GRPC_ENDPOINT` or
    /// `DAPR_GRPC_PORT`). An announced but unusable address is an error, not "no sidecar".
    pub fn from_env() -> Result<Option<Self>, DaprError> {
        if !sidecar_announced() {
            return Ok(None);
        }
        let options = ClientOptions::from_env().map_err(|e| DaprError::Config(e.to_string()))?;
        Self::new(options.address(), options.api_token().map(str::to_owned)).map(Some)
    }

    fn grpc(&self) -> TonicClientWithAuth {
        self.grpc.clone()
    }

    /// Whether the sidecar answers its API now (for readiness probes). Dapr serves its API once
    /// its components are loaded.
    pub async fn ready(&self) -> bool {
        self.grpc()
            .get_metadata(GetMetadataRequest {})
            .await
            .is_ok()
    }

    /// Waits until the sidecar answers (it may start after the app, or restart), retrying with
    /// backoff rather than failing. Returns false if `shutdown` came first.
    pub async fn wait_ready(&self, shutdown: &CancellationToken) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.grpc().get_metadata(GetMetadataRequest {}).await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::info!(error = %DaprError::from(e), "waiting for the Dapr sidecar")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Publishes one CloudEvent; `traceparent` continues its trace (W3C trace context).
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        envelope: &Value,
        traceparent: Option<&str>,
    ) -> Result<(), DaprError> {
        let mut request = tonic::Request::new(PublishEventRequest {
            pubsub_name: pubsub.to_owned(),
            topic: topic.to_owned(),
            data: with_trace(envelope, traceparent).to_string().into_bytes(),
            data_content_type: CLOUDEVENTS_JSON.to_owned(),
            metadata: HashMap::new(),
        });
        if let Some(value) = traceparent.and_then(|tp| tp.parse().ok()) {
            request.metadata_mut().insert("traceparent", value);
        }
        self.grpc().publish_event(request).await?;
        Ok(())
    }

    /// Publishes several CloudEvents to one topic in one call. The sidecar publishes the entries
    /// concurrently, in no particular order. A broker without bulk support (Redis streams) fails
    /// the whole call when one entry fails, though others may have gone out; one with it lists
    /// the entries that failed.
    pub async fn bulk_publish(
        &self,
        pubsub: &str,
        topic: &str,
        entries: &[BulkEntry<'_>],
    ) -> Result<Vec<FailedEntry>, DaprError> {
        let request = BulkPublishRequest {
            pubsub_name: pubsub.to_owned(),
            topic: topic.to_owned(),
            entries: entries
                .iter()
                .map(|entry| BulkPublishRequestEntry {
                    entry_id: entry.id.clone(),
                    event: entry.envelope.to_string().into_bytes(),
                    content_type: CLOUDEVENTS_JSON.to_owned(),
                    metadata: HashMap::new(),
                })
                .collect(),
            metadata: HashMap::new(),
        };
        let response = self.grpc().bulk_publish_event(request).await?.into_inner();
        Ok(response
            .failed_entries
            .into_iter()
            .map(|f| FailedEntry {
                id: f.entry_id,
                error: f.error,
            })
            .collect())
    }

    /// Reads one secret; `Ok(None)` when the store does not have it.
    pub async fn secret(&self, store: &str, key: &str) -> Result<Option<String>, DaprError> {
        match self.secret_values(store, key).await? {
            None => Ok(None),
            Some(mut values) => values
                .remove(key)
                .map(Some)
                .ok_or_else(|| DaprError::MissingKey(key.to_owned())),
        }
    }

    /// Reads the secret `name` with all its keys (a Kubernetes Secret, or a multi-valued
    /// local store); `Ok(None)` when the store does not have it.
    pub async fn secret_values(
        &self,
        store: &str,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, DaprError> {
        let request = GetSecretRequest {
            store_name: store.to_owned(),
            key: name.to_owned(),
            metadata: HashMap::new(),
        };
        match self.grpc().get_secret(request).await {
            Ok(response) => {
                let data = response.into_inner().data;
                Ok((!data.is_empty()).then_some(data))
            }
            // Stores say "not found" in their own words, under a generic code.
            Err(status)
                if status.code() == Code::NotFound
                    || status.message().to_ascii_lowercase().contains("not found") =>
            {
                Ok(None)
            }
            Err(status) => Err(status.into()),
        }
    }

    /// Reads one state entry with its ETag; `Ok(None)` when the key does not exist.
    pub async fn get_state(&self, store: &str, key: &str) -> Result<StateEntry, DaprError> {
        let request = GetStateRequest {
            store_name: store.to_owned(),
            key: key.to_owned(),
            consistency: StateConsistency::ConsistencyStrong as i32,
            metadata: HashMap::new(),
        };
        let response = self.grpc().get_state(request).await?.into_inner();
        entry(key, response.data, response.etag)
    }

    /// Reads several entries in one call, in the order of `keys`.
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: &[String],
    ) -> Result<Vec<StateEntry>, DaprError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let request = GetBulkStateRequest {
            store_name: store.to_owned(),
            keys: keys.to_vec(),
            parallelism: 16,
            metadata: HashMap::new(),
        };
        let items = self
            .grpc()
            .get_bulk_state(request)
            .await?
            .into_inner()
            .items;
        let mut found = HashMap::with_capacity(items.len());
        for item in items {
            if !item.error.is_empty() {
                return Err(DaprError::Status {
                    code: Code::Internal,
                    message: format!("reading `{}`: {}", item.key, item.error),
                });
            }
            let value = entry(&item.key, item.data, item.etag)?;
            found.insert(item.key, value);
        }
        Ok(keys.iter().map(|k| found.remove(k).flatten()).collect())
    }

    /// Saves one entry: with an ETag, only over that version; without one, only if the key does
    /// not exist yet (see [`ABSENT`]). `ttl` lets the store expire it; without one it never
    /// expires, whatever TTL the entry had.
    pub async fn save_state(
        &self,
        store: &str,
        key: &str,
        value: &Value,
        etag: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(), DaprError> {
        let request = SaveStateRequest {
            store_name: store.to_owned(),
            states: vec![state_item(
                key,
                Some(value),
                Some(etag.unwrap_or(ABSENT)),
                ttl,
            )],
        };
        state_write(self.grpc().save_state(request).await)
    }

    /// Deletes one entry, only at version `etag` when one is given. Deleting a missing key
    /// succeeds.
    pub async fn delete_state(
        &self,
        store: &str,
        key: &str,
        etag: Option<&str>,
    ) -> Result<(), DaprError> {
        let request = DeleteStateRequest {
            store_name: store.to_owned(),
            key: key.to_owned(),
            etag: etag.map(|value| Etag {
                value: value.to_owned(),
            }),
            options: Some(first_write()),
            metadata: HashMap::new(),
        };
        state_write(self.grpc().delete_state(request).await)
    }

    /// Does several saves and deletes in one call (Dapr's state transaction), each under the
    /// condition [`DaprClient::save_state`] and [`DaprClient::delete_state`] give it;
    /// [`DaprError::EtagMismatch`] when any condition fails. The Redis store runs them in one
    /// `MULTI` but does not roll back: the writes whose conditions held are kept.
    pub async fn transact_state(
        &self,
        store: &str,
        writes: &[StateWrite<'_>],
    ) -> Result<(), DaprError> {
        let operations = writes
            .iter()
            .map(|write| match *write {
                StateWrite::Save {
                    key,
                    value,
                    etag,
                    ttl,
                } => TransactionalStateOperation {
                    operation_type: "upsert".to_owned(),
                    request: Some(state_item(
                        key,
                        Some(value),
                        Some(etag.unwrap_or(ABSENT)),
                        ttl,
                    )),
                },
                StateWrite::Delete { key, etag } => TransactionalStateOperation {
                    operation_type: "delete".to_owned(),
                    request: Some(state_item(key, None, etag, None)),
                },
            })
            .collect();
        let request = ExecuteStateTransactionRequest {
            store_name: store.to_owned(),
            operations,
            metadata: HashMap::new(),
        };
        state_write(self.grpc().execute_state_transaction(request).await)
    }

    /// Schedules (or reschedules) the one-shot job `name` at `due`, through the Dapr Jobs API:
    /// the Dapr scheduler service keeps it durably and calls the app at `POST /job/<name>` when
    /// it is due, retrying every second while the app fails (up to `max_retries`).
    pub async fn schedule_job(
        &self,
        name: &str,
        due: DateTime<Utc>,
        max_retries: u32,
    ) -> Result<(), DaprError> {
        let job = Job {
            name: name.to_owned(),
            due_time: Some(due.to_rfc3339_opts(SecondsFormat::Millis, true)),
            failure_policy: Some(JobFailurePolicy {
                policy: Some(Policy::Constant(JobFailurePolicyConstant {
                    interval: Some(prost_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    max_retries: Some(max_retries),
                })),
            }),
            ..Job::default()
        };
        let request = ScheduleJobRequest {
            job: Some(job),
            overwrite: true,
        };
        self.grpc().schedule_job(request).await?;
        Ok(())
    }

    /// Deletes the job `name`; deleting a job that does not exist succeeds.
    pub async fn delete_job(&self, name: &str) -> Result<(), DaprError> {
        let request = DeleteJobRequest {
            name: name.to_owned(),
        };
        self.grpc().delete_job(request).await?;
        Ok(())
    }
}

/// The envelope with its trace context as CloudEvents attributes (the distributed-tracing
/// extension), where Dapr keeps it: it keeps an envelope's `traceparent` when `traceid` is
/// present too, and otherwise puts its own.
pub fn with_trace(envelope: &Value, traceparent: Option<&str>) -> Value {
    let mut envelope = envelope.clone();
    if let (Some(tp), Some(attributes)) = (traceparent, envelope.as_object_mut()) {
        attributes.insert("traceparent".into(), tp.into());
        attributes.insert("traceid".into(), tp.into());
    }
    envelope
}

/// Whether this process runs beside a sidecar: Dapr sets `DAPR_GRPC_PORT` in the app's
/// environment (`dapr run`, the sidecar injector); `DAPR_GRPC_ENDPOINT` names a remote one.
pub fn sidecar_announced() -> bool {
    [DAPR_GRPC_ENDPOINT_ENV, DAPR_GRPC_PORT_ENV]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// A state read's answer as an entry: Dapr answers a missing key with no data and no ETag.
fn entry(key: &str, data: Vec<u8>, etag: String) -> Result<StateEntry, DaprError> {
    if data.is_empty() && etag.is_empty() {
        return Ok(None);
    }
    let value = serde_json::from_slice(&data).map_err(|e| DaprError::NotJson {
        key: key.to_owned(),
        error: e.to_string(),
    })?;
    Ok(Some((value, etag)))
}

/// The ETag a save names to create its key only if it does not exist: no entry ever has it.
///
/// Dapr's first-write concurrency would say the same without an ETag, but the Redis store
/// ignores it inside transactions and honours it outside only over entries that were themselves
/// written with it; its scripts do refuse any ETag but the current one over an existing entry,
/// and accept any over a missing one.
const ABSENT: &str = "-1";

fn state_item(
    key: &str,
    value: Option<&Value>,
    etag: Option<&str>,
    ttl: Option<Duration>,
) -> StateItem {
    let mut metadata = HashMap::new();
    if value.is_some() {
        // A save without a TTL never expires, even over an entry that had one: the Redis store
        // keeps an entry's expiry unless the save says otherwise, and -1 removes it.
        let seconds = ttl.map_or_else(|| "-1".to_owned(), |t| t.as_secs().max(1).to_string());
        metadata.insert("ttlInSeconds".to_owned(), seconds);
    }
    StateItem {
        key: key.to_owned(),
        value: value
            .map(|v| v.to_string().into_bytes())
            .unwrap_or_default(),
        etag: etag.map(|value| Etag {
            value: value.to_owned(),
        }),
        metadata,
        options: Some(first_write()),
    }
}

fn first_write() -> StateOptions {
    StateOptions {
        concurrency: StateConcurrency::ConcurrencyFirstWrite as i32,
        consistency: StateConsistency::ConsistencyStrong as i32,
    }
}

/// Maps a lost race to [`DaprError::EtagMismatch`]. Dapr answers `Aborted` for a stale ETag in a
/// single save or delete, but reports a transaction whose Redis script refused a write as an
/// internal error that says it "failed to set key" or "failed to delete".
fn state_write<T>(result: Result<T, tonic::Status>) -> Result<(), DaprError> {
    match result {
        Ok(_) => Ok(()),
        Err(status)
            if status.code() == Code::Aborted
                || status.message().contains("failed to set key")
                || status.message().contains("failed to delete") =>
        {
            Err(DaprError::EtagMismatch)
        }
        Err(status) => Err(status.into()),
    }
}
