//! Task events that Dapr delivers at the same time, applied together.
//!
//! Dapr delivers the `tasks` topic to the app concurrently, one request per event (as many at
//! once as the pub/sub component's `concurrency`). Each request hands its event to one worker
//! and waits for the answer; the worker takes every event waiting and applies them together
//! ([`Engine::handle_events`]), so that under load an event costs a share of one read, one
//! transaction and one write rather than three round trips of its own. An event that arrives
//! alone is applied at once, waiting for nothing.

use chrono::Utc;
use serde_json::Value;
use todo_shared::incoming::Disposition;
use tokio::sync::{mpsc, oneshot};

use crate::engine::Engine;

/// Most events applied together.
const MAX_BATCH: usize = 256;

/// Events queued for the worker beyond which a request waits for room.
const QUEUE: usize = 1024;

/// An event and where its answer goes.
type Delivery = (Value, oneshot::Sender<Disposition>);

/// The way in to the worker; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    deliveries: mpsc::Sender<Delivery>,
}

impl Intake {
    /// Starts the worker, which runs until every `Intake` is dropped.
    pub fn start(engine: Engine) -> Self {
        let (deliveries, mut waiting) = mpsc::channel::<Delivery>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (envelopes, replies): (Vec<Value>, Vec<_>) = batch.drain(..).unzip();
                metrics::histogram!("todo_scheduler_batch_events").record(envelopes.len() as f64);
                let engine = engine.clone();
                // Its own task, so that a panic fails this batch and not the worker.
                let applied =
                    tokio::spawn(async move { engine.handle_events(&envelopes, Utc::now()).await })
                        .await;
                let answers = applied.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "applying task events failed");
                    vec![stopping(); replies.len()]
                });
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The request may have gone (Dapr timed out): it redelivers the event.
                    let _ = reply.send(answer);
                }
            }
        });
        Self { deliveries }
    }

    /// Applies one event (with whatever else is waiting) and answers it.
    pub async fn handle(&self, envelope: Value) -> Disposition {
        let (reply, answer) = oneshot::channel();
        if self.deliveries.send((envelope, reply)).await.is_err() {
            return stopping();
        }
        answer.await.unwrap_or_else(|_| stopping())
    }
}

fn stopping() -> Disposition {
    Disposition::Retry("the scheduler could not apply the event; Dapr delivers it again".into())
}
