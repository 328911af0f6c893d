//! A small client of the Dapr sidecar's HTTP API: health, publishing, secrets, state and jobs.
//!
//! The sidecar announces itself through `DAPR_HTTP_PORT`; without it a service runs embedded.
//! Calls carry `dapr-api-token` when the sidecar requires one (`DAPR_API_TOKEN`). State entries
//! carry their ETag as the sidecar gives it, an opaque string.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Why a sidecar call failed.
#[derive(Debug, thiserror::Error)]
pub enum DaprError {
    #[error("cannot reach the Dapr sidecar: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("the Dapr sidecar answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the secret store answered without the key `{0}`")]
    MissingKey(String),
    /// A first-write save or delete lost a race: the key changed since it was read (or, for an
    /// insert, exists already). Read again and retry.
    #[error("the state changed concurrently (ETag mismatch)")]
    EtagMismatch,
}

/// One entry of a state read: the value and its ETag, or `None` for a key that does not exist.
pub type StateEntry = Option<(Value, String)>;

/// The sidecar's HTTP API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DaprClient {
    http: reqwest::Client,
    /// `http://127.0.0.1:<DAPR_HTTP_PORT>`.
    base: String,
    /// Sent as `dapr-api-token` when the sidecar is configured with one.
    api_token: Option<String>,
}

impl DaprClient {
    pub fn new(http_port: u16, api_token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: format!("http://127.0.0.1:{http_port}"),
            api_token,
        }
    }

    /// The sidecar of this process, if one announced itself through `DAPR_HTTP_PORT`.
    pub fn from_env() -> Option<Self> {
        let port = std::env::var("DAPR_HTTP_PORT").ok()?.parse().ok()?;
        Some(Self::new(port, std::env::var("DAPR_API_TOKEN").ok()))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_token {
            Some(token) => rb.header("dapr-api-token", token),
            None => rb,
        }
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, DaprError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(DaprError::Status {
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        })
    }

    /// Whether the sidecar can reach its components now (for readiness probes).
    pub async fn outbound_ready(&self) -> bool {
        self.request(reqwest::Method::GET, "/v1.0/healthz/outbound")
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Waits until the sidecar can reach its components (it may start after the app, or restart),
    /// retrying with backoff rather than failing. Returns false if `shutdown` came first.
    pub async fn wait_ready(&self, shutdown: &CancellationToken) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .request(reqwest::Method::GET, "/v1.0/healthz/outbound")
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return true,
                Ok(r) => tracing::info!(status = %r.status(), "waiting for the Dapr sidecar"),
                Err(e) => tracing::info!(error = %e, "waiting for the Dapr sidecar"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Publishes a CloudEvent as is: with `application/cloudevents+json` Dapr keeps our envelope
    /// and only adds its tracing and routing attributes, continuing the trace in `traceparent`.
    pub async fn publish(
        &self,
        pubsub: &str,
        topic: &str,
        envelope: &Value,
        traceparent: Option<&str>,
    ) -> Result<(), DaprError> {
        let mut request = self
            .request(
                reqwest::Method::POST,
                &format!("/v1.0/publish/{pubsub}/{topic}"),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/cloudevents+json",
            );
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        let response = request.body(envelope.to_string()).send().await?;
        Self::check(response).await.map(drop)
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
    ) -> Result<Option<std::collections::HashMap<String, String>>, DaprError> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1.0/secrets/{store}/{name}"),
            )
            .send()
            .await?;
        // Dapr answers 204 or an error status for a missing key, depending on the store.
        if response.status() == reqwest::StatusCode::NO_CONTENT
            || response.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        Ok(Some(Self::check(response).await?.json().await?))
    }

    /// Reads one state entry with its ETag; `Ok(None)` when the key does not exist.
    pub async fn get_state(&self, store: &str, key: &str) -> Result<StateEntry, DaprError> {
        let response = self
            .request(reqwest::Method::GET, &format!("/v1.0/state/{store}/{key}"))
            .header("consistency", "strong")
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let response = Self::check(response).await?;
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let value: Value = response.json().await?;
        Ok(etag.map(|etag| (value, etag)))
    }

    /// Reads several entries in one call, in the order of `keys`.
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: &[String],
    ) -> Result<Vec<StateEntry>, DaprError> {
        #[derive(Deserialize)]
        struct Item {
            key: String,
            data: Option<Value>,
            etag: Option<String>,
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let response = self
            .request(reqwest::Method::POST, &format!("/v1.0/state/{store}/bulk"))
            .json(&json!({ "keys": keys, "parallelism": 16 }))
            .send()
            .await?;
        let items: Vec<Item> = Self::check(response).await?.json().await?;
        let mut found: std::collections::HashMap<String, (Value, String)> = items
            .into_iter()
            .filter_map(|i| Some((i.key, (i.data?, i.etag?))))
            .collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    /// Saves one entry with first-write concurrency: with an ETag, only over that version;
    /// without one, only if the key does not exist yet. `ttl` lets the store expire it.
    pub async fn save_state(
        &self,
        store: &str,
        key: &str,
        value: &Value,
        etag: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(), DaprError> {
        let mut item = json!({
            "key": key,
            "value": value,
            "options": { "concurrency": "first-write", "consistency": "strong" },
        });
        if let Some(etag) = etag {
            item["etag"] = json!(etag);
        }
        if let Some(ttl) = ttl {
            item["metadata"] = json!({ "ttlInSeconds": ttl.as_secs().max(1).to_string() });
        }
        let response = self
            .request(reqwest::Method::POST, &format!("/v1.0/state/{store}"))
            .json(&[item])
            .send()
            .await?;
        Self::check_state_write(response).await
    }

    /// Deletes one entry, only at version `etag` when one is given. Deleting a missing key
    /// succeeds.
    pub async fn delete_state(
        &self,
        store: &str,
        key: &str,
        etag: Option<&str>,
    ) -> Result<(), DaprError> {
        let mut request = self
            .request(
                reqwest::Method::DELETE,
                &format!("/v1.0/state/{store}/{key}"),
            )
            .header("concurrency", "first-write");
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        Self::check_state_write(request.send().await?).await
    }

    /// Maps a lost first-write race to [`DaprError::EtagMismatch`]. Dapr answers 409 for a stale
    /// ETag, but the Redis store reports an insert over an existing key (no ETag given) as a
    /// 500 whose message says the script "failed to set key".
    async fn check_state_write(response: reqwest::Response) -> Result<(), DaprError> {
        match Self::check(response).await {
            Ok(_) => Ok(()),
            Err(DaprError::Status { status: 409, .. }) => Err(DaprError::EtagMismatch),
            Err(DaprError::Status { status: 500, body })
                if body.contains("failed to set key") || body.contains("failed to delete") =>
            {
                Err(DaprError::EtagMismatch)
            }
            Err(e) => Err(e),
        }
    }

    /// Schedules (or reschedules) the one-shot job `name` at `due`, through the Dapr Jobs API:
    /// the Dapr scheduler service keeps it durably and calls the app at `POST /job/<name>` when
    /// it is due, retrying every second while the app fails (up to `max_retries`).
    pub async fn schedule_job(
        &self,
        name: &str,
        due: DateTime<Utc>,
        data: &Value,
        max_retries: u32,
    ) -> Result<(), DaprError> {
        let body = json!({
            "dueTime": due.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": data,
            "overwrite": true,
            "failurePolicy": { "constant": { "interval": "1s", "maxRetries": max_retries } },
        });
        let response = self
            .request(reqwest::Method::POST, &format!("/v1.0-alpha1/jobs/{name}"))
            .json(&body)
            .send()
            .await?;
        Self::check(response).await.map(drop)
    }

    /// Deletes the job `name`; deleting a job that does not exist succeeds.
    pub async fn delete_job(&self, name: &str) -> Result<(), DaprError> {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &format!("/v1.0-alpha1/jobs/{name}"),
            )
            .send()
            .await?;
        Self::check(response).await.map(drop)
    }
}
