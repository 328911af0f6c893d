//! The one path every tool call takes: parse the arguments (naming any that do not fit), resolve
//! the calling user, run the tool's operation, and answer with structured content (described by
//! the tool's `outputSchema`) plus a text summary.
//!
//! Failures are tool results with `isError: true` and a message that says what to change, never
//! protocol errors: a model can read and act on them.

use std::future::Future;

use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use todo_dapr::telemetry;
use tracing::Instrument;

use super::access::Need;
use super::args::parse_at;
use super::{Caller, TodoServer, schema};
use crate::error::{AppError, AppResult};

/// A tool: what the model reads about it, the shapes of its arguments and result, and the
/// operation it runs for the calling user.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    type Args: DeserializeOwned + JsonSchema + Send + 'static;
    type Output: Serialize + JsonSchema + Send + 'static;

    /// Whether the tool reads only, destroys, or can be repeated harmlessly.
    fn annotations() -> ToolAnnotations;

    fn run(
        server: &TodoServer,
        args: Self::Args,
        caller: Caller,
    ) -> impl Future<Output = AppResult<Self::Output>> + Send;

    /// One line for clients that show only text.
    fn summary(output: &Self::Output) -> String;
}

/// The route of tool `T` in the server's router.
pub fn route<T: Tool>() -> ToolRoute<TodoServer> {
    let attr = rmcp::model::Tool::new(T::NAME, T::DESCRIPTION, schema::input::<T::Args>())
        .with_title(T::TITLE)
        .with_raw_output_schema(schema::output::<T::Output>())
        .with_annotations(T::annotations());
    ToolRoute::new_dyn(attr, |ctx: ToolCallContext<'_, TodoServer>| {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let server = ctx.service;
            let args = parse_args::<T::Args>(ctx.arguments.unwrap_or_default());
            // Each call is a trace of its own (not a part of the session's), or goes on with the
            // client's (`_meta.traceparent`, SEP-414); the events it commits carry it on.
            let span = tracing::info_span!(
                parent: None,
                "tools/call",
                otel.name = %format_args!("tools/call {}", T::NAME),
                tool = T::NAME,
            );
            telemetry::continue_trace(&span, ctx.request_context.meta.get_traceparent());
            let need = match T::annotations().read_only_hint {
                Some(true) => Need::Read,
                _ => Need::Write,
            };
            let result = match (args, server.caller(&ctx.request_context, need)) {
                (Ok(args), Ok(caller)) => T::run(server, args, caller).instrument(span).await,
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics::counter!("todo_tool_calls_total", "tool" => T::NAME, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("todo_tool_call_duration_seconds", "tool" => T::NAME)
                .record(started.elapsed());
            Ok(respond(result, T::summary).into())
        })
    })
}

/// Names and explains the tool metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "todo_tool_calls_total",
        "Tool calls by tool and outcome (ok, error)"
    );
    metrics::describe_histogram!(
        "todo_tool_call_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a tool call, by tool"
    );
}

/// Parses tool arguments, naming the argument at fault when one does not fit (rmcp's own
/// extraction reports serde's message without the field).
fn parse_args<T: DeserializeOwned>(raw: JsonObject) -> AppResult<T> {
    parse_at(serde_json::Value::Object(raw), "")
}

/// Turns an operation's result into a tool result: structured content plus `summary` on
/// success, an `isError` result with an actionable message on failure.
fn respond<T: Serialize>(
    result: AppResult<T>,
    summary: impl FnOnce(&T) -> String,
) -> CallToolResult {
    match result {
        Ok(out) => match serde_json::to_value(&out) {
            Ok(value) => {
                // The JSON text too, for clients that read only `content`.
                let json = value.to_string();
                let mut r = CallToolResult::success(vec![
                    ContentBlock::text(summary(&out)),
                    ContentBlock::text(json),
                ]);
                r.structured_content = Some(value);
                r
            }
            Err(e) => failure(&AppError::Internal(format!("serialising the result: {e}"))),
        },
        Err(e) => failure(&e),
    }
}

fn failure(e: &AppError) -> CallToolResult {
    if e.is_caller_error() {
        tracing::debug!(error = %e, "tool call rejected");
    } else {
        tracing::error!(error = %e, "tool call failed");
    }
    CallToolResult::error(vec![ContentBlock::text(e.public_message())])
}
