//! Token introspection (RFC 7662), for issuers that hand out opaque access tokens: the issuer
//! is asked whether a token is active and what it grants.
//!
//! An answer is kept for a short while (at most [`CACHE_FOR`], never past the token's expiry),
//! so that a client's stream of requests costs the issuer one question, not one each. Tokens
//! are kept only as their SHA-256 digests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{AuthError, Grant};

/// The longest an answer is trusted without asking again.
const CACHE_FOR: Duration = Duration::from_secs(30);
/// Answers kept at most; past this, expired ones go, and if that is not enough, all.
const CACHE_ENTRIES: usize = 10_000;

/// How to reach the introspection endpoint.
#[derive(Clone)]
pub struct IntrospectionSettings {
    pub endpoint: String,
    /// The client id and secret this server authenticates with, if the endpoint wants one.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for IntrospectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionSettings")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

pub struct Introspection {
    settings: IntrospectionSettings,
    http: reqwest::Client,
    answers: Mutex<HashMap<[u8; 32], (Grant, Instant)>>,
}

/// The parts of an introspection response this server uses.
#[derive(Deserialize)]
struct Response {
    active: bool,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    zoneinfo: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, resource: &str) -> bool {
        match self {
            Audience::One(aud) => aud == resource,
            Audience::Many(auds) => auds.iter().any(|a| a == resource),
        }
    }
}

impl Introspection {
    pub fn new(settings: IntrospectionSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            answers: Mutex::default(),
        }
    }

    /// What `token` grants, if the issuer says it is active, was issued by `issuer` and names
    /// `resource` as its audience.
    pub async fn check(
        &self,
        token: &str,
        issuer: &str,
        resource: &str,
    ) -> Result<Grant, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((grant, until)) = self.answers.lock().await.get(&digest)
            && Instant::now() < *until
        {
            return Ok(grant.clone());
        }
        let answer = self.ask(token).await?;
        if !answer.active {
            return Err(AuthError::Inactive);
        }
        if answer.iss.as_deref().is_some_and(|iss| iss != issuer) {
            return Err(AuthError::WrongIssuer);
        }
        if !answer.aud.as_ref().is_some_and(|aud| aud.names(resource)) {
            return Err(AuthError::WrongAudience);
        }
        let grant = Grant {
            sub: answer.sub.ok_or(AuthError::Invalid)?,
            scopes: answer
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            zoneinfo: answer.zoneinfo,
        };
        let left = answer
            .exp
            .map(|exp| exp - chrono::Utc::now().timestamp())
            .map_or(CACHE_FOR, |secs| {
                Duration::from_secs(secs.max(0).unsigned_abs())
            });
        let until = Instant::now() + left.min(CACHE_FOR);
        let mut answers = self.answers.lock().await;
        if answers.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            answers.retain(|_, (_, until)| now < *until);
            if answers.len() >= CACHE_ENTRIES {
                answers.clear();
            }
        }
        answers.insert(digest, (grant.clone(), until));
        Ok(grant)
    }

    async fn ask(&self, token: &str) -> Result<Response, AuthError> {
        let mut request = self
            .http
            .post(&self.settings.endpoint)
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some((id, secret)) = &self.settings.credentials {
            request = request.basic_auth(id, Some(secret));
        }
        let answer = async { request.send().await?.error_for_status()?.json().await };
        answer.await.map_err(|e: reqwest::Error| {
            tracing::warn!(endpoint = %self.settings.endpoint, error = %e, "token introspection failed");
            AuthError::IssuerUnavailable
        })
    }
}
