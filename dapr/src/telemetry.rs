//! Logs and traces. Every service logs to stderr (stdout may carry the MCP protocol), and exports
//! its spans over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the OpenTelemetry SDK's own
//! variables (`OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`, ...) configure the export.
//!
//! A trace crosses processes as a W3C `traceparent`: events carry it as the CloudEvents
//! distributed-tracing attribute, and the sidecar as gRPC metadata. Each hop starts its span as
//! a child of the `traceparent` it received ([`continue_trace`]) and hands on its own
//! ([`traceparent`]), so a tool call, the event it commits, the scheduler's work on it, the
//! reminder it fires and the notification recorded are one trace.

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The variable whose presence turns the export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans not yet exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter (at exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing the last spans failed");
        }
    }
}

/// Installs logging (filtered by `RUST_LOG`, else `default_filter`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the span export of `service`. A misconfigured exporter
/// is logged and leaves the service running without it.
pub fn init(service: &'static str, default_filter: &str) -> Telemetry {
    crate::tls::install_crypto_provider();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let exporting = std::env::var_os(OTLP_ENDPOINT_ENV).is_some_and(|v| !v.is_empty());
    let (provider, failure) = if exporting {
        match tracer_provider(service) {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let spans = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(e) = failure {
        tracing::error!(error = %e, "the OTLP span exporter could not start: no traces exported");
    } else if provider.is_some() {
        tracing::info!(service, "exporting traces over OTLP");
    }
    Telemetry { provider }
}

fn tracer_provider(service: &'static str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Makes `span` a child of the span `traceparent` names; without one (or with a malformed one)
/// the span starts a trace of its own.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` naming `span`, for the next hop; `None` when spans are not exported (then
/// a hop hands on the `traceparent` it received, which keeps the trace id).
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}
