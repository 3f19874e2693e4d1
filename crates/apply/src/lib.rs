//! The apply workflow, shared by `larder apply` and the operator.
//!
//! Manifests are validated and converted before anything is written, so bad
//! input never touches the registry ([`Desired::from_catalog`]); then the
//! project is diffed ([`plan`]), written ([`apply`]) and, when an online
//! store is given, its tables follow the registry as `feast apply` does.
//! Every function returns what it did instead of printing it: the CLI prints
//! [`Applied`], the operator turns it into conditions and metrics.

use larder_model::feast::{FeastKind, FeastObject};
use larder_model::validate::Catalog;
use larder_model::{ManifestErrors, convert};
use larder_online::{OnlineError, OnlineStore, ViewSchema};
use larder_registry::{ApplyOutcome, Registry, RegistryError};

pub use larder_registry::plan::{Action, Change};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Manifests(#[from] ManifestErrors),
    /// The project to apply to cannot be decided (none, several, or a conflict).
    #[error("{0}")]
    Project(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry was written, but the online tables could not be provisioned.
    #[error("registry applied, but provisioning the online store failed: {0}")]
    Online(#[source] OnlineError),
}

impl ApplyError {
    /// A short, stable label for metrics and condition reasons.
    pub fn label(&self) -> &'static str {
        match self {
            ApplyError::Manifests(_) => "InvalidSpec",
            ApplyError::Project(_) => "InvalidProject",
            ApplyError::Registry(_) => "RegistryUnavailable",
            ApplyError::Online(_) => "OnlineStoreUnavailable",
        }
    }
}

pub type Result<T> = std::result::Result<T, ApplyError>;

/// The Feast objects a validated manifest set declares for one project.
#[derive(Debug, Clone)]
pub struct Desired {
    pub project: String,
    pub objects: Vec<FeastObject>,
}

impl Desired {
    /// Decide the project (the configured one, else the only FeatureStore of
    /// the manifests; they must agree when both are given) and convert.
    pub fn from_catalog(catalog: &Catalog, configured: Option<&str>) -> Result<Self> {
        let project = resolve_project(catalog, configured)?;
        Ok(Desired {
            objects: convert::to_feast(catalog, &project),
            project,
        })
    }

    /// The online feature views, in the registry's form.
    pub fn online_views(&self) -> Vec<ViewSchema> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                FeastObject::FeatureView(v) if v.spec.as_ref().is_some_and(|s| s.online) => {
                    Some(ViewSchema::from_proto(v))
                }
                _ => None,
            })
            .collect()
    }
}

/// The project a manifest set applies to.
pub fn resolve_project(catalog: &Catalog, configured: Option<&str>) -> Result<String> {
    let declared = catalog.projects();
    let project = match (configured, declared.as_slice()) {
        (_, [a, b, ..]) => {
            return Err(ApplyError::Project(format!(
                "the manifests declare several FeatureStores ({a}, {b}); apply one project at a time"
            )));
        }
        (Some(p), [d]) if p != *d => {
            return Err(ApplyError::Project(format!(
                "the manifests declare project {d} but the configuration selects {p}; use --project {d} or fix the manifests"
            )));
        }
        (Some(p), _) => p.to_string(),
        (None, [d]) => d.to_string(),
        (None, []) => {
            return Err(ApplyError::Project(
                "no project: add a FeatureStore manifest, set `project` in larder.yaml, or pass --project".into(),
            ));
        }
    };
    larder_model::names::check_project(&project).map_err(|e| ApplyError::Project(format!("project: {e}")))?;
    Ok(project)
}

/// What would change, without writing.
pub async fn plan(registry: &dyn Registry, desired: &Desired, prune: bool) -> Result<Vec<Change>> {
    Ok(larder_registry::plan::plan(registry, &desired.project, &desired.objects, prune).await?)
}

/// What an apply did, object by object, in the order it was done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub changes: Vec<Change>,
}

impl Applied {
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// Objects created, updated or deleted: the registry writes made.
    pub fn writes(&self) -> usize {
        self.changes.len() - self.count(Action::Unchanged)
    }

    /// `N created, N updated, N unchanged, N deleted`.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} updated, {} unchanged, {} deleted",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Unchanged),
            self.count(Action::Delete)
        )
    }
}

fn action_of(outcome: ApplyOutcome) -> Action {
    match outcome {
        ApplyOutcome::Created => Action::Create,
        ApplyOutcome::Updated => Action::Update,
        ApplyOutcome::Unchanged => Action::Unchanged,
    }
}

/// Write `desired` to the registry (with `prune`, also delete the project's
/// objects it no longer declares), then create the online tables of its
/// online views and drop those of deleted views.
pub async fn apply(
    registry: &dyn Registry,
    online: Option<&dyn OnlineStore>,
    desired: Desired,
    prune: bool,
) -> Result<Applied> {
    let project = desired.project.clone();
    let deletes: Vec<(FeastKind, String)> = plan(registry, &desired, prune)
        .await?
        .into_iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| (c.kind, c.name))
        .collect();
    // Read the views about to be deleted while they still exist: their tables go too.
    let mut removed_views = Vec::new();
    for (kind, name) in &deletes {
        if *kind == FeastKind::FeatureView
            && let Some(FeastObject::FeatureView(v)) = registry.get(&project, FeastKind::FeatureView, name).await?
        {
            removed_views.push(ViewSchema::from_proto(&v));
        }
    }
    let kept_views = desired.online_views();
    let names: Vec<(FeastKind, String)> = desired
        .objects
        .iter()
        .map(|o| (o.kind(), o.name().to_string()))
        .collect();
    let outcomes = registry.apply_all(&project, desired.objects, deletes.clone()).await?;
    if let Some(online) = online {
        online
            .update(&project, &kept_views, &removed_views)
            .await
            .map_err(ApplyError::Online)?;
    }
    let mut changes: Vec<Change> = names
        .into_iter()
        .zip(outcomes)
        .map(|((kind, name), outcome)| Change {
            kind,
            name,
            action: action_of(outcome),
        })
        .collect();
    changes.extend(deletes.into_iter().map(|(kind, name)| Change {
        kind,
        name,
        action: Action::Delete,
    }));
    tracing::info!(project, changes = changes.len(), "applied");
    Ok(Applied { changes })
}

/// The registry's feature views of `project`, in the online store's form.
pub async fn project_views(registry: &dyn Registry, project: &str) -> Result<Vec<ViewSchema>> {
    Ok(registry
        .list(project, FeastKind::FeatureView)
        .await?
        .iter()
        .filter_map(|o| match o {
            FeastObject::FeatureView(v) => Some(ViewSchema::from_proto(v)),
            _ => None,
        })
        .collect())
}

/// Drop every project's online tables (when a store is given), then the
/// registry's own storage.
pub async fn teardown(registry: &dyn Registry, online: Option<&dyn OnlineStore>) -> Result<()> {
    if let Some(online) = online {
        for p in registry.list_projects().await? {
            let project = p.spec.map(|s| s.name).unwrap_or_default();
            let views = project_views(registry, &project).await?;
            online.teardown(&project, &views).await.map_err(ApplyError::Online)?;
        }
    }
    registry.teardown().await?;
    Ok(())
}

/// Delete one project: its online tables (when a store is given), then every
/// registry object of it. Returns whether the project existed.
pub async fn delete_project(registry: &dyn Registry, online: Option<&dyn OnlineStore>, project: &str) -> Result<bool> {
    if let Some(online) = online {
        let views = project_views(registry, project).await?;
        online.teardown(project, &views).await.map_err(ApplyError::Online)?;
    }
    Ok(registry.delete(project, FeastKind::Project, project).await?)
}
