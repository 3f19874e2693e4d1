//! The `auth` section of `larder.yaml`: Feast's keys for the server side
//! (`type`, the OIDC settings) plus Larder's `authorization`,
//! `cache_ttl_seconds` and `namespace`. Client-side keys Feast's SDK reads
//! from the same file (`user_token`, `client_secret`, `token`, …) are
//! accepted and unused by the servers.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use crate::AuthError;

/// How callers prove who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthType {
    NoAuth,
    Kubernetes,
    Oidc(OidcConfig),
}

/// How a decision is made once the caller is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationMode {
    /// Feast's Permission objects in the registry, as Feast enforces them.
    #[default]
    Permissions,
    /// A SubjectAccessReview on `larder.dev` resources per decision.
    KubernetesRbac,
}

impl AuthorizationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationMode::Permissions => "permissions",
            AuthorizationMode::KubernetesRbac => "kubernetes-rbac",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub discovery_url: String,
    /// Roles are also read from `resource_access.<client_id>.roles`.
    pub client_id: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub verify_ssl: bool,
    pub ca_cert_path: Option<PathBuf>,
    pub jwks_cache_lifespan: Duration,
    pub request_timeout: Duration,
    /// Clock skew allowed on `exp` and `nbf` (Feast: 10 s).
    pub leeway: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub auth_type: AuthType,
    pub authorization: AuthorizationMode,
    /// How long an authenticated token and an RBAC decision are reused.
    pub cache_ttl: Duration,
    /// The store's namespace (Kubernetes): where RoleBindings give Feast
    /// roles and SubjectAccessReviews ask. Default: the pod's namespace.
    pub namespace: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            auth_type: AuthType::NoAuth,
            authorization: AuthorizationMode::Permissions,
            cache_ttl: Duration::from_secs(10),
            namespace: None,
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    auth_type: Option<String>,
    auth_discovery_url: Option<String>,
    client_id: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    verify_ssl: Option<bool>,
    ca_cert_path: Option<PathBuf>,
    jwks_cache_lifespan_seconds: Option<u64>,
    jwks_request_timeout_seconds: Option<u64>,
    authorization: Option<String>,
    cache_ttl_seconds: Option<u64>,
    namespace: Option<String>,
}

impl AuthConfig {
    /// Reads the `auth` value of `larder.yaml` (absent or null: `no_auth`).
    pub fn from_yaml(v: Option<&Value>) -> Result<AuthConfig, AuthError> {
        let bad = |m: String| AuthError::Config(m);
        let raw: Raw = match v {
            None | Some(Value::Null) => return Ok(AuthConfig::default()),
            Some(v @ Value::Mapping(_)) => serde_yaml::from_value(v.clone()).map_err(|e| bad(format!("auth: {e}")))?,
            Some(_) => return Err(bad("auth must be a mapping with a type".into())),
        };
        let authorization = match raw.authorization.as_deref() {
            None | Some("permissions") => AuthorizationMode::Permissions,
            Some("kubernetes-rbac") => AuthorizationMode::KubernetesRbac,
            Some(other) => {
                return Err(bad(format!(
                    "auth.authorization {other:?} is not one of permissions, kubernetes-rbac"
                )));
            }
        };
        let auth_type = match raw.auth_type.as_deref() {
            Some("no_auth") => AuthType::NoAuth,
            Some("kubernetes") => AuthType::Kubernetes,
            Some("oidc") => {
                let discovery_url = raw
                    .auth_discovery_url
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| bad("auth type oidc needs auth_discovery_url".into()))?;
                if !(discovery_url.starts_with("https://") || discovery_url.starts_with("http://")) {
                    return Err(bad("auth.auth_discovery_url must be an http(s) URL".into()));
                }
                AuthType::Oidc(OidcConfig {
                    discovery_url,
                    client_id: raw.client_id.filter(|c| !c.is_empty()),
                    audience: raw.audience.filter(|a| !a.is_empty()),
                    issuer: raw.issuer.filter(|i| !i.is_empty()),
                    verify_ssl: raw.verify_ssl.unwrap_or(true),
                    ca_cert_path: raw.ca_cert_path,
                    jwks_cache_lifespan: Duration::from_secs(raw.jwks_cache_lifespan_seconds.unwrap_or(300)),
                    request_timeout: Duration::from_secs(raw.jwks_request_timeout_seconds.unwrap_or(10).max(1)),
                    leeway: Duration::from_secs(10),
                })
            }
            Some(other) => {
                return Err(bad(format!(
                    "auth type {other:?} is not one of Feast's (no_auth, kubernetes, oidc)"
                )));
            }
            None => {
                return Err(bad(
                    "auth configuration is missing its type (no_auth, kubernetes or oidc)".into(),
                ));
            }
        };
        if authorization == AuthorizationMode::KubernetesRbac && auth_type != AuthType::Kubernetes {
            return Err(bad(
                "auth.authorization kubernetes-rbac needs auth type kubernetes: SubjectAccessReviews ask about \
                 Kubernetes users"
                    .into(),
            ));
        }
        Ok(AuthConfig {
            auth_type,
            authorization,
            cache_ttl: Duration::from_secs(raw.cache_ttl_seconds.unwrap_or(10)),
            namespace: raw.namespace.filter(|n| !n.is_empty()),
        })
    }

    /// Resolves a relative `ca_cert_path` against the config file's
    /// directory, as every other path of `larder.yaml`.
    pub fn with_base_dir(mut self, base: &std::path::Path) -> Self {
        if let AuthType::Oidc(o) = &mut self.auth_type
            && let Some(p) = &o.ca_cert_path
            && p.is_relative()
        {
            o.ca_cert_path = Some(base.join(p));
        }
        self
    }

    pub fn type_name(&self) -> &'static str {
        match self.auth_type {
            AuthType::NoAuth => "no_auth",
            AuthType::Kubernetes => "kubernetes",
            AuthType::Oidc(_) => "oidc",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AuthConfig, AuthError> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        AuthConfig::from_yaml(Some(&v))
    }

    #[test]
    fn reads_feast_keys_and_defaults() {
        assert_eq!(AuthConfig::from_yaml(None).unwrap().auth_type, AuthType::NoAuth);
        let k = parse("{type: kubernetes, user_token: t, authorization: kubernetes-rbac, namespace: team}").unwrap();
        assert_eq!(k.auth_type, AuthType::Kubernetes);
        assert_eq!(k.authorization, AuthorizationMode::KubernetesRbac);
        assert_eq!(k.namespace.as_deref(), Some("team"));
        let o = parse("{type: oidc, auth_discovery_url: 'https://idp/.well-known/openid-configuration', client_id: c, audience: a, jwks_cache_lifespan_seconds: 5}").unwrap();
        let AuthType::Oidc(o) = o.auth_type else { panic!() };
        assert_eq!(o.client_id.as_deref(), Some("c"));
        assert_eq!(o.audience.as_deref(), Some("a"));
        assert_eq!(o.jwks_cache_lifespan, Duration::from_secs(5));
        assert!(o.verify_ssl);
    }

    #[test]
    fn broken_configurations_are_errors() {
        for (yaml, says) in [
            ("{type: oidc}", "auth_discovery_url"),
            ("{type: oidc, auth_discovery_url: idp}", "http(s) URL"),
            ("{type: ldap}", "not one of Feast's"),
            ("{user_token: x}", "missing its type"),
            ("{type: kubernetes, authorization: abac}", "not one of permissions"),
            (
                "{type: oidc, auth_discovery_url: 'http://i', authorization: kubernetes-rbac}",
                "needs auth type kubernetes",
            ),
            ("[kubernetes]", "mapping"),
        ] {
            let e = parse(yaml).unwrap_err().to_string();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
