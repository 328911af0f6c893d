//! Event delivery around the outbox.
//!
//! - [`relay`]: publishes committed outbox rows, in order per task, once each.
//! - [`sink`]: where they go: Dapr pub/sub through the sidecar, or the in-process [`bus`] when the
//!   server runs embedded without a sidecar.
//! - [`consumers`]: what the server does with the events it subscribes to, idempotently,
//!   whichever way they arrive; [`subscriptions`] serves them to Dapr.
//!
//! The outbox's statements are `crate::store::outbox`; here is the machinery around them.

pub mod bus;
pub mod consumers;
pub mod relay;
pub mod sink;
pub mod subscriptions;
