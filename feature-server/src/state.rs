//! The server's shared state: limits, the registry and online store, auth,
//! metrics, and the cache of resolved request plans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use larder_auth::{Action, Resource, ResourceType, User};
use larder_materialize::Materializer;
use larder_model::feast::{FeastKind, FeastObject};
use larder_online::OnlineStore;
use larder_protos::feast::core as fc;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_serving::Plan;

use crate::error::ApiError;
use crate::metrics;

/// Request limits; every one is configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_entities: usize,
    pub max_features: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_entities: 10_000,
            max_features: 1_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct AppState {
    pub registry: Arc<CachedRegistry>,
    pub online: Arc<dyn OnlineStore>,
    /// Label for metrics (`sqlite`, `redis`, …).
    pub store_kind: String,
    pub project: String,
    pub limits: Limits,
    pub postgres_url: Option<String>,
    pub metrics: metrics::Metrics,
    /// Who may call (`no_auth` unless configured).
    pub auth: Arc<larder_auth::Auth>,
    pub(crate) permissions: larder_auth::ProjectPermissions,
    pub(crate) plans: PlanCache,
}

/// Most resolved plans kept: enough for every feature list a fleet of
/// clients normally sends, small enough that clients sending ever new
/// lists cannot grow the server (least recently used plans go first).
pub const PLAN_CACHE_CAPACITY: usize = 512;

/// Longer keys (huge feature lists) are resolved per request, not cached,
/// so the cache's memory stays bounded too.
const MAX_PLAN_KEY_BYTES: usize = 16 * 1024;

/// Resolved plans for one registry snapshot, keyed by
/// [`larder_serving::plan_key`]. The snapshot's generation, never its
/// address, says whether a plan is still valid: a freed snapshot's memory
/// can be reused by the next one.
pub(crate) struct PlanCache {
    inner: std::sync::RwLock<PlanMap>,
    /// Logical clock for least-recently-used eviction, advanced by inserts
    /// only: a hit read-locks the map and stamps its plan with the clock
    /// when the stamp differs, so the hot path writes no shared memory
    /// (plans used since the same insert tie; any of them may go first).
    clock: AtomicU64,
}

#[derive(Default)]
struct PlanMap {
    generation: u64,
    plans: HashMap<Vec<u8>, CachedPlan>,
}

struct CachedPlan {
    plan: Arc<Plan>,
    used: AtomicU64,
}

impl PlanCache {
    fn new() -> Self {
        Self {
            inner: std::sync::RwLock::new(PlanMap::default()),
            clock: AtomicU64::new(0),
        }
    }

    fn get(&self, generation: u64, key: &[u8]) -> Option<Arc<Plan>> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if map.generation != generation {
            return None;
        }
        let p = map.plans.get(key)?;
        let now = self.clock.load(Ordering::Relaxed);
        if p.used.load(Ordering::Relaxed) != now {
            p.used.store(now, Ordering::Relaxed);
        }
        Some(p.plan.clone())
    }

    fn insert(&self, generation: u64, key: Vec<u8>, plan: Arc<Plan>) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if generation < map.generation {
            // Built from a snapshot that has since been replaced.
            return;
        }
        if generation > map.generation {
            map.generation = generation;
            map.plans.clear();
        }
        if map.plans.len() >= PLAN_CACHE_CAPACITY
            && !map.plans.contains_key(&key)
            && let Some(oldest) = map
                .plans
                .iter()
                .min_by_key(|(_, p)| p.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
        {
            map.plans.remove(&oldest);
        }
        let used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed) + 1);
        map.plans.insert(key, CachedPlan { plan, used });
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).plans.len()
    }
}

impl AppState {
    pub fn new(
        registry: Arc<CachedRegistry>,
        online: Arc<dyn OnlineStore>,
        store_kind: impl Into<String>,
        project: impl Into<String>,
        limits: Limits,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            registry,
            online,
            store_kind: store_kind.into(),
            project: project.into(),
            limits,
            postgres_url: None,
            metrics: metrics::Metrics::new()?,
            auth: Arc::new(larder_auth::Auth::disabled()),
            permissions: larder_auth::ProjectPermissions::default(),
            plans: PlanCache::new(),
        })
    }

    /// The plan for these features, resolved once per registry snapshot and
    /// always against the snapshot it is served with (in a `registry.plan`
    /// span while traces are exported).
    pub async fn plan(&self, features: &[String], service: Option<&str>) -> Result<Arc<Plan>, ApiError> {
        use tracing::Instrument;
        let span = larder_runtime::export_span!(
            "registry.plan",
            features = features.len(),
            service = service.unwrap_or_default()
        );
        self.cached_plan(features, service).instrument(span).await
    }

    async fn cached_plan(&self, features: &[String], service: Option<&str>) -> Result<Arc<Plan>, ApiError> {
        let snap = self.registry.snapshot_cached().await.map_err(ApiError::from)?;
        let generation = snap.generation();
        let key = larder_serving::plan_key(features, service).filter(|k| k.len() <= MAX_PLAN_KEY_BYTES);
        if let Some(k) = &key
            && let Some(p) = self.plans.get(generation, k)
        {
            return Ok(p);
        }
        let plan = Arc::new(larder_serving::plan_in(&snap, &self.project, features, service)?);
        if let Some(k) = key {
            self.plans.insert(generation, k, plan.clone());
        }
        Ok(plan)
    }

    /// READ_ONLINE on the feature service when one is asked for, else on
    /// every view the plan reads (Feast's `_get_features`).
    pub async fn authorize_plan(&self, user: &User, plan: &Plan, service: Option<&str>) -> Result<(), ApiError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let resources: Vec<Resource<'_>> = match service {
            Some(s) => vec![Resource::new(ResourceType::FeatureService, s)],
            None => plan
                .views
                .iter()
                .map(|v| Resource::new(ResourceType::FeatureView, view_name(&v.view)))
                .collect(),
        };
        self.authorize(user, &resources, &[Action::ReadOnline]).await
    }

    pub(crate) fn materializer(&self) -> Materializer {
        let registry: Arc<dyn Registry> = self.registry.clone();
        let mut m = Materializer::new(registry, self.online.clone(), self.project.clone());
        m.postgres_url = self.postgres_url.clone();
        m.recorder = Some(self.metrics.materialize.clone());
        m
    }

    /// The project's feature views, from the cached snapshot unless the
    /// client asked to bypass it (`allow_registry_cache: false`).
    pub(crate) async fn feature_views(&self, allow_cache: bool) -> Result<Vec<fc::FeatureView>, ApiError> {
        let objs = if allow_cache {
            self.registry.list(&self.project, FeastKind::FeatureView).await
        } else {
            self.registry
                .uncached()
                .list(&self.project, FeastKind::FeatureView)
                .await
        }
        .map_err(ApiError::from)?;
        Ok(objs
            .into_iter()
            .filter_map(|o| match o {
                FeastObject::FeatureView(v) => Some(v),
                _ => None,
            })
            .collect())
    }
}

/// A feature view's name (empty without a spec).
pub(crate) fn view_name(v: &fc::FeatureView) -> &str {
    v.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Arc<Plan> {
        Arc::new(Plan { views: Vec::new() })
    }

    #[test]
    fn plans_of_another_generation_are_not_served() {
        let cache = PlanCache::new();
        cache.insert(3, b"a".to_vec(), plan());
        assert!(cache.get(3, b"a").is_some());
        assert!(cache.get(4, b"a").is_none());
        // A plan built from an older snapshot does not replace newer ones.
        cache.insert(2, b"b".to_vec(), plan());
        assert!(cache.get(3, b"b").is_none());
        cache.insert(4, b"b".to_vec(), plan());
        assert!(cache.get(3, b"a").is_none() && cache.get(4, b"b").is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_evicts_a_plan_not_used_since_older_inserts() {
        let cache = PlanCache::new();
        for i in 0..PLAN_CACHE_CAPACITY {
            cache.insert(1, format!("k{i}").into_bytes(), plan());
        }
        // k0 is the oldest insert, but used now; k1 is the least recently used.
        assert!(cache.get(1, b"k0").is_some());
        cache.insert(1, b"new".to_vec(), plan());
        assert_eq!(cache.len(), PLAN_CACHE_CAPACITY);
        assert!(cache.get(1, b"k0").is_some());
        assert!(cache.get(1, b"k1").is_none());
        assert!(cache.get(1, b"new").is_some());
        // Used again after the insert: k0 outlives k2 (the next oldest) too.
        cache.insert(1, b"newer".to_vec(), plan());
        assert!(cache.get(1, b"k0").is_some());
        assert!(cache.get(1, b"k2").is_none());
    }
}
