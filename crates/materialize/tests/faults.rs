//! Faults during materialization: a missing or truncated Parquet file, a
//! view whose schema does not match its file, Redis stopped mid-run. Each
//! gives a clear error, leaves that view's interval alone, does not affect
//! the other views, and a re-run after the fix completes with correct data.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{END, START, example_parquet};
use larder_materialize::{Materializer, Progress, Quiet, ViewReport};
use larder_model::entity_key::serialize_entity_key;
use larder_model::feast::{FeastKind, FeastObject};
use larder_online::redis_store::{RedisSettings, RedisStore};
use larder_online::sqlite::SqliteStore;
use larder_online::{OnlineStore, ViewSchema};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Value};
use larder_registry::Registry;
use larder_registry::file::FileRegistry;

/// The shared manifests, each view with `avg_daily_trips` too.
fn manifests(views: &[(&str, &Path, &str)]) -> String {
    common::manifests(views, &[("avg_daily_trips", "Int64")])
}

async fn apply(reg: &dyn Registry, text: &str) {
    common::apply(reg, "faults", text).await
}

async fn intervals(reg: &dyn Registry, view: &str) -> usize {
    match reg.get("faults", FeastKind::FeatureView, view).await.unwrap() {
        Some(FeastObject::FeatureView(v)) => v.meta.map(|m| m.materialization_intervals.len()).unwrap_or(0),
        _ => panic!("view {view} missing"),
    }
}

fn key(id: i64) -> Vec<u8> {
    serialize_entity_key(&EntityKey {
        join_keys: vec!["driver_id".into()],
        entity_values: vec![Value {
            val: Some(Val::Int64Val(id)),
        }],
    })
    .unwrap()
}

async fn read(store: &dyn OnlineStore, view: &str, id: i64) -> Option<Vec<Option<Value>>> {
    let schema = ViewSchema {
        name: view.into(),
        features: vec![],
    };
    let f = vec![
        "conv_rate".to_string(),
        "avg_daily_trips".to_string(),
        "city".to_string(),
    ];
    store
        .online_read("faults", &schema, &[key(id)], &f)
        .await
        .unwrap()
        .remove(0)
        .map(|r| r.values)
}

fn error_of(reports: &[ViewReport], view: &str) -> Option<String> {
    reports
        .iter()
        .find(|r| r.view == view)
        .unwrap_or_else(|| panic!("no report for {view}"))
        .error
        .as_ref()
        .map(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_schema_faults_are_isolated_and_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
    let store: Arc<dyn OnlineStore> = Arc::new(SqliteStore::open(&dir.path().join("online.db")).await.unwrap());
    let good = example_parquet();
    let missing = dir.path().join("later.parquet");
    let truncated = dir.path().join("truncated.parquet");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    apply(
        reg.as_ref(),
        &manifests(&[
            ("good", &good, "String"),
            ("missing", &missing, "String"),
            ("cut", &truncated, "String"),
            ("mismatch", &good, "Int64"),
        ]),
    )
    .await;

    let m = Materializer::new(reg.clone(), store.clone(), "faults");
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert_eq!(reports.len(), 4);
    assert_eq!(error_of(&reports, "good"), None);
    assert_eq!(reports.iter().find(|r| r.view == "good").unwrap().rows, 1000);
    let e = error_of(&reports, "missing").expect("missing file fails");
    assert!(e.contains("later.parquet"), "{e}");
    let e = error_of(&reports, "cut").expect("truncated file fails");
    assert!(e.contains("truncated.parquet"), "{e}");
    let e = error_of(&reports, "mismatch").expect("schema mismatch fails");
    assert!(e.contains("city") && e.contains("driver_stats.parquet"), "{e}");
    assert_eq!(intervals(reg.as_ref(), "good").await, 1);
    for v in ["missing", "cut", "mismatch"] {
        assert_eq!(intervals(reg.as_ref(), v).await, 0, "{v}: interval not advanced");
    }
    let good_row = read(store.as_ref(), "good", 1001).await.expect("good view served");

    // Fix every fault and run again: all complete, with the same data as the good view.
    std::fs::copy(&good, &missing).unwrap();
    std::fs::copy(&good, &truncated).unwrap();
    apply(reg.as_ref(), &manifests(&[("mismatch", &good, "String")])).await;
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
    for v in ["missing", "cut", "mismatch"] {
        assert_eq!(intervals(reg.as_ref(), v).await, 1, "{v}");
        assert_eq!(
            read(store.as_ref(), v, 1001).await.as_ref(),
            Some(&good_row),
            "{v}: correct data"
        );
    }
    assert_eq!(intervals(reg.as_ref(), "good").await, 2);
}

struct RedisServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn start(port: Option<u16>, dir: Option<tempfile::TempDir>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, port, dir }
    }

    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir)
    }
}

/// Kills the server once the first rows are written.
struct KillAfterFirstWrite {
    server: std::sync::Mutex<Option<RedisServer>>,
    killed: AtomicBool,
    rows: AtomicU64,
    port: std::sync::Mutex<Option<(u16, tempfile::TempDir)>>,
}

impl Progress for KillAfterFirstWrite {
    fn rows_written(&self, _view: &str, rows: u64) {
        self.rows.fetch_add(rows, Ordering::SeqCst);
        if !self.killed.swap(true, Ordering::SeqCst)
            && let Some(s) = self.server.lock().unwrap().take()
        {
            *self.port.lock().unwrap() = Some(s.stop());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run() {
    let dir = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
    apply(reg.as_ref(), &manifests(&[("stats", &example_parquet(), "String")])).await;
    let server = RedisServer::start(None, None);
    let settings = RedisSettings {
        connection_string: format!("127.0.0.1:{}", server.port),
        key_ttl_seconds: None,
        skip_dedup: false,
    };
    let store: Arc<dyn OnlineStore> = Arc::new(RedisStore::connect(&settings).await.unwrap());
    let mut m = Materializer::new(reg.clone(), store, "faults");
    // Many small batches so the run is still going when the server dies.
    m.batch_rows = 50;
    m.dedup_capacity = 50;
    m.write_batch_rows = Some(50);
    let killer = Arc::new(KillAfterFirstWrite {
        server: std::sync::Mutex::new(Some(server)),
        killed: AtomicBool::new(false),
        rows: AtomicU64::new(0),
        port: std::sync::Mutex::new(None),
    });
    let reports = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        m.materialize(&[], START, END, killer.clone()),
    )
    .await
    .expect("a dead server fails the run instead of hanging")
    .unwrap();
    let e = reports[0].error.as_ref().expect("the run fails").to_string();
    assert!(e.contains("redis") || e.contains("online store"), "{e}");
    assert_eq!(intervals(reg.as_ref(), "stats").await, 0, "interval not advanced");

    // Restart on the same port and re-run: complete and correct.
    let (port, rdir) = killer.port.lock().unwrap().take().unwrap();
    let server = RedisServer::start(Some(port), Some(rdir));
    let store: Arc<dyn OnlineStore> = Arc::new(RedisStore::connect(&settings).await.unwrap());
    let m = Materializer::new(reg.clone(), store.clone(), "faults");
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert!(reports[0].error.is_none(), "{:?}", reports[0].error);
    assert_eq!(intervals(reg.as_ref(), "stats").await, 1);

    // Compare with the same data materialized into SQLite.
    let sqlite: Arc<dyn OnlineStore> = Arc::new(SqliteStore::open(&dir.path().join("online.db")).await.unwrap());
    Materializer::new(reg.clone(), sqlite.clone(), "faults")
        .materialize(&[], START, END, Arc::new(Quiet))
        .await
        .unwrap();
    for id in [1001, 1500, 2000] {
        let a = read(store.as_ref(), "stats", id).await.unwrap();
        let b = read(sqlite.as_ref(), "stats", id).await.unwrap();
        assert_eq!(a, b, "driver {id}");
    }
    server.stop();
}
