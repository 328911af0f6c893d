//! Types shared by `todo-mcp` and `todo-scheduler`.
//!
//! - [`task`]: the task and its parts as validated domain values (`TaskTitle::parse`, …).
//! - [`time`]: parsing due times and time zones, with defined DST behaviour.
//! - [`recurrence`]: recurrence rules and `next_occurrence`.
//! - [`reminder`]: reminder specifications.
//! - [`snapshot`]: the task as tool results and event payloads show it.
//! - [`events`]: lifecycle event payloads and their CloudEvents 1.0 envelopes.
//! - [`dapr`]: a client of the Dapr sidecar's HTTP API (pub/sub, secrets, state, jobs);
//!   [`dapr_app`]: the app side of the protocol (token check, subscriber answers).
//! - [`shutdown`]: the signals both services stop on.
//!
//! Nothing outside this crate sees unvalidated input: each boundary parses into these types.

pub mod dapr;
pub mod dapr_app;
pub mod error;
pub mod events;
pub mod recurrence;
pub mod reminder;
pub mod shutdown;
pub mod snapshot;
pub mod task;
pub mod time;

pub use error::ValidationError;
