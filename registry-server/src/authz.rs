//! Who may call which registry RPC, as Feast 0.67's registry server checks
//! it: DESCRIBE to get an object (lists keep only what the caller may
//! describe), CREATE to apply a new object, DESCRIBE+UPDATE to change an
//! existing one, DELETE to delete, WRITE_ONLINE on a view to record a
//! materialization. Permissions are the request project's. The gRPC health
//! and reflection services stay open.

use std::sync::Arc;

use larder_auth::{Action, AuthError, PermissionSet, Resource, ResourceType, User};
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use tonic::{Request, Status};

use crate::RegistryService;
use crate::errors::{feast_status, status_from};

/// The Feast class of a registry kind.
pub fn resource_type(kind: FeastKind) -> ResourceType {
    match kind {
        FeastKind::Project => ResourceType::Project,
        FeastKind::DataSource => ResourceType::DataSource,
        FeastKind::Entity => ResourceType::Entity,
        FeastKind::FeatureView => ResourceType::FeatureView,
        FeastKind::StreamFeatureView => ResourceType::StreamFeatureView,
        FeastKind::OnDemandFeatureView => ResourceType::OnDemandFeatureView,
        FeastKind::LabelView => ResourceType::LabelView,
        FeastKind::FeatureService => ResourceType::FeatureService,
        FeastKind::SavedDataset => ResourceType::SavedDataset,
        FeastKind::ValidationReference => ResourceType::ValidationReference,
        FeastKind::Permission => ResourceType::Permission,
    }
}

/// An object as a protected resource. A Permission carries its own
/// `required_tags`, which Feast matches against other Permissions'.
pub fn resource_of(o: &FeastObject) -> Resource<'_> {
    let r = Resource::new(resource_type(o.kind()), o.name());
    match o {
        FeastObject::Permission(p) => match &p.spec {
            Some(spec) => r.with_required_tags(&spec.required_tags),
            None => r,
        },
        _ => r,
    }
}

/// Auth outcomes as gRPC statuses; a refusal carries Feast's error JSON so
/// the SDK raises `FeastPermissionError`.
pub fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Unauthenticated(m) if m.starts_with("missing") => {
            Status::unauthenticated("Missing authentication token")
        }
        AuthError::Unauthenticated(m) => Status::unauthenticated(format!("Invalid or expired access token ({m})")),
        AuthError::Denied(d) => feast_status(
            tonic::Code::PermissionDenied,
            "FeastPermissionError",
            format!("Permission error:\n{}", d.0),
        ),
        AuthError::Unavailable(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

impl RegistryService {
    /// The authenticated caller and the request's message.
    pub(crate) async fn caller<T>(&self, r: Request<T>) -> Result<(Arc<User>, T), Status> {
        let header = r
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("invalid"));
        let user = self.auth.authenticate(header).await.map_err(|e| {
            tracing::info!(reason = %e, "registry call refused");
            auth_status(e)
        })?;
        Ok((user, r.into_inner()))
    }

    async fn permission_set(&self, project: &str) -> Result<Arc<PermissionSet>, Status> {
        if !self.auth.uses_permissions() {
            return Ok(Arc::default());
        }
        let snap = self.registry.snapshot_cached().await.map_err(status_from)?;
        self.permissions
            .get(project, snap.generation(), || snap.permissions(project))
            .map_err(|e| auth_status(e.into()))
    }

    /// Refuses unless `user` may do `actions` on the object.
    pub(crate) async fn assert(
        &self,
        user: &User,
        project: &str,
        kind: FeastKind,
        name: &str,
        actions: &[Action],
    ) -> Result<(), Status> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        self.assert_resource(user, project, Resource::new(resource_type(kind), name), actions)
            .await
    }

    /// [`RegistryService::assert`] for an object at hand.
    pub(crate) async fn assert_object(
        &self,
        user: &User,
        project: &str,
        object: &FeastObject,
        actions: &[Action],
    ) -> Result<(), Status> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        self.assert_resource(user, project, resource_of(object), actions).await
    }

    async fn assert_resource(
        &self,
        user: &User,
        project: &str,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Result<(), Status> {
        let set = self.permission_set(project).await?;
        self.auth
            .check(user, &set, &[resource], actions)
            .await
            .map_err(auth_status)
    }

    /// The objects `user` may describe (Feast's `permitted_resources`);
    /// a project's objects are judged by that project's Permissions.
    pub(crate) async fn keep(&self, user: &User, objects: Vec<FeastObject>) -> Result<Vec<FeastObject>, Status> {
        if !self.auth.is_enabled() {
            return Ok(objects);
        }
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let project = if o.kind() == FeastKind::Project {
                o.name()
            } else {
                o.project()
            };
            let set = self.permission_set(project).await?;
            let r = resource_of(&o);
            if self
                .auth
                .permitted(user, &set, r, &[Action::Describe])
                .await
                .map_err(auth_status)?
            {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// The whole registry, each list filtered as its List RPC would be.
    pub(crate) async fn keep_registry(&self, user: &User, mut reg: fc::Registry) -> Result<fc::Registry, Status> {
        if !self.auth.is_enabled() {
            return Ok(reg);
        }
        macro_rules! filter {
            ($field:ident, $variant:ident) => {{
                let objs = std::mem::take(&mut reg.$field)
                    .into_iter()
                    .map(FeastObject::$variant)
                    .collect();
                reg.$field = self
                    .keep(user, objs)
                    .await?
                    .into_iter()
                    .filter_map(|o| match o {
                        FeastObject::$variant(x) => Some(x),
                        _ => None,
                    })
                    .collect();
            }};
        }
        filter!(entities, Entity);
        filter!(data_sources, DataSource);
        filter!(feature_views, FeatureView);
        filter!(stream_feature_views, StreamFeatureView);
        filter!(on_demand_feature_views, OnDemandFeatureView);
        filter!(label_views, LabelView);
        filter!(feature_services, FeatureService);
        filter!(saved_datasets, SavedDataset);
        filter!(validation_references, ValidationReference);
        filter!(permissions, Permission);
        filter!(projects, Project);
        Ok(reg)
    }
}
