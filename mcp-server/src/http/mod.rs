//! The HTTP transports: streamable HTTP at `/mcp` and the older HTTP+SSE at `/sse` and
//! `/messages` ([`sse`]), both behind bearer authentication ([`auth`]) and Host/Origin checks
//! ([`origin`] for HTTP+SSE), the probes ([`probes`]), and, when an identity provider issues
//! the tokens, the Protected Resource Metadata that tells clients how to sign in. Each user gets
//! a fair share of the server ([`fairness`]).
//!
//! `/mcp` runs without sessions: every request builds its handler from shared state and carries
//! its own user, so any replica behind a Service can answer any request. Responses stream as
//! server-sent events, as the streamable HTTP transport specifies. Host and Origin headers are
//! checked against allow-lists to stop DNS-rebinding attacks from browsers.

pub mod auth;
pub mod fairness;
mod origin;
mod probes;
mod recent_events;
pub mod sse;
pub mod user_stream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use self::auth::scope::{ScopeCheck, require_scope};
use self::auth::{Authenticator, metadata, require_bearer};
use self::fairness::{FairShare, Fairness, fair_share};
use self::origin::{AllowedOrigins, check_origin};
use self::recent_events::RecentEvents;
use self::sse::SseSessions;
use self::user_stream::{UserStreams, name_session, serve_user_stream};
use crate::mcp::TodoServer;
use crate::store::Db;

/// How often an idle event stream gets a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the HTTP routes need.
pub struct HttpSettings {
    pub authenticator: Arc<Authenticator>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// What one user may use of the server.
    pub fair_share: FairShare,
}

/// Builds the router: `/mcp`, `/sse` and `/messages` (authenticated), `/healthz` and `/readyz`,
/// and the resource metadata in the identity-provider mode.
pub fn router(
    server: TodoServer,
    db: Db,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_sse_keep_alive(Some(KEEP_ALIVE))
        .with_cancellation_token(shutdown.child_token())
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        .with_max_request_body_bytes(settings.max_body_bytes);
    let fairness = Arc::new(Fairness::new(settings.fair_share));
    let allowed = Arc::new(AllowedOrigins {
        hosts: settings.allowed_hosts,
        origins: settings.allowed_origins,
    });
    let scope_check = ScopeCheck {
        authenticator: settings.authenticator.clone(),
        server: server.clone(),
        max_body_bytes: settings.max_body_bytes,
    };
    let streams = UserStreams::new(server.notifications(), shutdown.clone(), KEEP_ALIVE);
    let sessions = SseSessions::new(server.clone(), fairness.clone(), shutdown, KEEP_ALIVE);
    // The HTTP+SSE routes check Host and Origin here; a stream opens within its user's rate,
    // and each POSTed request holds its share until its answer is on the stream (it outlives
    // the POST). rmcp's service checks Host and Origin for /mcp.
    let sse = Router::new()
        .route(
            "/sse",
            get(sse::open_stream).route_layer(axum::middleware::from_fn_with_state(
                fairness.clone(),
                fair_share,
            )),
        )
        .route("/messages", post(sse::post_message))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(sessions)
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            check_origin,
        ));
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        // Kept events give each response stream its priming event and make it resumable.
        Arc::new(
            NeverSessionManager::default().with_event_store(Arc::new(RecentEvents::default())),
        ),
        config,
    );
    let mcp = Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(
            settings.max_body_bytes,
            name_session,
        ))
        // A GET opening the user's event stream is answered here, before rmcp (which checks
        // Host and Origin itself, so the check here covers the stream).
        .layer(axum::middleware::from_fn_with_state(
            streams,
            serve_user_stream,
        ))
        .layer(axum::middleware::from_fn_with_state(allowed, check_origin))
        .layer(axum::middleware::from_fn_with_state(fairness, fair_share))
        .merge(sse)
        .layer(axum::middleware::from_fn_with_state(
            scope_check,
            require_scope,
        ))
        .layer(axum::middleware::from_fn_with_state(
            settings.authenticator.clone(),
            require_bearer,
        ))
        .layer(axum::middleware::from_fn(refuse_repeated_headers));
    let mut public = Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .with_state(db);
    if let Authenticator::Issuer(issuer) = &*settings.authenticator {
        let document = Arc::new(issuer.metadata().clone());
        let mut routes = Router::new();
        for path in document.paths() {
            routes = routes.route(path, get(metadata::serve));
        }
        public = public.merge(routes.with_state(document));
    }
    public.merge(mcp)
}

/// A request with two Host, Origin or Authorization headers is ambiguous (HTTP allows one Host):
/// it is refused rather than judged by whichever one a check happens to read.
async fn refuse_repeated_headers(request: Request, next: Next) -> Response {
    for name in [header::HOST, header::ORIGIN, header::AUTHORIZATION] {
        if request.headers().get_all(&name).iter().nth(1).is_some() {
            let message = format!("more than one {name} header");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    }
    next.run(request).await
}
