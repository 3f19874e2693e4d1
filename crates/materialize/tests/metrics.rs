//! The recorder a [`Materializer`] is given sees every view run: with
//! [`MaterializeMetrics`] in a Prometheus registry, a run of one good view
//! and two failing ones (a missing file, a schema mismatch) gives Feast's
//! `feast_materialization_*` and `feast_offline_store_*` families with
//! Feast's label values, and Larder's row counts; a shard's run counts the
//! rows it read and the fewer it wrote.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{END, START, example_parquet};
use larder_materialize::metrics::MaterializeMetrics;
use larder_materialize::{Materializer, Quiet, Shard};
use larder_online::OnlineStore;
use larder_online::sqlite::SqliteStore;
use larder_registry::Registry;
use larder_registry::file::FileRegistry;
use prometheus::{Encoder, TextEncoder};

fn manifests(views: &[(&str, &Path, &str)]) -> String {
    common::manifests(views, &[])
}

async fn apply(reg: &dyn Registry, text: &str) {
    common::apply(reg, "metrics", text).await
}

fn render(registry: &prometheus::Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_recorded_per_view() {
    let dir = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
    let store: Arc<dyn OnlineStore> = Arc::new(SqliteStore::open(&dir.path().join("online.db")).await.unwrap());
    let good = example_parquet();
    let missing = dir.path().join("later.parquet");
    apply(
        reg.as_ref(),
        &manifests(&[
            ("good", &good, "String"),
            ("missing", &missing, "String"),
            ("mismatch", &good, "Int64"),
        ]),
    )
    .await;

    let registry = prometheus::Registry::new();
    let metrics = Arc::new(MaterializeMetrics::register(&registry).unwrap());
    let mut m = Materializer::new(reg.clone(), store.clone(), "metrics");
    m.recorder = Some(metrics.clone());
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert_eq!(reports.len(), 3);
    let good_report = reports.iter().find(|r| r.view == "good").unwrap();
    assert!(good_report.error.is_none(), "{:?}", good_report.error);
    assert_eq!(good_report.rows, 1000);
    assert_eq!(good_report.rows_read, 1000);
    assert!(good_report.read_elapsed.is_some());

    let text = render(&registry);
    let v = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        v(r#"feast_materialization_result_total{feature_view="good",status="success"}"#),
        1.0
    );
    for bad in ["missing", "mismatch"] {
        assert_eq!(
            v(&format!(
                r#"feast_materialization_result_total{{feature_view="{bad}",status="failure"}}"#
            )),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"larder_materialization_last_success_timestamp_seconds{{feature_view="{bad}"}}"#)
            ),
            None,
            "{bad} never succeeded"
        );
        assert_eq!(
            v(&format!(
                r#"larder_materialization_rows_written_total{{feature_view="{bad}"}}"#
            )),
            0.0
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"feast_materialization_result_total{feature_view="good",status="failure"}"#
        ),
        None
    );
    assert_eq!(
        v(r#"feast_materialization_duration_seconds_count{feature_view="good"}"#),
        1.0
    );
    // Feast's buckets.
    assert!(text.contains(r#"feast_materialization_duration_seconds_bucket{feature_view="good",le="3600"}"#));
    assert_eq!(
        v(r#"larder_materialization_rows_read_total{feature_view="good"}"#),
        1000.0
    );
    assert_eq!(
        v(r#"larder_materialization_rows_written_total{feature_view="good"}"#),
        1000.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = v(r#"larder_materialization_last_success_timestamp_seconds{feature_view="good"}"#);
    assert!(last > now - 120.0 && last <= now + 1.0, "{last} vs {now}");
    // Each view's offline read is one request; the two bad sources fail it.
    assert_eq!(
        v(r#"feast_offline_store_request_total{method="to_arrow",status="success"}"#),
        1.0
    );
    assert_eq!(
        v(r#"feast_offline_store_request_total{method="to_arrow",status="error"}"#),
        2.0
    );
    assert_eq!(
        v(r#"feast_offline_store_request_latency_seconds_count{method="to_arrow"}"#),
        3.0
    );
    assert_eq!(v(r#"feast_offline_store_row_count_sum{method="to_arrow"}"#), 1000.0);
    for family in [
        "# TYPE feast_materialization_result_total counter",
        "# TYPE feast_materialization_duration_seconds histogram",
        "# TYPE feast_offline_store_request_total counter",
        "# TYPE feast_offline_store_request_latency_seconds histogram",
        "# TYPE feast_offline_store_row_count histogram",
        "# TYPE larder_materialization_rows_read_total counter",
        "# TYPE larder_materialization_rows_written_total counter",
        "# TYPE larder_materialization_last_success_timestamp_seconds gauge",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }

    // One shard of four reads every row of the window and writes its quarter.
    let mut m = Materializer::new(reg.clone(), store.clone(), "metrics");
    m.recorder = Some(metrics.clone());
    m.shard = Some(Shard::new(0, 4).unwrap());
    let reports = m
        .materialize(&["good".to_string()], START, END, Arc::new(Quiet))
        .await
        .unwrap();
    let r = &reports[0];
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.rows_read, 1000);
    assert!(r.rows > 0 && r.rows < 1000, "{}", r.rows);
    let text = render(&registry);
    assert_eq!(
        sample(
            &text,
            r#"feast_materialization_result_total{feature_view="good",status="success"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"larder_materialization_rows_read_total{feature_view="good"}"#),
        Some(2000.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"larder_materialization_rows_written_total{feature_view="good"}"#
        ),
        Some(1000.0 + r.rows as f64)
    );
}
