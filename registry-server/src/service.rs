//! The service's state and the four operations every kind's RPCs are made
//! of (get, list, apply, delete), each with its authorization check.

use std::sync::Arc;

use larder_auth::{Action, Auth, ProjectPermissions, User};
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::registry as fr;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use tonic::{Response, Status};
use tracing::Instrument;

use crate::errors::{invalid, not_found, status_from};
use crate::query::{Tags, paginate, sort, tags};

pub struct RegistryService {
    pub(crate) registry: Arc<CachedRegistry>,
    pub(crate) auth: Arc<Auth>,
    pub(crate) permissions: ProjectPermissions,
}

impl RegistryService {
    /// A service without authentication (`no_auth`).
    pub fn new(registry: Arc<CachedRegistry>) -> Self {
        Self::with_auth(registry, Arc::new(Auth::disabled()))
    }

    pub fn with_auth(registry: Arc<CachedRegistry>, auth: Arc<Auth>) -> Self {
        Self {
            registry,
            auth,
            permissions: ProjectPermissions::default(),
        }
    }

    pub(crate) fn source(&self, allow_cache: bool) -> &dyn Registry {
        if allow_cache {
            self.registry.as_ref()
        } else {
            self.registry.uncached().as_ref()
        }
    }

    /// One object (in a `registry.get` span while traces are exported).
    pub(crate) async fn get(
        &self,
        user: &User,
        project: &str,
        kind: FeastKind,
        name: &str,
        allow_cache: bool,
    ) -> Result<FeastObject, Status> {
        let span = larder_runtime::export_span!(
            "registry.get",
            project = %project,
            kind = ?kind,
            name = %name,
            cached = allow_cache
        );
        async {
            let obj = self
                .source(allow_cache)
                .get(project, kind, name)
                .await
                .map_err(status_from)?
                .ok_or_else(|| not_found(kind, name, project))?;
            self.assert_object(user, project, &obj, &[Action::Describe]).await?;
            Ok(obj)
        }
        .instrument(span)
        .await
    }

    /// The objects of a kind the caller may see, filtered by tags, sorted
    /// and paginated (in a `registry.list` span while traces are exported).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn list(
        &self,
        user: &User,
        project: &str,
        kind: FeastKind,
        allow_cache: bool,
        wanted: &Tags,
        pagination: Option<&fr::PaginationParams>,
        sorting: Option<&fr::SortingParams>,
    ) -> Result<(Vec<FeastObject>, fr::PaginationMetadata), Status> {
        let span =
            larder_runtime::export_span!("registry.list", project = %project, kind = ?kind, cached = allow_cache);
        async {
            let mut v = self
                .source(allow_cache)
                .list(project, kind)
                .await
                .map_err(status_from)?;
            v.retain(|o| {
                let t = tags(o);
                wanted.iter().all(|(k, val)| t.get(k) == Some(val))
            });
            let mut v = self.keep(user, v).await?;
            sort(&mut v, sorting)?;
            Ok(paginate(v, pagination))
        }
        .instrument(span)
        .await
    }

    pub(crate) async fn apply(
        &self,
        user: &User,
        project: &str,
        obj: Option<FeastObject>,
    ) -> Result<Response<()>, Status> {
        let obj = obj.ok_or_else(|| invalid("the request carries no object"))?;
        if obj.kind() != FeastKind::Project {
            larder_model::names::check_project(project).map_err(|e| invalid(format!("project: {e}")))?;
        }
        let name = obj.name();
        if name.is_empty() {
            return Err(invalid(format!("{} name must not be empty", obj.kind())));
        }
        let check = if obj.kind() == FeastKind::Project {
            larder_model::names::check_project(name)
        } else {
            larder_model::names::check_feast_name(name)
        };
        check.map_err(|e| invalid(format!("{} name: {e}", obj.kind())))?;
        if self.auth.is_enabled() {
            // Feast: DESCRIBE+UPDATE on an existing object, CREATE on a new one.
            let existing = self
                .registry
                .uncached()
                .get(project, obj.kind(), name)
                .await
                .map_err(status_from)?;
            match &existing {
                Some(old) => {
                    self.assert_object(user, project, old, &[Action::Describe, Action::Update])
                        .await?
                }
                None => self.assert_object(user, project, &obj, &[Action::Create]).await?,
            }
        }
        self.registry.apply(project, obj).await.map_err(status_from)?;
        Ok(Response::new(()))
    }

    pub(crate) async fn delete(
        &self,
        user: &User,
        project: &str,
        kind: FeastKind,
        name: &str,
    ) -> Result<Response<()>, Status> {
        if self.auth.is_enabled() {
            let Some(old) = self
                .registry
                .uncached()
                .get(project, kind, name)
                .await
                .map_err(status_from)?
            else {
                return Err(not_found(kind, name, project));
            };
            self.assert_object(user, project, &old, &[Action::Delete]).await?;
        }
        if self.registry.delete(project, kind, name).await.map_err(status_from)? {
            Ok(Response::new(()))
        } else {
            Err(not_found(kind, name, project))
        }
    }
}
