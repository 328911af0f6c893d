//! A small client of the Dapr sidecar's HTTP API: health, publishing and secrets.
//!
//! The sidecar announces itself through `DAPR_HTTP_PORT`; without it the server runs embedded.
//! Calls carry `dapr-api-token` when the sidecar requires one (`DAPR_API_TOKEN`).

use std::time::Duration;

use serde_json::Value;
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
}

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
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1.0/secrets/{store}/{key}"),
            )
            .send()
            .await?;
        // Dapr answers 204 or an error status for a missing key, depending on the store.
        if response.status() == reqwest::StatusCode::NO_CONTENT
            || response.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        let values: serde_json::Map<String, Value> = Self::check(response).await?.json().await?;
        match values.get(key) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(DaprError::MissingKey(key.to_owned())),
        }
    }
}
