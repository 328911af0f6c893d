//! The app side of the Dapr protocol, for the axum routers both services serve to their sidecar:
//! the `dapr-api-token` check, the subscriptions' bulk delivery, and the subscriber's answer.
//!
//! Every subscription asks for bulk delivery ([`bulk_subscribe`]): the sidecar then sends the
//! events it holds for a route in one request rather than one request each, which costs the
//! sidecar and the app a fraction per event under load. A route still accepts a single event (a
//! declarative subscription without bulk, a sidecar that does not batch), so [`read_delivery`]
//! reads either and [`Answers`] answers in the same shape.
//!
//! The subscriptions name no `deadLetterTopic`: [`deliver`] publishes an event that can never be
//! processed to [`DEAD_LETTER_TOPIC`] itself, then answers DROP. Dapr 1.18's bulk delivery looks a
//! dropped entry up by its place among all the batch's entries in the share of one route (or of
//! one retry round), so with a dead-letter topic a DROP in a batch split across routes crashes
//! the sidecar (`DeliverBulk`, index out of range) and would again on every redelivery.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use todo_shared::incoming::Disposition;

use crate::DaprClient;
use crate::client::BulkEntry;

/// Where the services publish the events they can never process ([`deliver`]).
pub use todo_shared::events::DEAD_LETTER_TOPIC;

/// The Dapr pub/sub component both services use (see `components/pubsub.yaml`).
pub const PUBSUB_NAME: &str = "pubsub";

/// Most events the sidecar delivers in one bulk request; also the pub/sub component's
/// `concurrency` (see `components/pubsub.yaml`), since the sidecar holds one of its workers per
/// event it batches and so never gathers more than that.
pub const BULK_MAX_EVENTS: u32 = 100;

/// How long the sidecar waits for a batch to fill before it delivers what it has: the most a
/// bulk subscription adds to an event's delivery.
pub const BULK_MAX_AWAIT_MS: u32 = 5;

/// The `bulkSubscribe` field of a programmatic subscription.
pub fn bulk_subscribe() -> Value {
    json!({
        "enabled": true,
        "maxMessagesCount": BULK_MAX_EVENTS,
        "maxAwaitDurationMs": BULK_MAX_AWAIT_MS,
    })
}

/// A bulk delivery's body as Dapr sends it (`topic`, `pubsubname` and the rest are not needed).
#[derive(Deserialize)]
struct BulkBody {
    entries: Vec<DeliveredEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveredEntry {
    entry_id: String,
    event: Value,
}

/// Reads what one request from the sidecar delivers to a subscription's route: its events in
/// order, and how to answer it. A body that is not JSON can never be processed. A bulk delivery
/// is told apart by its `entries` (a CloudEvent has none).
pub fn read_delivery(body: &[u8]) -> Result<(Vec<Value>, Answers), Disposition> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Disposition::Drop(format!("the body is not JSON: {e}")))?;
    if value.get("entries").is_none_or(|e| !e.is_array()) {
        return Ok((vec![value], Answers::One));
    }
    let bulk = BulkBody::deserialize(value)
        .map_err(|e| Disposition::Drop(format!("the bulk delivery is malformed: {e}")))?;
    let (ids, events) = bulk
        .entries
        .into_iter()
        .map(|e| (e.entry_id, e.event))
        .unzip();
    Ok((events, Answers::Bulk(ids)))
}

/// How to answer the request that delivered some events, once each has its disposition: Dapr's
/// subscriber protocol is 200 with a `status` (SUCCESS, RETRY or DROP) for one event, and a
/// `statuses` list naming each entry for a bulk delivery.
#[derive(Debug)]
pub enum Answers {
    One,
    Bulk(Vec<String>),
}

impl Answers {
    /// The answer, with `dispositions` in the order of the events. An event left without one
    /// (never expected) is answered RETRY, so that it is delivered again rather than lost.
    pub fn answer(self, dispositions: Vec<Disposition>) -> Response {
        let mut dispositions = dispositions.into_iter();
        let mut next = || {
            let d = dispositions.next().unwrap_or_else(|| {
                Disposition::Retry("the event was not processed; Dapr delivers it again".into())
            });
            record(&d);
            d.status()
        };
        let body = match self {
            Answers::One => json!({ "status": next() }),
            Answers::Bulk(ids) => {
                let statuses: Vec<Value> = ids
                    .into_iter()
                    .map(|id| json!({ "entryId": id, "status": next() }))
                    .collect();
                json!({ "statuses": statuses })
            }
        };
        (StatusCode::OK, Json(body)).into_response()
    }
}

/// Serves a subscription's route: every delivered event goes through `handle`, concurrently, and
/// the sidecar gets one disposition per event. Events answered DROP are first published to
/// [`DEAD_LETTER_TOPIC`] through `dead_letters` (see the module docs); one that cannot be is
/// answered RETRY instead, so that nothing is lost.
pub async fn deliver<F, Fut>(body: &[u8], dead_letters: Option<&DaprClient>, handle: F) -> Response
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Disposition>,
{
    let (events, answers) = match read_delivery(body) {
        Ok(delivery) => delivery,
        // Nothing in it can be read, so nothing to dead-letter.
        Err(drop) => return Answers::One.answer(vec![drop]),
    };
    let mut dispositions = futures::future::join_all(events.into_iter().map(handle)).await;
    if let Some(sidecar) = dead_letters {
        dead_letter(sidecar, body, &mut dispositions).await;
    }
    answers.answer(dispositions)
}

/// Publishes the dropped events to the dead-letter topic, or turns their DROP into RETRY.
async fn dead_letter(sidecar: &DaprClient, body: &[u8], dispositions: &mut [Disposition]) {
    let dropped: Vec<usize> = (0..dispositions.len())
        .filter(|&i| matches!(dispositions[i], Disposition::Drop(_)))
        .collect();
    if dropped.is_empty() {
        return;
    }
    // Rare, so the events are read again rather than kept for every delivery.
    let Ok((events, _)) = read_delivery(body) else {
        return;
    };
    let envelopes: Vec<Value> = dropped.iter().map(|&i| events[i].clone()).collect();
    let published = sidecar
        .bulk_publish(
            PUBSUB_NAME,
            DEAD_LETTER_TOPIC,
            &BulkEntry::numbered(&envelopes),
        )
        .await;
    // The entries are numbered by their place in `dropped`.
    let (unpublished, failure): (Vec<usize>, String) = match published {
        Ok(failed) if failed.is_empty() => return,
        Ok(failed) => (
            failed
                .iter()
                .filter_map(|f| dropped.get(f.id.parse::<usize>().ok()?).copied())
                .collect(),
            failed[0].error.clone(),
        ),
        // A broker without bulk support fails the whole call.
        Err(e) => (dropped, e.to_string()),
    };
    tracing::warn!(error = %failure, "could not publish dropped events to the dead-letter topic");
    for i in unpublished {
        dispositions[i] = Disposition::Retry(format!(
            "the event cannot be processed and could not be moved to the dead-letter topic \
             ({failure}); Dapr delivers it again"
        ));
    }
}

/// Counts an answer, and logs a failure with its cause so that a retry loop or a dead letter can
/// be diagnosed.
fn record(disposition: &Disposition) {
    metrics::counter!("todo_events_consumed_total", "status" => disposition.status()).increment(1);
    match disposition {
        Disposition::Success => {}
        Disposition::Retry(reason) => {
            tracing::warn!(%reason, "event processing failed; asking Dapr to retry");
        }
        Disposition::Drop(reason) => {
            tracing::error!(%reason, "dropping an event that cannot be processed");
        }
    }
}

/// The app port takes events and job calls: without the token, anything that reaches it could
/// forge them.
#[derive(Debug, thiserror::Error)]
#[error(
    "APP_API_TOKEN is not set: beside a sidecar, the app port takes its events and job calls, and \
     without the token anything that reaches the port could forge them. Give the app and its \
     sidecar the same APP_API_TOKEN (the Helm chart does; with `dapr run`, export it first), or \
     pass --insecure-no-app-token (TODO_INSECURE_NO_APP_TOKEN=true) to run without it"
)]
pub struct MissingAppToken;

/// The token the app port requires of its caller (`APP_API_TOKEN`, which the sidecar presents):
/// required, unless the operator chose `insecure` explicitly, which is logged.
pub fn required_app_token(
    token: Option<String>,
    insecure: bool,
) -> Result<Option<String>, MissingAppToken> {
    match token.filter(|t| !t.is_empty()) {
        Some(token) => Ok(Some(token)),
        None if insecure => {
            tracing::warn!(
                "APP_API_TOKEN is not set and --insecure-no-app-token is: the app port answers \
                 anyone who reaches it"
            );
            Ok(None)
        }
        None => Err(MissingAppToken),
    }
}

/// Wraps `routes` so that, given a token ([`required_app_token`]), only the sidecar (which
/// sends it as `dapr-api-token`) is answered.
pub fn with_app_token(routes: Router, api_token: Option<String>) -> Router {
    match api_token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_app_token,
        )),
        None => routes,
    }
}

async fn require_app_token(
    State(token): State<Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get("dapr-api-token")
        .map(|v| v.as_bytes());
    if given.is_some_and(|g| constant_time_eq(g, token.as_bytes())) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong dapr-api-token").into_response()
    }
}

/// Compares without an early exit, so response timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answered(response: Response) -> Value {
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        serde_json::from_slice(&body).expect("a JSON answer")
    }

    /// A handler that answers by the event's `id`: `r…` RETRY, `d…` DROP, else SUCCESS.
    async fn by_id(event: Value) -> Disposition {
        match event["id"].as_str().unwrap_or_default() {
            id if id.starts_with('r') => Disposition::Retry("later".into()),
            id if id.starts_with('d') => Disposition::Drop("never".into()),
            _ => Disposition::Success,
        }
    }

    #[tokio::test]
    async fn a_single_event_gets_a_single_status() {
        let body = json!({ "specversion": "1.0", "id": "r1", "type": "t", "data": {} });
        let answer = answered(deliver(body.to_string().as_bytes(), None, by_id).await).await;
        assert_eq!(answer, json!({ "status": "RETRY" }));
    }

    #[tokio::test]
    async fn a_bulk_delivery_gets_one_status_per_entry_by_entry_id() {
        let body = json!({
            "id": "request", "topic": "tasks", "pubsubname": "pubsub",
            "type": "com.dapr.event.sent.bulk", "metadata": {},
            "entries": [
                { "entryId": "e1", "event": { "id": "s1" }, "metadata": {}, "contentType": "application/cloudevents+json" },
                { "entryId": "e2", "event": { "id": "d2" }, "metadata": {} },
                { "entryId": "e3", "event": { "id": "r3" }, "metadata": {} },
            ]
        });
        let answer = answered(deliver(body.to_string().as_bytes(), None, by_id).await).await;
        assert_eq!(
            answer,
            json!({ "statuses": [
                { "entryId": "e1", "status": "SUCCESS" },
                { "entryId": "e2", "status": "DROP" },
                { "entryId": "e3", "status": "RETRY" },
            ]})
        );
    }

    #[tokio::test]
    async fn unreadable_deliveries_are_dropped_not_retried() {
        for body in [&b"not json"[..], br#"{"entries": [{"event": {}}]}"#] {
            let answer = answered(deliver(body, None, by_id).await).await;
            assert_eq!(answer, json!({ "status": "DROP" }), "{body:?}");
        }
    }

    #[test]
    fn an_event_left_without_a_disposition_is_retried() {
        let answers = Answers::Bulk(vec!["a".into(), "b".into()]);
        let response = answers.answer(vec![Disposition::Success]);
        let answer = futures::executor::block_on(answered(response));
        assert_eq!(
            answer["statuses"][1],
            json!({ "entryId": "b", "status": "RETRY" })
        );
    }

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
