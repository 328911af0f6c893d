//! Where the relay sends events: Dapr pub/sub through the sidecar, or, with no sidecar, the
//! in-process subscribers.

use serde_json::Value;

use super::bus::EventBus;
use todo_dapr::DaprClient;
use todo_dapr::app::PUBSUB_NAME;

/// Why an event was not delivered; the relay retries it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the Dapr sidecar refused the event: {0}")]
    Sidecar(String),
    #[error("an in-process subscriber asked for a retry: {0}")]
    Subscriber(String),
}

#[derive(Clone)]
pub enum Sink {
    Dapr(DaprClient),
    InProcess(EventBus),
}

impl Sink {
    /// Delivers one event; `traceparent` is its W3C trace context, which Dapr carries on.
    pub async fn publish(
        &self,
        topic: &str,
        envelope: &Value,
        traceparent: Option<&str>,
    ) -> Result<(), PublishError> {
        match self {
            Sink::Dapr(client) => client
                .publish(PUBSUB_NAME, topic, envelope, traceparent)
                .await
                .map_err(|e| PublishError::Sidecar(e.to_string())),
            Sink::InProcess(bus) => bus
                .deliver(topic, envelope)
                .await
                .map_err(PublishError::Subscriber),
        }
    }
}
