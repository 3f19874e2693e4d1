//! `larder serve` with Feast 0.67 as the client (issue acceptance: "Feast as
//! the client").
//!
//! `larder apply` + `larder materialize` the example into a SQLite (or
//! Redis) online store, read it directly with `larder get-online-features
//! -o json`, then serve it and point the SDK at the server with
//! `online_store: {type: remote}` (e2e/feast/check_remote.py): the SDK's
//! `get_online_features` must equal the direct read, unknown views must
//! re-raise `FeatureViewNotFoundException`, and the SDK's `push` and
//! `write_to_online_store` must land in the store. Raw HTTP checks (curl)
//! cover `/push`, `/write-to-online-store`, `/materialize`,
//! `/materialize-incremental`, `/health`, `/docs`. SIGTERM must stop the
//! server with exit code 0 (graceful shutdown).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use larder_testkit::RedisDb;
use serde_json::{Value, json};
use support::*;

const VIEW: &str = "driver_hourly_stats";
const FEATURES: [&str; 10] = [
    "conv_rate",
    "acc_rate",
    "avg_daily_trips",
    "trips_today",
    "rating",
    "earnings_today",
    "online_minutes",
    "completed_trips",
    "city",
    "is_premium",
];
/// Present drivers (unsorted), a missing one, and 1002, which check_remote.py
/// overwrites with a newer row.
const IDS: &str = "1001,1500,2000,99999,1002,1003,1999";
/// New drivers written through the SDK (push, write_to_online_store) and raw HTTP.
const SDK_PUSH_ID: i64 = 900_001;
const SDK_WRITE_ID: i64 = 900_002;
const RAW_PUSH_ID: i64 = 900_101;
const RAW_WRITE_ID: i64 = 900_102;
enum Online<'a> {
    Sqlite,
    /// A logical database leased to the test (flushed before and after).
    Redis(&'a RedisDb),
}

impl Online<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Online::Sqlite => "sqlite",
            Online::Redis(_) => "redis",
        }
    }
}

/// `curl -X METHOD URL [--data BODY]`: `(status, body)`.
fn curl(method: &str, url: &str, body: Option<&Value>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", &b.to_string()]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl -w status line");
    (code.trim().parse().expect("status code"), body.to_string())
}

fn feature_refs() -> String {
    FEATURES
        .iter()
        .map(|f| format!("{VIEW}:{f}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A temp dir with the server's feature_store.yaml (SQLite SQL registry, the
/// online store) and, under `client/`, the SDK's (same registry, remote store).
struct Repo {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    steps: Vec<(String, f64)>,
    name: &'static str,
}

impl Repo {
    fn new(name: &'static str, online: &Online) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let store = match online {
            Online::Sqlite => format!("  type: sqlite\n  path: {d}/online.db\n"),
            Online::Redis(db) => format!("  type: redis\n  connection_string: \"{}\"\n", db.connection_string()),
        };
        let yaml = format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///{d}/registry.db\n  cache_ttl_seconds: 5\nonline_store:\n{store}offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
        );
        let cfg = dir.path().join("feature_store.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        Self {
            dir,
            cfg,
            steps: Vec::new(),
            name,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The SDK's repo dir: same registry, `online_store: {type: remote}`.
    fn client_dir(&self, url: &str) -> PathBuf {
        let client = self.path().join("client");
        std::fs::create_dir_all(&client).unwrap();
        let yaml = format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///{}/registry.db\n  cache_ttl_seconds: 5\n  schema_mode: verify\nonline_store:\n  type: remote\n  path: {url}\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n",
            self.path().display()
        );
        std::fs::write(client.join("feature_store.yaml"), yaml).unwrap();
        client
    }

    fn timed<T>(&mut self, step: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.steps.push((step.to_string(), t.elapsed().as_secs_f64()));
        out
    }

    fn larder(&mut self, step: &str, args: &[&str]) -> String {
        let cfg = self.cfg.to_str().unwrap().to_string();
        let mut all = vec!["-c", cfg.as_str()];
        all.extend_from_slice(args);
        self.timed(step, || larder_ok(&all))
    }

    /// `larder get-online-features ... -o json` straight from the store.
    fn direct(&mut self, step: &str, what: &[&str], ids: &str) -> Value {
        let entity = format!("driver_id={ids}");
        let mut args = vec!["get-online-features"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["--entity", &entity, "-o", "json"]);
        let text = self.larder(step, &args);
        serde_json::from_str(&text).expect("larder prints JSON")
    }

    fn save(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
        p
    }

    fn report(&self) {
        let total: f64 = self.steps.iter().map(|(_, s)| s).sum();
        let steps: Vec<String> = self.steps.iter().map(|(n, s)| format!("{n} {s:.2}s")).collect();
        eprintln!("{} timings: {} (total {total:.2}s)", self.name, steps.join(", "));
    }
}

/// Column `name` of a get-online-features response: `(values, statuses, event_timestamps)`.
fn column<'a>(resp: &'a Value, name: &str) -> (&'a Vec<Value>, &'a Vec<Value>, &'a Vec<Value>) {
    let names = resp["metadata"]["feature_names"].as_array().expect("feature_names");
    let i = names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name} in {resp}"));
    let r = &resp["results"][i];
    (
        r["values"].as_array().unwrap(),
        r["statuses"].as_array().unwrap(),
        r["event_timestamps"].as_array().unwrap(),
    )
}

/// One driver's row for /push and /write-to-online-store (columnar `df`).
fn df_row(id: i64, conv_rate: f64, city: &str, ts: &str, created: Value) -> Value {
    json!({
        "driver_id": [id],
        "conv_rate": [conv_rate],
        "acc_rate": [0.75],
        "avg_daily_trips": [11],
        "trips_today": [3],
        "rating": [null],
        "earnings_today": [99.5],
        "online_minutes": [45],
        "completed_trips": [123_456_789_012i64],
        "city": [city],
        "is_premium": [true],
        "event_timestamp": [ts],
        "created": [created],
    })
}

/// Raw HTTP (curl): status codes and bodies of the write, materialize and
/// meta endpoints, in Feast's shapes (feast-compat.md §7).
fn raw_http_checks(repo: &mut Repo, url: &str) {
    let t = Instant::now();
    // GET /health: 200, empty body.
    assert_eq!(curl("GET", &format!("{url}/health"), None), (200, String::new()));
    // GET /docs (HTML), /openapi.json, /metrics.
    let (code, body) = curl("GET", &format!("{url}/docs"), None);
    assert_eq!(code, 200, "/docs: {body}");
    assert!(body.to_lowercase().contains("<html"), "/docs is not HTML: {body}");
    let (code, body) = curl("GET", &format!("{url}/openapi.json"), None);
    assert_eq!(code, 200, "/openapi.json: {body}");
    let spec: Value = serde_json::from_str(&body).expect("openapi JSON");
    for p in [
        "/get-online-features",
        "/push",
        "/write-to-online-store",
        "/materialize",
        "/materialize-incremental",
        "/health",
    ] {
        assert!(spec["paths"].get(p).is_some(), "/openapi.json lacks {p}");
    }
    let (code, body) = curl("GET", &format!("{url}/metrics"), None);
    assert_eq!(code, 200);
    assert!(body.contains("larder_http_requests_total"), "{body}");
    // Unknown route: FastAPI's 404 body.
    let (code, body) = curl("GET", &format!("{url}/nope"), None);
    assert_eq!(
        (code, serde_json::from_str::<Value>(&body).unwrap()),
        (404, json!({"detail": "Not Found"}))
    );

    // POST /push: 200 with an empty body; the row is then served.
    let push = json!({
        "push_source_name": "driver_stats_push",
        "df": df_row(RAW_PUSH_ID, 0.25, "Rawtown", "2024-01-08T09:00:00", json!("2024-01-08T09:05:00")),
        "to": "online",
    });
    assert_eq!(curl("POST", &format!("{url}/push"), Some(&push)), (200, String::new()));
    // Unknown push source: 422, double-encoded PushSourceNotFoundException.
    let bad =
        json!({"push_source_name": "nope", "df": df_row(RAW_PUSH_ID, 0.5, "x", "2024-01-08T09:00:00", Value::Null)});
    let (code, body) = curl("POST", &format!("{url}/push"), Some(&bad));
    assert_eq!(code, 422, "{body}");
    let inner: Value = serde_json::from_str(serde_json::from_str::<Value>(&body).unwrap().as_str().unwrap()).unwrap();
    assert_eq!(inner["class"], "PushSourceNotFoundException", "{body}");

    // POST /write-to-online-store as the SDK's remote store sends it, `created: null`: 200, body `null`.
    let write = json!({
        "feature_view_name": VIEW,
        "df": df_row(RAW_WRITE_ID, 0.5, "Nullcreated", "2024-01-08T10:00:00", Value::Null),
        "allow_registry_cache": false,
    });
    assert_eq!(
        curl("POST", &format!("{url}/write-to-online-store"), Some(&write)),
        (200, "null".to_string())
    );
    let read = json!({"features": [format!("{VIEW}:conv_rate"), format!("{VIEW}:city"), format!("{VIEW}:rating")], "entities": {"driver_id": [RAW_PUSH_ID, RAW_WRITE_ID]}});
    let (code, body) = curl("POST", &format!("{url}/get-online-features"), Some(&read));
    assert_eq!(code, 200, "{body}");
    let resp: Value = serde_json::from_str(&body).unwrap();
    let (vals, statuses, ts) = column(&resp, "conv_rate");
    assert_eq!(vals, &vec![json!(0.25), json!(0.5)], "{body}");
    assert_eq!(statuses, &vec![json!("PRESENT"), json!("PRESENT")], "{body}");
    assert_eq!(
        ts,
        &vec![json!("2024-01-08T09:00:00Z"), json!("2024-01-08T10:00:00Z")],
        "{body}"
    );
    assert_eq!(
        column(&resp, "city").0,
        &vec![json!("Rawtown"), json!("Nullcreated")],
        "{body}"
    );
    // A pushed null stays null but PRESENT (the row exists).
    assert_eq!(column(&resp, "rating").0, &vec![Value::Null, Value::Null], "{body}");
    assert_eq!(
        column(&resp, "rating").1,
        &vec![json!("PRESENT"), json!("PRESENT")],
        "{body}"
    );

    // POST /materialize: 200, body null; the async form 202.
    let mat = json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-03T00:00:00", "feature_views": [VIEW]});
    assert_eq!(
        curl("POST", &format!("{url}/materialize"), Some(&mat)),
        (200, "null".to_string())
    );
    // Unknown view: 404, double-encoded FeatureViewNotFoundException.
    let bad = json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-03T00:00:00", "feature_views": ["nope"]});
    let (code, body) = curl("POST", &format!("{url}/materialize"), Some(&bad));
    assert_eq!(code, 404, "{body}");
    let inner: Value = serde_json::from_str(serde_json::from_str::<Value>(&body).unwrap().as_str().unwrap()).unwrap();
    assert_eq!(inner["class"], "FeatureViewNotFoundException", "{body}");
    // POST /materialize-incremental: from the last run (2024-01-03) to end_ts.
    let inc = json!({"end_ts": "2024-01-04T00:00:00", "feature_views": [VIEW]});
    assert_eq!(
        curl("POST", &format!("{url}/materialize-incremental"), Some(&inc)),
        (200, "null".to_string())
    );
    let (code, body) = curl("POST", &format!("{url}/materialize-incremental"), Some(&json!({})));
    assert_eq!(code, 422, "end_ts is required: {body}");
    let (code, body) = curl(
        "POST",
        &format!("{url}/materialize?async=true"),
        Some(&json!({"start_ts": "2024-01-01T00:00:00", "end_ts": "2024-01-01T01:00:00", "feature_views": [VIEW]})),
    );
    assert_eq!(
        (code, serde_json::from_str::<Value>(&body).unwrap()),
        (202, json!({"status": "accepted", "feature_views": [VIEW]}))
    );
    repo.steps
        .push(("raw HTTP checks (curl)".into(), t.elapsed().as_secs_f64()));
}

fn run(python: &Path, name: &'static str, online: &Online) {
    let mut repo = Repo::new(name, online);
    let manifests = example_dir().join("manifests");
    repo.larder("larder apply", &["apply", "-f", manifests.to_str().unwrap()]);
    let out = repo.larder("larder materialize", &["materialize", "2024-01-01", "2024-01-03"]);
    assert!(out.contains(&format!("{VIEW}: 1000 rows")), "{out}");

    // The store read directly, before the server runs.
    let refs = feature_refs();
    let direct = repo.direct("larder get-online-features", &["--features", &refs], IDS);
    let direct_path = repo.save("larder.json", &direct);
    let service = repo.direct(
        "larder get-online-features (service)",
        &["--feature-service", "driver_activity", "--full-feature-names"],
        IDS,
    );
    let service_path = repo.save("service.json", &service);

    let cfg = repo.cfg.clone();
    let log = repo.path().join("serve.log");
    let server = repo.timed("larder serve until /health", || start_serve(&cfg, log));
    let url = format!("http://127.0.0.1:{}", server.port);
    let client = repo.client_dir(&url);

    let push_id = SDK_PUSH_ID.to_string();
    let write_id = SDK_WRITE_ID.to_string();
    let args = [
        "e2e/feast/check_remote.py",
        "--repo-dir",
        client.to_str().unwrap(),
        "--larder-json",
        direct_path.to_str().unwrap(),
        "--service-json",
        service_path.to_str().unwrap(),
        "--ids",
        IDS,
        "--push-id",
        &push_id,
        "--write-id",
        &write_id,
        "--update-id",
        "1002",
        "--server-store",
        online.kind(),
    ];
    let out = repo.timed("check_remote.py (feast remote client)", || feast_script(python, &args));
    assert_success("check_remote.py", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("OK "), "{stdout}");
    eprintln!("{name}: {}", stdout.trim());

    raw_http_checks(&mut repo, &url);

    // Graceful shutdown: SIGTERM -> exit 0.
    let took = server.terminate(Duration::from_secs(10));
    repo.steps.push(("SIGTERM to exit".into(), took.as_secs_f64()));

    // What the SDK and curl wrote is in the store itself (read without the server).
    let ids = format!("{SDK_PUSH_ID},{SDK_WRITE_ID},1002,{RAW_PUSH_ID},{RAW_WRITE_ID}");
    let after = repo.direct("larder get-online-features (after)", &["--features", &refs], &ids);
    let (_, statuses, _) = column(&after, "conv_rate");
    assert!(statuses.iter().all(|s| s == "PRESENT"), "{after}");
    assert_eq!(
        column(&after, "city").0,
        &vec![
            json!("Pushville"),
            json!("Writeham"),
            json!("Updated City"),
            json!("Rawtown"),
            json!("Nullcreated")
        ],
        "{after}"
    );
    // 1002 keeps check_remote.py's newer row although /materialize re-ran its window.
    assert_eq!(
        column(&after, "conv_rate").2[2],
        json!("2024-01-07T00:00:00Z"),
        "{after}"
    );
    repo.report();
}

#[test]
fn sqlite_feast_remote_client() {
    let Some(python) = feast_python() else { return };
    run(&python, "serve sqlite", &Online::Sqlite);
}

#[test]
fn redis_feast_remote_client() {
    let Some(python) = feast_python() else { return };
    let redis = RedisDb::lease();
    run(&python, "serve redis", &Online::Redis(&redis));
}
