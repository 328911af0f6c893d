//! Scope challenges: a request that needs a scope its token lacks is answered 403 with
//! `error="insufficient_scope"` and the scope (RFC 6750 §3.1), which MCP clients read to ask
//! the user for more. The MCP handlers check the same again for every request they run
//! ([`crate::mcp::access`]); this layer only makes the refusal one a client can act on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Authenticator, challenge};
use crate::mcp::access::Need;
use crate::mcp::{AuthenticatedUser, TodoServer};

/// What the scope check needs.
#[derive(Clone)]
pub struct ScopeCheck {
    pub authenticator: Arc<Authenticator>,
    /// Tells which tools write.
    pub server: TodoServer,
    pub max_body_bytes: usize,
}

/// The part of a JSON-RPC message that says what it needs.
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Messages {
    One(Message),
    Batch(Vec<Message>),
}

/// axum middleware, after authentication: 403 for a request its token's scopes do not cover.
pub async fn require_scope(
    State(check): State<ScopeCheck>,
    request: Request,
    next: Next,
) -> Response {
    let Some(access) = request
        .extensions()
        .get::<AuthenticatedUser>()
        .map(|u| u.access.clone())
    else {
        return next.run(request).await;
    };
    if access.is_full() {
        return next.run(request).await;
    }
    let (needs, request) = match *request.method() {
        // `GET /mcp` is the user's stream of notifications.
        Method::GET if request.uri().path() == "/mcp" => (vec![Need::Read], request),
        Method::POST => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, check.max_body_bytes).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
            };
            let needs = needs_of(&bytes, &check.server);
            (needs, Request::from_parts(parts, Body::from(bytes)))
        }
        _ => (Vec::new(), request),
    };
    let missing = needs.into_iter().find_map(|need| access.missing(need));
    let Some(scope) = missing else {
        return next.run(request).await;
    };
    let description = format!("this request needs the `{scope}` scope");
    let value = challenge(
        check.authenticator.resource_metadata_url(),
        Some(("insufficient_scope", &description)),
        Some(scope),
    );
    let mut response = (StatusCode::FORBIDDEN, description.clone()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, value);
    response
}

/// What each message of a POSTed body needs; nothing for a body that is not JSON-RPC (the
/// transport refuses it).
fn needs_of(body: &[u8], server: &TodoServer) -> Vec<Need> {
    let messages = match serde_json::from_slice::<Messages>(body) {
        Ok(Messages::One(one)) => vec![one],
        Ok(Messages::Batch(many)) => many,
        Err(_) => return Vec::new(),
    };
    messages
        .iter()
        .filter_map(|m| {
            let method = m.method.as_deref()?;
            let tool = m.params.as_ref().and_then(|p| p.name.as_deref());
            Some(Need::of(method, tool.and_then(|t| server.tool_writes(t))))
        })
        .collect()
}
