//! `todo-mcp`: task tools for AI assistants over the Model Context Protocol.
//!
//! Layers, each importing only from those below it:
//!
//! - [`startup`]: wires everything together and runs a transport (stdio or HTTP), from
//!   [`config`] and [`secrets`]; [`admin`] runs an operator's command with the same parts.
//! - The edges, each facing one kind of caller:
//!   [`http`]: the streamable HTTP endpoint, its bearer-token check and probes;
//!   [`mcp`]: the tools (the only module that knows rmcp);
//!   [`events`]: the outbox relay and the consumers of the events the server subscribes to;
//!   [`scheduling`]: without a sidecar, the scheduler's engine run in-process.
//! - [`app`]: what the server does: the services and the parsed commands they take.
//! - [`store`]: every SQL statement, over PostgreSQL or the embedded SQLite file, one module
//!   per table, and the migrations.
//! - [`error`]: the error type, and how errors reach a model.
//!
//! Below them all is the domain crate, `todo_shared`: validated values, times, recurrence,
//! snapshots and events, with no I/O.

pub mod admin;
pub mod app;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod mcp;
pub mod scheduling;
pub mod secrets;
pub mod startup;
pub mod store;
