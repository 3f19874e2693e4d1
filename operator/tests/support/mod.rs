//! Cluster tests: a real API server (`KUBECONFIG`; `scripts/test.sh` starts
//! the project's test API server and installs the CRDs), a namespace per
//! test, the operator running in-process against it and watching only
//! that namespace, and real PostgreSQL / Redis / SQLite stores.
#![allow(dead_code)]

pub mod kubelet;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use larder_model::Kind;
use larder_operator::context::{Settings, api_resource};
use larder_operator::operator::{Config, LeaderSettings, Status, run};

pub const TEST_MANAGER: &str = "larder-test";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A client of the test cluster, or `None` (with a message) when there is
/// none locally. In CI a missing cluster is a failure: the tests never skip there.
pub async fn cluster() -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("KUBECONFIG is not set: CI must run the cluster tests (scripts/test.sh starts e2e/kube/testenv.sh)");
        }
        eprintln!("SKIPPED: no KUBECONFIG (run scripts/test.sh, or e2e/kube/testenv.sh up + install-crds crds)");
        return None;
    }
    let client = Client::try_default().await.expect("a client from KUBECONFIG");
    let probe = Api::<DynamicObject>::all_with(client.clone(), &api_resource(Kind::FeatureStore))
        .list(&kube::api::ListParams::default().limit(1))
        .await;
    if let Err(e) = probe {
        panic!("the cluster does not serve larder.dev/v1alpha1 featurestores ({e}); install crds/ first");
    }
    Some(client)
}

/// Whether the server enforces CEL rules (the testenv records when its
/// apiextensions build is missing; a real cluster ≥ 1.25 has them).
pub fn cel_available() -> bool {
    if let Ok(v) = std::env::var("LARDER_KUBE_CEL") {
        return v == "1" || v == "yes" || v == "true";
    }
    let dir = std::env::var("LARDER_KUBE_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/larder/kube-testenv")
        });
    !dir.join("run/no-cel").exists()
}

/// A namespace of the test's own.
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        TestNs {
            client: client.clone(),
            name,
        }
    }

    pub fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, &api_resource(kind))
    }

    /// Server-side apply every document of `yaml` (our kinds and Secrets).
    pub async fn apply(&self, yaml: &str) -> Result<(), kube::Error> {
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
            if value.is_null() {
                continue;
            }
            self.apply_value(value).await?;
        }
        Ok(())
    }

    pub async fn apply_value(&self, value: serde_json::Value) -> Result<DynamicObject, kube::Error> {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ar = match Kind::parse(&kind) {
            Some(k) => api_resource(k),
            None if kind == "Secret" => ApiResource::erase::<Secret>(&()),
            None => panic!("unexpected kind {kind}"),
        };
        Api::<DynamicObject>::namespaced_with(self.client.clone(), &self.name, &ar)
            .patch(&name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&value))
            .await
    }

    pub async fn secret(&self, name: &str, key: &str, value: &str) {
        self.apply_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {key: value}
        }))
        .await
        .expect("apply secret");
    }

    pub async fn get(&self, kind: Kind, name: &str) -> Option<DynamicObject> {
        self.api(kind).get_opt(name).await.expect("get")
    }

    pub async fn delete(&self, kind: Kind, name: &str) {
        self.api(kind)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Delete every Larder resource of the namespace and wait until they are
    /// gone (their finalizers released by a running operator).
    pub async fn delete_larder_resources(&self) {
        for kind in Kind::ALL.iter().rev() {
            self.api(*kind)
                .delete_collection(&DeleteParams::default(), &Default::default())
                .await
                .expect("delete collection");
        }
        eventually(
            Duration::from_secs(60),
            "every Larder resource deleted",
            || async move {
                let mut left = 0;
                for kind in Kind::ALL {
                    left += self
                        .api(kind)
                        .list(&Default::default())
                        .await
                        .map(|l| l.items.len())
                        .unwrap_or(1);
                }
                left == 0
            },
        )
        .await;
    }

    /// Delete the namespace (and wait until it is gone when `wait`).
    pub async fn remove(&self, wait: bool) {
        let api = Api::<Namespace>::all(self.client.clone());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
        if wait {
            let name = self.name.clone();
            eventually(Duration::from_secs(90), "namespace deleted", || {
                let api = api.clone();
                let name = name.clone();
                async move { api.get_opt(&name).await.ok().flatten().is_none() }
            })
            .await;
        }
    }

    /// Wait until `kind/name` has condition `type_` with status `want`; returns it.
    pub async fn wait_condition(&self, kind: Kind, name: &str, type_: &str, want: bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(o) = self.get(kind, name).await
                && let Some(c) = condition(&o, type_)
                && (c["status"] == "True") == want
            {
                return c;
            }
            if Instant::now() > deadline {
                let o = self.get(kind, name).await;
                panic!(
                    "{kind} {}/{name}: condition {type_} did not become {want} within 60 s; object: {}",
                    self.name,
                    serde_json::to_string_pretty(&o.map(|o| o.data)).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn condition(o: &DynamicObject, type_: &str) -> Option<serde_json::Value> {
    o.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Poll `check` every 100 ms until it holds, or panic naming `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator, in-process, watching one namespace.
pub struct RunningOperator {
    pub status: Status,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), larder_operator::Error>>>,
}

impl RunningOperator {
    pub fn start(client: &Client, namespace: &str, resync: Duration) -> Self {
        Self::start_with(client, namespace, resync, None, "test-operator")
    }

    pub fn start_with(
        client: &Client,
        namespace: &str,
        resync: Duration,
        leader: Option<LeaderSettings>,
        identity: &str,
    ) -> Self {
        let status = Status::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = Config {
            namespaces: vec![namespace.to_string()],
            settings: Settings {
                resync,
                max_backoff: Duration::from_secs(4),
                ..Settings::default()
            },
            metrics_addr: None,
            leader,
            identity: identity.to_string(),
            concurrency: 8,
        };
        let handle = tokio::spawn(run(client.clone(), config, status.clone(), async move {
            let _ = rx.await;
        }));
        RunningOperator {
            status,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn leading(&self) -> bool {
        self.status.leading.load(Ordering::Acquire)
    }

    pub fn registry_writes(&self) -> u64 {
        self.status.metrics.total_registry_writes()
    }

    pub fn reconciles(&self) -> u64 {
        self.status.metrics.total_reconciles()
    }

    /// Graceful stop; the run must end without error.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let r = tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("operator stops within 30 s")
                .expect("operator task");
            r.expect("operator ran without error");
        }
    }
}

impl Drop for RunningOperator {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// The sample resources of config/samples (without their Secrets).
pub fn samples() -> String {
    let dir = repo_root().join("config/samples");
    let mut out = String::new();
    for f in [
        "feature-store.yaml",
        "driver.yaml",
        "sources.yaml",
        "driver-hourly-stats.yaml",
        "driver-activity.yaml",
        "permissions.yaml",
    ] {
        out.push_str(&std::fs::read_to_string(dir.join(f)).expect("sample"));
        out.push_str("\n---\n");
    }
    out
}

/// The samples' FeatureStore pointed at a SQLite online store instead of Redis.
pub fn with_sqlite_online(samples: &str, path: &Path) -> String {
    samples.replace(
        "  onlineStore:\n    redis:\n      connectionStringSecretRef: {name: larder-online, key: connectionString}\n",
        &format!("  onlineStore:\n    sqlite: {{path: {}}}\n", path.display()),
    )
}

/// Feast 0.67's venv python; see [`larder_testkit::feast::python`].
pub fn feast_python() -> Option<PathBuf> {
    larder_testkit::feast::python()
}

/// Run e2e/feast/check_registry.py against a SQL registry; panics on mismatch.
pub fn feast_check_registry(python: &Path, feast_url: &str, expect: &str, vars: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        format!(
            "project: driver_stats\nprovider: local\nregistry:\n  registry_type: sql\n  path: {feast_url}\n  cache_ttl_seconds: 0\nonline_store:\n  type: sqlite\n  path: online.db\nentity_key_serialization_version: 3\n"
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(python);
    cmd.current_dir(repo_root())
        .env("TZ", "UTC")
        .arg("e2e/feast/check_registry.py")
        .arg("--repo-dir")
        .arg(dir.path())
        .arg("--expect")
        .arg(expect);
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run check_registry.py");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "check_registry.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// Names of the object's finalizers.
pub fn finalizers(o: &DynamicObject) -> Vec<String> {
    o.finalizers().to_vec()
}

/// Every resource of config/samples, by kind and metadata name.
pub const SAMPLE_RESOURCES: [(Kind, &str); 7] = [
    (Kind::FeatureStore, "driver-stats"),
    (Kind::Entity, "driver"),
    (Kind::DataSource, "driver-stats-source"),
    (Kind::DataSource, "driver-stats-push"),
    (Kind::FeatureView, "driver-hourly-stats"),
    (Kind::FeatureService, "driver-activity"),
    (Kind::Permission, "feature-readers"),
];

/// The password put in the registry URL Secret. Trust authentication ignores
/// it: it is there to prove it never leaks into status, events or logs.
pub const PASSWORD: &str = "s3cret-Pa55word";

/// A namespace of the test's own, a registry database, and the samples'
/// Secrets pointing at them (and at `redis`, when given).
pub async fn setup(
    prefix: &str,
    redis: Option<&larder_testkit::RedisDb>,
) -> Option<(TestNs, larder_testkit::PgDatabase)> {
    let client = cluster().await?;
    let ns = TestNs::create(&client, prefix).await;
    let db = larder_testkit::PgDatabase::create("larder_op").await;
    let url = db
        .postgresql_url()
        .replacen("postgresql://root@", &format!("postgresql://root:{PASSWORD}@"), 1);
    ns.secret("larder-registry", "url", &url).await;
    if let Some(r) = redis {
        ns.secret("larder-online", "connectionString", &r.connection_string())
            .await;
    }
    Some((ns, db))
}

pub async fn wait_all_ready(ns: &TestNs) {
    for (kind, name) in SAMPLE_RESOURCES {
        ns.wait_condition(kind, name, "Ready", true).await;
    }
}

/// The test's registry, read directly (no cache).
pub async fn registry(db: &larder_testkit::PgDatabase) -> Arc<dyn larder_registry::Registry> {
    let cfg = larder_registry::RegistryConfig::from_location(db.url(), Duration::ZERO, Path::new("/")).unwrap();
    larder_registry::open(&cfg).await.unwrap()
}

/// Names of the registry objects of `kind` in the samples' project.
pub async fn registry_names(reg: &dyn larder_registry::Registry, kind: larder_model::feast::FeastKind) -> Vec<String> {
    reg.list("driver_stats", kind)
        .await
        .unwrap()
        .iter()
        .map(|o| o.name().to_string())
        .filter(|n| !n.starts_with("__"))
        .collect()
}

/// The tables of a SQLite online store (none when the file does not exist).
pub fn sqlite_tables(path: &Path) -> Vec<String> {
    let Ok(conn) = rusqlite::Connection::open(path) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}
