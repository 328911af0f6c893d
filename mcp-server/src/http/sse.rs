//! The HTTP+SSE transport of protocol 2024-11-05, beside streamable HTTP, for the clients still
//! configured with it (`"type": "sse"`, a `/sse` URL): `GET /sse` opens a session's event
//! stream, whose first event (`endpoint`) names where the client POSTs its messages
//! (`/messages?sessionId=…`); each POST is answered 202 and its response comes on the stream.
//!
//! A session lives in the replica holding its stream, and ends when the stream closes: a load
//! balancer must send a session's POSTs to the replica of its `GET /sse` (docs/cluster.md). A
//! session belongs to the user who opened it: a POST from anyone else finds no such session.
//! Requests share their user's limits with `/mcp`: each holds its share of the user's requests in
//! flight from its POST until its response is on the stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, JsonRpcMessage, RequestId, ServerJsonRpcMessage,
};
use serde::Deserialize;
use todo_shared::task::UserId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::fairness::{Admission, Fairness};
use crate::mcp::{AuthenticatedUser, TodoServer};

/// Messages of one session waiting for the server to take them; a client that sends faster
/// waits for room.
const QUEUE: usize = 32;

/// Streams one user may hold open at once: each is a session with its own task.
pub const MAX_SESSIONS_PER_USER: usize = 16;

/// The sessions of this replica.
#[derive(Clone)]
pub struct SseSessions {
    server: TodoServer,
    fairness: Arc<Fairness>,
    sessions: Arc<Mutex<HashMap<Uuid, Session>>>,
    /// Ends every stream at shutdown.
    shutdown: CancellationToken,
    keep_alive: Duration,
}

/// One open stream.
struct Session {
    owner: UserId,
    /// To the session's MCP service.
    to_server: mpsc::Sender<ClientJsonRpcMessage>,
    /// The requests being answered, each holding its share of its user's limits until its
    /// response is on the stream.
    answering: Arc<Mutex<HashMap<RequestId, Admission>>>,
}

impl SseSessions {
    pub fn new(
        server: TodoServer,
        fairness: Arc<Fairness>,
        shutdown: CancellationToken,
        keep_alive: Duration,
    ) -> Self {
        Self {
            server,
            fairness,
            sessions: Arc::default(),
            shutdown,
            keep_alive,
        }
    }
}

/// `GET /sse`: opens a session and streams its messages, the `endpoint` event first.
pub async fn open_stream(
    State(sessions): State<SseSessions>,
    axum::Extension(caller): axum::Extension<AuthenticatedUser>,
) -> Response {
    let user = caller.user;
    let id = Uuid::new_v4();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(QUEUE);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(QUEUE);
    let answering: Arc<Mutex<HashMap<RequestId, Admission>>> = Arc::default();
    {
        let mut open = sessions.sessions.lock().expect("not poisoned");
        if open.values().filter(|s| s.owner == user).count() >= MAX_SESSIONS_PER_USER {
            let message = format!(
                "this user has {MAX_SESSIONS_PER_USER} SSE sessions open, the most allowed: close one first"
            );
            return (StatusCode::TOO_MANY_REQUESTS, message).into_response();
        }
        let session = Session {
            owner: user.clone(),
            to_server,
            answering: answering.clone(),
        };
        open.insert(id, session);
    }
    tracing::info!(session = %id, %user, "opened an HTTP+SSE session");

    let ended = sessions.shutdown.child_token();
    let service = sessions.server.for_connection();
    let (registry, serving) = (sessions.sessions.clone(), ended.clone());
    tokio::spawn(async move {
        match service
            .serve_with_ct((to_client, from_client), serving)
            .await
        {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => {
                tracing::debug!(session = %id, error = %e, "an SSE session ended before it began")
            }
        }
        registry.lock().expect("not poisoned").remove(&id);
        tracing::info!(session = %id, "closed an HTTP+SSE session");
    });

    // The client hanging up drops the stream, and with it the guard that ends the session.
    let guard = ended.clone().drop_guard();
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={}", id.simple()));
    let messages = from_server.map(move |message| {
        let _ = &guard;
        if let JsonRpcMessage::Response(r) = &message {
            answering.lock().expect("not poisoned").remove(&r.id);
        } else if let JsonRpcMessage::Error(e) = &message
            && let Some(id) = &e.id
        {
            answering.lock().expect("not poisoned").remove(id);
        }
        Ok::<_, Infallible>(event_of(&message))
    });
    let stream = futures::stream::once(async move { Ok(endpoint) })
        .chain(messages)
        .take_until(ended.cancelled_owned());
    stream_response(stream, sessions.keep_alive)
}

fn event_of(message: &ServerJsonRpcMessage) -> Event {
    match serde_json::to_string(message) {
        Ok(json) => Event::default().event("message").data(json),
        Err(e) => Event::default().comment(format!("unencodable message: {e}")),
    }
}

fn stream_response(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    keep_alive: Duration,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response()
}

#[derive(Deserialize)]
pub struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `POST /messages?sessionId=…`: hands a message to its session; 202, the answer comes on the
/// session's stream.
pub async fn post_message(
    State(sessions): State<SseSessions>,
    Query(SessionQuery { session_id }): Query<SessionQuery>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Response {
    let Some(user) = parts
        .extensions
        .get::<AuthenticatedUser>()
        .map(|u| u.user.clone())
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let unknown = || {
        let message = "no such session: open one with GET /sse and post to the endpoint it names";
        (StatusCode::NOT_FOUND, message).into_response()
    };
    let Ok(id) = Uuid::try_parse(&session_id) else {
        return unknown();
    };
    // Another user's session is answered as one that does not exist.
    let found = sessions
        .sessions
        .lock()
        .expect("not poisoned")
        .get(&id)
        .filter(|s| s.owner == user)
        .map(|s| (s.to_server.clone(), s.answering.clone()));
    let Some((mut to_server, answering)) = found else {
        return unknown();
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            let message = format!("not a JSON-RPC message of MCP: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let admission = match sessions.fairness.admit_held(user.as_str()).await {
        Ok(admission) => admission,
        Err(refused) => return refused,
    };
    match &message {
        JsonRpcMessage::Request(request) => {
            let mut answering = answering.lock().expect("not poisoned");
            answering.insert(request.id.clone(), admission);
        }
        // A cancelled request gets no response: its share goes back now.
        JsonRpcMessage::Notification(n) => {
            if let ClientNotification::CancelledNotification(cancelled) = &n.notification
                && let Some(id) = &cancelled.params.request_id
            {
                answering.lock().expect("not poisoned").remove(id);
            }
        }
        _ => {}
    }
    message.insert_extension(parts);
    match to_server.send(message).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (StatusCode::GONE, "the session has ended").into_response(),
    }
}
