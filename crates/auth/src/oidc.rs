//! OIDC bearer tokens: JWTs verified against the issuer's JWKS, found
//! through `auth_discovery_url`, as Feast 0.67's `OidcTokenParser` reads
//! them — and stricter where Feast is lax:
//!
//! - only asymmetric signatures (RS*, PS*, ES*); `none` and HS* are refused
//!   before any key is looked at, so a public key can never serve as an
//!   HMAC secret;
//! - `exp` is required, `exp`/`nbf` are checked with Feast's 10 s leeway;
//!   `aud` and `iss` only when `audience` / `issuer` are configured (Feast),
//!   and then a token without the claim is refused (PyJWT);
//! - the JWKS is cached `jwks_cache_lifespan_seconds` and fetched again once
//!   when a token names a `kid` it lacks (key rotation), at most once a
//!   second, so unknown kids cannot make the server hammer the provider.
//!
//! Username: the first string claim of `preferred_username`, `upn`, `azp`,
//! `appid`, `sub`. Roles: `resource_access.<client_id>.roles` (with
//! `client_id` configured) then the top-level `roles`, duplicates removed.
//! Groups: the top-level `groups`.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::http::JsonClient;
use crate::{AuthError, Authenticate, OidcConfig, User};

/// Signatures accepted: public-key ones only.
const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Shortest time between two fetches forced by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(1);

pub struct OidcAuthenticator {
    cfg: OidcConfig,
    http: JsonClient,
    keys: Mutex<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    jwks_uri: Option<String>,
    set: Option<JwkSet>,
    /// `set`'s keys, decoded once per fetch (None: unusable JWK).
    decoded: Vec<Option<DecodingKey>>,
    fetched: Option<Instant>,
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(format!("identity provider unreachable: {e}"))
}

fn invalid(reason: impl std::fmt::Display) -> AuthError {
    AuthError::Unauthenticated(format!("invalid or expired access token: {reason}"))
}

impl OidcAuthenticator {
    pub fn new(cfg: OidcConfig) -> Result<Self, AuthError> {
        // jsonwebtoken 11 picks its crypto backend from its features and
        // panics at the first signature if it cannot (both or neither of
        // rust_crypto / aws_lc_rs, e.g. through feature unification); name
        // it explicitly. Err only means one is installed already.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let http = JsonClient::new(cfg.verify_ssl, cfg.ca_cert_path.as_deref(), cfg.request_timeout)
            .map_err(|e| AuthError::Config(format!("auth: {e}")))?;
        Ok(OidcAuthenticator {
            cfg,
            http,
            keys: Mutex::new(KeyCache::default()),
        })
    }

    /// Fetches the discovery document and the JWKS now (start-up check).
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        let mut keys = self.keys.lock().await;
        self.refresh(&mut keys).await
    }

    async fn refresh(&self, keys: &mut KeyCache) -> Result<(), AuthError> {
        let uri = match &keys.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let doc = self.http.get_json(&self.cfg.discovery_url).await.map_err(unavailable)?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unavailable("the discovery document has no jwks_uri"))?
                    .to_string();
                keys.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let doc = self.http.get_json(&uri).await.map_err(unavailable)?;
        let set: JwkSet = serde_json::from_value(doc).map_err(|e| unavailable(format!("JWKS at {uri}: {e}")))?;
        keys.decoded = set.keys.iter().map(|k| DecodingKey::from_jwk(k).ok()).collect();
        keys.set = Some(set);
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key for a token's `kid` (or, without one, every key that fits
    /// the algorithm), refetching the JWKS when stale or missing the kid.
    async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<DecodingKey>, AuthError> {
        let mut keys = self.keys.lock().await;
        let stale = keys
            .fetched
            .is_none_or(|at| at.elapsed() >= self.cfg.jwks_cache_lifespan);
        if stale {
            self.refresh(&mut keys).await?;
        }
        let mut found = select(keys.set.as_ref(), kid, alg);
        if found.is_empty() && kid.is_some() && keys.fetched.is_some_and(|at| at.elapsed() >= MIN_REFETCH) {
            self.refresh(&mut keys).await?;
            found = select(keys.set.as_ref(), kid, alg);
        }
        if found.is_empty() {
            return Err(invalid("no key of the issuer's JWKS matches the token"));
        }
        found
            .into_iter()
            .map(|i| {
                keys.decoded
                    .get(i)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| invalid("the matching JWK is unusable"))
            })
            .collect()
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.cfg.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        // jsonwebtoken checks `aud`/`iss` only when the token has them:
        // configured, they are required too (as PyJWT requires them).
        let mut required = vec!["exp"];
        match &self.cfg.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.cfg.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// Indices of the JWKs that can verify the token.
fn select(set: Option<&JwkSet>, kid: Option<&str>, alg: Algorithm) -> Vec<usize> {
    let Some(set) = set else { return Vec::new() };
    set.keys
        .iter()
        .enumerate()
        .filter(|(_, k)| match kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid),
            None => true,
        })
        .filter(|(_, k)| fits(k, alg))
        .map(|(i, _)| i)
        .collect()
}

/// A JWK can verify `alg`: the right key type, and the JWK's own `alg` (when
/// it states one) is the token's.
fn fits(k: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let family = matches!(
        (&k.algorithm, alg),
        (P::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
            | (P::RSA(_), Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
            | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
    );
    let stated = k
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
    family && stated.is_none_or(|s| s == alg)
}

#[async_trait::async_trait]
impl Authenticate for OidcAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        // The header is read unverified only to pick the algorithm and key;
        // the allow-list refuses `none` and HMAC before anything else.
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("not a JWT ({e})")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(invalid(format!("signature algorithm {:?} is not accepted", header.alg)));
        }
        let keys = self.keys_for(header.kid.as_deref(), header.alg).await?;
        let validation = self.validation(header.alg);
        let mut last = None;
        for key in &keys {
            match jsonwebtoken::decode::<Value>(token, key, &validation) {
                Ok(data) => return user_from_claims(&data.claims, self.cfg.client_id.as_deref()),
                Err(e) => last = Some(e),
            }
        }
        Err(invalid(last.map(|e| e.to_string()).unwrap_or_default()))
    }
}

/// Feast's `OidcTokenParser` mapping from verified claims to a user.
pub fn user_from_claims(claims: &Value, client_id: Option<&str>) -> Result<User, AuthError> {
    let username = ["preferred_username", "upn", "azp", "appid", "sub"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .ok_or_else(|| invalid("the token names no user"))?
        .to_string();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    let mut roles = match client_id {
        Some(c) => strings(
            claims
                .get("resource_access")
                .and_then(|r| r.get(c))
                .and_then(|r| r.get("roles")),
        ),
        None => Vec::new(),
    };
    for r in strings(claims.get("roles")) {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    Ok(User {
        username,
        roles,
        groups: strings(claims.get("groups")),
        ..User::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_map_to_users_as_feast_maps_them() {
        let c = json!({
            "sub": "s", "azp": "client", "preferred_username": "alice",
            "roles": ["b", "a"], "groups": ["g"],
            "resource_access": {"larder": {"roles": ["a", "c"]}, "other": {"roles": ["x"]}}
        });
        let u = user_from_claims(&c, Some("larder")).unwrap();
        assert_eq!(u.username, "alice");
        assert_eq!(u.roles, ["a", "c", "b"]);
        assert_eq!(u.groups, ["g"]);
        let u = user_from_claims(&c, None).unwrap();
        assert_eq!(u.roles, ["b", "a"]);
        assert_eq!(
            user_from_claims(&json!({"sub": "s", "appid": "app"}), None)
                .unwrap()
                .username,
            "app"
        );
        assert!(user_from_claims(&json!({"roles": ["a"]}), None).is_err());
    }
}
