//! Authentication and Feast Permissions on the feature server's HTTP and
//! gRPC APIs, with a fixed token → user authenticator (the real
//! authenticators are tested in larder-auth and end to end in larder-cli):
//! open probes, 401 with `WWW-Authenticate: Bearer`, 403 in Feast's
//! `FeastPermissionError` shape, 503 when the authority is down, and the
//! action each endpoint asks for (READ_ONLINE per view or feature service,
//! WRITE_ONLINE for push, write-to-online-store and materialize).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use larder_auth::{Auth, AuthError, Authenticate, AuthorizationMode, User};
use larder_feature_server::{AppState, Limits, router};
use larder_online::OnlineStore;
use larder_protos::feast::serving as fs;
use larder_protos::feast::serving::serving_service_server::ServingService;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::file::FileRegistry;
use larder_testkit::objects::{self, IntoObject, PermissionAction, PermissionType};
use larder_testkit::unique_name;
use serde_json::{Value, json};
use tower::ServiceExt;

const START: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

/// Tokens: `reader` has the example's `feature-reader` role, `writer` the
/// `writer` role, `nobody` none; `down` is an authority that cannot be
/// reached; anything else is invalid.
struct Fixed;

#[async_trait::async_trait]
impl Authenticate for Fixed {
    async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        let user = |name: &str, roles: &[&str]| User {
            username: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..User::default()
        };
        match token {
            "reader-token" => Ok(user("alice", &["feature-reader"])),
            "writer-token" => Ok(user("carol", &["writer"])),
            "nobody-token" => Ok(user("bob", &[])),
            "down" => Err(AuthError::Unavailable("identity provider unreachable".into())),
            _ => Err(AuthError::Unauthenticated("not a known token".into())),
        }
    }
}

struct Server {
    app: axum::Router,
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

/// The example (with its `feature-readers` Permission) plus a `writers`
/// Permission: WRITE_ONLINE on feature views for role `writer`.
async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver-stats/manifests");
    let catalog = larder_model::validate::validate(larder_model::load::load_paths(&[manifests]).unwrap()).unwrap();
    let project = unique_name("auth");
    for o in larder_model::convert::to_feast(&catalog, &project) {
        if !matches!(o, larder_model::feast::FeastObject::Project(_)) {
            reg.apply(&project, o).await.unwrap();
        }
    }
    let writers = objects::permission("writers")
        .project(&project)
        .types(&[PermissionType::FeatureView])
        .actions(&[PermissionAction::WriteOnline])
        .roles(&["writer"]);
    reg.apply(&project, writers.object()).await.unwrap();
    let online: Arc<dyn OnlineStore> = Arc::new(
        larder_online::sqlite::SqliteStore::open(&dir.path().join("online.db"))
            .await
            .unwrap(),
    );
    let m = larder_materialize::Materializer::new(reg.clone(), online.clone(), project.clone());
    m.materialize(
        &[],
        START,
        START + 24 * 3_600_000_000_000,
        Arc::new(larder_materialize::Quiet),
    )
    .await
    .unwrap();
    let cached = Arc::new(CachedRegistry::new(reg, Duration::from_secs(60)));
    let mut state = AppState::new(cached, online, "sqlite", project, Limits::default()).unwrap();
    state.auth = Arc::new(Auth::with_authenticator(
        "test",
        Arc::new(Fixed),
        Duration::from_secs(10),
        AuthorizationMode::Permissions,
        None,
    ));
    let state = Arc::new(state);
    Server {
        app: router(state.clone()),
        state,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    body: String,
}

impl Server {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
        Answer {
            status,
            www_authenticate,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn read_request() -> Value {
    json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001, 1002]}})
}

/// The Feast error inside a 403 body (a JSON string holding JSON).
fn feast_error(body: &str) -> Value {
    let outer: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    serde_json::from_str(outer.as_str().unwrap_or_else(|| panic!("not a JSON string: {body}"))).unwrap()
}

#[tokio::test]
async fn probes_stay_open_and_everything_else_needs_a_token() {
    let s = server().await;
    for path in ["/health", "/metrics", "/openapi.json", "/docs"] {
        let a = s.call("GET", path, None, &Value::Null).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    for (path, body) in [
        ("/get-online-features", read_request()),
        ("/push", json!({})),
        ("/write-to-online-store", json!({})),
        ("/materialize", json!({})),
        ("/materialize-incremental", json!({})),
    ] {
        let a = s.call("POST", path, None, &body).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.body);
        assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"), "{path}");
        assert_eq!(
            serde_json::from_str::<Value>(&a.body).unwrap(),
            json!({"detail": "Missing authentication token"})
        );
    }
    let a = s
        .call("POST", "/get-online-features", Some("forged"), &read_request())
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.body.contains("Invalid or expired access token"), "{}", a.body);
    assert!(!a.body.contains("forged"), "the token must not be echoed: {}", a.body);
    // Not the Bearer scheme.
    let req = Request::builder()
        .method("POST")
        .uri("/get-online-features")
        .header("authorization", "Basic cmVhZGVyOnB3")
        .body(Body::from(read_request().to_string()))
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // An authority that cannot be asked refuses: 503, never a pass.
    let a = s
        .call("POST", "/get-online-features", Some("down"), &read_request())
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
}

#[tokio::test]
async fn reads_need_read_online_on_the_view_or_service() {
    let s = server().await;
    let a = s
        .call("POST", "/get-online-features", Some("reader-token"), &read_request())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["results"][1]["statuses"], json!(["PRESENT", "PRESENT"]), "{}", a.body);

    let service = json!({"feature_service": "driver_activity", "entities": {"driver_id": [1001]}});
    let a = s
        .call("POST", "/get-online-features", Some("reader-token"), &service)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    for body in [read_request(), service] {
        let a = s
            .call("POST", "/get-online-features", Some("nobody-token"), &body)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        let e = feast_error(&a.body);
        assert_eq!(e["class"], "FeastPermissionError");
        assert_eq!(e["module"], "feast.errors");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.starts_with("Permission error:\nPermission feature-readers denied execution of ['READ_ONLINE']"),
            "{msg}"
        );
        assert!(msg.contains("Requires roles ['feature-reader']"), "{msg}");
    }
    // The writer may write but not read: no permission grants it READ_ONLINE.
    let a = s
        .call("POST", "/get-online-features", Some("writer-token"), &read_request())
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let metrics = s.call("GET", "/metrics", None, &Value::Null).await.body;
    assert!(
        metrics.contains("larder_auth_failures_total{reason=\"denied\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn writes_need_write_online() {
    let s = server().await;
    let df = json!({
        "driver_id": [424242], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [1], "trips_today": [1],
        "rating": [4.5], "earnings_today": [1.0], "online_minutes": [1], "completed_trips": [1], "city": ["x"],
        "is_premium": [false], "event_timestamp": ["2024-01-02T00:00:00"], "created": [null],
    });
    let push = json!({"push_source_name": "driver_stats_push", "df": df, "to": "online"});
    let write = json!({"feature_view_name": "driver_hourly_stats", "df": df});
    let materialize = json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-02T00:00:00"});
    let calls = [
        ("/push", &push),
        ("/write-to-online-store", &write),
        ("/materialize", &materialize),
        ("/materialize-incremental", &json!({"end_ts": "2024-01-02T00:00:00"})),
    ];
    for (path, body) in calls {
        let a = s.call("POST", path, Some("reader-token"), body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.body);
        let msg = feast_error(&a.body)["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains(
                "Permission writers denied execution of ['WRITE_ONLINE'] to FeatureView:driver_hourly_stats: \
                 Requires roles ['writer']"
            ),
            "{path}: {msg}"
        );
    }
    for (path, body) in calls {
        let a = s.call("POST", path, Some("writer-token"), body).await;
        assert!(a.status.is_success(), "{path}: {} {}", a.status, a.body);
    }
    // Pushing to the offline store asks for WRITE_OFFLINE, which nobody has.
    let offline = json!({"push_source_name": "driver_stats_push", "df": push["df"], "to": "offline"});
    let a = s.call("POST", "/push", Some("writer-token"), &offline).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let msg = feast_error(&a.body)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("No permissions defined to manage [<AuthzedAction.WRITE_OFFLINE: 'write_offline'>]"),
        "{msg}"
    );
}

/// With auth on, `/openapi.json` (still open) requires the bearer scheme
/// on every protected route and documents the 401, 403 and 503 the server
/// gives, as JSON, 401 with its `WWW-Authenticate` header.
#[tokio::test]
async fn openapi_documents_auth() {
    let s = server().await;
    let a = s.call("GET", "/openapi.json", None, &Value::Null).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let doc: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let op = &doc["paths"]["/get-online-features"]["post"];
    assert_eq!(op["security"], json!([{"bearer": []}]));
    assert!(op["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("bogus"), StatusCode::UNAUTHORIZED),
        (Some("down"), StatusCode::SERVICE_UNAVAILABLE),
        (Some("nobody-token"), StatusCode::FORBIDDEN),
        (Some("reader-token"), StatusCode::OK),
    ] {
        let a = s.call("POST", "/get-online-features", token, &read_request()).await;
        assert_eq!(a.status, status, "{token:?}: {}", a.body);
        assert!(
            op["responses"][a.status.as_str()]["content"]["application/json"].is_object(),
            "{token:?}: {} is not documented as JSON",
            a.status
        );
        assert_eq!(a.www_authenticate.is_some(), status == StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn grpc_serving_checks_the_same() {
    let s = server().await;
    let svc = larder_feature_server::grpc::Serving::new(s.state.clone());
    let req = |token: Option<&str>| {
        let mut r = tonic::Request::new(fs::GetOnlineFeaturesRequest {
            kind: Some(fs::get_online_features_request::Kind::Features(fs::FeatureList {
                val: vec!["driver_hourly_stats:conv_rate".into()],
            })),
            entities: [(
                "driver_id".to_string(),
                larder_protos::feast::types::RepeatedValue {
                    val: vec![larder_protos::feast::types::Value {
                        val: Some(larder_protos::feast::types::value::Val::Int64Val(1001)),
                    }],
                },
            )]
            .into(),
            ..Default::default()
        });
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    };
    let e = svc.get_online_features(req(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = svc.get_online_features(req(Some("nobody-token"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let details: Value = serde_json::from_slice(e.details()).unwrap();
    assert_eq!(details["class"], "FeastPermissionError");
    let e = svc.get_online_features(req(Some("down"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let ok = svc
        .get_online_features(req(Some("reader-token")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.results.len(), 2);
}
