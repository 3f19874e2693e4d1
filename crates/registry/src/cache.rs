//! The read cache servers use: a whole-registry snapshot refreshed after
//! `cache_ttl` (0 = never expires, as in Feast). A cached read costs no
//! database round trip; writes go straight through and drop the snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost_types::Timestamp;
use tokio::sync::{Mutex, RwLock};

use crate::store::{objects_of, sort_by_name};
use crate::{ApplyOutcome, Registry, Result};

/// A registry snapshot indexed for lookups by (project, kind, name).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub registry: fc::Registry,
    by_kind: HashMap<(String, FeastKind), Vec<FeastObject>>,
}

impl Snapshot {
    pub fn new(registry: fc::Registry) -> Self {
        let mut by_kind: HashMap<(String, FeastKind), Vec<FeastObject>> = HashMap::new();
        for kind in FeastKind::OBJECTS {
            for o in objects_of(&registry, kind) {
                by_kind.entry((o.project().to_string(), kind)).or_default().push(o);
            }
        }
        for v in by_kind.values_mut() {
            sort_by_name(v);
        }
        Self { registry, by_kind }
    }

    pub fn list(&self, project: &str, kind: FeastKind) -> Vec<FeastObject> {
        if kind == FeastKind::Project {
            return self
                .registry
                .projects
                .iter()
                .cloned()
                .map(FeastObject::Project)
                .collect();
        }
        self.by_kind
            .get(&(project.to_string(), kind))
            .cloned()
            .unwrap_or_default()
    }

    pub fn get(&self, project: &str, kind: FeastKind, name: &str) -> Option<FeastObject> {
        if kind == FeastKind::Project {
            return self
                .registry
                .projects
                .iter()
                .find(|p| p.spec.as_ref().is_some_and(|s| s.name == name))
                .cloned()
                .map(FeastObject::Project);
        }
        let v = self.by_kind.get(&(project.to_string(), kind))?;
        v.binary_search_by(|o| o.name().cmp(name)).ok().map(|i| v[i].clone())
    }
}

pub struct CachedRegistry {
    inner: Arc<dyn Registry>,
    ttl: Duration,
    state: RwLock<Option<(Instant, Arc<Snapshot>)>>,
    refreshing: Mutex<()>,
}

impl CachedRegistry {
    pub fn new(inner: Arc<dyn Registry>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            state: RwLock::new(None),
            refreshing: Mutex::new(()),
        }
    }

    /// The backing registry, for reads that must not come from the cache.
    pub fn uncached(&self) -> &Arc<dyn Registry> {
        &self.inner
    }

    fn fresh(&self, at: Instant) -> bool {
        self.ttl.is_zero() || at.elapsed() < self.ttl
    }

    /// The current snapshot, rebuilt if older than the TTL. Concurrent
    /// callers share one rebuild.
    pub async fn snapshot_cached(&self) -> Result<Arc<Snapshot>> {
        if let Some((at, s)) = self.state.read().await.as_ref()
            && self.fresh(*at)
        {
            return Ok(s.clone());
        }
        let _guard = self.refreshing.lock().await;
        if let Some((at, s)) = self.state.read().await.as_ref()
            && self.fresh(*at)
        {
            return Ok(s.clone());
        }
        self.refresh().await
    }

    /// Rebuild the snapshot now.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>> {
        let snap = Arc::new(Snapshot::new(self.inner.snapshot().await?));
        *self.state.write().await = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }

    /// Age of the cached snapshot, if any (for metrics).
    pub async fn age(&self) -> Option<Duration> {
        self.state.read().await.as_ref().map(|(at, _)| at.elapsed())
    }

    async fn invalidate(&self) {
        *self.state.write().await = None;
    }
}

#[async_trait]
impl Registry for CachedRegistry {
    async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome> {
        let r = self.inner.apply(project, obj).await;
        self.invalidate().await;
        r
    }

    async fn apply_all(
        &self,
        project: &str,
        objects: Vec<FeastObject>,
        deletes: Vec<(FeastKind, String)>,
    ) -> Result<Vec<ApplyOutcome>> {
        let r = self.inner.apply_all(project, objects, deletes).await;
        self.invalidate().await;
        r
    }

    async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>> {
        Ok(self.snapshot_cached().await?.get(project, kind, name))
    }

    async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>> {
        Ok(self.snapshot_cached().await?.list(project, kind))
    }

    async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool> {
        let r = self.inner.delete(project, kind, name).await;
        self.invalidate().await;
        r
    }

    async fn list_projects(&self) -> Result<Vec<fc::Project>> {
        Ok(self.snapshot_cached().await?.registry.projects.clone())
    }

    async fn apply_materialization(&self, project: &str, view: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        let r = self.inner.apply_materialization(project, view, start, end).await;
        self.invalidate().await;
        r
    }

    async fn get_infra(&self, project: &str) -> Result<fc::Infra> {
        self.inner.get_infra(project).await
    }

    async fn update_infra(&self, project: &str, infra: fc::Infra) -> Result<()> {
        let r = self.inner.update_infra(project, infra).await;
        self.invalidate().await;
        r
    }

    async fn list_project_metadata(&self, project: &str) -> Result<Vec<fc::ProjectMetadata>> {
        Ok(self
            .snapshot_cached()
            .await?
            .registry
            .project_metadata
            .iter()
            .filter(|m| m.project == project)
            .cloned()
            .collect())
    }

    async fn snapshot(&self) -> Result<fc::Registry> {
        Ok(self.snapshot_cached().await?.registry.clone())
    }

    async fn teardown(&self) -> Result<()> {
        let r = self.inner.teardown().await;
        self.invalidate().await;
        r
    }
}
