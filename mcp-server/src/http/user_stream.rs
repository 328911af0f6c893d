//! `GET /mcp` without `Last-Event-ID`: the stream on which streamable HTTP lets a server send
//! messages outside any request, for clients of the handshake-era protocol versions (2025-xx),
//! which open it after `initialize` (the TypeScript SDK, and through it `mcp-remote` and Claude
//! Desktop). `/mcp` keeps no session, so the stream is the user's: it carries each of their new
//! reminders as the log message stdio clients get (logger `todo.reminders`) and, when they
//! subscribed to `todo://notifications` (`resources/subscribe`, kept per user), as
//! `notifications/resources/updated`. Every replica hears every notification (PostgreSQL NOTIFY),
//! so the stream works on whichever replica the client reached. A `GET` with `Last-Event-ID`
//! resumes a response stream instead (rmcp's).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::model::ServerJsonRpcMessage;
use todo_shared::task::UserId;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::app::notifications::NotificationService;
use crate::mcp::AuthenticatedUser;
use crate::mcp::push::{
    Heard, MAX_STREAMS_PER_USER, NOTIFICATIONS_URI, OpenStreams, heard_by, reminder_log, updated,
};

/// The user streams of this replica.
#[derive(Clone)]
pub struct UserStreams {
    notifications: NotificationService,
    open: OpenStreams,
    shutdown: CancellationToken,
    keep_alive: Duration,
}

impl UserStreams {
    pub fn new(
        notifications: NotificationService,
        shutdown: CancellationToken,
        keep_alive: Duration,
    ) -> Self {
        Self {
            notifications,
            open: OpenStreams::default(),
            shutdown,
            keep_alive,
        }
    }
}

/// axum middleware on `/mcp`: answers a `GET` that opens a user stream, and passes everything
/// else (requests, and resumptions with `Last-Event-ID`) to rmcp.
pub async fn serve_user_stream(
    State(streams): State<UserStreams>,
    request: Request,
    next: Next,
) -> Response {
    let opens_stream = request.method() == Method::GET
        && !request.headers().contains_key("last-event-id")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
    let user = request
        .extensions()
        .get::<AuthenticatedUser>()
        .map(|u| u.user.clone());
    match (opens_stream, user) {
        (true, Some(user)) => open(streams, user),
        _ => next.run(request).await,
    }
}

/// axum middleware on `/mcp`: answers a handshake-era `initialize` with an `Mcp-Session-Id`,
/// which some clients (the Python SDK) wait for before they open their `GET /mcp` stream. The
/// id names nothing: `/mcp` keeps no session, serves a request on any replica whatever id it
/// carries (rmcp's stateless mode does not read it), and the stream is the user's.
pub async fn name_session(
    State(max_body_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    // An `initialize` carries neither header (the protocol version comes with later requests),
    // so nearly every request passes straight through.
    let headers = request.headers();
    let later = headers.contains_key(SESSION_ID) || headers.contains_key("mcp-protocol-version");
    if request.method() != Method::POST || later {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, max_body_bytes).await else {
        let message = format!("the request body is over {max_body_bytes} bytes");
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    };
    let initialize = may_be_initialize(&bytes)
        && serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|m| m.get("method").and_then(|m| m.as_str()) == Some("initialize"));
    let mut response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    if initialize && response.status().is_success() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(value) = header::HeaderValue::from_str(&id) {
            response.headers_mut().insert(SESSION_ID, value);
        }
    }
    response
}

const SESSION_ID: &str = "mcp-session-id";

/// Whether the body may be an `initialize` request: most are not, and are not parsed twice.
fn may_be_initialize(body: &[u8]) -> bool {
    body.windows(12).any(|w| w == b"\"initialize\"")
}

fn open(streams: UserStreams, user: UserId) -> Response {
    let Some(slot) = streams.open.enter(&user) else {
        let message = format!(
            "this user has {MAX_STREAMS_PER_USER} event streams open, the most allowed: close one first"
        );
        return (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    };
    let feed = stream_of(streams.notifications.subscribe());
    let notifications = streams.notifications.clone();
    let events = feed
        .filter_map(move |heard| {
            let (notifications, user) = (notifications.clone(), user.clone());
            async move {
                // A closed feed ends the stream: `stream_of` gives nothing after it.
                let Heard::Mine(announcement) = heard_by(heard, &user) else {
                    return None;
                };
                let mut sent = vec![reminder_log(&announcement)];
                // Read at each reminder, so a subscription made on any replica counts at once.
                match notifications.is_subscribed(&user, NOTIFICATIONS_URI).await {
                    Ok(true) => sent.push(updated()),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the user's subscription"),
                }
                Some(futures::stream::iter(sent))
            }
        })
        .flatten()
        .map(move |notification| {
            let _ = &slot;
            let message = ServerJsonRpcMessage::notification(notification);
            let json = serde_json::to_string(&message).unwrap_or_default();
            Ok::<_, Infallible>(Event::default().event("message").data(json))
        })
        .take_until(streams.shutdown.clone().cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(streams.keep_alive))
        .into_response()
}

/// The feed as a stream of what it gives, ending after it closes.
fn stream_of<T: Clone + Send + 'static>(
    feed: broadcast::Receiver<T>,
) -> impl futures::Stream<Item = Result<T, RecvError>> {
    futures::stream::unfold((feed, false), |(mut feed, closed)| async move {
        if closed {
            return None;
        }
        let heard = feed.recv().await;
        let closed = matches!(heard, Err(RecvError::Closed));
        Some((heard, (feed, closed)))
    })
}
