//! The issuer's signing keys (its JWK Set), cached.
//!
//! The set is fetched when first needed and again once it is older than its maximum age, so a
//! key the issuer removes stops being accepted within that age. A token signed by a key not in
//! the set makes it fetch again at once, so that a new key works the moment the issuer uses it,
//! but at most once per [`Jwks::refetch_interval`]: tokens with made-up key ids cannot turn
//! this server into a flood against the issuer. If a fetch fails, the keys already known stay
//! in use.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// The longest wait between two fetches prompted by unknown keys.
const MAX_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Signature algorithms accepted from an issuer: asymmetric only, so a token can never be
/// checked as if a public key were a shared secret.
pub const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A verification key, and the one algorithm it is for when the issuer says so.
#[derive(Clone)]
pub struct Key {
    pub key: DecodingKey,
    pub algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Key>,
    /// When the set was last fetched successfully.
    fetched: Option<Instant>,
}

/// The issuer's keys at `uri`.
pub struct Jwks {
    uri: String,
    http: reqwest::Client,
    max_age: Duration,
    cached: RwLock<Cached>,
    /// Held while fetching, and when the last fetch was tried: one fetch at a time, and not
    /// more often than the interval for unknown keys.
    fetching: Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(uri: String, http: reqwest::Client, max_age: Duration) -> Self {
        Self {
            uri,
            http,
            max_age,
            cached: RwLock::default(),
            fetching: Mutex::new(None),
        }
    }

    /// How soon after a fetch a token with an unknown key may make it fetch again.
    fn refetch_interval(&self) -> Duration {
        self.max_age.min(MAX_REFETCH_INTERVAL)
    }

    /// The key with id `kid`.
    pub async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        {
            let cached = self.cached.read().await;
            let fresh = cached.fetched.is_some_and(|at| at.elapsed() < self.max_age);
            if let (true, Some(key)) = (fresh, cached.keys.get(kid)) {
                return Ok(key.clone());
            }
        }
        let mut last_try = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        {
            let cached = self.cached.read().await;
            let fresh = cached.fetched.is_some_and(|at| at.elapsed() < self.max_age);
            let recent = last_try.is_some_and(|at| at.elapsed() < self.refetch_interval());
            match cached.keys.get(kid) {
                Some(key) if fresh || recent => return Ok(key.clone()),
                // A set fetched within the interval is fresh, so a stale one means that fetch
                // failed.
                None if recent && fresh => return Err(AuthError::UnknownKey),
                None if recent => return Err(AuthError::IssuerUnavailable),
                _ => {}
            }
        }
        *last_try = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut cached = self.cached.write().await;
                *cached = Cached {
                    keys,
                    fetched: Some(Instant::now()),
                };
                cached.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "cannot fetch the issuer's keys");
                let cached = self.cached.read().await;
                match cached.keys.get(kid) {
                    Some(key) => Ok(key.clone()),
                    None => Err(AuthError::IssuerUnavailable),
                }
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Key>> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = self
            .http
            .get(&self.uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let keys: HashMap<String, Key> = set.keys.into_iter().filter_map(usable).collect();
        tracing::debug!(uri = %self.uri, keys = keys.len(), "fetched the issuer's keys");
        Ok(keys)
    }
}

/// A published key this server can verify signatures with, by its id; other keys (encryption
/// keys, shared secrets, kinds it does not know) are passed over.
fn usable(value: serde_json::Value) -> Option<(String, Key)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if matches!(
        jwk.algorithm,
        AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_)
    ) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(alg) => Some(
            Algorithm::try_from(alg)
                .ok()
                .filter(|a| ACCEPTED.contains(a))?,
        ),
        None => None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, Key { key, algorithm }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_signature_keys_of_accepted_kinds_are_kept() {
        let rsa = json!({"kty": "RSA", "kid": "r", "use": "sig", "alg": "RS256",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "e": "AQAB"});
        let ec = json!({"kty": "EC", "kid": "e", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let okp = json!({"kty": "OKP", "kid": "o", "crv": "Ed25519", "alg": "EdDSA",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(usable(rsa.clone()).is_some());
        let (_, ec_key) = usable(ec).unwrap();
        assert_eq!(ec_key.algorithm, None);
        assert_eq!(usable(okp).unwrap().1.algorithm, Some(Algorithm::EdDSA));

        let mut encryption = rsa.clone();
        encryption["use"] = json!("enc");
        let mut no_kid = rsa.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut hmac_alg = rsa.clone();
        hmac_alg["alg"] = json!("HS256");
        let secret = json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"});
        for bad in [
            encryption,
            no_kid,
            hmac_alg,
            secret,
            json!({"kty": "XYZ", "kid": "x"}),
        ] {
            assert!(usable(bad.clone()).is_none(), "{bad}");
        }
    }
}
