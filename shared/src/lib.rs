//! `todo-shared`: the domain of `todo-mcp` and `todo-scheduler`.
//!
//! Values, rules and event shapes only: this crate does no I/O and depends on no I/O crate (no
//! tokio, axum, reqwest or sqlx), so anything that only wants a `TaskTitle` (the fuzz targets,
//! the benchmark) gets just that. The Dapr sidecar is `todo-dapr`'s business.
//!
//! - [`task`]: the task and its parts as validated domain values (`TaskTitle::parse`, …).
//! - [`time`]: parsing due times and time zones, with defined DST behaviour.
//! - [`recurrence`]: recurrence rules and `next_occurrence`.
//! - [`reminder`]: reminder specifications.
//! - [`listing`]: which tasks a listing selects and in what order.
//! - [`snapshot`]: the task as tool results and event payloads show it.
//! - [`events`]: lifecycle event payloads and their CloudEvents 1.0 envelopes.
//! - [`contract`]: the events as a published contract (AsyncAPI), and its compatibility rule.
//! - [`incoming`]: events as a consumer receives them, and its answer ([`incoming::Disposition`]).
//! - [`schema`]: JSON Schemas in the standard vocabulary (tools and events).
//!
//! Nothing outside this crate sees unvalidated input: each boundary parses into these types.
//! [`error`] holds the one error of parsing, [`ValidationError`], written for a model to act on.

pub mod contract;
pub mod error;
pub mod events;
pub mod incoming;
pub mod listing;
pub mod recurrence;
pub mod reminder;
pub mod schema;
pub mod snapshot;
pub mod task;
pub mod time;

pub use error::ValidationError;
