//! The shared-secret mode: tokens signed with HS256 by the deployment's `jwt-secret`.
//!
//! The token's `sub` is the user every query is scoped to; `exp` is required and enforced,
//! `nbf` is honoured, and `aud`/`iss` are checked when configured. Such a token may do
//! everything: whoever holds the secret mints what they like.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use todo_shared::task::UserId;
use todo_shared::time::Zone;

use super::AuthError;
use crate::mcp::AuthenticatedUser;
use crate::mcp::access::Access;

/// The shortest accepted HS256 secret: RFC 7518 asks for a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")]
pub struct WeakSecret;

/// Verifies tokens. Holds the key material, so it is never printed.
pub struct SharedSecret {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// The user's time zone (OpenID Connect's standard claim), an IANA name.
    #[serde(default)]
    zoneinfo: Option<String>,
}

impl SharedSecret {
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
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| refusal(&e))?;
        user(
            &data.claims.sub,
            data.claims.zoneinfo.as_deref(),
            Access::Full,
        )
    }
}

/// Why `jsonwebtoken` refused a token, in our words.
pub(super) fn refusal(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        _ => AuthError::Invalid,
    }
}

/// The user a verified token names: `sub` exactly as signed, and its `zoneinfo` when the zone
/// is known (an unknown one is no reason to refuse the user: they get the default).
pub(super) fn user(
    sub: &str,
    zoneinfo: Option<&str>,
    access: Access,
) -> Result<AuthenticatedUser, AuthError> {
    let user = UserId::parse(sub).map_err(|_| AuthError::Invalid)?;
    let zone = zoneinfo.and_then(|name| Zone::parse("zoneinfo", name).ok());
    Ok(AuthenticatedUser { user, zone, access })
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

    fn verifier() -> SharedSecret {
        SharedSecret::new(SECRET, None, None).unwrap()
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
    fn weak_secrets_are_refused() {
        assert!(SharedSecret::new(b"short", None, None).is_err());
    }

    #[test]
    fn audience_is_checked_when_configured() {
        let v = SharedSecret::new(SECRET, Some("todo"), None).unwrap();
        let good = token(
            json!({"sub": "a", "exp": now() + 60, "aud": "todo"}),
            SECRET,
        );
        let bad = token(
            json!({"sub": "a", "exp": now() + 60, "aud": "other"}),
            SECRET,
        );
        assert!(v.verify(&good).is_ok());
        assert_eq!(v.verify(&bad), Err(AuthError::WrongAudience));
    }
}
