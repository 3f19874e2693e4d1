//! Prometheus metrics.
//!
//! Larder's families: requests and latency per endpoint, online-store read
//! latency, the registry snapshot's age and refresh failures, cached plans,
//! refused requests, materialization rows.
//!
//! Beside them, the families Feast 0.67's feature server exports
//! (`feast/metrics.py`), with Feast's names, types, label names, label
//! values and buckets, recorded where Feast records them, so dashboards and
//! alerts written for Feast work unchanged:
//!
//! - `feast_feature_server_request_total{endpoint, status}` and
//!   `feast_feature_server_request_latency_seconds{endpoint, feature_count,
//!   feature_view_count}` for the endpoints Feast instruments
//!   ([`FEAST_ENDPOINTS`]); `status` is `success` or `error` (a 4xx or 5xx
//!   answer), `feature_count` Feast's bin of the requested features
//!   (`1-10`, `11-50`, `51-200`, `201+`) and `feature_view_count` the views
//!   read, both empty until the request's features are resolved;
//! - `feast_online_features_request_total`,
//!   `feast_online_features_entity_count`,
//!   `feast_online_features_status_total{feature_view, status}`
//!   (`present` / `not_found` values) and
//!   `feast_feature_server_online_store_read_duration_seconds`;
//! - `feast_push_request_total{push_source, mode}`;
//! - `feast_materialization_*` and `feast_offline_store_*` (from
//!   [`larder_materialize::metrics`]);
//! - `feast_feature_freshness_seconds{feature_view, project}`: seconds since
//!   the end of each view's latest materialization interval, computed at
//!   each scrape (Feast: every 30 s);
//! - `feast_feature_server_cpu_usage{pid}` and
//!   `feast_feature_server_memory_usage{pid}`: the process's CPU use since
//!   the previous scrape and its resident memory, in percent (psutil's
//!   `cpu_percent` and `memory_percent`; Linux only), with the `pid` label
//!   Feast's multiprocess gauges carry.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use larder_materialize::metrics::MaterializeMetrics;
use larder_model::feast::{FeastKind, FeastObject};
use larder_registry::cache::Snapshot;
use larder_registry::metrics::CacheMetrics;
use larder_serving::{FieldStatus, OnlineResponse, Plan};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

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
    /// Runs of `/materialize` and `/materialize-incremental` (the materializer's recorder).
    pub materialize: Arc<MaterializeMetrics>,
    pub feast: FeastMetrics,
    process: ProcessUsage,
}

/// Feast 0.67's feature-server families (see the module doc).
pub struct FeastMetrics {
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub online_requests: IntCounter,
    pub online_entities: Histogram,
    pub online_statuses: IntCounterVec,
    pub store_read: Histogram,
    pub push: IntCounterVec,
    pub freshness: GaugeVec,
    pub cpu: GaugeVec,
    pub memory: GaugeVec,
}

/// The children of one endpoint's request series, found on first use and
/// kept: a request then bumps its counters without hashing labels, taking
/// the family's lock or touching a shared reference count. A series still
/// appears only once its endpoint has been called.
pub struct EndpointMetrics {
    endpoint: &'static str,
    /// Whether Feast's feature server records this endpoint.
    feast: bool,
    latency: OnceLock<Histogram>,
    /// `larder_http_requests_total{status="200"}`; other statuses are looked up.
    ok: OnceLock<IntCounter>,
    /// Feast's `request_total` children: `success`, `error`.
    feast_outcomes: [OnceLock<IntCounter>; 2],
}

impl EndpointMetrics {
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            feast: FEAST_ENDPOINTS.contains(&endpoint),
            latency: OnceLock::new(),
            ok: OnceLock::new(),
            feast_outcomes: [OnceLock::new(), OnceLock::new()],
        }
    }

    pub fn endpoint(&self) -> &'static str {
        self.endpoint
    }
}

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The endpoints Feast's feature server records in its request metrics.
pub const FEAST_ENDPOINTS: [&str; 4] = [
    "/get-online-features",
    "/push",
    "/materialize",
    "/materialize-incremental",
];
/// Feast's `request_latency` buckets.
const FEAST_LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Feast's `online_features_entity_count` buckets.
const FEAST_ENTITY_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
/// Feast's `online_store_read_duration_seconds` buckets.
const FEAST_READ_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl FeastMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "feast_feature_server_request_total",
                "Total number of requests to the Feast feature server",
            ),
            &["endpoint", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "feast_feature_server_request_latency_seconds",
                "Latency of requests to the Feast feature server in seconds",
            )
            .buckets(FEAST_LATENCY_BUCKETS.to_vec()),
            &["endpoint", "feature_count", "feature_view_count"],
        )?;
        let online_requests = IntCounter::new(
            "feast_online_features_request_total",
            "Total online feature retrieval requests",
        )?;
        let online_entities = Histogram::with_opts(
            HistogramOpts::new(
                "feast_online_features_entity_count",
                "Number of entity rows per online feature request",
            )
            .buckets(FEAST_ENTITY_BUCKETS.to_vec()),
        )?;
        let online_statuses = IntCounterVec::new(
            Opts::new(
                "feast_online_features_status_total",
                "Count of individual feature values by retrieval status per feature view",
            ),
            &["feature_view", "status"],
        )?;
        let store_read = Histogram::with_opts(
            HistogramOpts::new(
                "feast_feature_server_online_store_read_duration_seconds",
                "Duration of the online store read phase in seconds (covers all table reads including parallel async)",
            )
            .buckets(FEAST_READ_BUCKETS.to_vec()),
        )?;
        let push = IntCounterVec::new(
            Opts::new("feast_push_request_total", "Total push requests to the feature store"),
            &["push_source", "mode"],
        )?;
        let freshness = GaugeVec::new(
            Opts::new(
                "feast_feature_freshness_seconds",
                "Seconds since the most recent materialization end time per feature view",
            ),
            &["feature_view", "project"],
        )?;
        let cpu = GaugeVec::new(
            Opts::new(
                "feast_feature_server_cpu_usage",
                "CPU usage percentage of the Feast feature server process",
            ),
            &["pid"],
        )?;
        let memory = GaugeVec::new(
            Opts::new(
                "feast_feature_server_memory_usage",
                "Memory usage percentage of the Feast feature server process",
            ),
            &["pid"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(online_requests.clone()))?;
        registry.register(Box::new(online_entities.clone()))?;
        registry.register(Box::new(online_statuses.clone()))?;
        registry.register(Box::new(store_read.clone()))?;
        registry.register(Box::new(push.clone()))?;
        registry.register(Box::new(freshness.clone()))?;
        registry.register(Box::new(cpu.clone()))?;
        registry.register(Box::new(memory.clone()))?;
        Ok(Self {
            requests,
            latency,
            online_requests,
            online_entities,
            online_statuses,
            store_read,
            push,
            freshness,
            cpu,
            memory,
        })
    }
}

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
        // Every per-request reason from the start, at 0: rate() and alerts work before the first refusal.
        for reason in ["unauthenticated", "denied", "unavailable", "invalid_permission"] {
            auth_failures.with_label_values(&[reason]);
        }
        registry.register(Box::new(plan_cache_entries.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        let cache = CacheMetrics::register(&registry)?;
        let materialize = Arc::new(MaterializeMetrics::register(&registry)?);
        let feast = FeastMetrics::register(&registry)?;
        Ok(Self {
            registry,
            requests,
            latency,
            store_read,
            registry_cache: cache,
            plan_cache_entries,
            auth_failures,
            materialize,
            feast,
            process: ProcessUsage::new(),
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// One finished request to `e`'s endpoint: Larder's request count and
    /// latency, and Feast's for the endpoints Feast records (`labels`: what
    /// the handler resolved).
    pub fn observe_request(
        &self,
        e: &EndpointMetrics,
        status: StatusCode,
        elapsed: Duration,
        labels: Option<FeatureLabels>,
    ) {
        let secs = elapsed.as_secs_f64();
        e.latency
            .get_or_init(|| self.latency.with_label_values(&[e.endpoint]))
            .observe(secs);
        if status == StatusCode::OK {
            e.ok.get_or_init(|| self.requests.with_label_values(&[e.endpoint, "200"]))
                .inc();
        } else {
            self.requests.with_label_values(&[e.endpoint, status.as_str()]).inc();
        }
        if !e.feast {
            return;
        }
        let (features, views) = match labels {
            Some(l) => (bin_feature_count(l.features), count_label(l.views)),
            None => ("", Cow::Borrowed("")),
        };
        self.feast
            .latency
            .with_label_values(&[e.endpoint, features, &views])
            .observe(secs);
        let failed = status.is_client_error() || status.is_server_error();
        let outcome = if failed { "error" } else { "success" };
        e.feast_outcomes[usize::from(failed)]
            .get_or_init(|| self.feast.requests.with_label_values(&[e.endpoint, outcome]))
            .inc();
    }

    /// An online request whose features were resolved and allowed, before
    /// the store is read (Feast's `track_online_features_entities`).
    pub fn online_request(&self, entity_rows: usize) {
        self.feast.online_requests.inc();
        self.feast.online_entities.observe(entity_rows as f64);
    }

    /// After a successful read: its duration, and the present and missing
    /// values per view (Feast's `track_online_store_read` and
    /// `track_feature_statuses`). `entity_columns` leading columns of
    /// `resp` are the request's entity columns; the rest follow `plan`.
    pub fn online_read(
        &self,
        store: &str,
        elapsed: Duration,
        plan: &Plan,
        resp: &OnlineResponse,
        entity_columns: usize,
    ) {
        self.store_read
            .with_label_values(&[store])
            .observe(elapsed.as_secs_f64());
        self.feast.store_read.observe(elapsed.as_secs_f64());
        let mut columns = resp.columns.iter().skip(entity_columns);
        for view in &plan.views {
            let (mut present, mut missing) = (0u64, 0u64);
            for col in columns.by_ref().take(view.features.len()) {
                for s in &col.statuses {
                    match s {
                        FieldStatus::Present => present += 1,
                        FieldStatus::NotFound => missing += 1,
                    }
                }
            }
            let name = view.view.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
            if present > 0 {
                self.feast
                    .online_statuses
                    .with_label_values(&[name, "present"])
                    .inc_by(present);
            }
            if missing > 0 {
                self.feast
                    .online_statuses
                    .with_label_values(&[name, "not_found"])
                    .inc_by(missing);
            }
        }
    }

    /// A push that succeeded (Feast's `track_push`; `mode` is the request's `to`).
    pub fn push(&self, push_source: &str, mode: &str) {
        self.feast.push.with_label_values(&[push_source, mode]).inc();
    }

    /// Gauges computed when scraped: freshness per view of `project` (from
    /// `snapshot`, when one is loaded) and the process's CPU and memory.
    pub fn observe_scrape(&self, project: &str, snapshot: Option<&Snapshot>) {
        if let Some(snap) = snapshot {
            self.observe_freshness(project, snap);
        }
        self.process.observe(&self.feast);
    }

    fn observe_freshness(&self, project: &str, snap: &Snapshot) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        // Views deleted since the last scrape disappear.
        self.feast.freshness.reset();
        let views = snap
            .list(project, FeastKind::FeatureView)
            .into_iter()
            .chain(snap.list(project, FeastKind::StreamFeatureView));
        for o in views {
            let (name, intervals) = match &o {
                FeastObject::FeatureView(v) => (
                    v.spec.as_ref().map(|s| s.name.as_str()),
                    v.meta.as_ref().map(|m| &m.materialization_intervals),
                ),
                FeastObject::StreamFeatureView(v) => (
                    v.spec.as_ref().map(|s| s.name.as_str()),
                    v.meta.as_ref().map(|m| &m.materialization_intervals),
                ),
                _ => continue,
            };
            let latest = intervals
                .into_iter()
                .flatten()
                .filter_map(|i| i.end_time)
                .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
                .reduce(f64::max);
            if let (Some(name), Some(end)) = (name, latest) {
                self.feast.freshness.with_label_values(&[name, project]).set(now - end);
            }
        }
    }
}

/// Feast's `bin_feature_count` over its default bins (`[10, 50, 200]`):
/// `0`, `1-10`, `11-50`, `51-200`, `201+`.
pub fn bin_feature_count(count: usize) -> &'static str {
    match count {
        0 => "0",
        1..=10 => "1-10",
        11..=50 => "11-50",
        51..=200 => "51-200",
        _ => "201+",
    }
}

/// A count as a label value, without formatting for the usual small ones.
fn count_label(n: usize) -> Cow<'static, str> {
    const SMALL: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match SMALL.get(n) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(n.to_string()),
    }
}

/// What a request resolved, for Feast's latency labels: the handler puts
/// it in the response's extensions, the router's metrics read it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureLabels {
    /// Features requested (of the service's views for a feature service).
    pub features: usize,
    /// Feature views read.
    pub views: usize,
}

/// psutil's `cpu_percent()` and `memory_percent()` for this process, read
/// from `/proc` at each scrape.
struct ProcessUsage {
    pid: String,
    /// Wall clock and CPU seconds at the previous scrape (or at start).
    last: Mutex<Option<(Instant, f64)>>,
}

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const USER_HZ: f64 = 100.0;

impl ProcessUsage {
    fn new() -> Self {
        Self {
            pid: std::process::id().to_string(),
            last: Mutex::new(cpu_seconds().map(|c| (Instant::now(), c))),
        }
    }

    fn observe(&self, feast: &FeastMetrics) {
        if let Some(cpu) = cpu_seconds() {
            let now = Instant::now();
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let percent = match *last {
                Some((at, before)) => {
                    let wall = now.duration_since(at).as_secs_f64();
                    if wall > 0.0 {
                        (cpu - before).max(0.0) / wall * 100.0
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            };
            *last = Some((now, cpu));
            feast.cpu.with_label_values(&[&self.pid]).set(percent);
        }
        if let Some(percent) = memory_percent() {
            feast.memory.with_label_values(&[&self.pid]).set(percent);
        }
    }
}

/// User plus system CPU seconds of this process (all threads).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Resident memory as a percentage of the machine's physical memory.
fn memory_percent() -> Option<f64> {
    let kib = |text: &str, key: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rss = kib(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS:")?;
    let total = kib(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")?;
    (total > 0.0).then(|| rss / total * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feast's labels for its default bins `[10, 50, 200]`.
    #[test]
    fn feature_count_bins_are_feasts() {
        for (n, label) in [
            (0, "0"),
            (1, "1-10"),
            (10, "1-10"),
            (11, "11-50"),
            (50, "11-50"),
            (51, "51-200"),
            (200, "51-200"),
            (201, "201+"),
            (5000, "201+"),
        ] {
            assert_eq!(bin_feature_count(n), label, "{n}");
        }
    }

    #[test]
    fn count_labels_are_decimal() {
        for n in [0, 1, 9, 16, 17, 100, 12345] {
            assert_eq!(count_label(n), n.to_string());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_usage_is_read_from_proc() {
        let cpu = cpu_seconds().expect("utime and stime of /proc/self/stat");
        assert!(cpu >= 0.0);
        let mem = memory_percent().expect("VmRSS and MemTotal");
        assert!(mem > 0.0 && mem < 100.0, "{mem}");
    }
}
