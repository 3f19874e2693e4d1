//! No secret reaches a log line (issue 12 item 10): every binary of the
//! CLI — `apply`, `materialize`, `serve`, `registry-server` — logging at
//! debug level for every crate (`RUST_LOG=debug`, sqlx, hyper and tonic
//! included), in JSON and in text, with a PostgreSQL registry and online
//! store whose passwords sit in the configuration, requests carrying a
//! bearer token, and the failures that tend to print connection settings
//! (an unreachable registry and online store).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_testkit::PgDatabase;
use support::*;

/// Secrets unique to this run, so no other text can contain them by chance.
struct Secrets {
    registry_password: String,
    online_password: String,
    token: String,
}

impl Secrets {
    fn new() -> Self {
        Self {
            registry_password: format!("regPW-{}", uuid_like()),
            online_password: format!("onlinePW-{}", uuid_like()),
            token: format!("tok-{}", uuid_like()),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.registry_password, &self.online_password, &self.token]
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// `feature_store.yaml` with the passwords in the registry URL and in the
/// online store's settings (this machine's PostgreSQL trusts local
/// connections, so they are sent and ignored).
fn config(dir: &Path, db: &PgDatabase, s: &Secrets, registry_port: u16, online_port: u16) -> std::path::PathBuf {
    let registry = db
        .url()
        .replacen("root@", &format!("root:{}@", s.registry_password), 1)
        .replacen(&format!(":{}/", db.port()), &format!(":{registry_port}/"), 1);
    assert!(registry.contains(&s.registry_password), "{registry}");
    let yaml = format!(
        "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: {registry}\n  cache_ttl_seconds: 1\nonline_store:\n  type: postgres\n  host: {}\n  port: {online_port}\n  database: {}\n  db_schema: feast_online\n  user: {}\n  password: {}\n  sslmode: disable\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n",
        db.host(),
        db.name(),
        db.user(),
        s.online_password,
    );
    let cfg = dir.join(format!("feature_store_{registry_port}_{online_port}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    cfg
}

/// `larder` at debug level for every crate, in the given log format.
fn larder_debug(cfg: &Path, format: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .env("RUST_LOG", "debug")
        .env("LARDER_LOG_FORMAT", format)
        .env_remove("LARDER_CONFIG")
        .env_remove("LARDER_REGISTRY")
        .args(["-c", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run larder")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// POST /get-online-features with a bearer token: the status code.
fn request_with_token(port: u16, token: &str, body: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}/get-online-features"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn assert_clean(what: &str, log: &str, secrets: &Secrets) {
    for s in secrets.all() {
        assert!(!log.contains(s), "{what}: a log line holds a secret ({s}):\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line() {
    let db = PgDatabase::create("larder_logs").await;
    let secrets = Secrets::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db, &secrets, db.port(), db.port());
    let manifests = example_dir().join("manifests");
    let mut logs: Vec<(String, String)> = Vec::new();

    // The CLI, in both formats: apply, materialize, read.
    for format in ["json", "text"] {
        let out = larder_debug(&cfg, format, &["apply", "-f", manifests.to_str().unwrap()]);
        assert_success("larder apply", &out);
        logs.push((format!("apply ({format})"), text(&out)));
    }
    let out = larder_debug(&cfg, "json", &["materialize", "2024-01-01", "2024-01-03"]);
    assert_success("larder materialize", &out);
    logs.push(("materialize".into(), text(&out)));

    // The feature server: a good request, a bad one, both with a bearer token.
    let serve = start_serve_env(
        &cfg,
        dir.path().join("serve.log"),
        &[("RUST_LOG", "debug"), ("LARDER_LOG_FORMAT", "json")],
        &[],
    );
    let good = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001, 1002]}}"#;
    assert_eq!(request_with_token(serve.port, &secrets.token, good), 200);
    let bad = r#"{"features": ["driver_hourly_stats:nope"], "entities": {"driver_id": [1001]}}"#;
    assert_eq!(request_with_token(serve.port, &secrets.token, bad), 400);
    let serve_log = serve.log_text();
    serve.terminate(Duration::from_secs(20));
    logs.push(("larder serve".into(), serve_log));

    // The registry server, called with a token in its metadata.
    let registry = start_registry_server(&cfg, dir.path().join("registry.log"), Verbosity::Debug, 0);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", registry.port))
        .unwrap()
        .connect()
        .await
        .expect("connect to the registry server");
    let mut client = RegistryServerClient::new(channel);
    let mut req = tonic::Request::new(fr::ListFeatureViewsRequest {
        project: "driver_stats".into(),
        allow_cache: false,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {}", secrets.token).parse().unwrap());
    let views = client.list_feature_views(req).await.expect("ListFeatureViews");
    assert!(!views.into_inner().feature_views.is_empty());
    let registry_log = registry.log_text();
    registry.terminate(Duration::from_secs(20));
    logs.push(("larder registry-server".into(), registry_log));

    // Failures that name connection settings: nothing listens on port 1.
    let unreachable_registry = config(dir.path(), &db, &secrets, 1, db.port());
    let out = larder_debug(&unreachable_registry, "json", &["ls", "featureviews"]);
    assert!(!out.status.success(), "{}", text(&out));
    logs.push(("unreachable registry".into(), text(&out)));
    let unreachable_online = config(dir.path(), &db, &secrets, db.port(), 1);
    let out = larder_debug(
        &unreachable_online,
        "text",
        &["materialize", "2024-01-01", "2024-01-03"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    logs.push(("unreachable online store".into(), text(&out)));

    for (i, (what, log)) in logs.iter().enumerate() {
        // Debug logging was on: the check read real output, not nothing
        // (the two failures log their error only).
        let least = if i < 5 { 10 } else { 1 };
        assert!(log.lines().count() >= least, "{what} logged almost nothing:\n{log}");
        assert_clean(what, log, &secrets);
    }
    // The failures still say where they tried to connect, the password masked.
    assert!(logs[5].1.contains("root:***@127.0.0.1:1/"), "{}", logs[5].1);
    assert!(logs[6].1.contains("127.0.0.1"), "{}", logs[6].1);
}
