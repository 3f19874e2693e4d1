//! The feature server against a changing and a failing registry:
//!
//! - request plans are never served for a registry they were not built
//!   from (a view change that removes a feature or changes a key type is
//!   seen by the next request), and the plan cache stays bounded;
//! - with the registry on PostgreSQL behind a proxy that is cut, reads of
//!   materialized features keep succeeding, fast, from the last good
//!   snapshot; `/health` answers at once and says the registry is stale;
//!   once the proxy is restored a newly applied view is served within
//!   seconds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_feature_server::{AppState, Limits, router};
use larder_model::feast::FeastObject;
use larder_online::OnlineStore;
use larder_protos::feast::core as fc;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::sql::SqlRegistry;
use larder_testkit::objects::{IntoObject, ValueType, ViewBuilder, view, view_source};
use larder_testkit::{PgDatabase, RedisDb, SqliteFile, TcpProxy, unique_name};
use serde_json::{Value, json};
use tower::ServiceExt;

const START: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
const DAY: i64 = 24 * 3_600_000_000_000;

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(if body.is_null() {
            String::new()
        } else {
            body.to_string()
        }))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn online(app: &axum::Router, features: &[&str], entities: Value) -> (StatusCode, String) {
    call(
        app,
        "POST",
        "/get-online-features",
        json!({"features": features, "entities": entities}),
    )
    .await
}

/// One metric's value in the Prometheus text (`None`: not exported).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A SQLite registry and online store, a cache that never expires: only
/// writes through the cache change what the server sees.
struct Local {
    app: axum::Router,
    state: Arc<AppState>,
    project: String,
    _registry: SqliteFile,
    _online: SqliteFile,
}

impl Local {
    async fn new() -> Self {
        let registry_file = SqliteFile::new("registry.db");
        let online_file = SqliteFile::new("online.db");
        let url = format!("sqlite://{}?mode=rwc", registry_file.path().display());
        let reg: Arc<dyn Registry> = Arc::new(SqlRegistry::connect(&url, 2).await.unwrap());
        let online: Arc<dyn OnlineStore> = Arc::new(
            larder_online::sqlite::SqliteStore::open(online_file.path())
                .await
                .unwrap(),
        );
        let project = unique_name("p");
        let cached = Arc::new(CachedRegistry::new(reg, Duration::ZERO));
        let state = Arc::new(AppState::new(cached, online, "sqlite", project.clone(), Limits::default()).unwrap());
        Self {
            app: router(state.clone()),
            state,
            project,
            _registry: registry_file,
            _online: online_file,
        }
    }

    /// Apply a view through the server's cache (as `/materialize` writes
    /// through it) and create its online table.
    async fn apply(&self, view: fc::FeatureView) {
        let schema = larder_online::ViewSchema::from_proto(&view);
        self.state
            .online
            .update(&self.project, std::slice::from_ref(&schema), &[])
            .await
            .unwrap();
        self.state.registry.apply(&self.project, view.object()).await.unwrap();
    }
}

/// After every view change the next request resolves against the new
/// registry: a removed feature is an error, a changed key type converts the
/// request's keys by the new type. (Keying plans by the snapshot's address
/// served the old plan whenever the new snapshot reused the freed memory.)
#[tokio::test]
async fn plans_follow_registry_changes() {
    let s = Local::new().await;
    let one = json!({"driver_id": [1001]});
    let one_str = json!({"driver_id": ["1001"]});
    for round in 0..40 {
        let with_gone = round % 2 == 0;
        let v = ViewBuilder::new("v")
            .entity("driver")
            .source(view_source())
            .feature("f", ValueType::Float);
        let v = if with_gone {
            v.entity_column("driver_id", ValueType::Int64)
                .feature("gone", ValueType::Int64)
        } else {
            // The join key becomes a STRING and `gone` is removed.
            v.entity_column("driver_id", ValueType::String)
        };
        s.apply(v.build()).await;

        let (st, body) = online(&s.app, &["v:gone"], one.clone()).await;
        if with_gone {
            assert_eq!(st, StatusCode::OK, "round {round}: {body}");
        } else {
            assert!(
                st.is_client_error() && body.contains("gone"),
                "round {round}: `gone` was removed, got {st} {body}"
            );
        }
        let (st, body) = online(&s.app, &["v:f"], one.clone()).await;
        if with_gone {
            assert_eq!(st, StatusCode::OK, "round {round}: {body}");
        } else {
            assert_eq!(
                st,
                StatusCode::BAD_REQUEST,
                "round {round}: driver_id is a STRING now: {body}"
            );
            let (st, body) = online(&s.app, &["v:f"], one_str.clone()).await;
            assert_eq!(st, StatusCode::OK, "round {round}: {body}");
        }
    }
}

/// Many distinct feature lists never grow the plan cache past its bound;
/// a list is cached as written (one entry per distinct list, repeats hit it).
#[tokio::test]
async fn plan_cache_is_bounded() {
    let s = Local::new().await;
    let names: Vec<String> = (0..14).map(|i| format!("f{i}")).collect();
    s.apply(view("v").with_features(ValueType::Float, &names).build()).await;
    let entities = json!({"driver_id": [1001]});

    let entries = || async {
        let (st, text) = call(&s.app, "GET", "/metrics", Value::Null).await;
        assert_eq!(st, StatusCode::OK);
        metric(&text, "larder_plan_cache_entries").unwrap_or_else(|| panic!("no larder_plan_cache_entries in {text}"))
    };
    // Duplicates and version pins answer as the plain list does; each list
    // written differently is an entry of its own, a repeated list is not.
    let mut answers = Vec::new();
    for features in [
        vec!["v:f0", "v:f1"],
        vec!["v:f0", "v:f1", "v:f0"],
        vec!["v@v1:f0", "v:f1"],
        vec!["v:f0", "v@latest:f1", "v:f1"],
        vec!["v:f0", "v:f1"],
    ] {
        let (st, body) = online(&s.app, &features, entities.clone()).await;
        assert_eq!(st, StatusCode::OK, "{features:?}: {body}");
        answers.push(serde_json::from_str::<Value>(&body).unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(entries().await, 4.0, "one entry per distinct list");

    // 14 * 13 * 12 = 2184 ordered triples: distinct column orders, distinct plans.
    let mut sent = 0;
    'outer: for a in &names {
        for b in &names {
            for c in &names {
                if a == b || b == c || a == c {
                    continue;
                }
                let features = [format!("v:{a}"), format!("v:{b}"), format!("v:{c}")];
                let refs: Vec<&str> = features.iter().map(String::as_str).collect();
                let (st, body) = online(&s.app, &refs, entities.clone()).await;
                assert_eq!(st, StatusCode::OK, "{refs:?}: {body}");
                let names_out: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["feature_names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(names_out, ["driver_id", a, b, c], "columns in request order");
                sent += 1;
                if sent == 1500 {
                    break 'outer;
                }
            }
        }
    }
    let n = entries().await;
    assert!(
        n >= 1.0 && n <= larder_feature_server::PLAN_CACHE_CAPACITY as f64,
        "{n} plans cached after {sent} distinct lists"
    );
}

/// The driver-stats example in `project` of `reg`, its first day materialized into `online`.
async fn driver_stats(reg: &Arc<dyn Registry>, online: &Arc<dyn OnlineStore>, project: &str) {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver-stats/manifests");
    let docs = larder_model::load::load_paths(&[manifests]).unwrap();
    let catalog = larder_model::validate::validate(docs).unwrap();
    for o in larder_model::convert::to_feast(&catalog, project) {
        if !matches!(o, FeastObject::Project(_)) {
            reg.apply(project, o).await.unwrap();
        }
    }
    materialize(reg, online, project, &[]).await;
}

async fn materialize(reg: &Arc<dyn Registry>, online: &Arc<dyn OnlineStore>, project: &str, views: &[String]) {
    let m = larder_materialize::Materializer::new(reg.clone(), online.clone(), project.to_string());
    let reports = m
        .materialize(views, START, START + DAY, Arc::new(larder_materialize::Quiet))
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
}

/// Reads under load while the registry's PostgreSQL is unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_through_a_registry_outage() {
    let db = PgDatabase::create("larder_fs_outage").await;
    let proxy = TcpProxy::start(format!("{}:{}", db.host(), db.port())).await;
    let via_proxy = format!("postgres://{}@127.0.0.1:{}/{}", db.user(), proxy.port(), db.name());
    // Another client of the same registry (`larder apply` elsewhere): not behind the proxy.
    let direct: Arc<dyn Registry> = Arc::new(SqlRegistry::connect(db.url(), 2).await.unwrap());
    let redis = RedisDb::lease();
    let online: Arc<dyn OnlineStore> = Arc::new(
        larder_online::redis_store::RedisStore::connect(&larder_online::redis_store::RedisSettings {
            connection_string: redis.connection_string(),
            key_ttl_seconds: Some(600),
            skip_dedup: false,
        })
        .await
        .unwrap(),
    );
    let project = unique_name("p");
    driver_stats(&direct, &online, &project).await;

    // The server: `cache_ttl_seconds: 2`, the registry through the proxy.
    let reg: Arc<dyn Registry> = Arc::new(SqlRegistry::connect(&via_proxy, 8).await.unwrap());
    let cached = Arc::new(CachedRegistry::new(reg, Duration::from_secs(2)));
    let state = Arc::new(AppState::new(cached, online.clone(), "redis", project.clone(), Limits::default()).unwrap());
    let app = router(state.clone());
    let features = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"];
    let entities = json!({"driver_id": [1001, 1002, 1003]});
    let (st, body) = online_call(&app, &features, &entities).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(all_present(&body, 3), "{body}");
    let (st, body) = call(&app, "GET", "/health", Value::Null).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, ""), "healthy: Feast's empty 200");

    // A steady load of reads of materialized features, every answer checked.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (app, stop, entities) = (app.clone(), stop.clone(), entities.clone());
        load.push(tokio::spawn(async move {
            let (mut n, mut failures, mut slowest) = (0u32, Vec::new(), Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(40), online_call(&app, &features, &entities)).await;
                slowest = slowest.max(t.elapsed());
                n += 1;
                match r {
                    Ok((StatusCode::OK, body)) if all_present(&body, 3) => {}
                    Ok((st, body)) => failures.push(format!("{st}: {body}")),
                    Err(_) => failures.push("no answer within 40 s".into()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (n, failures, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.cut();
    let cut_at = Instant::now();
    // `/health` answers at once, and says stale once a refresh has failed.
    let stale_body = loop {
        let t = Instant::now();
        let (st, body) = tokio::time::timeout(Duration::from_secs(5), call(&app, "GET", "/health", Value::Null))
            .await
            .expect("/health answers");
        assert!(t.elapsed() < Duration::from_secs(1), "/health took {:?}", t.elapsed());
        assert_eq!(st, StatusCode::OK, "serving from the snapshot: {body}");
        if !body.is_empty() {
            break body;
        }
        assert!(cut_at.elapsed() < Duration::from_secs(20), "/health never said stale");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let health: Value = serde_json::from_str(&stale_body).unwrap();
    assert_eq!(health["status"], "stale", "{health}");
    // Serve a while longer from the old snapshot, well past its TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, text) = call(&app, "GET", "/metrics", Value::Null).await;
    let failures = metric(&text, "larder_registry_refresh_failures_total").expect("refresh failures metric");
    assert!(failures >= 1.0, "{text}");
    let age = metric(&text, "larder_registry_snapshot_age_seconds").expect("snapshot age metric");
    assert!(age > 4.0, "snapshot age {age} during the outage");

    // Back: a view applied meanwhile elsewhere is served within seconds.
    proxy.restore();
    let v2 = {
        let Some(FeastObject::FeatureView(mut v)) = direct
            .get(
                &project,
                larder_model::feast::FeastKind::FeatureView,
                "driver_hourly_stats",
            )
            .await
            .unwrap()
        else {
            panic!("no driver_hourly_stats")
        };
        if let Some(spec) = v.spec.as_mut() {
            spec.name = "driver_stats_v2".into();
        }
        v.meta = None;
        v
    };
    direct.apply(&project, v2.object()).await.unwrap();
    materialize(&direct, &online, &project, &["driver_stats_v2".to_string()]).await;
    let restored = Instant::now();
    loop {
        let (st, body) = online_call(&app, &["driver_stats_v2:conv_rate"], &entities).await;
        if st == StatusCode::OK {
            assert!(all_present(&body, 2), "{body}");
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(10),
            "new view not served 10 s after the registry came back: {st} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let picked_up = restored.elapsed();
    let (st, body) = call(&app, "GET", "/health", Value::Null).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, ""), "healthy again");

    stop.store(true, Ordering::Relaxed);
    let (mut total, mut failed, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for t in load {
        let (n, f, s) = t.await.unwrap();
        total += n;
        failed.extend(f);
        slowest = slowest.max(s);
    }
    eprintln!("{total} reads, slowest {slowest:?}; new view served {picked_up:?} after the restore");
    assert!(total > 100, "only {total} reads");
    assert!(
        failed.is_empty(),
        "{} of {total} reads failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(slowest < Duration::from_secs(2), "slowest read took {slowest:?}");
}

/// Whether a response has `columns` columns (entity key included), every value PRESENT.
fn all_present(body: &str, columns: usize) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let Some(results) = v["results"].as_array() else {
        return false;
    };
    results.len() == columns
        && results.iter().all(|c| {
            c["statuses"]
                .as_array()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|x| x == "PRESENT"))
        })
}

async fn online_call(app: &axum::Router, features: &[&str], entities: &Value) -> (StatusCode, String) {
    online(app, features, entities.clone()).await
}
