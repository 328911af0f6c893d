//! `todo-mcp`: task tools for AI assistants over the Model Context Protocol.
//!
//! Layout:
//! - [`config`]: command line and environment.
//! - [`startup`]: wires everything together and runs a transport (stdio or HTTP).
//! - [`http`] and [`auth`]: the streamable HTTP endpoint, its bearer-token check and probes.
//! - [`tools`]: the MCP tools, their argument and result shapes.
//! - [`tasks`]: task operations, listing and storage; [`notifications`]: fired reminders.
//! - [`outbox`]: lifecycle events written in the same transaction as each change; [`events`]:
//!   relaying them and consuming the events the server reacts to.
//! - [`scheduling`]: without a sidecar, the scheduler's engine on this server's database.
//! - [`db`]: one handle over PostgreSQL or the embedded SQLite file, and the migrations.
//! - [`error`]: the error type and how errors reach a model.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod notifications;
pub mod outbox;
pub mod push;
pub mod scheduling;
pub mod secrets;
pub mod startup;
pub mod tasks;
pub mod tools;
