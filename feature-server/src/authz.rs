//! Authentication of every request but the open ones (`/health`,
//! `/metrics`, `/openapi.json`, `/docs`) and the Feast actions each
//! endpoint needs, as Feast 0.67's feature server checks them:
//! READ_ONLINE on the feature service, else on each view read;
//! WRITE_ONLINE (push online, `/write-to-online-store`, `/materialize*`);
//! WRITE_OFFLINE for pushes to the offline store.

use std::sync::{Arc, LazyLock};

use axum::http::header::AUTHORIZATION;
use larder_auth::{Action, AuthError, PermissionSet, Resource, User};

use crate::AppState;
use crate::error::ApiError;

/// Paths anyone may call: probes, metrics scrapes, the API description.
pub const OPEN: [&str; 4] = ["/health", "/metrics", "/openapi.json", "/docs"];

/// The authenticated caller of a request. Anonymous (auth off, or an open
/// path) costs nothing to pass around: no shared reference count is touched
/// on the request path.
#[derive(Clone)]
pub enum Caller {
    Anonymous,
    User(Arc<User>),
}

static ANONYMOUS: LazyLock<User> = LazyLock::new(User::anonymous);

impl Caller {
    pub fn user(&self) -> &User {
        match self {
            Caller::Anonymous => &ANONYMOUS,
            Caller::User(u) => u,
        }
    }
}

/// The `Authorization` header of a request, `None` when absent. A value
/// that is not text is kept as text no token can match.
pub fn header_value(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap_or("invalid"))
}

/// Who sent a request for `path` with this `Authorization` value:
/// anonymous on the open paths and while auth is off, else the user the
/// bearer token authenticates (refusals counted by reason).
pub async fn caller(state: &AppState, path: &str, authorization: Option<&str>) -> Result<Caller, AuthError> {
    if !state.auth.is_enabled() || OPEN.contains(&path) {
        return Ok(Caller::Anonymous);
    }
    state.authenticate(authorization).await.map(Caller::User)
}

impl AppState {
    /// The caller behind an `Authorization` value (HTTP header or gRPC
    /// metadata); a refusal is counted by reason.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<User>, AuthError> {
        self.auth
            .authenticate(authorization)
            .await
            .inspect_err(|e| self.metrics.auth_failures.with_label_values(&[e.label()]).inc())
    }

    /// Refuses unless `user` may do `actions` on every resource.
    pub async fn authorize(&self, user: &User, resources: &[Resource<'_>], actions: &[Action]) -> Result<(), ApiError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let permissions = self.permissions().await?;
        self.auth
            .check(user, &permissions, resources, actions)
            .await
            .inspect_err(|e| {
                self.metrics.auth_failures.with_label_values(&[e.label()]).inc();
            })
            .map_err(ApiError::from)
    }

    /// The project's Feast Permissions from the current registry snapshot
    /// (empty when decisions are Kubernetes RBAC's).
    async fn permissions(&self) -> Result<Arc<PermissionSet>, ApiError> {
        if !self.auth.uses_permissions() {
            return Ok(Arc::default());
        }
        let snap = self.registry.snapshot_cached().await.map_err(ApiError::from)?;
        self.permissions
            .get(&self.project, snap.generation(), || snap.permissions(&self.project))
            .map_err(|e| ApiError::from(AuthError::from(e)))
    }
}
