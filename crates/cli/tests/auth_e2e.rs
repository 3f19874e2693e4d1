//! `larder serve` and `larder registry-server` with authentication on, Feast
//! 0.67's SDK as the client (e2e/feast/check_auth.py).
//!
//! The server repo holds the driver-stats example (without its own
//! Permission), a second view `driver_trips` on the same Parquet source, and
//! two Permissions for the role `feast-reader`: DESCRIBE + READ_ONLINE on
//! projects, entities, data sources and feature services (any name), and on
//! the feature view `driver_hourly_stats` only. So a `reader` reads
//! `driver_hourly_stats` (values equal to `larder get-online-features`
//! straight from the store) and the `driver_activity` service, is refused
//! `driver_trips` with `FeastPermissionError` (HTTP 403 re-raised by the
//! SDK), and the remote registry lists only the view it may describe; a
//! `stranger` (authenticated, no role) is refused every read and sees empty
//! lists; a client without a token gets UNAUTHENTICATED from the registry.
//! Raw HTTP (curl): 401 with `WWW-Authenticate: Bearer` without or with a
//! garbage token, 200/403 for the reader, `/health` open, 503 when the
//! identity provider cannot be reached. The servers run at debug level and
//! their logs must never hold a token or a client secret.
//!
//! - OIDC: a real provider (e2e/oidc, oidc-provider on Node.js, run by
//!   larder-testkit's `OidcProvider`) with the clients `reader` (role
//!   `feast-reader`) and `stranger`; the SDK sends static client_credentials
//!   tokens (`auth: {type: oidc, token}`).
//! - Kubernetes: the test API server (`KUBECONFIG`, e2e/kube/testenv.sh), a
//!   namespace of the test's own, ServiceAccounts `reader` and `stranger`
//!   with TokenRequest tokens, a RoleBinding of the (empty) Role
//!   `feast-reader` to `reader`; the SDK sends `auth: {type: kubernetes,
//!   user_token}`. Then both servers again with `authorization:
//!   kubernetes-rbac`, where a Role (`larder.dev`) granting `get` on
//!   `featureviews/online` and `featureviews` for `driver_hourly_stats` and
//!   on `featureservices` for `driver_activity` decides.
//!
//! Skips (with a note) without the Feast venv, Node.js or `KUBECONFIG`,
//! except in CI (`CI` set), where each of those is a failure.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use larder_testkit::oidc::OidcProvider;
use serde_json::{Value, json};
use support::*;

const ALLOWED: &str = "driver_hourly_stats";
const DENIED: &str = "driver_trips";
const SERVICE: &str = "driver_activity";
const FEATURES: [&str; 3] = ["conv_rate", "avg_daily_trips", "city"];
const DENIED_FEATURES: [&str; 2] = ["trips_today", "city"];
/// Two present drivers and a missing one.
const IDS: &str = "1001,1500,99999";

/// The example's manifests but its Permission (role `feature-reader`).
const EXAMPLE_MANIFESTS: [&str; 5] = [
    "feature-store.yaml",
    "driver.yaml",
    "sources.yaml",
    "driver-hourly-stats.yaml",
    "driver-activity.yaml",
];

/// A second view the reader may not read, and the reader's Permissions.
const EXTRA_MANIFESTS: &str = r#"apiVersion: larder.dev/v1alpha1
kind: FeatureView
metadata:
  name: driver-trips
spec:
  name: driver_trips
  entities: [driver]
  source: driver-stats-source
  ttl: 1d
  features:
    - {name: trips_today, type: Int32}
    - {name: city, type: String}
---
apiVersion: larder.dev/v1alpha1
kind: Permission
metadata:
  name: feast-reader-metadata
spec:
  types: [Project, Entity, DataSource, FeatureService]
  namePatterns: [".*"]
  actions: [DESCRIBE, READ_ONLINE]
  policy:
    roles: [feast-reader]
---
apiVersion: larder.dev/v1alpha1
kind: Permission
metadata:
  name: feast-reader-views
spec:
  types: [FeatureView]
  namePatterns: [driver_hourly_stats]
  actions: [DESCRIBE, READ_ONLINE]
  policy:
    roles: [feast-reader]
"#;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A value unique to this run (client secrets, namespace names).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:08x}", std::process::id(), nanos)
}

// ------------------------------------------------------------ the servers

/// One HTTP call with curl: `(status, lower-cased response headers, body)`.
/// `authorization` is the whole header value.
fn http(url: &str, body: Option<&Value>, authorization: Option<&str>) -> (u16, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "30", "-w", "\n%{http_code}"]);
    if let Some(a) = authorization {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    if let Some(b) = body {
        cmd.args(["-X", "POST", "-H", "content-type: application/json", "--data-binary"]);
        cmd.arg(b.to_string());
    }
    let out = cmd.arg(url).output().expect("run curl");
    if !out.status.success() {
        return (0, String::new(), String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (resp, code) = text.rsplit_once('\n').expect("curl -w status line");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    (
        code.trim().parse().expect("status code"),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The class inside a double-encoded Feast error body.
fn feast_error_class(body: &str) -> String {
    let outer: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let inner: Value = serde_json::from_str(outer.as_str().unwrap_or_else(|| panic!("not a JSON string: {body}")))
        .unwrap_or_else(|e| panic!("inner not JSON ({e}): {body}"));
    inner["class"].as_str().unwrap_or_default().to_string()
}

// -------------------------------------------------------------- the repo

/// A temp dir with the server's config (SQLite registry and online store,
/// `auth`), the example applied and materialized, and the clients' repos.
struct Repo {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    steps: Vec<(String, f64)>,
    name: &'static str,
}

impl Repo {
    /// Apply and materialize with `auth` (YAML lines under `auth:`) in the config.
    fn prepare(name: &'static str, auth: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repo {
            cfg: dir.path().join("larder.yaml"),
            dir,
            steps: Vec::new(),
            name,
        };
        repo.write_config("larder.yaml", auth);
        let extra = repo.path().join("manifests");
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::write(extra.join("auth.yaml"), EXTRA_MANIFESTS).unwrap();
        let example = example_dir().join("manifests");
        let mut args = vec!["apply".to_string()];
        for f in EXAMPLE_MANIFESTS {
            args.push("-f".into());
            args.push(example.join(f).to_str().unwrap().into());
        }
        args.push("-f".into());
        args.push(extra.to_str().unwrap().into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        repo.larder("larder apply", &args);
        let out = repo.larder("larder materialize", &["materialize", "2024-01-01", "2024-01-03"]);
        for view in [ALLOWED, DENIED] {
            assert!(out.contains(&format!("{view}: 1000 rows")), "{out}");
        }
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a server config `file` with `auth` (indented YAML lines).
    fn write_config(&self, file: &str, auth: &str) -> PathBuf {
        let d = self.path().display();
        let yaml = format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: sqlite:///{d}/registry.db\n  cache_ttl_seconds: 5\nonline_store:\n  type: sqlite\n  path: {d}/online.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\nauth:\n{auth}"
        );
        let p = self.path().join(file);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// A client repo `clients/<name>`: the remote registry and store, `auth`.
    fn client(&self, name: &str, registry: &LarderProcess, serve: &LarderProcess, auth: &str) -> PathBuf {
        let dir = self.path().join("clients").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: remote\n  path: 127.0.0.1:{}\nonline_store:\n  type: remote\n  path: http://127.0.0.1:{}\nentity_key_serialization_version: 3\nauth:\n{auth}",
            registry.port, serve.port
        );
        std::fs::write(dir.join("feature_store.yaml"), yaml).unwrap();
        dir
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

    /// The allowed view's features for IDS, straight from the store.
    fn direct(&mut self) -> Value {
        let refs: Vec<String> = FEATURES.iter().map(|f| format!("{ALLOWED}:{f}")).collect();
        let entity = format!("driver_id={IDS}");
        let text = self.larder(
            "larder get-online-features",
            &[
                "get-online-features",
                "--features",
                &refs.join(","),
                "--entity",
                &entity,
                "-o",
                "json",
            ],
        );
        serde_json::from_str(&text).expect("larder prints JSON")
    }

    fn start_servers(&mut self, cfg: &Path) -> (LarderProcess, LarderProcess) {
        let (serve_log, registry_log) = (self.path().join("serve.log"), self.path().join("registry.log"));
        let serve = self.timed("larder serve until /health", || start_serve_verbose(cfg, serve_log));
        let registry = self.timed("larder registry-server until listening", || {
            start_registry_server(cfg, registry_log, Verbosity::Debug, 0)
        });
        (serve, registry)
    }

    /// check_auth.py for `clients`; its JSON line.
    fn check(&mut self, python: &Path, step: &str, clients: &[(&str, &Path)], servers: &[&LarderProcess]) -> Value {
        let features = FEATURES.join(",");
        let denied = DENIED_FEATURES.join(",");
        let mut args = vec![
            "e2e/feast/check_auth.py".to_string(),
            "--ids".into(),
            IDS.into(),
            "--allowed-view".into(),
            ALLOWED.into(),
            "--denied-view".into(),
            DENIED.into(),
            "--features".into(),
            features,
            "--denied-features".into(),
            denied,
            "--service".into(),
            SERVICE.into(),
        ];
        for (name, dir) in clients {
            args.push("--client".into());
            args.push(format!("{name}={}", dir.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.timed(step, || feast_script(python, &args));
        let logs = || {
            servers
                .iter()
                .map(|s| s.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        };
        assert!(
            out.status.success(),
            "check_auth.py failed:\nstdout:\n{}\nstderr:\n{}\nserver logs:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            logs()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        eprintln!("{} {step}: {line}", self.name);
        serde_json::from_str(line).unwrap_or_else(|e| panic!("check_auth.py printed no JSON line ({e}):\n{stdout}"))
    }

    fn report(&self) {
        let total: f64 = self.steps.iter().map(|(_, s)| s).sum();
        let steps: Vec<String> = self.steps.iter().map(|(n, s)| format!("{n} {s:.2}s")).collect();
        eprintln!("{} timings: {} (total {total:.2}s)", self.name, steps.join(", "));
    }
}

// ------------------------------------------------------------ assertions

/// `v` is a recorded exception of class `class` (check_auth.py's `raised`).
fn assert_raised(what: &str, v: &Value, class: &str) {
    assert_eq!(v["raised"], class, "{what}: {v}");
    if class == "FeastPermissionError" {
        assert_eq!(v["module"], "feast.errors", "{what}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Permission error:"),
            "{what}: {v}"
        );
    }
}

/// The SDK's `to_dict()` of the allowed view equals the direct read:
/// ids, and per feature the values (conv_rate as float32; missing = None).
fn assert_matches_direct(what: &str, sdk: &Value, direct: &Value) {
    let values = &sdk["values"];
    assert!(values.is_object(), "{what}: no values: {sdk}");
    let ids: Vec<i64> = IDS.split(',').map(|i| i.parse().unwrap()).collect();
    assert_eq!(values["driver_id"], json!(ids), "{what}: {sdk}");
    let names = direct["metadata"]["feature_names"].as_array().expect("feature_names");
    for f in FEATURES {
        let i = names
            .iter()
            .position(|n| n == f)
            .unwrap_or_else(|| panic!("no {f} in the direct read {direct}"));
        let want = direct["results"][i]["values"].as_array().unwrap();
        let got = values[f]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no column {f}: {sdk}"));
        assert_eq!(got.len(), want.len(), "{what} {f}: {sdk}");
        for (g, w) in got.iter().zip(want) {
            if f == "conv_rate" && !w.is_null() {
                let (g, w) = (g.as_f64().unwrap() as f32, w.as_f64().unwrap() as f32);
                assert_eq!(g, w, "{what} {f}: {sdk} vs {direct}");
            } else {
                assert_eq!(g, w, "{what} {f}: {sdk} vs {direct}");
            }
        }
    }
    // Two present drivers with values, the unknown one empty.
    assert!(
        values["city"][0].is_string() && values["city"][1].is_string(),
        "{what}: {sdk}"
    );
    assert!(values["city"][2].is_null(), "{what}: {sdk}");
}

/// What every authenticated client must see in permissions mode.
fn assert_permissions_mode(what: &str, result: &Value, direct: &Value) {
    let reader = &result["reader"];
    assert_matches_direct(&format!("{what} reader allowed"), &reader["allowed"], direct);
    assert_raised(
        &format!("{what} reader denied"),
        &reader["denied"],
        "FeastPermissionError",
    );
    let service = &reader["service"]["values"];
    assert!(
        service["conv_rate"].is_array() && service["avg_daily_trips"].is_array(),
        "{what} reader service: {reader}"
    );
    assert_eq!(
        service["conv_rate"], reader["allowed"]["values"]["conv_rate"],
        "{reader}"
    );
    assert_eq!(reader["list_feature_views"], json!([ALLOWED]), "{what}: {reader}");
    assert_eq!(reader["list_entities"], json!(["driver"]), "{what}: {reader}");
    assert_eq!(reader["get_feature_view"], ALLOWED, "{what}: {reader}");

    let stranger = &result["stranger"];
    for call in ["allowed", "denied", "service", "get_feature_view"] {
        assert_raised(
            &format!("{what} stranger {call}"),
            &stranger[call],
            "FeastPermissionError",
        );
    }
    assert_eq!(stranger["list_feature_views"], json!([]), "{what}: {stranger}");
    assert_eq!(stranger["list_entities"], json!([]), "{what}: {stranger}");
}

/// A client without a token: the registry answers UNAUTHENTICATED, the
/// feature server 401 (which the SDK's remote store reports as a RuntimeError).
fn assert_anonymous(what: &str, anonymous: &Value) {
    for call in ["list_feature_views", "list_entities", "get_feature_view"] {
        assert_eq!(
            anonymous[call]["code"], "UNAUTHENTICATED",
            "{what} anonymous {call}: {anonymous}"
        );
    }
    for call in ["allowed", "denied"] {
        let v = &anonymous[call];
        assert!(v["raised"].is_string(), "{what} anonymous {call}: {v}");
        assert!(
            v["message"].as_str().unwrap_or_default().contains("401"),
            "{what} anonymous {call}: {v}"
        );
    }
}

/// Raw HTTP: the status codes and bodies behind what the SDK saw.
fn raw_http_checks(repo: &mut Repo, url: &str, reader: &str, stranger: &str) {
    let t = Instant::now();
    let read = |view: &str, features: &[&str]| {
        json!({
            "features": features.iter().map(|f| format!("{view}:{f}")).collect::<Vec<_>>(),
            "entities": {"driver_id": [1001]},
        })
    };
    let allowed = read(ALLOWED, &FEATURES);
    let denied = read(DENIED, &DENIED_FEATURES);
    let endpoint = format!("{url}/get-online-features");

    // Open paths need no token.
    let (code, _, body) = http(&format!("{url}/health"), None, None);
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(http(&format!("{url}/metrics"), None, None).0, 200);

    // No or unusable credentials: 401, `WWW-Authenticate: Bearer`, `{"detail": …}`.
    for (what, header) in [
        ("no Authorization header", None),
        ("a garbage token", Some("Bearer garbage.not-a.jwt")),
        ("another scheme", Some("Basic cmVhZGVyOnNlY3JldA==")),
        ("an empty bearer", Some("Bearer")),
    ] {
        let (code, head, body) = http(&endpoint, Some(&allowed), header);
        assert_eq!(code, 401, "{what}: {body}");
        assert!(head.contains("\r\nwww-authenticate: bearer"), "{what}: {head}");
        let detail: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert!(detail["detail"].is_string(), "{what}: {body}");
    }
    // Protected non-read endpoints too.
    let push = json!({
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [900_001], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [1],
            "trips_today": [1], "rating": [4.5], "earnings_today": [1.0], "online_minutes": [1],
            "completed_trips": [1], "city": ["Nowhere"], "is_premium": [false],
            "event_timestamp": ["2024-01-08T09:00:00"], "created": ["2024-01-08T09:00:00"],
        },
        "to": "online",
    });
    assert_eq!(http(&format!("{url}/push"), Some(&push), None).0, 401);

    // The reader: 200 for its view, 403 with FeastPermissionError for the other.
    let (code, _, body) = http(&endpoint, Some(&allowed), Some(&bearer(reader)));
    assert_eq!(code, 200, "{body}");
    let resp: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        resp["results"].as_array().map(Vec::len),
        Some(1 + FEATURES.len()),
        "{body}"
    );
    let (code, _, body) = http(&endpoint, Some(&denied), Some(&bearer(reader)));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("FeastPermissionError"), "{body}");
    assert_eq!(feast_error_class(&body), "FeastPermissionError", "{body}");
    // A read of both views is refused as a whole.
    let both = json!({"features": [format!("{ALLOWED}:conv_rate"), format!("{DENIED}:city")], "entities": {"driver_id": [1001]}});
    assert_eq!(http(&endpoint, Some(&both), Some(&bearer(reader))).0, 403);
    // Writing is not the reader's either.
    let (code, _, body) = http(&format!("{url}/push"), Some(&push), Some(&bearer(reader)));
    assert_eq!(
        (code, feast_error_class(&body)),
        (403, "FeastPermissionError".into()),
        "{body}"
    );
    // The stranger: 403 everywhere.
    let (code, _, body) = http(&endpoint, Some(&allowed), Some(&bearer(stranger)));
    assert_eq!(
        (code, feast_error_class(&body)),
        (403, "FeastPermissionError".into()),
        "{body}"
    );
    repo.steps
        .push(("raw HTTP checks (curl)".into(), t.elapsed().as_secs_f64()));
}

/// No server log holds any of `secrets`.
fn assert_no_secrets(servers: &[(&str, String)], secrets: &[&str]) {
    for (what, log) in servers {
        assert!(!log.is_empty(), "{what}: empty log");
        for s in secrets {
            assert!(!log.contains(s), "{what}'s log holds a token or secret:\n{log}");
        }
    }
}

// ----------------------------------------------------------------- OIDC

#[test]
fn oidc_feast_clients() {
    let Some(python) = feast_python() else { return };
    let (reader_secret, stranger_secret) = (
        format!("reader-secret-{}", unique()),
        format!("stranger-secret-{}", unique()),
    );
    let clients = json!([
        {"client_id": "reader", "client_secret": reader_secret, "roles": ["feast-reader"]},
        {"client_id": "stranger", "client_secret": stranger_secret},
    ]);
    let started = Instant::now();
    let Some(provider) = OidcProvider::start_or_skip(&clients) else {
        return;
    };
    let provider_ready = started.elapsed().as_secs_f64();
    let issuer = provider.issuer().to_string();
    let server_auth = format!(
        "  type: oidc\n  auth_discovery_url: {issuer}/.well-known/openid-configuration\n  client_id: larder\n  audience: larder\n  issuer: {issuer}\n"
    );
    let mut repo = Repo::prepare("auth oidc", &server_auth);
    repo.steps
        .insert(0, ("OIDC provider until READY".into(), provider_ready));
    let reader = repo.timed("tokens", || provider.token("reader", &reader_secret));
    let stranger = provider.token("stranger", &stranger_secret);
    let direct = repo.direct();

    let cfg = repo.cfg.clone();
    let (serve, registry) = repo.start_servers(&cfg);
    let reader_dir = repo.client(
        "reader",
        &registry,
        &serve,
        &format!("  type: oidc\n  token: {reader}\n"),
    );
    let stranger_dir = repo.client(
        "stranger",
        &registry,
        &serve,
        &format!("  type: oidc\n  token: {stranger}\n"),
    );
    let anonymous_dir = repo.client("anonymous", &registry, &serve, "  type: no_auth\n");
    let result = repo.check(
        &python,
        "check_auth.py (reader, stranger, anonymous)",
        &[
            ("reader", &reader_dir),
            ("stranger", &stranger_dir),
            ("anonymous", &anonymous_dir),
        ],
        &[&serve, &registry],
    );
    assert_permissions_mode("oidc", &result, &direct);
    assert_anonymous("oidc", &result["anonymous"]);

    let url = format!("http://127.0.0.1:{}", serve.port);
    raw_http_checks(&mut repo, &url, &reader, &stranger);
    // A token the provider issued for another audience is refused.
    let (code, _, body) = http(
        &format!("{url}/get-online-features"),
        Some(&json!({"features": [format!("{ALLOWED}:conv_rate")], "entities": {"driver_id": [1001]}})),
        Some(&bearer(&provider.token_with(
            "reader",
            &reader_secret,
            &[("resource", "urn:other")],
        ))),
    );
    assert_eq!(code, 401, "wrong audience: {body}");

    // An identity provider that cannot be reached: 503, never a pass.
    let dead = free_port();
    let unreachable = repo.write_config(
        "unreachable.yaml",
        &format!("  type: oidc\n  auth_discovery_url: http://127.0.0.1:{dead}/.well-known/openid-configuration\n"),
    );
    let log = repo.path().join("serve-unreachable.log");
    let down = repo.timed("larder serve (provider unreachable)", || {
        start_serve_verbose(&unreachable, log)
    });
    let body = json!({"features": [format!("{ALLOWED}:conv_rate")], "entities": {"driver_id": [1001]}});
    let (code, _, text) = http(
        &format!("http://127.0.0.1:{}/get-online-features", down.port),
        Some(&body),
        Some(&bearer(&reader)),
    );
    assert_eq!(code, 503, "{text}");

    // The refusals were logged (at debug level), with no token in them.
    assert!(serve.log_text().contains("request refused"), "{}", serve.log_text());
    assert!(
        registry.log_text().contains("registry call refused"),
        "{}",
        registry.log_text()
    );
    let logs = [
        ("larder serve", serve.log_text()),
        ("larder registry-server", registry.log_text()),
        ("larder serve (provider unreachable)", down.log_text()),
    ];
    assert_no_secrets(&logs, &[&reader, &stranger, &reader_secret, &stranger_secret]);
    repo.report();
}

// ----------------------------------------------------------- Kubernetes

/// `LARDER_KUBECTL`, else `kubectl` on PATH, else the test environment's
/// 1.20 client (as e2e/kube/testenv.sh picks it).
fn kubectl_bin() -> PathBuf {
    if let Some(k) = std::env::var_os("LARDER_KUBECTL") {
        return k.into();
    }
    let on_path = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !on_path && let Some(dir) = std::env::var_os("LARDER_KUBE_TESTENV_DIR") {
        let k = Path::new(&dir).join("bin/kubectl-1.20");
        if k.exists() {
            return k;
        }
    }
    "kubectl".into()
}

/// `kubectl ARGS` (the cluster behind `KUBECONFIG`) with `stdin`; stdout.
fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(kubectl_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_success(&format!("kubectl {}", args.join(" ")), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the test cluster is there: `KUBECONFIG` set (CI: required) and
/// the API server answering.
fn cluster() -> bool {
    if std::env::var_os("KUBECONFIG").is_none() {
        assert!(
            !in_ci(),
            "KUBECONFIG is not set: CI must run the cluster tests (scripts/test.sh starts e2e/kube/testenv.sh)"
        );
        eprintln!("SKIPPED: no KUBECONFIG (run scripts/test.sh, or e2e/kube/testenv.sh up)");
        return false;
    }
    let out = Command::new(kubectl_bin())
        .args(["get", "--raw", "/version"])
        .output()
        .expect("run kubectl");
    assert_success(
        "KUBECONFIG is set but the API server does not answer: kubectl get --raw /version",
        &out,
    );
    true
}

/// A namespace of the test's own, deleted (without waiting) on drop.
struct Namespace(String);

impl Namespace {
    fn create() -> Self {
        let name = format!("larder-auth-e2e-{}", unique());
        kubectl(&["create", "namespace", &name], None);
        Namespace(name)
    }

    fn apply(&self, yaml: &str) {
        kubectl(&["-n", &self.0, "apply", "-f", "-"], Some(yaml));
    }

    /// A TokenRequest token of ServiceAccount `sa` (one hour).
    fn token(&self, sa: &str) -> String {
        let request = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let path = format!("/api/v1/namespaces/{}/serviceaccounts/{sa}/token", self.0);
        let out = kubectl(&["create", "--raw", &path, "-f", "-"], Some(&request.to_string()));
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("TokenRequest answer ({e}): {out}"));
        v["status"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {v}"))
            .to_string()
    }

    /// Waits until the API server's authorizer lets ServiceAccount `sa` get
    /// `featureviews/online` `name` (RBAC changes reach it asynchronously).
    fn wait_allowed(&self, sa: &str, name: &str) {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": format!("system:serviceaccount:{}:{sa}", self.0),
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", self.0), "system:authenticated"],
                "resourceAttributes": {
                    "namespace": self.0, "verb": "get", "group": "larder.dev",
                    "resource": "featureviews", "subresource": "online", "name": name,
                },
            },
        })
        .to_string();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = kubectl(&["create", "-f", "-", "-o", "json"], Some(&review));
            let v: Value = serde_json::from_str(&out).unwrap();
            if v["status"]["allowed"] == true {
                return;
            }
            assert!(Instant::now() < deadline, "RBAC grant never took effect: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new(kubectl_bin())
            .args(["delete", "namespace", &self.0, "--wait=false"])
            .output();
    }
}

#[test]
fn kubernetes_feast_clients() {
    let Some(python) = feast_python() else { return };
    if !cluster() {
        return;
    }
    let t = Instant::now();
    let ns = Namespace::create();
    let n = ns.0.clone();
    ns.apply(&format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {n}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: stranger, namespace: {n}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: feast-reader, namespace: {n}}}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: feast-reader, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: feast-reader}}
subjects:
  - {{kind: ServiceAccount, name: reader, namespace: {n}}}
"#
    ));
    let reader = ns.token("reader");
    let stranger = ns.token("stranger");
    let cluster_setup = t.elapsed().as_secs_f64();

    let mut repo = Repo::prepare("auth kubernetes", &format!("  type: kubernetes\n  namespace: {n}\n"));
    repo.steps
        .insert(0, ("namespace, ServiceAccounts, tokens".into(), cluster_setup));
    let direct = repo.direct();
    let cfg = repo.cfg.clone();
    let (serve, registry) = repo.start_servers(&cfg);
    let kube_auth = |token: &str| format!("  type: kubernetes\n  user_token: {token}\n");
    let reader_dir = repo.client("reader", &registry, &serve, &kube_auth(&reader));
    let stranger_dir = repo.client("stranger", &registry, &serve, &kube_auth(&stranger));
    let result = repo.check(
        &python,
        "check_auth.py (reader, stranger; permissions)",
        &[("reader", &reader_dir), ("stranger", &stranger_dir)],
        &[&serve, &registry],
    );
    assert_permissions_mode("kubernetes", &result, &direct);
    let url = format!("http://127.0.0.1:{}", serve.port);
    raw_http_checks(&mut repo, &url, &reader, &stranger);
    assert!(serve.log_text().contains("request refused"), "{}", serve.log_text());
    let logs = [
        ("larder serve", serve.log_text()),
        ("larder registry-server", registry.log_text()),
    ];
    serve.terminate(Duration::from_secs(10));
    registry.terminate(Duration::from_secs(10));

    // authorization: kubernetes-rbac, both servers: Roles on larder.dev
    // resources decide; the reader's RoleBinding to `feast-reader` no longer
    // matters. The reader may read `driver_hourly_stats` online and describe
    // it and the service, not read the service online.
    let t = Instant::now();
    ns.apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: larder-online-reader, namespace: {n}}}
rules:
  - apiGroups: [larder.dev]
    resources: [featureviews/online, featureviews]
    resourceNames: [{ALLOWED}]
    verbs: [get]
  - apiGroups: [larder.dev]
    resources: [featureservices]
    resourceNames: [{SERVICE}]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: larder-online-reader, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: larder-online-reader}}
subjects:
  - {{kind: ServiceAccount, name: reader, namespace: {n}}}
"#
    ));
    ns.wait_allowed("reader", ALLOWED);
    repo.steps
        .push(("RBAC Role + RoleBinding in effect".into(), t.elapsed().as_secs_f64()));
    let rbac_cfg = repo.write_config(
        "rbac.yaml",
        &format!("  type: kubernetes\n  namespace: {n}\n  authorization: kubernetes-rbac\n"),
    );
    let (serve, registry) = repo.start_servers(&rbac_cfg);
    let reader_dir = repo.client("reader-rbac", &registry, &serve, &kube_auth(&reader));
    let stranger_dir = repo.client("stranger-rbac", &registry, &serve, &kube_auth(&stranger));
    let result = repo.check(
        &python,
        "check_auth.py (reader, stranger; kubernetes-rbac)",
        &[("reader", &reader_dir), ("stranger", &stranger_dir)],
        &[&serve, &registry],
    );
    let r = &result["reader"];
    assert_matches_direct("rbac reader allowed", &r["allowed"], &direct);
    assert_raised("rbac reader denied", &r["denied"], "FeastPermissionError");
    // Described through the registry, but READ_ONLINE on the service is a
    // `get featureservices/online` the Role does not grant: the feature server's 403.
    assert_raised("rbac reader service", &r["service"], "FeastPermissionError");
    let msg = r["service"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("featureservices/online"), "{msg}");
    // Lists keep what the reader may `get` by name (no `list` granted).
    assert_eq!(r["list_feature_views"], json!([ALLOWED]), "{r}");
    assert_eq!(r["list_entities"], json!([]), "{r}");
    assert_eq!(r["get_feature_view"], ALLOWED, "{r}");
    let s = &result["stranger"];
    for call in ["allowed", "denied", "service", "get_feature_view"] {
        assert_raised(&format!("rbac stranger {call}"), &s[call], "FeastPermissionError");
    }
    assert_eq!(s["list_feature_views"], json!([]), "{s}");
    assert_eq!(s["list_entities"], json!([]), "{s}");
    let rbac_url = format!("http://127.0.0.1:{}/get-online-features", serve.port);
    let garbage = http(
        &rbac_url,
        Some(&json!({"features": [format!("{ALLOWED}:conv_rate")], "entities": {"driver_id": [1001]}})),
        Some("Bearer garbage"),
    );
    assert_eq!(garbage.0, 401, "{garbage:?}");

    let mut logs = logs.to_vec();
    logs.push(("larder serve (kubernetes-rbac)", serve.log_text()));
    logs.push(("larder registry-server (kubernetes-rbac)", registry.log_text()));
    assert_no_secrets(&logs, &[&reader, &stranger]);
    repo.report();
}
