//! Prometheus metrics: requests and latency per endpoint, online-store read
//! latency, the registry snapshot's age and refresh failures, cached plans.

use larder_registry::metrics::CacheMetrics;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub store_read: HistogramVec,
    /// `larder_registry_snapshot_age_seconds`, `larder_registry_refresh_failures_total`, `larder_registry_stale`.
    pub registry_cache: CacheMetrics,
    pub plan_cache_entries: IntGauge,
    /// `larder_auth_failures_total{reason}`: refused requests by reason
    /// (unauthenticated, denied, unavailable, …); never a token or user.
    pub auth_failures: IntCounterVec,
}

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "larder_http_requests_total",
                "HTTP requests by endpoint and status code",
            ),
            &["endpoint", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "larder_http_request_duration_seconds",
                "HTTP request latency by endpoint",
            )
            .buckets(BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let store_read = HistogramVec::new(
            HistogramOpts::new(
                "larder_online_store_read_duration_seconds",
                "Online store reads per request",
            )
            .buckets(BUCKETS.to_vec()),
            &["store"],
        )?;
        let plan_cache_entries = IntGauge::new(
            "larder_plan_cache_entries",
            "Resolved request plans cached for the current registry snapshot",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(store_read.clone()))?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "larder_auth_failures_total",
                "Requests refused by authentication or authorization, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(plan_cache_entries.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        let cache = CacheMetrics::register(&registry)?;
        Ok(Self {
            registry,
            requests,
            latency,
            store_read,
            registry_cache: cache,
            plan_cache_entries,
            auth_failures,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
