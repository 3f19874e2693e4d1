//! The read cache servers use: a whole-registry snapshot, reloaded in the
//! background every `cache_ttl` (0 = never expires, as in Feast). A cached
//! read costs no database round trip; writes go straight through and mark
//! the snapshot out of date.
//!
//! Why in the background: a server that holds a good snapshot must keep
//! answering when the registry's database is slow or unreachable. Readers
//! never wait for the database after the first load, with one exception:
//! a read after a write through this same cache waits for the reload (at
//! most the refresh timeout) so the writer reads its write back, unless the
//! registry is already known to be failing. Every load is bounded by one
//! timeout, connect and query together: [`DEFAULT_REFRESH_TIMEOUT`], or
//! three times the last successful load if that is longer (so a registry
//! that is merely big is not mistaken for a dead one), and
//! [`FIRST_LOAD_TIMEOUT`] while there is no snapshot to fall back on.
//! While loads fail, the last good snapshot is served, failures are
//! counted ([`CachedRegistry::status`]), and a load is retried every second
//! (or every `cache_ttl`, if shorter), so changes show up as soon as the
//! registry is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost_types::Timestamp;
use tokio::sync::Notify;

use crate::store::{objects_of, sort_by_name};
use crate::{ApplyOutcome, Registry, RegistryError, Result};

/// Longest one snapshot load may take, connecting included. Short, because
/// readers after a write wait for it; a registry that cannot answer in this
/// time is treated as down and the last good snapshot is served.
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on a load while there is no snapshot yet: with nothing else to
/// serve, waiting longer is better than failing.
pub const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a failing registry is tried again (or every `cache_ttl`, if shorter).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Snapshot generations, unique in the process: what plan caches key on
/// (an address can be reused once a snapshot is freed; a generation is not).
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A registry snapshot indexed for lookups by (project, kind, name).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub registry: fc::Registry,
    by_kind: HashMap<(String, FeastKind), Vec<FeastObject>>,
    generation: u64,
}

impl Snapshot {
    /// Index `registry`; the snapshot gets a generation no other snapshot in
    /// this process has.
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
        Self {
            registry,
            by_kind,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Unique per snapshot and increasing: state derived from a snapshot
    /// (resolved request plans) is valid while the generation is the same.
    pub fn generation(&self) -> u64 {
        self.generation
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

    /// The project's Feast Permissions (what the servers enforce).
    pub fn permissions(&self, project: &str) -> Vec<fc::Permission> {
        self.list(project, FeastKind::Permission)
            .into_iter()
            .filter_map(|o| match o {
                FeastObject::Permission(p) => Some(p),
                _ => None,
            })
            .collect()
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

/// How the cached registry is doing, for health checks and metrics.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    /// Generation of the snapshot being served; `None` before the first load.
    pub generation: Option<u64>,
    /// How old the served snapshot is (since its load started).
    pub age: Option<Duration>,
    /// Failed loads since the last successful one.
    pub consecutive_failures: u64,
    /// Failed loads since the cache was created (a counter).
    pub failures_total: u64,
    /// How long loads have been failing.
    pub failing_for: Option<Duration>,
    /// The last failure. It may name hosts: for logs, not for probe bodies.
    pub last_error: Option<String>,
}

/// What a health check should say about the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    /// The last load succeeded.
    Fresh,
    /// The registry cannot be read; reads are served from the last good snapshot.
    Stale,
    /// No snapshot has been loaded: cached reads fail.
    Unavailable,
}

impl CacheStatus {
    pub fn health(&self) -> CacheHealth {
        match (self.generation, self.consecutive_failures) {
            (None, _) => CacheHealth::Unavailable,
            (Some(_), 0) => CacheHealth::Fresh,
            (Some(_), _) => CacheHealth::Stale,
        }
    }
}

/// A [`Registry`] whose reads come from a snapshot (see the module doc).
pub struct CachedRegistry {
    shared: Arc<Shared>,
}

/// The state the cache and its background refresher share. The refresher
/// holds only a `Weak`, so it ends when the cache is dropped.
struct Shared {
    inner: Arc<dyn Registry>,
    ttl: Duration,
    timeout: Duration,
    /// How long the last successful load took, in microseconds.
    last_load_micros: AtomicU64,
    current: RwLock<Option<Loaded>>,
    /// Writes through this cache so far; a snapshot loaded before the
    /// latest one is out of date.
    writes: AtomicU64,
    failures_total: AtomicU64,
    failing: Mutex<Failing>,
    /// One load at a time (readers after a write, the refresher, `refresh`).
    loading: tokio::sync::Mutex<()>,
    /// Wakes the refresher: a write happened, or the cache was dropped.
    wake: Arc<Notify>,
    /// Whether a refresher task is alive (it clears this when it ends,
    /// also when its runtime shuts down, so the next reader starts one).
    refresher: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Loaded {
    snap: Arc<Snapshot>,
    loaded_at: Instant,
    /// `Shared::writes` when the load started.
    writes_seen: u64,
}

#[derive(Default)]
struct Failing {
    consecutive: u64,
    since: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

impl CachedRegistry {
    pub fn new(inner: Arc<dyn Registry>, ttl: Duration) -> Self {
        Self::with_refresh_timeout(inner, ttl, DEFAULT_REFRESH_TIMEOUT)
    }

    /// [`CachedRegistry::new`] with another bound on one snapshot load
    /// (the least one; see the module doc).
    pub fn with_refresh_timeout(inner: Arc<dyn Registry>, ttl: Duration, timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner,
                ttl,
                timeout,
                last_load_micros: AtomicU64::new(0),
                current: RwLock::new(None),
                writes: AtomicU64::new(0),
                failures_total: AtomicU64::new(0),
                failing: Mutex::new(Failing::default()),
                loading: tokio::sync::Mutex::new(()),
                wake: Arc::new(Notify::new()),
                refresher: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    /// The backing registry, for reads that must not come from the cache.
    pub fn uncached(&self) -> &Arc<dyn Registry> {
        &self.shared.inner
    }

    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// The snapshot to read from. Only the first load (and a read after a
    /// write through this cache, while the registry answers) waits for the
    /// database; otherwise this is the current snapshot, however old, and
    /// reloading is the background refresher's job.
    pub async fn snapshot_cached(&self) -> Result<Arc<Snapshot>> {
        let Some(cur) = self.shared.loaded() else {
            return self.first_load().await;
        };
        if self.shared.is_out_of_date(&cur) {
            return Ok(self.read_back(cur).await);
        }
        if self.shared.expired(&cur) {
            // Normally running already; this restarts it if its runtime ended.
            self.ensure_refresher();
        }
        Ok(cur.snap)
    }

    /// Load the snapshot now (the caller waits; failures are returned and counted).
    pub async fn refresh(&self) -> Result<Arc<Snapshot>> {
        let guard = self.shared.loading.lock().await;
        let r = self.shared.load().await;
        drop(guard);
        if r.is_ok() {
            self.ensure_refresher();
        }
        r
    }

    /// The served snapshot's age and the load failures; no I/O.
    pub fn status(&self) -> CacheStatus {
        let s = &self.shared;
        let loaded = s.loaded();
        let failing = lock(&s.failing);
        CacheStatus {
            generation: loaded.as_ref().map(|l| l.snap.generation()),
            age: loaded.as_ref().map(|l| l.loaded_at.elapsed()),
            consecutive_failures: failing.consecutive,
            failures_total: s.failures_total.load(Ordering::Relaxed),
            failing_for: failing.since.map(|t| t.elapsed()),
            last_error: failing.last_error.clone(),
        }
    }

    async fn first_load(&self) -> Result<Arc<Snapshot>> {
        let guard = self.shared.loading.lock().await;
        // Another caller may have loaded it while this one waited.
        if let Some(cur) = self.shared.loaded() {
            return Ok(cur.snap);
        }
        let r = self.shared.load().await;
        drop(guard);
        if r.is_ok() {
            self.ensure_refresher();
        }
        r
    }

    /// After a write through this cache: wait for the reload so the writer
    /// reads its write back. Not while the registry is failing: then `cur`
    /// is served and the refresher keeps trying.
    async fn read_back(&self, cur: Loaded) -> Arc<Snapshot> {
        let s = &self.shared;
        if s.is_failing() {
            self.ensure_refresher();
            s.wake.notify_one();
            return cur.snap;
        }
        let guard = s.loading.lock().await;
        match s.loaded() {
            // Reloaded by whoever held the lock before.
            Some(now) if !s.is_out_of_date(&now) => return now.snap,
            _ if s.is_failing() => return s.loaded().map_or(cur.snap, |l| l.snap),
            _ => {}
        }
        let r = s.load().await;
        drop(guard);
        match r {
            Ok(snap) => snap,
            Err(_) => s.loaded().map_or(cur.snap, |l| l.snap),
        }
    }

    /// Start the background refresher unless one is running.
    fn ensure_refresher(&self) {
        let running = &self.shared.refresher;
        if running.load(Ordering::Acquire) || running.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(refresher(
                    Arc::downgrade(&self.shared),
                    self.shared.wake.clone(),
                    RunningFlag(running.clone()),
                ));
            }
            Err(_) => running.store(false, Ordering::Release),
        }
    }

    /// A write went through (or failed half-way): the snapshot is out of date.
    fn invalidate(&self) {
        self.shared.writes.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn loaded(&self) -> Option<Loaded> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn is_out_of_date(&self, l: &Loaded) -> bool {
        l.writes_seen < self.writes.load(Ordering::Acquire)
    }

    fn expired(&self, l: &Loaded) -> bool {
        !self.ttl.is_zero() && l.loaded_at.elapsed() >= self.ttl
    }

    fn is_failing(&self) -> bool {
        lock(&self.failing).consecutive > 0
    }

    fn retry_interval(&self) -> Duration {
        if self.ttl.is_zero() {
            RETRY_INTERVAL
        } else {
            self.ttl.min(RETRY_INTERVAL)
        }
    }

    /// When the refresher should load next; `None`: only when woken.
    fn next_due(&self) -> Option<Instant> {
        {
            let f = lock(&self.failing);
            if f.consecutive > 0 {
                // Every retry waits, also after a write: a failing registry is
                // never tried in a tight loop.
                return Some(f.last_attempt.unwrap_or_else(Instant::now) + self.retry_interval());
            }
        }
        let cur = self.loaded()?;
        if self.is_out_of_date(&cur) {
            Some(Instant::now())
        } else if self.ttl.is_zero() {
            None
        } else {
            Some(cur.loaded_at + self.ttl)
        }
    }

    /// One bounded load; records the result. Callers hold `loading`.
    async fn load(&self) -> Result<Arc<Snapshot>> {
        let writes = self.writes.load(Ordering::Acquire);
        let timeout = if self.loaded().is_none() {
            FIRST_LOAD_TIMEOUT.max(self.timeout)
        } else {
            let last = Duration::from_micros(self.last_load_micros.load(Ordering::Relaxed));
            self.timeout.max(last * 3)
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, self.inner.snapshot()).await {
            Ok(r) => r,
            Err(_) => Err(RegistryError::Timeout(timeout)),
        };
        match result {
            Ok(registry) => {
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.last_load_micros.store(took, Ordering::Relaxed);
                let snap = match self.loaded() {
                    // Unchanged: keep the snapshot and its generation, so what
                    // servers derived from it (resolved plans) stays valid.
                    Some(prev) if prev.snap.registry == registry => prev.snap,
                    _ => Arc::new(Snapshot::new(registry)),
                };
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Loaded {
                    snap: snap.clone(),
                    loaded_at: started,
                    writes_seen: writes,
                });
                let mut f = lock(&self.failing);
                if f.consecutive > 0 {
                    tracing::info!(
                        failed_loads = f.consecutive,
                        down_for = ?f.since.map(|t| t.elapsed()),
                        "registry readable again; snapshot reloaded"
                    );
                }
                *f = Failing::default();
                Ok(snap)
            }
            Err(e) => {
                self.failures_total.fetch_add(1, Ordering::Relaxed);
                let serving = self.loaded().is_some();
                let mut f = lock(&self.failing);
                f.consecutive += 1;
                f.since.get_or_insert(started);
                f.last_attempt = Some(Instant::now());
                f.last_error = Some(e.to_string());
                // The first failure and then about one line a minute, not one per retry.
                if f.consecutive == 1 || f.consecutive.is_multiple_of(60) {
                    if serving {
                        tracing::warn!(error = %e, failed_loads = f.consecutive, "registry unreadable; serving the last good snapshot");
                    } else {
                        tracing::warn!(error = %e, failed_loads = f.consecutive, "registry unreadable; no snapshot to serve");
                    }
                } else {
                    tracing::debug!(error = %e, failed_loads = f.consecutive, "registry still unreadable");
                }
                Err(e)
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Let a refresher waiting without a deadline see that the cache is gone.
        self.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Clears the "refresher running" flag when the task ends, however it ends.
struct RunningFlag(Arc<AtomicBool>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Reload when the TTL has passed, after a write, and (every
/// [`RETRY_INTERVAL`]) while the registry is failing, until the cache is
/// dropped.
async fn refresher(shared: Weak<Shared>, wake: Arc<Notify>, _running: RunningFlag) {
    loop {
        let due = match shared.upgrade() {
            Some(s) => s.next_due(),
            None => return,
        };
        match due {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
        let Some(s) = shared.upgrade() else { return };
        let is_due = |s: &Shared| s.next_due().is_some_and(|at| at <= Instant::now());
        if is_due(&s) {
            let _guard = s.loading.lock().await;
            // A reader may have reloaded while this task waited for the lock.
            if is_due(&s) {
                let _ = s.load().await;
            }
        }
    }
}

#[async_trait]
impl Registry for CachedRegistry {
    async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome> {
        let r = self.shared.inner.apply(project, obj).await;
        self.invalidate();
        r
    }

    async fn apply_all(
        &self,
        project: &str,
        objects: Vec<FeastObject>,
        deletes: Vec<(FeastKind, String)>,
    ) -> Result<Vec<ApplyOutcome>> {
        let r = self.shared.inner.apply_all(project, objects, deletes).await;
        self.invalidate();
        r
    }

    async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>> {
        Ok(self.snapshot_cached().await?.get(project, kind, name))
    }

    async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>> {
        Ok(self.snapshot_cached().await?.list(project, kind))
    }

    async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool> {
        let r = self.shared.inner.delete(project, kind, name).await;
        self.invalidate();
        r
    }

    async fn list_projects(&self) -> Result<Vec<fc::Project>> {
        Ok(self.snapshot_cached().await?.registry.projects.clone())
    }

    async fn apply_materialization(&self, project: &str, view: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        let r = self.shared.inner.apply_materialization(project, view, start, end).await;
        self.invalidate();
        r
    }

    async fn get_infra(&self, project: &str) -> Result<fc::Infra> {
        self.shared.inner.get_infra(project).await
    }

    async fn update_infra(&self, project: &str, infra: fc::Infra) -> Result<()> {
        let r = self.shared.inner.update_infra(project, infra).await;
        self.invalidate();
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
        let r = self.shared.inner.teardown().await;
        self.invalidate();
        r
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU8;

    use super::*;
    use crate::file::FileRegistry;

    const OK: u8 = 0;
    const FAIL: u8 = 1;
    const HANG: u8 = 2;

    /// A file registry whose `snapshot` can be made to fail or hang.
    struct Flaky {
        inner: FileRegistry,
        mode: Arc<AtomicU8>,
    }

    #[async_trait]
    impl Registry for Flaky {
        async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome> {
            self.inner.apply(project, obj).await
        }
        async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>> {
            self.inner.get(project, kind, name).await
        }
        async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>> {
            self.inner.list(project, kind).await
        }
        async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool> {
            self.inner.delete(project, kind, name).await
        }
        async fn list_projects(&self) -> Result<Vec<fc::Project>> {
            self.inner.list_projects().await
        }
        async fn apply_materialization(&self, p: &str, v: &str, s: Timestamp, e: Timestamp) -> Result<()> {
            self.inner.apply_materialization(p, v, s, e).await
        }
        async fn get_infra(&self, project: &str) -> Result<fc::Infra> {
            self.inner.get_infra(project).await
        }
        async fn update_infra(&self, project: &str, infra: fc::Infra) -> Result<()> {
            self.inner.update_infra(project, infra).await
        }
        async fn list_project_metadata(&self, project: &str) -> Result<Vec<fc::ProjectMetadata>> {
            self.inner.list_project_metadata(project).await
        }
        async fn snapshot(&self) -> Result<fc::Registry> {
            match self.mode.load(Ordering::SeqCst) {
                FAIL => Err(RegistryError::Config("down".into())),
                HANG => std::future::pending().await,
                _ => self.inner.snapshot().await,
            }
        }
        async fn teardown(&self) -> Result<()> {
            self.inner.teardown().await
        }
    }

    fn entity(name: &str) -> FeastObject {
        FeastObject::Entity(fc::Entity {
            spec: Some(fc::EntitySpecV2 {
                name: name.into(),
                join_key: format!("{name}_id"),
                ..Default::default()
            }),
            meta: None,
        })
    }

    struct Setup {
        cache: CachedRegistry,
        mode: Arc<AtomicU8>,
        /// Another writer of the same file.
        other: FileRegistry,
        _dir: tempfile::TempDir,
    }

    fn setup(ttl: Duration) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.pb");
        let mode = Arc::new(AtomicU8::new(OK));
        let flaky = Flaky {
            inner: FileRegistry::open(&path).unwrap(),
            mode: mode.clone(),
        };
        Setup {
            cache: CachedRegistry::with_refresh_timeout(Arc::new(flaky), ttl, Duration::from_millis(200)),
            mode,
            other: FileRegistry::open(&path).unwrap(),
            _dir: dir,
        }
    }

    async fn names(cache: &CachedRegistry) -> Vec<String> {
        cache
            .list("p", FeastKind::Entity)
            .await
            .unwrap()
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }

    /// Wait (at most 5 s) until `f` holds.
    async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f().await {
            assert!(Instant::now() < deadline, "not within 5 s: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A hanging or failing registry: reads return the last snapshot at
    /// once, the status says stale, and the first load after recovery
    /// brings the changes made meanwhile.
    #[tokio::test]
    async fn serves_the_last_snapshot_while_the_registry_fails() {
        for failure in [HANG, FAIL] {
            let s = setup(Duration::from_millis(100));
            s.other.apply("p", entity("a")).await.unwrap();
            assert_eq!(names(&s.cache).await, ["a"]);
            assert_eq!(s.cache.status().health(), CacheHealth::Fresh);
            let generation = s.cache.status().generation;

            s.mode.store(failure, Ordering::SeqCst);
            s.other.apply("p", entity("b")).await.unwrap();
            eventually("stale", async || s.cache.status().health() == CacheHealth::Stale).await;
            for _ in 0..10 {
                let t = Instant::now();
                assert_eq!(names(&s.cache).await, ["a"]);
                assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let st = s.cache.status();
            assert_eq!(st.generation, generation, "the last good snapshot");
            assert!(st.failures_total >= 1 && st.consecutive_failures >= 1, "{st:?}");
            assert!(st.age.unwrap() > Duration::from_millis(400), "{st:?}");
            assert!(st.last_error.is_some());

            s.mode.store(OK, Ordering::SeqCst);
            eventually("recovered", async || names(&s.cache).await == ["a", "b"]).await;
            let st = s.cache.status();
            assert_eq!(st.health(), CacheHealth::Fresh, "{st:?}");
            assert!(st.failures_total >= 1, "the counter keeps counting: {st:?}");
        }
    }

    /// A read after a write through the cache sees the write, except while
    /// the registry is failing: then it is not held up.
    #[tokio::test]
    async fn reads_back_own_writes_unless_failing() {
        let s = setup(Duration::ZERO);
        s.cache.apply("p", entity("a")).await.unwrap();
        assert_eq!(names(&s.cache).await, ["a"]);
        s.cache.apply("p", entity("b")).await.unwrap();
        assert_eq!(names(&s.cache).await, ["a", "b"], "own write, TTL never expires");

        s.mode.store(HANG, Ordering::SeqCst);
        s.cache.apply("p", entity("c")).await.unwrap();
        // The first read waits for the (hanging) reload, at most the timeout.
        let t = Instant::now();
        assert_eq!(names(&s.cache).await, ["a", "b"]);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(s.cache.status().health(), CacheHealth::Stale);
        s.cache.apply("p", entity("d")).await.unwrap();
        let t = Instant::now();
        assert_eq!(names(&s.cache).await, ["a", "b"]);
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "known failing: no wait, {:?}",
            t.elapsed()
        );

        // The refresher retries even with a TTL of 0.
        s.mode.store(OK, Ordering::SeqCst);
        eventually("reloaded", async || names(&s.cache).await == ["a", "b", "c", "d"]).await;
    }

    /// Generations never repeat, also when a snapshot's memory is reused.
    #[tokio::test]
    async fn generations_are_unique() {
        let s = setup(Duration::ZERO);
        let mut seen = std::collections::HashSet::new();
        for i in 0..20 {
            s.cache.apply("p", entity(&format!("e{i}"))).await.unwrap();
            let g = s.cache.snapshot_cached().await.unwrap().generation();
            assert!(seen.insert(g), "generation {g} again");
        }
    }

    /// A reload that finds nothing changed keeps the snapshot's generation.
    #[tokio::test]
    async fn unchanged_reload_keeps_the_generation() {
        let s = setup(Duration::from_millis(50));
        s.other.apply("p", entity("a")).await.unwrap();
        let first = s.cache.snapshot_cached().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = s.cache.status();
        assert!(st.age.unwrap() < Duration::from_millis(200), "reloaded: {st:?}");
        assert_eq!(st.generation, Some(first.generation()));
        s.other.apply("p", entity("b")).await.unwrap();
        eventually("new generation", async || {
            s.cache.status().generation != Some(first.generation())
        })
        .await;
    }

    /// Dropping the cache ends its refresher.
    #[tokio::test]
    async fn refresher_ends_with_the_cache() {
        let s = setup(Duration::ZERO);
        s.cache.snapshot_cached().await.unwrap();
        let running = s.cache.shared.refresher.clone();
        assert!(running.load(Ordering::SeqCst));
        drop(s);
        eventually("refresher gone", async || !running.load(Ordering::SeqCst)).await;
    }
}
