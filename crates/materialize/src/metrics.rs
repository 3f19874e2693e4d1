//! Prometheus metrics of materialization runs, registered in the caller's
//! registry: the feature server serves them on its `/metrics` (after
//! `/materialize`), a one-shot run (the CLI, the operator's Jobs) can
//! render them for a textfile collector or a Pushgateway.
//!
//! Feast 0.67's families, with its names, labels, label values and buckets
//! (`feast/metrics.py`), recorded where Feast records them:
//!
//! - `feast_materialization_result_total{feature_view, status}`: one per
//!   view run, `status` `success` or `failure`;
//! - `feast_materialization_duration_seconds{feature_view}`: the run's
//!   duration;
//! - `feast_offline_store_request_total{method, status}`,
//!   `feast_offline_store_request_latency_seconds{method}` and
//!   `feast_offline_store_row_count{method}`: the run's offline read, which
//!   Feast's local engine does with `RetrievalJob.to_arrow()`, hence
//!   `method="to_arrow"`; `status` `success` or `error`.
//!
//! Larder's own, per view (`feature_view`):
//!
//! - `larder_materialization_rows_read_total`: rows the offline read handed
//!   over (the latest row per entity key in the window);
//! - `larder_materialization_rows_written_total`: entity rows written to
//!   the online store;
//! - `larder_materialization_last_success_timestamp_seconds`: when the
//!   last successful run of the view ended (Unix time), for alerts on
//!   materialization that stopped succeeding.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::{Recorder, ViewError, ViewReport};

/// Feast's `materialization_duration_seconds` buckets.
pub const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// Feast's `offline_store_request_latency_seconds` buckets.
pub const OFFLINE_LATENCY_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Feast's `offline_store_row_count` buckets.
pub const OFFLINE_ROW_BUCKETS: &[f64] = &[100.0, 1000.0, 10000.0, 100000.0, 500000.0, 1000000.0, 5000000.0];

/// The `method` label of Feast's offline-store metrics for a materialization read.
pub const OFFLINE_METHOD: &str = "to_arrow";

pub struct MaterializeMetrics {
    result: IntCounterVec,
    duration: HistogramVec,
    offline_requests: IntCounterVec,
    offline_latency: HistogramVec,
    offline_rows: HistogramVec,
    rows_read: IntCounterVec,
    rows_written: IntCounterVec,
    last_success: GaugeVec,
}

impl MaterializeMetrics {
    /// Create the metrics and register them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let result = IntCounterVec::new(
            Opts::new(
                "feast_materialization_result_total",
                "Total materialization runs per feature view",
            ),
            &["feature_view", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "feast_materialization_duration_seconds",
                "Duration of materialization per feature view in seconds",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["feature_view"],
        )?;
        let offline_requests = IntCounterVec::new(
            Opts::new(
                "feast_offline_store_request_total",
                "Total offline store retrieval requests",
            ),
            &["method", "status"],
        )?;
        let offline_latency = HistogramVec::new(
            HistogramOpts::new(
                "feast_offline_store_request_latency_seconds",
                "Latency of offline store retrieval operations in seconds",
            )
            .buckets(OFFLINE_LATENCY_BUCKETS.to_vec()),
            &["method"],
        )?;
        let offline_rows = HistogramVec::new(
            HistogramOpts::new(
                "feast_offline_store_row_count",
                "Number of rows returned by offline store retrieval",
            )
            .buckets(OFFLINE_ROW_BUCKETS.to_vec()),
            &["method"],
        )?;
        let rows_read = IntCounterVec::new(
            Opts::new(
                "larder_materialization_rows_read_total",
                "Rows read from the offline source by materialization (latest row per entity key in the window)",
            ),
            &["feature_view"],
        )?;
        let rows_written = IntCounterVec::new(
            Opts::new(
                "larder_materialization_rows_written_total",
                "Entity rows written to the online store by materialization",
            ),
            &["feature_view"],
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "larder_materialization_last_success_timestamp_seconds",
                "Unix time at which the last successful materialization run of the feature view ended",
            ),
            &["feature_view"],
        )?;
        registry.register(Box::new(result.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(offline_requests.clone()))?;
        registry.register(Box::new(offline_latency.clone()))?;
        registry.register(Box::new(offline_rows.clone()))?;
        registry.register(Box::new(rows_read.clone()))?;
        registry.register(Box::new(rows_written.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(Self {
            result,
            duration,
            offline_requests,
            offline_latency,
            offline_rows,
            rows_read,
            rows_written,
            last_success,
        })
    }
}

impl Recorder for MaterializeMetrics {
    fn record(&self, r: &ViewReport) {
        let view = r.view.as_str();
        let status = if r.error.is_none() { "success" } else { "failure" };
        self.result.with_label_values(&[view, status]).inc();
        self.duration
            .with_label_values(&[view])
            .observe(r.elapsed.as_secs_f64());
        // Only a read that ran to its end (or failed) is an offline request;
        // one abandoned because writing failed has no outcome of its own.
        if let Some(read) = r.read_elapsed {
            let ok = !matches!(r.error, Some(ViewError::Offline(_)));
            self.offline_requests
                .with_label_values(&[OFFLINE_METHOD, if ok { "success" } else { "error" }])
                .inc();
            self.offline_latency
                .with_label_values(&[OFFLINE_METHOD])
                .observe(read.as_secs_f64());
            self.offline_rows
                .with_label_values(&[OFFLINE_METHOD])
                .observe(if ok { r.rows_read as f64 } else { 0.0 });
        }
        self.rows_read.with_label_values(&[view]).inc_by(r.rows_read);
        self.rows_written.with_label_values(&[view]).inc_by(r.rows);
        if r.error.is_none() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.last_success.with_label_values(&[view]).set(now);
        }
    }
}
