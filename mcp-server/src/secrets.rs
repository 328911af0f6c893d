//! Secrets: the database URL, and the JWT secret (or, with an identity provider, the secret this
//! server introspects tokens with).
//!
//! With a Dapr sidecar they come from its secret store (keys `jwt-secret`, `database-url` and
//! `introspection-client-secret`;
//! Kubernetes secrets in a cluster), with the environment as fallback; without one, from the
//! environment (or flags), and the database defaults to the embedded SQLite file. A secret that
//! is needed and found nowhere stops start-up with a message that names both places.

use std::collections::HashMap;

use anyhow::bail;

use crate::config::Config;
use todo_dapr::{DaprClient, DaprError};

pub const JWT_SECRET_KEY: &str = "jwt-secret";
pub const DATABASE_URL_KEY: &str = "database-url";
pub const INTROSPECTION_SECRET_KEY: &str = "introspection-client-secret";

/// The secrets a run needs. Never printed.
pub struct Secrets {
    pub database_url: String,
    pub jwt_secret: Option<String>,
    pub introspection_secret: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

impl Secrets {
    /// The secrets the environment (or flags) give, without a secret store.
    pub fn from_environment(config: &Config) -> Self {
        Self {
            database_url: config.database_url(),
            jwt_secret: config.jwt_secret.clone(),
            introspection_secret: config.auth_introspection_client_secret.clone(),
        }
    }
}

/// Where the secrets are looked up in the store.
enum Source<'a> {
    /// One secret per key, named by the key (a local file store).
    PerKey,
    /// The keys of one named secret, read once (a Kubernetes Secret); `None` if it was not found.
    Named(&'a str, Option<HashMap<String, String>>),
}

impl Source<'_> {
    async fn get(
        &self,
        dapr: &DaprClient,
        store: &str,
        key: &str,
    ) -> Result<Option<String>, DaprError> {
        match self {
            Source::PerKey => dapr.secret(store, key).await,
            Source::Named(_, values) => Ok(values.as_ref().and_then(|v| v.get(key).cloned())),
        }
    }
}

/// Looks a secret up in the store, falling back to `fallback` (the environment or a flag).
async fn lookup(
    dapr: &DaprClient,
    store: &str,
    source: &Source<'_>,
    key: &str,
    fallback: Option<&str>,
    env_name: &str,
) -> anyhow::Result<Option<String>> {
    match source.get(dapr, store, key).await {
        Ok(Some(value)) => {
            tracing::info!(%store, %key, "secret read from the Dapr secret store");
            return Ok(Some(value));
        }
        Ok(None) => {}
        // The store may be unreachable or not configured; the environment may still have it.
        Err(e) if fallback.is_some() => {
            tracing::warn!(%store, %key, error = %e, "secret store lookup failed; using {env_name}");
        }
        Err(e) => bail!(
            "cannot read secret `{key}` from Dapr secret store `{store}` ({e}), and {env_name} is not set"
        ),
    }
    Ok(fallback.map(str::to_owned))
}

/// Resolves the secrets; those of bearer authentication when `serving_http`.
pub async fn resolve(
    config: &Config,
    dapr: Option<&DaprClient>,
    serving_http: bool,
) -> anyhow::Result<Secrets> {
    let Some(dapr) = dapr else {
        return Ok(Secrets::from_environment(config));
    };
    let need_jwt = serving_http && config.auth_issuer.is_none();
    let need_introspection = serving_http
        && config.auth_issuer.is_some()
        && config.auth_introspection_client_id.is_some();
    let store = config.secret_store.as_str();
    let source = match config.secret_name.as_deref() {
        None => Source::PerKey,
        Some(name) => match dapr.secret_values(store, name).await {
            Ok(values) => Source::Named(name, values),
            Err(e) => {
                tracing::warn!(%store, secret = %name, error = %e, "secret store lookup failed; using the environment");
                Source::Named(name, None)
            }
        },
    };
    let place = match &source {
        Source::PerKey => format!("Dapr secret store `{store}`"),
        Source::Named(name, _) => format!("secret `{name}` of Dapr secret store `{store}`"),
    };
    let database_url = lookup(
        dapr,
        store,
        &source,
        DATABASE_URL_KEY,
        config.database_url.as_deref(),
        "DATABASE_URL",
    )
    .await?
    .ok_or_else(|| {
        anyhow::anyhow!(
            "no database URL: `{DATABASE_URL_KEY}` is not in {place} and DATABASE_URL is not set"
        )
    })?;
    let jwt_secret = if need_jwt {
        let secret = lookup(
            dapr,
            store,
            &source,
            JWT_SECRET_KEY,
            config.jwt_secret.as_deref(),
            "TODO_JWT_SECRET",
        )
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no JWT secret: `{JWT_SECRET_KEY}` is not in {place} and TODO_JWT_SECRET is not set"
            )
        })?;
        Some(secret)
    } else {
        None
    };
    let introspection_secret = if need_introspection {
        let secret = lookup(
            dapr,
            store,
            &source,
            INTROSPECTION_SECRET_KEY,
            config.auth_introspection_client_secret.as_deref(),
            "TODO_AUTH_INTROSPECTION_CLIENT_SECRET",
        )
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "TODO_AUTH_INTROSPECTION_CLIENT_ID is set but its secret is not: \
                 `{INTROSPECTION_SECRET_KEY}` is not in {place} and \
                 TODO_AUTH_INTROSPECTION_CLIENT_SECRET is not set"
            )
        })?;
        Some(secret)
    } else {
        None
    };
    Ok(Secrets {
        database_url,
        jwt_secret,
        introspection_secret,
    })
}
