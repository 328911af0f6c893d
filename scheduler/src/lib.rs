//! `todo-scheduler`: drives reminders and recurring series from task lifecycle events.
//!
//! Layers, each importing only from those below it:
//! - [`startup`] wires the service from [`config`]; [`app`]: the HTTP routes Dapr calls.
//! - [`engine`]: applies task events to the scheduler's state and fires due reminders and
//!   occurrences; [`sweep`]: the reconciliation sweep and the index it reads.
//! - [`incoming`]: task events parsed into what the engine needs; [`records`]: the documents the
//!   engine keeps, one per state key, and [`records::update`], the one way they change.
//! - [`ports`]: the state store, durable jobs and publisher the engine runs on. [`dapr`]
//!   implements them on the sidecar (this service); embedded `todo-mcp` implements them on its
//!   own database, so the same engine runs there without Dapr.
//!   [`memory`] implements them in memory, for property tests and fuzzing.

pub mod app;
pub mod config;
pub mod dapr;
pub mod engine;
pub mod incoming;
pub mod memory;
pub mod ports;
pub mod records;
pub mod startup;
pub mod sweep;

pub use engine::{Engine, JobName, Settings};
pub use ports::{Jobs, PortError, Publisher, StateStore};
