//! The identity-provider mode: access tokens from one OAuth 2.1 authorization server.
//!
//! The issuer's metadata (OpenID Connect discovery, else RFC 8414) is read when first needed
//! and names its keys and, optionally, its introspection endpoint. A JWT access token is
//! accepted when it is signed by one of the issuer's keys with an asymmetric algorithm, `iss`
//! is the issuer exactly, `aud` names this server's resource URI (RFC 8707: a token minted for
//! another service is refused), and `exp`/`nbf` hold within 30 s of leeway. An opaque token is
//! accepted when the issuer's introspection endpoint vouches for it with the same checks. The
//! user is `sub`, exactly as signed; the scopes (`scope`, or `scp`) say what it may do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

use super::introspection::{Introspection, IntrospectionSettings};
use super::jwks::{ACCEPTED, Jwks};
use super::metadata::ResourceMetadata;
use super::shared_secret::{refusal, user};
use super::{AuthError, Grant};
use crate::mcp::AuthenticatedUser;
use crate::mcp::access::{Access, ScopeNames};

/// How long a failed metadata fetch keeps requests from trying again.
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(5);
/// Leeway for `exp` and `nbf`: clocks of two machines differ a little.
const LEEWAY_SECONDS: u64 = 30;

/// How the identity-provider mode is configured.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The issuer identifier, exactly as the provider's metadata and tokens give it.
    pub issuer: String,
    /// The canonical URI of `/mcp`: the audience tokens must name.
    pub resource: String,
    pub scopes: ScopeNames,
    /// How long the issuer's keys are used before they are fetched again.
    pub jwks_max_age: Duration,
    /// The introspection endpoint to use instead of the one the metadata names, and the
    /// credentials for it.
    pub introspection_endpoint: Option<String>,
    pub introspection_credentials: Option<(String, String)>,
    /// Accept an `http:` issuer that is not on this machine.
    pub allow_http: bool,
}

/// Why the identity-provider mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BadIssuer {
    #[error("TODO_AUTH_ISSUER `{0}` is not an absolute http(s) URL without query or fragment")]
    NotUrl(String),
    #[error(
        "TODO_AUTH_ISSUER `{0}` is plain http on another machine: tokens and keys would travel \
         unprotected. Use https, or set TODO_AUTH_ALLOW_HTTP_ISSUER=true on a private network"
    )]
    Insecure(String),
    #[error("scope names must be distinct, non-empty, without spaces or quotes")]
    BadScopes,
    #[error(transparent)]
    Resource(#[from] super::metadata::BadResource),
    #[error("cannot set up TLS for the identity provider: {0}")]
    Tls(String),
}

/// The parts of the issuer's metadata this server uses.
#[derive(Debug, Deserialize)]
struct ProviderMetadata {
    issuer: String,
    jwks_uri: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

/// What discovery found.
struct Discovered {
    jwks: Option<Jwks>,
    introspection: Option<Introspection>,
}

pub struct Issuer {
    settings: IssuerSettings,
    scopes: Arc<ScopeNames>,
    metadata: ResourceMetadata,
    http: reqwest::Client,
    discovered: OnceCell<Discovered>,
    /// When discovery last failed.
    failed: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.settings.issuer)
            .field("resource", &self.settings.resource)
            .finish_non_exhaustive()
    }
}

/// The claims of an access token this server reads (RFC 9068, and `scp` as several providers
/// name the scopes).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Scp>,
    #[serde(default)]
    zoneinfo: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scp {
    List(Vec<String>),
    Spaced(String),
}

impl Issuer {
    pub fn new(settings: IssuerSettings) -> Result<Self, BadIssuer> {
        check_issuer_url(&settings.issuer, settings.allow_http)?;
        let names = &settings.scopes;
        let plain = |s: &str| !s.is_empty() && !s.contains([' ', '"', '\\']);
        if !plain(&names.read) || !plain(&names.write) || names.read == names.write {
            return Err(BadIssuer::BadScopes);
        }
        let metadata = ResourceMetadata::new(
            &settings.resource,
            &settings.issuer,
            [&names.read, &names.write],
        )?;
        Ok(Self {
            scopes: Arc::new(settings.scopes.clone()),
            metadata,
            http: http_client()?,
            discovered: OnceCell::new(),
            failed: Mutex::new(None),
            settings,
        })
    }

    /// The Protected Resource Metadata of this server.
    pub fn metadata(&self) -> &ResourceMetadata {
        &self.metadata
    }

    /// Reads the issuer's metadata now. A failure is logged, not fatal: the provider may come
    /// later.
    pub async fn warm_up(&self) {
        if let Err(e) = self.discovered().await {
            tracing::warn!(issuer = %self.settings.issuer, reason = %e, "the identity provider's metadata is not available yet");
        }
    }

    /// The user `token` stands for, and what it may do.
    pub async fn verify(&self, token: &str) -> Result<AuthenticatedUser, AuthError> {
        let discovered = self.discovered().await?;
        let grant = match jsonwebtoken::decode_header(token) {
            Ok(header) => {
                let jwks = discovered.jwks.as_ref().ok_or(AuthError::Invalid)?;
                self.verify_jwt(token, header, jwks).await?
            }
            // A JWT of an algorithm this server does not know (`none` among them).
            Err(_) if looks_like_jwt(token) => return Err(AuthError::Invalid),
            // Not a JWT: an opaque token, which only the issuer can vouch for.
            Err(_) => {
                let introspection = discovered
                    .introspection
                    .as_ref()
                    .ok_or(AuthError::Invalid)?;
                introspection
                    .check(token, &self.settings.issuer, &self.settings.resource)
                    .await?
            }
        };
        let access = Access::granted(grant.scopes.iter().map(String::as_str), self.scopes.clone());
        user(&grant.sub, grant.zoneinfo.as_deref(), access)
    }

    async fn verify_jwt(
        &self,
        token: &str,
        header: jsonwebtoken::Header,
        jwks: &Jwks,
    ) -> Result<Grant, AuthError> {
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Invalid);
        }
        let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
        let key = jwks.key(kid).await?;
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(AuthError::Invalid);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.resource]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| refusal(&e))?
            .claims;
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        match claims.scp {
            Some(Scp::List(list)) => scopes.extend(list),
            Some(Scp::Spaced(spaced)) => {
                scopes.extend(spaced.split_whitespace().map(str::to_owned));
            }
            None => {}
        }
        Ok(Grant {
            sub: claims.sub,
            scopes,
            zoneinfo: claims.zoneinfo,
        })
    }

    /// The issuer's keys and introspection endpoint, read from its metadata the first time.
    async fn discovered(&self) -> Result<&Discovered, AuthError> {
        if let Some(found) = self.discovered.get() {
            return Ok(found);
        }
        let mut failed = self.failed.lock().await;
        if failed.is_some_and(|at| at.elapsed() < DISCOVERY_BACKOFF) {
            return Err(AuthError::IssuerUnavailable);
        }
        match self.discovered.get_or_try_init(|| self.discover()).await {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(issuer = %self.settings.issuer, reason = %e, "cannot read the identity provider's metadata");
                *failed = Some(Instant::now());
                Err(AuthError::IssuerUnavailable)
            }
        }
    }

    async fn discover(&self) -> anyhow::Result<Discovered> {
        let metadata = self.provider_metadata().await?;
        if metadata.issuer != self.settings.issuer {
            anyhow::bail!(
                "the provider names its issuer `{}`: set TODO_AUTH_ISSUER to exactly that \
                 (tokens carry it in `iss`)",
                metadata.issuer
            );
        }
        let jwks = metadata
            .jwks_uri
            .map(|uri| Jwks::new(uri, self.http.clone(), self.settings.jwks_max_age));
        let endpoint = self
            .settings
            .introspection_endpoint
            .clone()
            .or(metadata.introspection_endpoint);
        let introspection = endpoint.map(|endpoint| {
            let settings = IntrospectionSettings {
                endpoint,
                credentials: self.settings.introspection_credentials.clone(),
            };
            Introspection::new(settings, self.http.clone())
        });
        if jwks.is_none() && introspection.is_none() {
            anyhow::bail!(
                "the provider's metadata names neither `jwks_uri` nor an introspection \
                 endpoint: no token could be checked"
            );
        }
        tracing::info!(
            issuer = %self.settings.issuer,
            jwt = jwks.is_some(),
            introspection = introspection.is_some(),
            "read the identity provider's metadata"
        );
        Ok(Discovered {
            jwks,
            introspection,
        })
    }

    /// OpenID Connect discovery, else OAuth 2.0 Authorization Server Metadata (RFC 8414, whose
    /// well-known path goes before the issuer's path).
    async fn provider_metadata(&self) -> anyhow::Result<ProviderMetadata> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let url = reqwest::Url::parse(issuer)?;
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let candidates = [
            format!("{issuer}/.well-known/openid-configuration"),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut last_error = None;
        for candidate in candidates {
            let answer = async {
                self.http
                    .get(&candidate)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<ProviderMetadata>()
                    .await
            };
            match answer.await {
                Ok(metadata) => return Ok(metadata),
                Err(e) => last_error = Some(anyhow::anyhow!("{candidate}: {e}")),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no metadata URL")))
    }
}

/// Whether `token` has a JWT's shape: three parts, the first a JSON object in base64url.
fn looks_like_jwt(token: &str) -> bool {
    use base64::Engine;
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header);
    parts.count() == 2
        && decoded.is_ok_and(|json| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).is_ok()
        })
}

/// The issuer must be an http(s) URL; plain http only on this machine unless allowed.
fn check_issuer_url(issuer: &str, allow_http: bool) -> Result<(), BadIssuer> {
    let url = reqwest::Url::parse(issuer).map_err(|_| BadIssuer::NotUrl(issuer.into()))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(BadIssuer::NotUrl(issuer.into()));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(BadIssuer::NotUrl(issuer.into())),
    };
    if url.scheme() == "http" && !loopback && !allow_http {
        return Err(BadIssuer::Insecure(issuer.into()));
    }
    Ok(())
}

/// The client for the issuer: short timeouts (a request waits on it), TLS with the web's root
/// certificates, no redirects (metadata and keys come from where the issuer says).
fn http_client() -> Result<reqwest::Client, BadIssuer> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| BadIssuer::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("todo-mcp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BadIssuer::Tls(e.to_string()))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
        assert!(!looks_like_jwt("ory_at_abc.def"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("opaque"));
    }

    #[test]
    fn issuer_urls() {
        for ok in [
            "https://id.example.com",
            "https://id.example.com/realms/todo",
            "http://127.0.0.1:4444",
            "http://localhost:4444/",
            "http://[::1]:4444",
        ] {
            assert!(check_issuer_url(ok, false).is_ok(), "{ok}");
        }
        assert!(matches!(
            check_issuer_url("http://hydra:4444", false),
            Err(BadIssuer::Insecure(_))
        ));
        assert!(check_issuer_url("http://hydra:4444", true).is_ok());
        for bad in [
            "hydra",
            "ftp://id.example.com",
            "https://id.example.com/?x=1",
        ] {
            assert!(
                matches!(check_issuer_url(bad, true), Err(BadIssuer::NotUrl(_))),
                "{bad}"
            );
        }
    }
}
