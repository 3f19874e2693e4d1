//! `/push` to the offline store (`to: offline` and `online_and_offline`)
//! over a copy of the bundled example (its push source's batch source is a
//! single Parquet file): rows appended to the file, read back by
//! historical retrieval and materialization; bad rows refused with a 400
//! and nothing written anywhere; the push metric's mode label.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_feature_server::{AppState, Limits, router};
use larder_model::types::FeatureType;
use larder_offline::historical::{HistoricalJoinKey, HistoricalRequest, HistoricalView, get_historical_features};
use larder_offline::{SourceLocation, SourceSpec};
use larder_online::OnlineStore;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::file::FileRegistry;
use larder_testkit::unique_name;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Server {
    app: axum::Router,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

impl Server {
    /// The example, its manifests and data copied to a temp dir, in a file
    /// registry and an empty SQLite online store.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver-stats");
        copy_dir(&example.join("manifests"), &dir.path().join("manifests"));
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::copy(
            example.join("data/driver_stats.parquet"),
            dir.path().join("data/driver_stats.parquet"),
        )
        .unwrap();
        let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
        let docs = larder_model::load::load_paths(&[dir.path().join("manifests")]).unwrap();
        let catalog = larder_model::validate::validate(docs).unwrap();
        let project = unique_name("po");
        for o in larder_model::convert::to_feast(&catalog, &project) {
            if !matches!(o, larder_model::feast::FeastObject::Project(_)) {
                reg.apply(&project, o).await.unwrap();
            }
        }
        let online: Arc<dyn OnlineStore> = Arc::new(
            larder_online::sqlite::SqliteStore::open(&dir.path().join("online.db"))
                .await
                .unwrap(),
        );
        // The first hour, as `larder materialize` would (it also creates the online tables).
        let start = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
        let m = larder_materialize::Materializer::new(reg.clone(), online.clone(), project.clone());
        let reports = m
            .materialize(
                &[],
                start,
                start + 3_600_000_000_000,
                Arc::new(larder_materialize::Quiet),
            )
            .await
            .unwrap();
        assert!(reports.iter().all(|r| r.error.is_none()));
        let cached = Arc::new(CachedRegistry::new(reg, Duration::from_secs(60)));
        let state = Arc::new(AppState::new(cached, online, "sqlite", project, Limits::default()).unwrap());
        Self {
            app: router(state),
            data: dir.path().join("data/driver_stats.parquet"),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn push(&self, to: &str, df: Value) -> (StatusCode, String) {
        self.call(
            "POST",
            "/push",
            Some(json!({"push_source_name": "driver_stats_push", "to": to, "df": df})),
        )
        .await
    }

    /// `city` of a driver in the online store (`None`: not found).
    async fn online_city(&self, driver: i64) -> Option<String> {
        let (st, body) = self
            .call(
                "POST",
                "/get-online-features",
                Some(json!({"features": ["driver_hourly_stats:city"], "entities": {"driver_id": [driver]}})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let r: Value = serde_json::from_str(&body).unwrap();
        let i = r["metadata"]["feature_names"]
            .as_array()
            .unwrap()
            .iter()
            .position(|n| n == "city")
            .unwrap();
        r["results"][i]["values"][0].as_str().map(str::to_string)
    }

    fn rows(&self) -> usize {
        ParquetRecordBatchReaderBuilder::try_new(File::open(&self.data).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum()
    }
}

/// One full row of driver_hourly_stats for `driver` at `ts`.
fn row(driver: i64, ts: &str, city: &str, trips: i64) -> Value {
    json!({
        "driver_id": [driver], "event_timestamp": [ts], "created": [ts],
        "conv_rate": [0.5], "acc_rate": [0.25], "avg_daily_trips": [trips], "trips_today": [1], "rating": [null],
        "earnings_today": [10.5], "online_minutes": [30], "completed_trips": [99], "city": [city], "is_premium": [true],
    })
}

/// `city` and `avg_daily_trips` of `driver` as of `at_us` through the
/// point-in-time engine, reading the file the push wrote.
fn historical(data: &Path, driver: i64, at_us: i64) -> (Option<String>, Option<i64>) {
    let source = SourceSpec {
        name: "driver_stats_source".into(),
        location: SourceLocation::Parquet(data.to_path_buf()),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: Default::default(),
    };
    let entities = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![driver])),
            Arc::new(TimestampMicrosecondArray::from(vec![at_us]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    let req = HistoricalRequest {
        views: vec![HistoricalView {
            name: "driver_hourly_stats".into(),
            shown_as: "driver_hourly_stats".into(),
            source,
            join_keys: vec![HistoricalJoinKey {
                name: "driver_id".into(),
                column: "driver_id".into(),
                value_type: FeatureType::INT64,
            }],
            features: vec![
                ("city".into(), FeatureType::STRING),
                ("avg_daily_trips".into(), FeatureType::INT64),
            ],
            ttl_ns: 86_400_000_000_000,
        }],
        full_feature_names: false,
    };
    let b = get_historical_features(&entities, &req, &mut |_| {}).unwrap().batch;
    let city = arrow::compute::cast(b.column_by_name("city").unwrap(), &DataType::Utf8).unwrap();
    let trips = arrow::compute::cast(b.column_by_name("avg_daily_trips").unwrap(), &DataType::Int64).unwrap();
    let city = city.as_string::<i32>();
    let trips = trips.as_primitive::<arrow::datatypes::Int64Type>();
    (
        city.is_valid(0).then(|| city.value(0).to_string()),
        trips.is_valid(0).then(|| trips.value(0)),
    )
}

/// 2024-01-08T09:00:00Z in microseconds.
const PUSHED_US: i64 = 1_704_704_400_000_000;

#[tokio::test]
async fn push_to_offline_appends_to_the_batch_source() {
    let s = Server::new().await;
    let before = s.rows();

    let (st, body) = s.push("offline", row(9001, "2024-01-08T09:00:00Z", "Lima", 42)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(s.rows(), before + 1);
    assert_eq!(
        s.online_city(9001).await,
        None,
        "offline only: the online store is not written"
    );
    assert_eq!(historical(&s.data, 9001, PUSHED_US), (Some("Lima".into()), Some(42)));
    assert_eq!(
        historical(&s.data, 9001, PUSHED_US - 1),
        (None, None),
        "not before its event time"
    );

    // Materialization picks the pushed row up.
    let (st, body) = s
        .call(
            "POST",
            "/materialize",
            Some(json!({"start_ts": "2024-01-08T00:00:00", "end_ts": "2024-01-09T00:00:00"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(s.online_city(9001).await.as_deref(), Some("Lima"));

    // Both: online at once, and in the file.
    let (st, body) = s
        .push("online_and_offline", row(9002, "2024-01-08T10:00:00Z", "Quito", 7))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(s.online_city(9002).await.as_deref(), Some("Quito"));
    assert_eq!(s.rows(), before + 2);
    assert_eq!(
        historical(&s.data, 9002, PUSHED_US + 3_600_000_000),
        (Some("Quito".into()), Some(7))
    );

    let (_, metrics) = s.call("GET", "/metrics", None).await;
    for mode in ["offline", "online_and_offline"] {
        let line = format!("feast_push_request_total{{mode=\"{mode}\",push_source=\"driver_stats_push\"}} 1");
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
}

#[tokio::test]
async fn bad_rows_are_refused_before_anything_is_written() {
    let s = Server::new().await;
    let file_before = std::fs::read(&s.data).unwrap();
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut wrong_type = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    wrong_type["city"] = json!([5]);
    cases.push(("offline", wrong_type.clone(), "not a valid String"));
    cases.push(("online_and_offline", wrong_type, "not a valid String"));
    // A column neither the views nor the file have: the file decides (Feast
    // refuses columns the batch source lacks too).
    let mut extra = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    extra["surprise"] = json!([1]);
    cases.push(("online_and_offline", extra, "surprise"));
    // `created` is a column of the file.
    let mut no_created = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    no_created.as_object_mut().unwrap().remove("created");
    cases.push(("online_and_offline", no_created, "created"));
    let mut bad_ts = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    bad_ts["event_timestamp"] = json!(["soon"]);
    cases.push(("offline", bad_ts, "not a timestamp"));
    let mut null_key = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    null_key["driver_id"] = json!([null]);
    cases.push(("offline", null_key, "must not be null"));
    let mut ragged = row(9003, "2024-01-08T09:00:00Z", "Lima", 1);
    ragged["city"] = json!(["Lima", "Oslo"]);
    cases.push(("offline", ragged, "same length"));
    for (to, df, needle) in cases {
        let (st, body) = s.push(to, df.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{to} {df}: {body}");
        assert!(body.contains(needle), "{to}: {needle:?} not in {body}");
        assert_eq!(s.online_city(9003).await, None, "{to} {df}: nothing online");
    }
    assert_eq!(std::fs::read(&s.data).unwrap(), file_before, "the file is untouched");
    let siblings: Vec<_> = std::fs::read_dir(s.data.parent().unwrap()).unwrap().collect();
    assert_eq!(siblings.len(), 1, "no temporary file left");
}
