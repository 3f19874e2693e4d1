//! Prometheus metrics of a [`CachedRegistry`](crate::cache::CachedRegistry),
//! defined once so that the feature server and the registry server export
//! the same names: alerts on a registry outage work for both.

use std::sync::{Mutex, PoisonError};

use prometheus::{Gauge, IntCounter, IntGauge, Registry};

use crate::cache::CacheStatus;

pub struct CacheMetrics {
    snapshot_age: Gauge,
    refresh_failures: IntCounter,
    stale: IntGauge,
    /// The cache owns the failure count; scrapes copy it into the counter one at a time.
    sync: Mutex<()>,
}

impl CacheMetrics {
    /// Create the metrics and register them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let snapshot_age = Gauge::new(
            "larder_registry_snapshot_age_seconds",
            "Age of the registry snapshot requests are served from (stays below the cache TTL while the registry \
             can be read)",
        )?;
        let refresh_failures = IntCounter::new(
            "larder_registry_refresh_failures_total",
            "Registry snapshot loads that failed or timed out",
        )?;
        let stale = IntGauge::new(
            "larder_registry_stale",
            "1 while the registry cannot be read and requests are served from the last good snapshot",
        )?;
        registry.register(Box::new(snapshot_age.clone()))?;
        registry.register(Box::new(refresh_failures.clone()))?;
        registry.register(Box::new(stale.clone()))?;
        Ok(Self {
            snapshot_age,
            refresh_failures,
            stale,
            sync: Mutex::new(()),
        })
    }

    /// Copy the cache's state in (call before rendering a scrape).
    pub fn observe(&self, status: &CacheStatus) {
        let _one_at_a_time = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(age) = status.age {
            self.snapshot_age.set(age.as_secs_f64());
        }
        let seen = self.refresh_failures.get();
        if status.failures_total > seen {
            self.refresh_failures.inc_by(status.failures_total - seen);
        }
        self.stale.set(i64::from(status.consecutive_failures > 0));
    }
}
