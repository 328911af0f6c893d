//! Where the relay sends events: Dapr pub/sub through the sidecar (in bulk), or, with no
//! sidecar, the in-process subscribers.

use std::collections::BTreeMap;

use futures::future::join_all;
use serde_json::Value;
use todo_dapr::app::PUBSUB_NAME;
use todo_dapr::client::{BulkEntry, with_trace};
use todo_dapr::{DaprClient, DaprError};

use super::bus::EventBus;

/// One event to deliver.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub envelope: &'a Value,
    /// Its W3C trace context, which Dapr carries on to the subscribers.
    pub traceparent: Option<&'a str>,
}

/// Nothing could be delivered because the sidecar does not answer: no event is at fault.
#[derive(Debug, thiserror::Error)]
#[error("the Dapr sidecar cannot be reached: {0}")]
pub struct Unreachable(pub String);

/// What became of each event of a delivery, in the order given: delivered, or why not.
pub type Delivered = Vec<Result<(), String>>;

#[derive(Clone)]
pub enum Sink {
    Dapr(DaprClient),
    InProcess(EventBus),
}

impl Sink {
    /// Delivers events that may go out in any order (the relay passes at most one event per
    /// task), answering for each.
    pub async fn deliver(&self, events: &[Outgoing<'_>]) -> Result<Delivered, Unreachable> {
        match self {
            Sink::Dapr(client) => publish(client, events).await,
            Sink::InProcess(bus) => {
                let mut delivered = Vec::with_capacity(events.len());
                for event in events {
                    // As from Dapr, the subscribers read the trace from the envelope.
                    let envelope = with_trace(event.envelope, event.traceparent);
                    delivered.push(bus.deliver(event.topic, &envelope).await);
                }
                Ok(delivered)
            }
        }
    }
}

/// One bulk publish per topic, all at once.
async fn publish(client: &DaprClient, events: &[Outgoing<'_>]) -> Result<Delivered, Unreachable> {
    let mut by_topic: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        by_topic.entry(event.topic).or_default().push(i);
    }
    let calls = by_topic.into_iter().map(|(topic, indices)| async move {
        let envelopes: Vec<Value> = indices
            .iter()
            .map(|&i| with_trace(events[i].envelope, events[i].traceparent))
            .collect();
        (indices, publish_topic(client, topic, &envelopes).await)
    });
    let mut delivered = vec![Ok(()); events.len()];
    for (indices, answers) in join_all(calls).await {
        for (i, answer) in indices.into_iter().zip(answers?) {
            delivered[i] = answer;
        }
    }
    Ok(delivered)
}

/// Publishes `envelopes` to `topic`: one bulk call, and when the sidecar refuses the call as a
/// whole (a broker without bulk support fails it for one bad entry, though others went out),
/// each event alone, to tell the bad ones from the rest. Those sent twice are absorbed by the
/// consumers, which process an event id once.
async fn publish_topic(
    client: &DaprClient,
    topic: &str,
    envelopes: &[Value],
) -> Result<Delivered, Unreachable> {
    let entries = BulkEntry::numbered(envelopes);
    let whole = match client.bulk_publish(PUBSUB_NAME, topic, &entries).await {
        Ok(failed) => {
            let mut delivered = vec![Ok(()); envelopes.len()];
            for entry in failed {
                if let Some(slot) = entry
                    .id
                    .parse()
                    .ok()
                    .and_then(|i: usize| delivered.get_mut(i))
                {
                    *slot = Err(entry.error);
                }
            }
            return Ok(delivered);
        }
        Err(DaprError::Unreachable(e)) => return Err(Unreachable(e)),
        Err(e) if envelopes.len() == 1 => return Ok(vec![Err(e.to_string())]),
        Err(e) => e,
    };
    tracing::debug!(%topic, error = %whole, events = envelopes.len(), "a bulk publish failed; publishing its events one by one");
    let singles = join_all(
        envelopes
            .iter()
            .map(|envelope| client.publish(PUBSUB_NAME, topic, envelope, None)),
    )
    .await;
    singles
        .into_iter()
        .map(|sent| match sent {
            Ok(()) => Ok(Ok(())),
            Err(DaprError::Unreachable(e)) => Err(Unreachable(e)),
            Err(e) => Ok(Err(e.to_string())),
        })
        .collect()
}
