//! The MCP messages of the load generator, built and read with rmcp's model types.
//!
//! Only the messages come from rmcp: the transports stay ours (a bare hyper keep-alive
//! connection per HTTP client, line-delimited JSON to a spawned `todo-mcp` on stdio). The load
//! generator shares the 2 cores with the server and PostgreSQL; rmcp's client, with a task hop
//! and a reqwest call per request, would be measured as the server's cost.

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientJsonRpcMessage,
    ClientNotification, ClientRequest, Implementation, InitializeRequestParams,
    InitializedNotification, JsonObject, JsonRpcError, JsonRpcResponse, NumberOrString,
    ProtocolVersion, Request, ServerJsonRpcMessage, ServerResult,
};
use serde::de::IgnoredAny;

/// The protocol version the load generator speaks: the newest with an `initialize` handshake.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::LATEST_WITH_INITIALIZE;

/// Why a call did not count as a success.
#[derive(Debug)]
pub enum CallError {
    /// Transport problem: the connection is reset before the next call.
    Io(String),
    /// The server answered, but not with a successful tool result.
    Rejected(String),
    /// HTTP 429: the server refused the request over the user's fair share; `retry_after` is
    /// its `Retry-After` (seconds) when it sent one.
    Refused {
        retry_after: Option<std::time::Duration>,
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "transport: {e}"),
            CallError::Rejected(e) => write!(f, "rejected: {e}"),
            CallError::Refused { message, .. } => write!(f, "refused: {message}"),
        }
    }
}

/// One tool with its arguments, called over and over.
pub struct ToolCall {
    tool: String,
    /// The arguments as given: `{n}` anywhere in them becomes the request id of each call.
    args: String,
}

impl ToolCall {
    /// Checks that `args`, with a sample counter, is a JSON object.
    pub fn new(tool: &str, args: &str) -> anyhow::Result<Self> {
        let call = Self {
            tool: tool.to_owned(),
            args: args.to_owned(),
        };
        call.arguments(0)?;
        Ok(call)
    }

    fn arguments(&self, n: u64) -> anyhow::Result<JsonObject> {
        let text = self.args.replace("{n}", &n.to_string());
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("--args must be a JSON object: {e}"))
    }

    /// The `tools/call` request with id `n`, serialised.
    pub fn request(&self, n: u64) -> anyhow::Result<Vec<u8>> {
        let params =
            CallToolRequestParams::new(self.tool.clone()).with_arguments(self.arguments(n)?);
        let message = ClientJsonRpcMessage::request(
            ClientRequest::CallToolRequest(Request::new(params)),
            id(n),
        );
        Ok(serde_json::to_vec(&message)?)
    }
}

fn id(n: u64) -> NumberOrString {
    NumberOrString::Number(n as i64)
}

/// The `initialize` request (id 0) and the `initialized` notification, one line each.
pub fn handshake() -> anyhow::Result<String> {
    let params = InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("todo-bench", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(PROTOCOL_VERSION);
    let init = ClientJsonRpcMessage::request(
        ClientRequest::InitializeRequest(Request::new(params)),
        id(0),
    );
    let initialized = ClientJsonRpcMessage::notification(
        ClientNotification::InitializedNotification(InitializedNotification::default()),
    );
    Ok(format!(
        "{}\n{}\n",
        serde_json::to_string(&init)?,
        serde_json::to_string(&initialized)?
    ))
}

/// What one line says about the `initialize` request: `None` when it is not its answer.
pub fn initialize_answer(line: &str) -> Option<Result<(), String>> {
    match serde_json::from_str::<ServerJsonRpcMessage>(line).ok()? {
        ServerJsonRpcMessage::Response(r) if r.id == id(0) => Some(match r.result {
            ServerResult::InitializeResult(_) => Ok(()),
            _ => Err(format!("not an initialize result: {}", truncate(line, 300))),
        }),
        ServerJsonRpcMessage::Error(e) if e.id == Some(id(0)) => Some(Err(e.error.message.into())),
        _ => None,
    }
}

/// Whether a tool result failed, and nothing else of it: all the load generator needs of an
/// answer. Building the whole `CallToolResult` of a `list_tasks` page (its content and structured
/// content) costs about four times the CPU of skipping over them, on the cores the server is
/// measured on; the full result is read only when a call failed or its content is wanted.
#[derive(serde::Deserialize)]
struct ErrorFlag {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
    /// Required, as in every tool result; skipped.
    #[serde(rename = "content")]
    _content: IgnoredAny,
}

/// What one message says about `tools/call` request `n`: `None` when it is not its answer.
///
/// A `tools/call` is answered by one of two variants of `ServerJsonRpcMessage`; each is parsed
/// directly, as the untagged message enum would buffer and copy the whole body for every
/// variant it tries.
fn answer(message: &str, n: u64) -> Option<Result<(), CallError>> {
    if let Ok(r) = serde_json::from_str::<JsonRpcResponse<ErrorFlag>>(message) {
        return (r.id == id(n)).then(|| match r.result.is_error {
            Some(true) => full_result(message).map(drop),
            _ => Ok(()),
        });
    }
    if let Ok(e) = serde_json::from_str::<JsonRpcError>(message) {
        return (e.id == Some(id(n))).then(|| {
            Err(CallError::Rejected(format!(
                "JSON-RPC error {}: {}",
                e.error.code.0, e.error.message
            )))
        });
    }
    match serde_json::from_str::<JsonRpcResponse<IgnoredAny>>(message) {
        Ok(r) if r.id == id(n) => Some(Err(CallError::Rejected(format!(
            "not a tool result: {}",
            truncate(message, 400)
        )))),
        // A notification or request of the server, or the answer to another request.
        _ => None,
    }
}

/// The whole tool result of an answer; a result flagged `isError` is a failed call.
fn full_result(message: &str) -> Result<CallToolResult, CallError> {
    let result = serde_json::from_str::<JsonRpcResponse<CallToolResult>>(message)
        .map_err(|e| CallError::Rejected(format!("not a tool result ({e})")))?
        .result;
    if result.is_error != Some(true) {
        return Ok(result);
    }
    let said = result
        .content
        .iter()
        .find_map(|c| c.as_text())
        .map_or("", |t| t.text.as_str());
    Err(CallError::Rejected(format!(
        "tool error: {}",
        truncate(said, 300)
    )))
}

/// The messages of an HTTP response body: one JSON message, or SSE whose `data:` lines carry
/// messages.
fn messages(body: &[u8]) -> Result<Vec<&str>, CallError> {
    let text =
        std::str::from_utf8(body).map_err(|_| CallError::Rejected("non-UTF-8 body".into()))?;
    let trimmed = text.trim_start();
    Ok(if trimmed.starts_with('{') {
        vec![trimmed]
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect()
    })
}

fn no_answer(body: &[u8], n: u64) -> CallError {
    CallError::Rejected(format!(
        "no answer to request {n} in: {}",
        truncate(&String::from_utf8_lossy(body), 400)
    ))
}

/// Whether the HTTP response `body` answers `tools/call` request `n` with a successful result.
pub fn tool_succeeded(body: &[u8], n: u64) -> Result<(), CallError> {
    messages(body)?
        .into_iter()
        .find_map(|m| answer(m, n))
        .unwrap_or_else(|| Err(no_answer(body, n)))
}

/// The successful result of `tools/call` request `n` in an HTTP response body.
pub fn tool_result(body: &[u8], n: u64) -> Result<CallToolResult, CallError> {
    let messages = messages(body)?;
    let found = messages.iter().find_map(|m| Some((*m, answer(m, n)?)));
    match found {
        Some((message, Ok(()))) => full_result(message),
        Some((_, Err(e))) => Err(e),
        None => Err(no_answer(body, n)),
    }
}

/// What one line of the stdio stream says about request `n`: `None` when it is another message
/// (a notification, say), to be skipped.
pub fn stdio_answer(line: &str, n: u64) -> Option<Result<(), CallError>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    answer(line, n)
}

/// At most `n` bytes of `s`, cut at a character boundary.
pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn request_substitutes_the_counter() {
        let call = ToolCall::new("add_task", r#"{"title":"t {n}","limit":{n}}"#).unwrap();
        let v: Value = serde_json::from_slice(&call.request(7).unwrap()).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["params"]["name"], "add_task");
        assert_eq!(v["params"]["arguments"]["title"], "t 7");
        assert_eq!(v["params"]["arguments"]["limit"], 7);
        assert!(ToolCall::new("x", "[1]").is_err());
    }

    #[test]
    fn handshake_is_two_lines() {
        let text = handshake().unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["method"], "initialize");
        assert_eq!(lines[0]["params"]["protocolVersion"], "2025-11-25");
        assert_eq!(lines[1]["method"], "notifications/initialized");
    }

    #[test]
    fn reads_json_and_sse() {
        let ok = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"ok"}],"structuredContent":{"task":{"id":"abc"}},"isError":false}}"#;
        let r = tool_result(ok.as_bytes(), 3).unwrap();
        assert_eq!(r.structured_content.unwrap()["task"]["id"], "abc");
        let sse = format!(
            "data: \n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{}}}}\n\ndata: {ok}\n\n"
        );
        assert!(tool_result(sse.as_bytes(), 3).is_ok());
        assert!(tool_result(sse.as_bytes(), 4).is_err());
        let failed = r#"data: {"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"no such task"}],"isError":true}}"#;
        let e = tool_result(failed.as_bytes(), 3).unwrap_err().to_string();
        assert!(e.contains("no such task"), "{e}");
        let err = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"x"}}"#;
        assert!(tool_result(err.as_bytes(), 3).is_err());
    }

    #[test]
    fn stdio_skips_other_messages() {
        let note = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
        assert!(stdio_answer(note, 1).is_none());
        let other = r#"{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":false}}"#;
        assert!(stdio_answer(other, 1).is_none());
        assert!(stdio_answer(other, 2).unwrap().is_ok());
        let odd = r#"{"jsonrpc":"2.0","id":2,"result":{}}"#;
        assert!(stdio_answer(odd, 2).unwrap().is_err());
        let init = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"todo-mcp","version":"0.1.0"}}}"#;
        assert_eq!(initialize_answer(init), Some(Ok(())));
        assert_eq!(initialize_answer(note), None);
    }
}
