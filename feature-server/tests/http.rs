//! The HTTP API against real stores (SQLite, Redis, PostgreSQL): values
//! and statuses for present, missing and null keys, feature services, full
//! feature names, push and write-to-online-store read back, materialize
//! endpoints, and every kind of bad input (a clear 4xx in Feast's shape,
//! never a 500, and the server keeps serving).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_feature_server::{AppState, Limits, router};
use larder_online::OnlineStore;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::file::FileRegistry;
use larder_testkit::{PgDatabase, REDIS_ADDR, unique_name};
use serde_json::{Value, json};
use tower::ServiceExt;

const START: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

#[derive(Clone, Copy, Debug, PartialEq)]
enum Store {
    Sqlite,
    Redis,
    Postgres,
}

struct Server {
    app: axum::Router,
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
    /// The PostgreSQL store's database, dropped with the server.
    _pg: Option<PgDatabase>,
}

impl Server {
    async fn new(store: Store, limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver-stats/manifests");
        let docs = larder_model::load::load_paths(&[manifests]).unwrap();
        let catalog = larder_model::validate::validate(docs).unwrap();
        // A project of its own, so Redis keys never collide between tests.
        let project = unique_name("t");
        for o in larder_model::convert::to_feast(&catalog, &project) {
            if !matches!(o, larder_model::feast::FeastObject::Project(_)) {
                reg.apply(&project, o).await.unwrap();
            }
        }
        let mut pg = None;
        let online: Arc<dyn OnlineStore> = match store {
            Store::Sqlite => Arc::new(
                larder_online::sqlite::SqliteStore::open(&dir.path().join("online.db"))
                    .await
                    .unwrap(),
            ),
            Store::Redis => Arc::new(
                larder_online::redis_store::RedisStore::connect(&larder_online::redis_store::RedisSettings {
                    connection_string: REDIS_ADDR.into(),
                    key_ttl_seconds: Some(600),
                    skip_dedup: false,
                })
                .await
                .unwrap(),
            ),
            Store::Postgres => {
                let db = PgDatabase::create("larder_fs").await;
                let s = larder_online::postgres::PostgresSettings {
                    host: db.host().into(),
                    port: db.port(),
                    database: db.name().into(),
                    db_schema: "public".into(),
                    user: db.user().into(),
                    password: None,
                    sslmode: "disable".into(),
                    max_conn: 4,
                    ..Default::default()
                };
                pg = Some(db);
                Arc::new(larder_online::postgres::PostgresStore::connect(&s).await.unwrap())
            }
        };
        // Materialize the first 24 hours only.
        let m = larder_materialize::Materializer::new(reg.clone(), online.clone(), project.clone());
        let reports = m
            .materialize(
                &[],
                START,
                START + 24 * 3_600_000_000_000,
                Arc::new(larder_materialize::Quiet),
            )
            .await
            .unwrap();
        assert!(reports.iter().all(|r| r.error.is_none()));
        let cached = Arc::new(CachedRegistry::new(reg, Duration::from_secs(60)));
        let state = Arc::new(AppState::new(cached, online, format!("{store:?}"), project, limits).unwrap());
        Self {
            app: router(state.clone()),
            state,
            _dir: dir,
            _pg: pg,
        }
    }

    async fn call(&self, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, text) = self.call("POST", path, &body.to_string()).await;
        (s, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// Column `name` of a get-online-features response.
fn col<'a>(resp: &'a Value, name: &str) -> &'a Value {
    let names = resp["metadata"]["feature_names"].as_array().unwrap();
    let i = names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name} in {resp}"));
    &resp["results"][i]
}

/// The inner Feast error of a double-encoded body.
fn feast_error(body: &Value) -> Value {
    serde_json::from_str(body.as_str().unwrap_or_else(|| panic!("not a JSON string: {body}"))).unwrap()
}

async fn reads(store: Store) {
    let s = Server::new(store, Limits::default()).await;
    let (st, r) = s
        .post(
            "/get-online-features",
            json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:rating", "driver_hourly_stats:city"],
                   "entities": {"driver_id": [1001, 1002, 77]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["metadata"]["feature_names"][0], "driver_id");
    assert_eq!(col(&r, "driver_id")["values"], json!([1001, 1002, 77]));
    let city = col(&r, "city");
    assert_eq!(
        city["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"]),
        "{store:?}"
    );
    assert!(city["values"][0].is_string());
    assert_eq!(city["values"][2], Value::Null);
    // Only the first 24 hours were materialized.
    assert_eq!(city["event_timestamps"][0], "2024-01-01T23:00:00Z");
    assert_eq!(city["event_timestamps"][2], "1970-01-01T00:00:00Z");
    assert!(col(&r, "conv_rate")["values"][0].as_f64().unwrap() > 0.0);

    // Feature service + full feature names.
    let (st, r) = s
        .post("/get-online-features", json!({"feature_service": "driver_activity", "full_feature_names": true, "entities": {"driver_id": [1001]}}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        r["metadata"]["feature_names"],
        json!([
            "driver_id",
            "driver_hourly_stats__conv_rate",
            "driver_hourly_stats__avg_daily_trips"
        ])
    );

    // write-to-online-store as the SDK's remote store sends it (event_timestamp, created: null), then read back.
    let (st, body) = s
        .post(
            "/write-to-online-store",
            json!({"feature_view_name": "driver_hourly_stats", "allow_registry_cache": false, "df": {
                "driver_id": [5001], "event_timestamp": ["2024-06-01T00:00:00"], "created": [null],
                "conv_rate": [0.25], "acc_rate": [0.5], "avg_daily_trips": [7], "trips_today": [1], "rating": [null],
                "earnings_today": [10.5], "online_minutes": [30], "completed_trips": [99], "city": ["Oslo"], "is_premium": [true]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body, Value::Null);
    let (_, r) = s
        .post("/get-online-features", json!({"features": ["driver_hourly_stats:city", "driver_hourly_stats:rating", "driver_hourly_stats:conv_rate"], "entities": {"driver_id": [5001]}}))
        .await;
    assert_eq!(col(&r, "city")["values"], json!(["Oslo"]));
    assert_eq!(col(&r, "city")["event_timestamps"], json!(["2024-06-01T00:00:00Z"]));
    assert_eq!(col(&r, "conv_rate")["values"], json!([0.25]));
    // A stored null reads back as a present null (Feast's behaviour).
    assert_eq!(col(&r, "rating")["values"], json!([null]));
    assert_eq!(col(&r, "rating")["statuses"], json!(["PRESENT"]));

    // push through the push source, newer than what is stored.
    let (st, body) = s
        .post(
            "/push",
            json!({"push_source_name": "driver_stats_push", "to": "online", "df": {
                "driver_id": [1001], "event_timestamp": ["2024-07-01T00:00:00Z"], "created": ["2024-07-01T00:00:00Z"],
                "conv_rate": [0.75], "acc_rate": [0.5], "avg_daily_trips": [7], "trips_today": [1], "rating": [4.5],
                "earnings_today": [10.5], "online_minutes": [30], "completed_trips": [99], "city": ["Rome"], "is_premium": [false]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, r) = s
        .post(
            "/get-online-features",
            json!({"features": ["driver_hourly_stats:city"], "entities": {"driver_id": [1001]}}),
        )
        .await;
    assert_eq!(col(&r, "city")["values"], json!(["Rome"]), "{store:?}");

    // Materialize the rest through the API, then the last hour is served.
    let (st, body) = s
        .post(
            "/materialize",
            json!({"start_ts": "2024-01-02T00:00:00", "end_ts": "2024-01-03T00:00:00"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, r) = s
        .post(
            "/get-online-features",
            json!({"features": ["driver_hourly_stats:city"], "entities": {"driver_id": [1002]}}),
        )
        .await;
    assert_eq!(col(&r, "city")["event_timestamps"], json!(["2024-01-02T23:00:00Z"]));
    let (st, body) = s
        .post("/materialize-incremental", json!({"end_ts": "2024-01-03T01:00:00"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn reads_sqlite() {
    reads(Store::Sqlite).await;
}
#[tokio::test]
async fn reads_redis() {
    reads(Store::Redis).await;
}
#[tokio::test]
async fn reads_postgres() {
    reads(Store::Postgres).await;
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let limits = Limits {
        max_body_bytes: 4096,
        max_entities: 50,
        max_features: 20,
        ..Limits::default()
    };
    let s = Server::new(Store::Sqlite, limits).await;
    let good_features = json!(["driver_hourly_stats:conv_rate"]);
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("/get-online-features", "{not json".into(), StatusCode::UNPROCESSABLE_ENTITY, "json_invalid"),
        ("/get-online-features", "[1,2]".into(), StatusCode::UNPROCESSABLE_ENTITY, "valid dictionary"),
        ("/get-online-features", json!({"features": good_features}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "Field required"),
        ("/get-online-features", json!({"features": "x", "entities": {"driver_id": [1]}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "valid list"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": 1}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "valid list"),
        ("/get-online-features", json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}).to_string(), StatusCode::NOT_FOUND, "FeatureViewNotFoundException"),
        ("/get-online-features", json!({"features": ["driver_hourly_stats:nope"], "entities": {"driver_id": [1]}}).to_string(), StatusCode::BAD_REQUEST, "Feature nope not found"),
        ("/get-online-features", json!({"feature_service": "nope", "entities": {"driver_id": [1]}}).to_string(), StatusCode::NOT_FOUND, "FeatureServiceNotFoundException"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": ["1001"]}}).to_string(), StatusCode::BAD_REQUEST, "not a valid Int64"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": [1001.5]}}).to_string(), StatusCode::BAD_REQUEST, "not a valid Int64"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": [1, 2], "other": [1]}}).to_string(), StatusCode::BAD_REQUEST, "same length"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": []}}).to_string(), StatusCode::BAD_REQUEST, "empty"),
        ("/get-online-features", json!({"features": good_features, "entities": {}}).to_string(), StatusCode::BAD_REQUEST, "at least one"),
        ("/get-online-features", json!({"features": good_features, "entities": {"rider_id": [1]}}).to_string(), StatusCode::BAD_REQUEST, "driver_id is required"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": (0..51).collect::<Vec<_>>()}}).to_string(), StatusCode::BAD_REQUEST, "limit is 50"),
        ("/get-online-features", json!({"features": vec!["a:b"; 21], "entities": {"driver_id": [1]}}).to_string(), StatusCode::BAD_REQUEST, "limit is 20"),
        ("/get-online-features", json!({"features": good_features, "entities": {"driver_id": [1]}, "pad": "x".repeat(5000)}).to_string(), StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit"),
        ("/push", json!({"push_source_name": "nope", "df": {"driver_id": [1]}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "PushSourceNotFoundException"),
        ("/push", json!({"push_source_name": "driver_stats_push", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01"]}}).to_string(), StatusCode::BAD_REQUEST, "column conv_rate is missing"),
        ("/push", json!({"push_source_name": "driver_stats_push", "to": "sideways", "df": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "online"),
        // Offline pushes are checked before anything is written (the example's file stays as it is).
        ("/push", json!({"push_source_name": "driver_stats_push", "to": "offline", "df": {}}).to_string(), StatusCode::BAD_REQUEST, "column event_timestamp is missing from df"),
        ("/push", json!({"push_source_name": "driver_stats_push", "to": "online_and_offline", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01"]}}).to_string(), StatusCode::BAD_REQUEST, "column conv_rate is missing"),
        ("/write-to-online-store", json!({"feature_view_name": "nope", "df": {}}).to_string(), StatusCode::NOT_FOUND, "FeatureViewNotFoundException"),
        ("/materialize", json!({"end_ts": "2024-01-01"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "start_ts"),
        ("/materialize", json!({"start_ts": "2024-01-02", "end_ts": "2024-01-01"}).to_string(), StatusCode::BAD_REQUEST, "before end_ts"),
        ("/materialize", json!({"start_ts": "yesterday", "end_ts": "2024-01-01"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "not a timestamp"),
        ("/materialize", json!({"start_ts": "2024-01-01", "end_ts": "2024-01-02", "feature_views": ["nope"]}).to_string(), StatusCode::NOT_FOUND, "FeatureViewNotFoundException"),
        ("/materialize-incremental", json!({}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "end_ts"),
        ("/nope", "{}".into(), StatusCode::NOT_FOUND, "Not Found"),
    ];
    for (path, body, status, needle) in cases {
        let (st, text) = s.call("POST", path, &body).await;
        assert_eq!(st, status, "{path} {body}: {text}");
        assert!(text.contains(needle), "{path} {body}: {needle:?} not in {text}");
        // Feast errors are double-encoded JSON the SDK can parse.
        if needle.ends_with("Exception") {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(feast_error(&v)["class"], needle);
        }
    }
    let (st, _) = s.call("GET", "/get-online-features", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    // Still serving.
    let (st, _) = s
        .post(
            "/get-online-features",
            json!({"features": good_features, "entities": {"driver_id": [1001]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, text) = s.call("GET", "/health", "").await;
    assert_eq!((st, text.as_str()), (StatusCode::OK, ""));
    let (st, text) = s.call("GET", "/metrics", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        text.contains("larder_http_requests_total{endpoint=\"/get-online-features\",status=\"404\"}"),
        "{text}"
    );
    assert!(text.contains("larder_http_request_duration_seconds_bucket"));
    let (st, text) = s.call("GET", "/openapi.json", "").await;
    assert_eq!(st, StatusCode::OK);
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert!(spec["paths"]["/get-online-features"]["post"].is_object());
    let (st, text) = s.call("GET", "/docs", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("openapi.json"));
    // Every route (the documented ones, the document and its page) counted
    // under its own path; unmatched paths as `other`.
    let (_, text) = s.call("GET", "/metrics", "").await;
    let documented = spec["paths"].as_object().unwrap().keys().map(String::as_str);
    let routes: Vec<&str> = documented.chain(["/openapi.json", "/docs", "other"]).collect();
    assert!(routes.len() >= 10, "{routes:?}");
    for path in routes {
        let label = format!("larder_http_requests_total{{endpoint=\"{path}\",");
        assert!(text.contains(&label), "{label} not in {text}");
    }
}

/// gRPC ServingService and health on a real socket.
#[tokio::test]
async fn grpc_serving_service() {
    use larder_protos::feast::serving::serving_service_client::ServingServiceClient;
    use larder_protos::feast::serving::{self as fs, get_online_features_request::Kind};
    use larder_protos::feast::types::{RepeatedValue, Value as PValue, value::Val};

    let s = Server::new(Store::Sqlite, Limits::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(larder_feature_server::grpc::serve(
        listener,
        s.state.clone(),
        None,
        async {
            let _ = rx.await;
        },
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServingServiceClient::new(channel.clone());

    let info = client
        .get_feast_serving_info(fs::GetFeastServingInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(info.version.starts_with("larder-"));

    let ids = RepeatedValue {
        val: vec![
            PValue {
                val: Some(Val::Int64Val(1001)),
            },
            PValue {
                val: Some(Val::Int64Val(3)),
            },
        ],
    };
    let req = fs::GetOnlineFeaturesRequest {
        kind: Some(Kind::Features(fs::FeatureList {
            val: vec![
                "driver_hourly_stats:city".into(),
                "driver_hourly_stats:trips_today".into(),
            ],
        })),
        entities: [("driver_id".to_string(), ids.clone())].into_iter().collect(),
        ..Default::default()
    };
    let resp = client.get_online_features(req).await.unwrap().into_inner();
    let names = resp.metadata.unwrap().feature_names.unwrap().val;
    assert_eq!(names, vec!["driver_id", "city", "trips_today"]);
    let city = &resp.results[1];
    assert!(matches!(city.values[0].val, Some(Val::StringVal(_))));
    assert_eq!(
        city.statuses,
        vec![fs::FieldStatus::Present as i32, fs::FieldStatus::NotFound as i32]
    );
    assert_eq!(city.event_timestamps[0].seconds, 1_704_150_000, "2024-01-01T23:00:00Z");
    assert!(
        matches!(resp.results[2].values[0].val, Some(Val::Int32Val(_))),
        "types are kept, not widened"
    );

    // Feature service with full names.
    let req = fs::GetOnlineFeaturesRequest {
        kind: Some(Kind::FeatureService("driver_activity".into())),
        entities: [("driver_id".to_string(), ids.clone())].into_iter().collect(),
        full_feature_names: true,
        ..Default::default()
    };
    let resp = client.get_online_features(req).await.unwrap().into_inner();
    assert_eq!(
        resp.metadata.unwrap().feature_names.unwrap().val[1],
        "driver_hourly_stats__conv_rate"
    );

    // Errors: NOT_FOUND with Feast's details; INVALID_ARGUMENT for a wrong key type.
    let req = fs::GetOnlineFeaturesRequest {
        kind: Some(Kind::Features(fs::FeatureList {
            val: vec!["nope:x".into()],
        })),
        entities: [("driver_id".to_string(), ids.clone())].into_iter().collect(),
        ..Default::default()
    };
    let err = client.get_online_features(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let details: Value = serde_json::from_slice(err.details()).unwrap();
    assert_eq!(details["class"], "FeatureViewNotFoundException");
    let req = fs::GetOnlineFeaturesRequest {
        kind: Some(Kind::Features(fs::FeatureList {
            val: vec!["driver_hourly_stats:city".into()],
        })),
        entities: [(
            "driver_id".to_string(),
            RepeatedValue {
                val: vec![PValue {
                    val: Some(Val::StringVal("x".into())),
                }],
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let err = client.get_online_features(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // gRPC health.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "feast.serving.ServingService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

/// HTTPS with a self-signed certificate (made with openssl), checked with curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https() {
    let s = Server::new(Store::Sqlite, Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = larder_testkit::tls::self_signed_cert(dir.path());
    let tls = larder_feature_server::tls::server_config(&cert, &key, &[b"http/1.1"]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(larder_feature_server::serve_tls(
        listener,
        tls,
        s.state.clone(),
        async {
            let _ = rx.await;
        },
    ));
    let curl = move |extra: &[&str]| {
        let mut c = std::process::Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .args(extra);
        c.arg(format!("https://127.0.0.1:{port}/health"));
        c.output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        let trusted = curl(&["--cacert", cert.to_str().unwrap()]);
        let untrusted = curl(&[]);
        (trusted, untrusted)
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.0.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    assert_ne!(
        String::from_utf8_lossy(&out.1.stdout),
        "200",
        "an untrusted certificate is refused by the client"
    );
    // A bad key file is a clear error.
    let err =
        larder_feature_server::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("nope.pem"), &[])
            .unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
