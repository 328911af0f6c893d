//! Bearer-token authentication for the HTTP transport.
//!
//! Every request to `/mcp` must carry `Authorization: Bearer <JWT>` signed with HS256 by the
//! shared secret. The token's `sub` is the user every query is scoped to; `exp` is required and
//! enforced, `nbf` is honoured, and `aud`/`iss` are checked when configured. Anything else is
//! answered with 401 and a `WWW-Authenticate` challenge (RFC 6750) before MCP sees the request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use todo_shared::task::UserId;
use todo_shared::time::Zone;

use crate::mcp::AuthenticatedUser;

/// The shortest accepted HS256 secret: RFC 7518 asks for a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")]
pub struct WeakSecret;

/// Verifies tokens. Holds the key material, so it is never printed.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// The user's time zone (OpenID Connect's standard claim), an IANA name.
    #[serde(default)]
    zoneinfo: Option<String>,
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
    #[error("the token is invalid")]
    Invalid,
}

impl TokenVerifier {
    pub fn new(
        secret: &[u8],
        audience: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            key: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Checks a token and returns its subject, with the zone it names.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedUser, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid,
            },
        )?;
        let user = UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid)?;
        // A zone the server does not know is no reason to refuse the user: UTC stands in.
        let zone = data
            .claims
            .zoneinfo
            .and_then(|name| Zone::parse("zoneinfo", &name).ok());
        Ok(AuthenticatedUser { user, zone })
    }

    /// Extracts and checks the bearer token of an `Authorization` header value.
    pub fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<AuthenticatedUser, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        self.verify(token.trim())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let challenge = match self {
            AuthError::Missing => r#"Bearer realm="todo-mcp""#.to_owned(),
            other => format!(
                r#"Bearer realm="todo-mcp", error="invalid_token", error_description="{other}""#
            ),
        };
        let mut response = (StatusCode::UNAUTHORIZED, self.to_string()).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// axum middleware: admits a request only with a valid token, and records its user.
pub async fn require_bearer(
    State(verifier): State<Arc<TokenVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    match verifier.authenticate(request.headers().get(header::AUTHORIZATION)) {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(e) => {
            tracing::debug!(reason = %e, "rejected an unauthenticated request");
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(SECRET, None, None).unwrap()
    }

    #[test]
    fn accepts_a_valid_token() {
        let t = token(json!({"sub": "alice", "exp": now() + 60}), SECRET);
        let alice = verifier().verify(&t).unwrap();
        assert_eq!((alice.user.as_str(), alice.zone), ("alice", None));
        let in_paris = token(
            json!({"sub": "alice", "exp": now() + 60, "zoneinfo": "Europe/Paris"}),
            SECRET,
        );
        let zone = verifier().verify(&in_paris).unwrap().zone;
        assert_eq!(zone.map(|z| z.name()), Some("Europe/Paris"));
        // An unknown zone leaves the user without one, not refused.
        let nowhere = token(
            json!({"sub": "alice", "exp": now() + 60, "zoneinfo": "Mars/Olympus"}),
            SECRET,
        );
        assert_eq!(verifier().verify(&nowhere).unwrap().zone, None);
    }

    #[test]
    fn rejects_bad_tokens() {
        let v = verifier();
        let wrong = token(
            json!({"sub": "alice", "exp": now() + 60}),
            b"another secret, 32 bytes or more!!",
        );
        assert_eq!(v.verify(&wrong), Err(AuthError::Invalid));
        let expired = token(json!({"sub": "alice", "exp": now() - 120}), SECRET);
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
        let early = token(
            json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}),
            SECRET,
        );
        assert_eq!(v.verify(&early), Err(AuthError::NotYetValid));
        let no_sub = token(json!({"exp": now() + 60}), SECRET);
        assert_eq!(v.verify(&no_sub), Err(AuthError::Invalid));
        let no_exp = token(json!({"sub": "alice"}), SECRET);
        assert_eq!(v.verify(&no_exp), Err(AuthError::Invalid));
        let blank_sub = token(json!({"sub": " ", "exp": now() + 60}), SECRET);
        assert_eq!(v.verify(&blank_sub), Err(AuthError::Invalid));
        // The subject exactly as signed: " alice" is not alice.
        let padded = token(json!({"sub": " alice", "exp": now() + 60}), SECRET);
        assert_eq!(v.verify(&padded), Err(AuthError::Invalid));
    }

    #[test]
    fn rejects_alg_none() {
        use base64::Engine;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let t = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"sub": "alice", "exp": now() + 60}))
        );
        assert_eq!(verifier().verify(&t), Err(AuthError::Invalid));
    }

    #[test]
    fn header_parsing() {
        let v = verifier();
        let t = token(json!({"sub": "bob", "exp": now() + 60}), SECRET);
        let header = HeaderValue::from_str(&format!("bearer {t}")).unwrap();
        assert_eq!(v.authenticate(Some(&header)).unwrap().user.as_str(), "bob");
        assert_eq!(v.authenticate(None), Err(AuthError::Missing));
        let basic = HeaderValue::from_static("Basic Ym9iOnB3");
        assert_eq!(v.authenticate(Some(&basic)), Err(AuthError::Malformed));
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(TokenVerifier::new(b"short", None, None).is_err());
    }

    #[test]
    fn audience_is_checked_when_configured() {
        let v = TokenVerifier::new(SECRET, Some("todo"), None).unwrap();
        let good = token(
            json!({"sub": "a", "exp": now() + 60, "aud": "todo"}),
            SECRET,
        );
        let bad = token(
            json!({"sub": "a", "exp": now() + 60, "aud": "other"}),
            SECRET,
        );
        assert!(v.verify(&good).is_ok());
        assert_eq!(v.verify(&bad), Err(AuthError::Invalid));
    }
}
