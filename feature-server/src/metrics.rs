//! Prometheus metrics: requests and latency per endpoint, online-store read
//! latency, registry cache age.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub store_read: HistogramVec,
    pub cache_age: prometheus::Gauge,
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
        let cache_age = prometheus::Gauge::new(
            "larder_registry_cache_age_seconds",
            "Age of the cached registry snapshot",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(store_read.clone()))?;
        registry.register(Box::new(cache_age.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            store_read,
            cache_age,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
