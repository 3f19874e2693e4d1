//! Authentication and authorization for Larder's servers, in Feast 0.67's
//! terms (feast-compat.md §9) and Kubernetes' own.
//!
//! - `no_auth`: everyone is `anonymous`; nothing is checked.
//! - `kubernetes`: the bearer token goes through a TokenReview; Feast roles
//!   are the Roles bound to the caller in the store's namespace.
//! - `oidc`: the bearer token is a JWT verified against the issuer's JWKS.
//!
//! Decisions: Feast's Permissions ([`PermissionSet`]) or, with
//! `authorization: kubernetes-rbac`, a SubjectAccessReview per decision.
//! Every failure to reach an authority refuses the request
//! ([`AuthError::Unavailable`]); nothing here ever lets a request through
//! because something went wrong. Tokens never appear in errors or logs:
//! caches key them by their SHA-256.

mod cache;
pub mod config;
pub mod http;
pub mod kubernetes;
pub mod oidc;
pub mod permissions;
mod project;
pub mod rbac;
mod user;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use config::{AuthConfig, AuthType, AuthorizationMode, OidcConfig};
pub use permissions::{Action, Denied, InvalidPermission, PermissionSet, Resource, ResourceType};
pub use project::ProjectPermissions;
pub use user::{KubeSubject, User};

use cache::TtlCache;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or credentials that prove nothing: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, not allowed: 403 with Feast's permission error.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The authority (API server, identity provider) cannot be asked now:
    /// 503, never a pass.
    #[error("{0}")]
    Unavailable(String),
    /// A Permission in the registry that cannot be enforced: the request is
    /// refused, as Feast fails it.
    #[error(transparent)]
    InvalidPermission(#[from] InvalidPermission),
    /// The auth configuration is unusable: the server does not start.
    #[error("{0}")]
    Config(String),
}

impl AuthError {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::Denied(_) => "denied",
            AuthError::Unavailable(_) => "unavailable",
            AuthError::InvalidPermission(_) => "invalid_permission",
            AuthError::Config(_) => "config",
        }
    }
}

/// Proves who a token belongs to.
#[async_trait::async_trait]
pub trait Authenticate: Send + Sync {
    async fn authenticate(&self, token: &str) -> Result<User, AuthError>;
}

/// The token of an `Authorization` header: Feast's `(?i)Bearer .+`, then
/// exactly two whitespace-separated parts.
pub fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let mut parts = header.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") && header.len() > 7 => Ok(token),
        _ => Err(AuthError::Unauthenticated(
            "expected an Authorization header with the Bearer scheme".into(),
        )),
    }
}

/// RBAC decisions asked for without an API server to ask: refuse (the
/// servers pass no Permissions in that mode, which would allow everyone).
fn no_rbac() -> AuthError {
    AuthError::Config("authorization kubernetes-rbac has no Kubernetes client to ask".into())
}

static ANONYMOUS: LazyLock<Arc<User>> = LazyLock::new(|| Arc::new(User::anonymous()));

/// Most tokens and decisions remembered at once.
const CACHE_CAPACITY: usize = 16_384;

/// A server's authentication and authorization, built once from its
/// configuration and shared by every request.
pub struct Auth {
    inner: Option<Enabled>,
}

struct Enabled {
    type_name: &'static str,
    authenticator: Arc<dyn Authenticate>,
    users: TtlCache<[u8; 32], Arc<User>>,
    mode: AuthorizationMode,
    rbac: Option<rbac::Rbac>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({})", self.describe())
    }
}

impl Auth {
    /// `no_auth`: every caller is anonymous and allowed.
    pub fn disabled() -> Self {
        Auth { inner: None }
    }

    /// Builds the authenticator the configuration names. OIDC discovery is
    /// tried now and again per request until it succeeds, so a provider
    /// that is down at start makes requests fail (503), not the server.
    pub async fn from_config(cfg: &AuthConfig) -> Result<Self, AuthError> {
        let (authenticator, rbac): (Arc<dyn Authenticate>, Option<rbac::Rbac>) = match &cfg.auth_type {
            AuthType::NoAuth => return Ok(Auth::disabled()),
            AuthType::Oidc(o) => {
                let oidc = oidc::OidcAuthenticator::new(o.clone())?;
                if let Err(e) = oidc.prefetch().await {
                    tracing::warn!(error = %e, "OIDC provider not reachable at start; requests are refused until it is");
                }
                (Arc::new(oidc), None)
            }
            AuthType::Kubernetes => {
                let mut k = kubernetes::KubeAuthenticator::new(cfg.namespace.clone()).await?;
                if cfg.authorization == AuthorizationMode::KubernetesRbac {
                    k = k.without_roles();
                }
                let rbac = (cfg.authorization == AuthorizationMode::KubernetesRbac)
                    .then(|| rbac::Rbac::new(k.client(), k.namespace().to_string(), cfg.cache_ttl));
                (Arc::new(k), rbac)
            }
        };
        Ok(Self::with_authenticator(
            cfg.type_name(),
            authenticator,
            cfg.cache_ttl,
            cfg.authorization,
            rbac,
        ))
    }

    /// An enabled `Auth` around any authenticator (tests, embedders).
    pub fn with_authenticator(
        type_name: &'static str,
        authenticator: Arc<dyn Authenticate>,
        cache_ttl: Duration,
        mode: AuthorizationMode,
        rbac: Option<rbac::Rbac>,
    ) -> Self {
        Auth {
            inner: Some(Enabled {
                type_name,
                authenticator,
                users: TtlCache::new(cache_ttl, CACHE_CAPACITY),
                mode,
                rbac,
            }),
        }
    }

    /// Logs, once at start, that a server without authentication listens
    /// beyond loopback.
    pub fn warn_if_open(&self, host: &str) {
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if self.inner.is_none() && !loopback {
            tracing::warn!(
                host,
                "auth type no_auth: every client that can reach this address may read and write features; \
                 configure auth (kubernetes or oidc) in larder.yaml"
            );
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// `oidc, permissions`-style summary for start-up lines.
    pub fn describe(&self) -> String {
        match &self.inner {
            None => "no_auth".into(),
            Some(e) => format!("auth {}, authorization {}", e.type_name, e.mode.as_str()),
        }
    }

    /// The caller behind an `Authorization` header value. Successful
    /// authentications are reused for the cache TTL, keyed by the token's
    /// hash; failures are not cached.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<User>, AuthError> {
        let Some(e) = &self.inner else {
            return Ok(ANONYMOUS.clone());
        };
        let header = authorization.ok_or_else(|| AuthError::Unauthenticated("missing authentication token".into()))?;
        let token = bearer_token(header)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(user) = e.users.get(&key) {
            return Ok(user);
        }
        let user = e.authenticator.authenticate(token).await?;
        if user.username.is_empty() {
            return Err(AuthError::Unauthenticated("the token names no user".into()));
        }
        let user = Arc::new(user);
        e.users.insert(key, user.clone());
        Ok(user)
    }

    /// Every resource allowed for every action, or the first refusal.
    pub async fn check(
        &self,
        user: &User,
        permissions: &PermissionSet,
        resources: &[Resource<'_>],
        actions: &[Action],
    ) -> Result<(), AuthError> {
        let Some(e) = &self.inner else { return Ok(()) };
        match (&e.rbac, e.mode) {
            (Some(rbac), AuthorizationMode::KubernetesRbac) => rbac.check(user, resources, actions).await,
            (None, AuthorizationMode::KubernetesRbac) => Err(no_rbac()),
            _ => Ok(permissions.check_all(user, resources, actions)?),
        }
    }

    /// For list calls: whether to keep `resource`; `Err` fails the call.
    pub async fn permitted(
        &self,
        user: &User,
        permissions: &PermissionSet,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Result<bool, AuthError> {
        let Some(e) = &self.inner else { return Ok(true) };
        match (&e.rbac, e.mode) {
            (Some(rbac), AuthorizationMode::KubernetesRbac) => rbac.permitted(user, resource, actions).await,
            (None, AuthorizationMode::KubernetesRbac) => Err(no_rbac()),
            _ => Ok(permissions.permitted(user, resource, actions)?),
        }
    }

    /// Whether decisions read Feast's Permissions (the servers then load
    /// them from the registry).
    pub fn uses_permissions(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|e| e.mode == AuthorizationMode::Permissions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_feast_reads_them() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("BEARER  abc ").unwrap(), "abc");
        for bad in ["Bearer", "Bearer ", "Basic abc", "Bearer a b", "abc", ""] {
            assert!(bearer_token(bad).is_err(), "{bad:?}");
        }
    }

    struct Fixed;

    #[async_trait::async_trait]
    impl Authenticate for Fixed {
        async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
            match token {
                "good" => Ok(User {
                    username: "alice".into(),
                    ..User::default()
                }),
                "nameless" => Ok(User::default()),
                _ => Err(AuthError::Unauthenticated("invalid token".into())),
            }
        }
    }

    #[tokio::test]
    async fn authenticate_needs_a_valid_bearer_token() {
        let auth = Auth::with_authenticator(
            "test",
            Arc::new(Fixed),
            Duration::from_secs(10),
            AuthorizationMode::Permissions,
            None,
        );
        assert_eq!(auth.authenticate(Some("Bearer good")).await.unwrap().username, "alice");
        assert!(matches!(
            auth.authenticate(None).await,
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer bad")).await,
            Err(AuthError::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("Bearer nameless")).await,
            Err(AuthError::Unauthenticated(_))
        ));
        let off = Auth::disabled();
        assert_eq!(off.authenticate(None).await.unwrap().username, "anonymous");
    }

    /// Asked for RBAC decisions without a client, `Auth` refuses; it never
    /// falls back to the (then empty, so open) Permissions.
    #[tokio::test]
    async fn rbac_mode_without_a_client_refuses() {
        let auth = Auth::with_authenticator(
            "test",
            Arc::new(Fixed),
            Duration::from_secs(10),
            AuthorizationMode::KubernetesRbac,
            None,
        );
        let user = auth.authenticate(Some("Bearer good")).await.unwrap();
        let r = Resource::new(ResourceType::FeatureView, "v");
        let empty = PermissionSet::default();
        assert!(auth.check(&user, &empty, &[r], &[Action::ReadOnline]).await.is_err());
        assert!(auth.permitted(&user, &empty, r, &[Action::Describe]).await.is_err());
    }
}
