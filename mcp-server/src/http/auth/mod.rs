//! Bearer-token authentication for the HTTP transports, in one of two modes that the
//! configuration chooses:
//!
//! - **Shared secret** ([`shared_secret`]): HS256 tokens signed with the deployment's
//!   `jwt-secret`, minted by an operator. They may do everything.
//! - **Identity provider** ([`issuer`]): an OAuth 2.1 resource server as the MCP authorization
//!   spec has it. Access tokens come from the issuer: JWTs checked against its published keys
//!   ([`jwks`]), or opaque tokens it vouches for on request ([`introspection`]). Their scopes
//!   gate the tools ([`scope`]), and the Protected Resource Metadata ([`metadata`]) tells
//!   clients where to sign in.
//!
//! A request without a valid token is answered 401 before MCP sees it, with a
//! `WWW-Authenticate` challenge (RFC 6750) that points to the metadata in the second mode.

mod introspection;
pub mod issuer;
mod jwks;
pub mod metadata;
pub mod scope;
pub mod shared_secret;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::issuer::Issuer;
use self::shared_secret::SharedSecret;
use crate::mcp::AuthenticatedUser;

/// Checks bearer tokens the way the deployment is configured to.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per process, behind an Arc
pub enum Authenticator {
    SharedSecret(SharedSecret),
    Issuer(Issuer),
}

/// What an identity provider's token grants, however it was checked (signature or
/// introspection).
#[derive(Debug, Clone)]
pub struct Grant {
    pub sub: String,
    pub scopes: Vec<String>,
    pub zoneinfo: Option<String>,
}

/// Why a token was refused; the text goes into the `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another resource")]
    WrongAudience,
    #[error("the token comes from an issuer this server does not trust")]
    WrongIssuer,
    #[error("the token is signed by a key the issuer does not publish")]
    UnknownKey,
    #[error("the token is not active")]
    Inactive,
    #[error("the token is invalid")]
    Invalid,
    /// The issuer could not be asked (its metadata, keys or introspection endpoint).
    #[error("the identity provider cannot be reached; retry shortly")]
    IssuerUnavailable,
}

impl Authenticator {
    /// Extracts and checks the bearer token of an `Authorization` header value.
    pub async fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<AuthenticatedUser, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }
        match self {
            Authenticator::SharedSecret(secret) => secret.verify(token),
            Authenticator::Issuer(issuer) => issuer.verify(token).await,
        }
    }

    /// Reads what the identity provider publishes, if there is one, so that a mistake shows in
    /// the log at start-up rather than at the first request.
    pub async fn warm_up(&self) {
        if let Authenticator::Issuer(issuer) = self {
            issuer.warm_up().await;
        }
    }

    /// Where clients find how to sign in, when an identity provider issues the tokens.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        match self {
            Authenticator::SharedSecret(_) => None,
            Authenticator::Issuer(issuer) => Some(issuer.metadata().url()),
        }
    }

    /// The answer to a refused request: 401 with a challenge (503 when the issuer could not be
    /// asked, so that clients retry instead of signing in again).
    pub fn refusal(&self, error: AuthError) -> Response {
        if error == AuthError::IssuerUnavailable {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        let description = error.to_string();
        let failure = (error != AuthError::Missing).then_some(("invalid_token", &*description));
        let value = challenge(self.resource_metadata_url(), failure, None);
        let mut response = (StatusCode::UNAUTHORIZED, description.clone()).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
        response
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3), pointing to the resource metadata
/// (RFC 9728 §5.1) when there is some; `failure` is the error code and its description.
fn challenge(
    resource_metadata: Option<&str>,
    failure: Option<(&str, &str)>,
    scope: Option<&str>,
) -> HeaderValue {
    let mut params = vec![r#"realm="todo-mcp""#.to_owned()];
    if let Some(url) = resource_metadata {
        params.push(format!(r#"resource_metadata="{url}""#));
    }
    if let Some((code, description)) = failure {
        params.push(format!(r#"error="{code}""#));
        params.push(format!(r#"error_description="{description}""#));
    }
    if let Some(scope) = scope {
        params.push(format!(r#"scope="{scope}""#));
    }
    // Every part is ours (configured URLs and scope names are checked at start-up) and plain
    // text; a value that is not a valid header still gets the bare scheme.
    HeaderValue::from_str(&format!("Bearer {}", params.join(", ")))
        .unwrap_or(HeaderValue::from_static("Bearer"))
}

/// axum middleware: admits a request only with a valid token, and records its user.
pub async fn require_bearer(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticator
        .authenticate(request.headers().get(header::AUTHORIZATION))
        .await
    {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(e) => {
            tracing::debug!(reason = %e, "rejected an unauthenticated request");
            authenticator.refusal(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn bearer_headers_are_parsed_strictly() {
        let auth = Authenticator::SharedSecret(SharedSecret::new(SECRET, None, None).unwrap());
        let claims = json!({"sub": "bob", "exp": chrono::Utc::now().timestamp() + 60});
        let t = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let header = HeaderValue::from_str(&format!("bearer {t}")).unwrap();
        let bob = auth.authenticate(Some(&header)).await.unwrap();
        assert_eq!(bob.user.as_str(), "bob");
        assert_eq!(bob.access, crate::mcp::access::Access::Full);
        assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
        let basic = HeaderValue::from_static("Basic Ym9iOnB3");
        assert_eq!(
            auth.authenticate(Some(&basic)).await,
            Err(AuthError::Malformed)
        );
        let empty = HeaderValue::from_static("Bearer  ");
        assert_eq!(
            auth.authenticate(Some(&empty)).await,
            Err(AuthError::Malformed)
        );
        // Shared-secret refusals point nowhere: there is no metadata to read.
        let refused = auth.refusal(AuthError::Expired);
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="todo-mcp", error="invalid_token", error_description="the token has expired""#
        );
    }

    #[test]
    fn challenges_name_the_metadata_and_the_failure() {
        let bare = challenge(None, None, None);
        assert_eq!(bare, r#"Bearer realm="todo-mcp""#);
        let full = challenge(
            Some("https://todo.example/.well-known/oauth-protected-resource/mcp"),
            Some(("insufficient_scope", "needs more")),
            Some("tasks:write"),
        );
        assert_eq!(
            full,
            r#"Bearer realm="todo-mcp", resource_metadata="https://todo.example/.well-known/oauth-protected-resource/mcp", error="insufficient_scope", error_description="needs more", scope="tasks:write""#
        );
    }
}
