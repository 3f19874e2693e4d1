//! `/openapi.json` describes what the server accepts and answers (issue 12,
//! item 3): each mismatch a schema-driven fuzzer found, pinned here. Every
//! answer's status and content type is documented for its operation, the
//! bodies the schema allows are the ones the server takes (non-empty
//! `entities`, timestamps, non-empty names, `to: online`), query booleans
//! are read as Feast's FastAPI reads them (a bad one is a 422, not an
//! undocumented 400), and the limits and auth of the running server are in
//! the document. The fuzzer itself runs in larder-cli's `openapi_fuzz`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_feature_server::api::{FEATURE_REF_PATTERN, NAIVE_TIME_PATTERN, QUERY_BOOL_PATTERN};
use larder_feature_server::{AppState, Limits, docs, router};
use larder_online::OnlineStore;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::file::FileRegistry;
use larder_testkit::unique_name;
use serde_json::{Value, json};
use tower::ServiceExt;

const VIEW: &str = "driver_hourly_stats";
const START: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

struct Server {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Server {
    /// The example's registry and its first day in a SQLite online store.
    async fn new(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver-stats/manifests");
        let catalog = larder_model::validate::validate(larder_model::load::load_paths(&[manifests]).unwrap()).unwrap();
        let project = unique_name("oas");
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
        // The first day, as `larder materialize` would (it also creates the tables).
        let m = larder_materialize::Materializer::new(reg.clone(), online.clone(), project.clone());
        let day = 24 * 3_600_000_000_000;
        let reports = m
            .materialize(&[], START, START + day, Arc::new(larder_materialize::Quiet))
            .await
            .unwrap();
        assert!(reports.iter().all(|r| r.error.is_none()));
        let cached = Arc::new(CachedRegistry::new(reg, Duration::from_secs(60)));
        let state = Arc::new(AppState::new(cached, online, "sqlite", project, limits).unwrap());
        Self {
            app: router(state),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: &str) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
        Answer {
            status,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn document(&self) -> Value {
        let a = self.call("GET", "/openapi.json", "").await;
        assert_eq!(a.status, StatusCode::OK);
        a.json()
    }
}

/// Panics unless the document lists `answer`'s status for the operation
/// and, when it has a body, its media type.
fn assert_documented(doc: &Value, method: &str, uri: &str, answer: &Answer) {
    let path = uri.split('?').next().unwrap();
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let code = answer.status.as_str();
    let resp = &op["responses"][code];
    assert!(
        resp.is_object(),
        "{method} {uri} answered {code}, which the document does not list ({:?}): {}",
        op["responses"].as_object().map(|r| r.keys().collect::<Vec<_>>()),
        answer.body
    );
    if answer.body.is_empty() {
        return;
    }
    let media = answer
        .content_type
        .as_deref()
        .unwrap_or_else(|| panic!("{method} {uri} {code}: a body without a content type"))
        .split(';')
        .next()
        .unwrap()
        .trim();
    assert!(
        resp["content"][media].is_object(),
        "{method} {uri} {code} is served as {media}, documented as {:?}",
        resp["content"].as_object().map(|c| c.keys().collect::<Vec<_>>())
    );
}

/// The schema of a request body's property.
fn property<'a>(doc: &'a Value, schema: &str, name: &str) -> &'a Value {
    let p = &doc["components"]["schemas"][schema]["properties"][name];
    assert!(p.is_object(), "{schema}.{name} is not documented");
    p
}

fn full(pattern: &str) -> regex::Regex {
    regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

/// Every answer, good or bad, carries a documented status and content type:
/// errors are JSON (they were documented as text/plain) and a malformed
/// query string is a documented 422 (it was an undocumented 400).
#[tokio::test]
async fn every_answer_is_documented() {
    let limits = Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    };
    let s = Server::new(limits).await;
    let doc = s.document().await;
    let feats = json!([format!("{VIEW}:conv_rate")]);
    let cases: Vec<(&str, &str, String, StatusCode)> = vec![
        (
            "POST",
            "/get-online-features",
            json!({"features": feats, "entities": {"driver_id": [1001]}}).to_string(),
            StatusCode::OK,
        ),
        (
            "POST",
            "/get-online-features",
            "{not json".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/get-online-features",
            json!({"features": feats, "entities": {}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/get-online-features",
            json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}).to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/get-online-features",
            json!({"features": feats, "entities": {"driver_id": [1]}, "pad": "x".repeat(5000)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "POST",
            "/push",
            json!({"push_source_name": "nope", "df": {"driver_id": [1]}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/push",
            json!({"push_source_name": "driver_stats_push", "df": {"driver_id": [1]}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/push",
            json!({"push_source_name": "driver_stats_push", "to": "offline", "df": {}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/write-to-online-store",
            json!({"feature_view_name": "nope", "df": {}}).to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/write-to-online-store",
            json!({"feature_view_name": VIEW, "df": {"driver_id": [1]}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/materialize",
            json!({"start_ts": "2024-01-01", "end_ts": "2024-01-02", "feature_views": [VIEW]}).to_string(),
            StatusCode::OK,
        ),
        // Views are resolved before an async run starts: 404, not a 202 that fails later.
        (
            "POST",
            "/materialize?async=true",
            json!({"start_ts": "2024-01-01", "end_ts": "2024-01-02", "feature_views": ["nope"]}).to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/materialize?async=null",
            json!({"start_ts": "2024-01-01", "end_ts": "2024-01-02"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/materialize",
            json!({"start_ts": "2024-01-02", "end_ts": "2024-01-01"}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/materialize",
            json!({"start_ts": "2024-01-01", "end_ts": "2024-01-02", "feature_views": ["nope"]}).to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/materialize-incremental?async=null",
            json!({"end_ts": "2024-01-03"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/materialize-incremental",
            json!({"end_ts": "2024-01-03", "feature_views": [VIEW]}).to_string(),
            StatusCode::OK,
        ),
        ("GET", "/health", String::new(), StatusCode::OK),
        ("GET", "/metrics", String::new(), StatusCode::OK),
    ];
    for (method, uri, body, status) in cases {
        let a = s.call(method, uri, &body).await;
        assert_eq!(a.status, status, "{method} {uri} {body}: {}", a.body);
        assert_documented(&doc, method, uri, &a);
    }
}

/// Bodies the schema allowed but the server refused: empty `entities`,
/// empty or non-timestamp `start_ts`, an empty push source name, a `to`
/// outside Feast's three modes.
#[tokio::test]
async fn the_schema_refuses_what_the_server_refuses() {
    let s = Server::new(Limits::default()).await;
    let doc = s.document().await;

    let entities = property(&doc, "GetOnlineFeaturesRequest", "entities");
    assert_eq!(entities["minProperties"], 1, "{entities}");
    assert_eq!(entities["additionalProperties"]["minItems"], 1, "{entities}");
    // Neither features nor a feature service: refused, and the schema says so.
    let any_of = doc["components"]["schemas"]["GetOnlineFeaturesRequest"]["anyOf"]
        .as_array()
        .expect("features or feature_service: anyOf");
    assert_eq!(any_of.len(), 2);
    let a = s
        .call(
            "POST",
            "/get-online-features",
            &json!({"entities": {"driver_id": [1]}}).to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(
        property(&doc, "GetOnlineFeaturesRequest", "features")["items"]["pattern"],
        FEATURE_REF_PATTERN
    );
    let refs = full(FEATURE_REF_PATTERN);
    for good in ["v:f", "v@v2:f", "v:f:g"] {
        assert!(refs.is_match(good), "{good}");
    }
    for bad in ["", "vf", ":f", "v:", "@v2:f"] {
        assert!(!refs.is_match(bad), "{bad}");
        let a = s
            .call(
                "POST",
                "/get-online-features",
                &json!({"features": [bad], "entities": {"driver_id": [1]}}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
    }

    // Timestamps: an RFC 3339 date-time, a naive date or date-time, epoch seconds, null.
    let start = property(&doc, "MaterializeRequest", "start_ts");
    let kinds = start["anyOf"].as_array().expect("start_ts: anyOf");
    assert!(kinds.iter().any(|k| k["format"] == "date-time"), "{start}");
    assert!(kinds.iter().any(|k| k["type"] == "number"), "{start}");
    assert!(kinds.iter().any(|k| k["type"] == "null"), "{start}");
    assert!(
        kinds
            .iter()
            .all(|k| k["type"] != "string" || k["format"].is_string() || k["pattern"].is_string()),
        "a string member without format or pattern would allow \"\": {start}"
    );
    let naive = full(NAIVE_TIME_PATTERN);
    for good in ["2024-01-01", "2024-01-01T10:00:00", "2024-12-31 23:59:59.123456"] {
        assert!(naive.is_match(good), "{good}");
    }
    for bad in [
        "",
        "2024-13-01",
        "2024-02-30",
        "2024-01-01T24:00:00",
        "yesterday",
        "٢٠٢٤-01-01",
    ] {
        assert!(!naive.is_match(bad), "{bad}");
        let a = s
            .call(
                "POST",
                "/materialize",
                &json!({"start_ts": bad, "end_ts": "2024-01-02"}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {}", a.body);
    }
    let end = property(&doc, "MaterializeIncrementalRequest", "end_ts");
    assert!(
        end["anyOf"].as_array().unwrap().iter().all(|k| k["type"] != "null"),
        "{end}"
    );

    // Names: non-empty.
    assert_eq!(property(&doc, "PushRequest", "push_source_name")["minLength"], 1);
    assert_eq!(
        property(&doc, "WriteToOnlineStoreRequest", "feature_view_name")["minLength"],
        1
    );
    let a = s
        .call(
            "POST",
            "/push",
            &json!({"push_source_name": "", "df": {"driver_id": [1]}}).to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);

    // `to`: the three modes Feast has (and null); a df that does not fit is a 400 for
    // each, never a 5xx, and anything else a validation failure.
    let to = property(&doc, "PushRequest", "to");
    assert_eq!(
        to["enum"],
        json!(["online", "offline", "online_and_offline", null]),
        "{to}"
    );
    for mode in ["online", "offline", "online_and_offline"] {
        let a = s
            .call(
                "POST",
                "/push",
                &json!({"push_source_name": "driver_stats_push", "to": mode, "df": {}}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{mode}: {}", a.body);
        assert_documented(&doc, "POST", "/push", &a);
    }
    let a = s
        .call(
            "POST",
            "/push",
            &json!({"push_source_name": "driver_stats_push", "to": "sideways", "df": {}}).to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.json()["detail"][0]["loc"], json!(["body", "to"]));
}

/// `?async=` and `?force=` as Feast's FastAPI reads booleans; anything
/// else is FastAPI's 422, not axum's plain-text 400.
#[tokio::test]
async fn query_booleans_as_fastapi_reads_them() {
    let s = Server::new(Limits::default()).await;
    let doc = s.document().await;
    let params = doc["paths"]["/materialize"]["post"]["parameters"].as_array().unwrap();
    for name in ["async", "force"] {
        let p = params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("?{name} is not documented"));
        assert_eq!(p["in"], "query");
        assert_eq!(p["required"], false, "{p}");
        assert_eq!(p["schema"]["pattern"], QUERY_BOOL_PATTERN, "{p}");
    }
    let bools = full(QUERY_BOOL_PATTERN);
    let window = json!({"start_ts": "2024-01-01T00:00:00Z", "end_ts": "2024-01-01T01:00:00Z", "feature_views": [VIEW]})
        .to_string();
    for (value, status) in [
        ("true", StatusCode::ACCEPTED),
        ("TRUE", StatusCode::ACCEPTED),
        ("yes", StatusCode::ACCEPTED),
        ("1", StatusCode::ACCEPTED),
        ("on", StatusCode::ACCEPTED),
        ("false", StatusCode::OK),
        ("f", StatusCode::OK),
        ("Off", StatusCode::OK),
        ("0", StatusCode::OK),
    ] {
        assert!(bools.is_match(value), "{value}");
        let a = s.call("POST", &format!("/materialize?async={value}"), &window).await;
        assert_eq!(a.status, status, "?async={value}: {}", a.body);
    }
    for value in ["null", "", "2", "maybe", "truee"] {
        assert!(!bools.is_match(value), "{value}");
        let a = s.call("POST", &format!("/materialize?async={value}"), &window).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "?async={value}: {}", a.body);
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            a.json()["detail"][0]["loc"],
            json!(["query", "async"]),
            "?async={value}: {}",
            a.body
        );
    }
    // The last value counts, other parameters are ignored, `force` is read the same way.
    let a = s
        .call("POST", "/materialize?async=null&async=false&x=%zz&force=true", &window)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = s.call("POST", "/materialize?force=null", &window).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
}

/// Window bounds: a valid date-time beyond the nanosecond range is clamped,
/// not refused; a bound of the wrong type is refused even when
/// `disable_event_timestamp` ignores it.
#[tokio::test]
async fn window_bounds() {
    let s = Server::new(Limits::default()).await;
    let a = s
        .call(
            "POST",
            "/materialize",
            &json!({"start_ts": "0001-01-01T00:00:00Z", "end_ts": "9999-12-31T23:59:59Z", "feature_views": [VIEW]})
                .to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = s
        .call(
            "POST",
            "/materialize-incremental",
            &json!({"end_ts": "9999-12-31T23:59:59Z", "feature_views": [VIEW]}).to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for bad in [json!(true), json!(""), json!({"t": 1})] {
        let a = s
            .call(
                "POST",
                "/materialize",
                &json!({"disable_event_timestamp": true, "start_ts": bad, "feature_views": [VIEW]}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", a.body);
    }
}

/// The running server's limits are the schema's; every protected route
/// documents 401 (with `WWW-Authenticate`), 403, 413, 500, 503 and 504;
/// with auth on, the bearer scheme is required by each of them.
#[test]
fn limits_and_auth_in_the_document() {
    let limits = Limits {
        max_entities: 7,
        max_features: 3,
        ..Limits::default()
    };
    let doc = docs::openapi(&limits, false);
    assert_eq!(property(&doc, "GetOnlineFeaturesRequest", "features")["maxItems"], 3);
    assert_eq!(
        property(&doc, "GetOnlineFeaturesRequest", "entities")["additionalProperties"]["maxItems"],
        7
    );
    assert!(doc["components"]["securitySchemes"].is_null());
    let with_auth = docs::openapi(&limits, true);
    assert_eq!(with_auth["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (path, item) in with_auth["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = &op["responses"];
            assert!(responses["504"].is_object(), "{method} {path}: 504");
            if ["/health", "/metrics"].contains(&path.as_str()) {
                assert!(op["security"].is_null(), "{method} {path} is open");
                continue;
            }
            assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
            assert!(doc["paths"][path][method]["security"].is_null());
            for code in ["401", "403", "413", "422", "500", "503"] {
                let r = &responses[code];
                assert!(
                    r["content"]["application/json"].is_object(),
                    "{method} {path}: {code} as JSON: {r}"
                );
            }
            assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
            for (code, r) in responses.as_object().unwrap() {
                assert!(
                    r["content"]["text/plain"].is_null(),
                    "{method} {path} {code}: JSON, not text/plain"
                );
            }
        }
    }
}
