//! `todo-dapr`: the Dapr sidecar as `todo-mcp` and `todo-scheduler` both use it.
//!
//! - [`client`]: the sidecar's gRPC API through the `dapr` crate (readiness, pub/sub one event
//!   or in bulk, secrets, state with ETags and TTLs, jobs). A service finds its sidecar through
//!   `DAPR_GRPC_PORT`; without one it runs embedded.
//! - [`app`]: the app side of the protocol, for the routers the services serve to their sidecar:
//!   the `dapr-api-token` check, bulk subscriptions, and a subscriber's answers to the events
//!   delivered, with what it drops published to the dead-letter topic.
//! - [`metrics`]: the Prometheus endpoint both services serve beside the sidecar's own.
//! - [`shutdown`]: the signals both services stop on, so that the sidecar sees a clean exit.
//! - [`telemetry`]: logs to stderr, spans over OTLP when configured, and the W3C trace context
//!   that events and sidecar calls carry between the services.
//! - [`tls`]: the process's TLS crypto provider, chosen before any HTTP client is built.
//!
//! The domain (`todo-shared`) knows nothing of this crate: here is everything that talks to or
//! from the sidecar.

pub mod app;
pub mod client;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use client::{DaprClient, DaprError};
