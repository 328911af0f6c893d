//! The in-process event bus of embedded mode: the relay hands each event to the subscribers of
//! its topic, with the same answers a Dapr subscriber gives (success, retry, drop), so that
//! embedded mode processes exactly the events a sidecar would deliver.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

pub use todo_shared::incoming::Disposition;

/// Something that consumes events of some topics.
pub trait Subscriber: Send + Sync {
    fn topics(&self) -> &[&'static str];
    fn handle<'a>(&'a self, topic: &'a str, envelope: &'a Value) -> BoxFuture<'a, Disposition>;
}

/// The subscribers of this process.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Vec<Arc<dyn Subscriber>>,
}

impl EventBus {
    pub fn new(subscribers: Vec<Arc<dyn Subscriber>>) -> Self {
        Self { subscribers }
    }

    /// Hands the event to every subscriber of `topic`. An error asks the relay to retry; a dropped
    /// event is logged and counts as delivered, as it would with Dapr's dead-letter topic.
    pub async fn deliver(&self, topic: &str, envelope: &Value) -> Result<(), String> {
        for sub in self
            .subscribers
            .iter()
            .filter(|s| s.topics().contains(&topic))
        {
            match sub.handle(topic, envelope).await {
                Disposition::Success => {}
                Disposition::Retry(reason) => return Err(reason),
                Disposition::Drop(reason) => {
                    tracing::error!(%topic, id = %envelope["id"], %reason, "dropped an event that cannot be processed");
                }
            }
        }
        Ok(())
    }
}
