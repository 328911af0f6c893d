//! `todo-scheduler`: drives reminders and recurring series from task lifecycle events.
//!
//! Layers, each importing only from those below it:
//! - [`startup`] wires the service from [`config`]; [`app`]: the HTTP routes Dapr calls;
//!   [`intake`]: task events delivered at the same time, applied together.
//! - [`engine`]: fires due reminders and occurrences; [`apply`]: how a task event changes the
//!   scheduler's state; [`slots`]: the due slots, one job firing everything due in a second;
//!   [`sweep`]: the reconciliation sweep and the index it reads; [`resync`]: a lost state
//!   noticed, and rebuilt from `todo-mcp`'s database.
//! - [`incoming`]: task events parsed into what the engine needs; [`records`]: the documents the
//!   engine keeps, one per state key, and the two ways they change ([`records::update`],
//!   [`records::Batch`]).
//! - [`ports`]: the state store, durable jobs and publisher the engine runs on. [`dapr`]
//!   implements them on the sidecar (this service); embedded `todo-mcp` implements them on its
//!   own database, so the same engine runs there without Dapr.
//!   [`memory`] implements them in memory, for property tests and fuzzing; [`contract`] checks
//!   that a state store keeps the contract the engine relies on.

pub mod app;
pub mod apply;
pub mod config;
pub mod contract;
pub mod dapr;
pub mod engine;
pub mod incoming;
pub mod intake;
pub mod memory;
pub mod ports;
pub mod records;
pub mod resync;
pub mod slots;
pub mod startup;
pub mod sweep;

pub use engine::{Engine, JobName, Settings};
pub use ports::{Jobs, PortError, Publisher, StateStore};
