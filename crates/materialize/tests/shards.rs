//! Sharded materialization (`--shard I/N`, one Kubernetes Job per shard)
//! against every online store's real server: for N = 1..4, the N shards
//! of one view over the same data write disjoint key sets that together
//! are every key, the store then holds exactly what one unsharded run
//! writes, and no shard touches the view's materialization intervals
//! while the unsharded run adds one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{END, START};
use larder_materialize::{Materializer, Quiet, Shard, ViewReport};
use larder_model::entity_key::serialize_entity_key;
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::rows::RowBatch;
use larder_online::mysql::{MySqlSettings, MySqlStore};
use larder_online::postgres::{PostgresSettings, PostgresStore};
use larder_online::redis_store::{RedisSettings, RedisStore};
use larder_online::sqlite::SqliteStore;
use larder_online::{OnlineStore, ReadRow, ViewSchema, WriteStats};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Value};
use larder_registry::Registry;
use larder_registry::file::FileRegistry;
use larder_testkit::objects::{IntoObject, ValueType, ViewBuilder, entity, file_source};
use larder_testkit::{MySqlDatabase, PgDatabase, RedisDb, SqlDatabase};

/// The example's drivers: 1,000 keys, 48 hourly rows each.
const IDS: std::ops::RangeInclusive<i64> = 1001..=2000;
const VIEW: &str = "stats";
const FEATURES: [&str; 5] = ["conv_rate", "acc_rate", "avg_daily_trips", "rating", "city"];

/// A real store that also records which keys each write carried.
struct Recording {
    inner: Arc<dyn OnlineStore>,
    keys: Mutex<Vec<Vec<u8>>>,
}

impl Recording {
    /// The keys written since the last call.
    fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.keys.lock().unwrap())
    }
}

#[async_trait]
impl OnlineStore for Recording {
    async fn update(&self, p: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> larder_online::Result<()> {
        self.inner.update(p, keep, remove).await
    }
    async fn ping(&self) -> larder_online::Result<()> {
        self.inner.ping().await
    }
    async fn teardown(&self, p: &str, views: &[ViewSchema]) -> larder_online::Result<()> {
        self.inner.teardown(p, views).await
    }
    async fn online_write_batch(&self, p: &str, v: &ViewSchema, b: &RowBatch) -> larder_online::Result<WriteStats> {
        self.keys
            .lock()
            .unwrap()
            .extend(b.rows.iter().map(|r| r.entity_key.clone()));
        self.inner.online_write_batch(p, v, b).await
    }
    fn preferred_batch_rows(&self) -> usize {
        self.inner.preferred_batch_rows()
    }
    fn prefers_key_order(&self) -> bool {
        self.inner.prefers_key_order()
    }
    async fn online_read(
        &self,
        p: &str,
        v: &ViewSchema,
        keys: &[Vec<u8>],
        f: &[String],
    ) -> larder_online::Result<Vec<Option<ReadRow>>> {
        self.inner.online_read(p, v, keys, f).await
    }
}

/// One online store on its real server, with what keeps it alive.
struct Backend {
    store: Arc<dyn OnlineStore>,
    _sql: Option<SqlDatabase>,
    _redis: Option<RedisDb>,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Redis,
    Postgres,
    MySql,
}

impl Backend {
    async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut sql = None;
        let mut redis = None;
        let store: Arc<dyn OnlineStore> = match kind {
            Kind::Sqlite => Arc::new(SqliteStore::open(&dir.path().join("online.db")).await.unwrap()),
            Kind::Redis => {
                let db = RedisDb::lease();
                let s = RedisSettings {
                    connection_string: db.connection_string(),
                    key_ttl_seconds: None,
                    skip_dedup: false,
                };
                redis = Some(db);
                Arc::new(RedisStore::connect(&s).await.unwrap())
            }
            Kind::Postgres => {
                let db = PgDatabase::create("larder_mat").await;
                let s = PostgresSettings {
                    host: db.host().into(),
                    port: db.port(),
                    database: db.name().into(),
                    db_schema: "feast_online".into(),
                    user: db.user().into(),
                    password: None,
                    sslmode: "disable".into(),
                    max_conn: 4,
                    ..Default::default()
                };
                let store = Arc::new(PostgresStore::connect(&s).await.unwrap());
                sql = Some(db.into_inner());
                store
            }
            Kind::MySql => {
                let db = MySqlDatabase::create("larder_mat").await;
                let s = MySqlSettings {
                    host: db.host().into(),
                    port: db.port(),
                    database: db.name().into(),
                    user: db.user().into(),
                    password: None,
                    max_conn: 4,
                };
                let store = Arc::new(MySqlStore::connect(&s).await.unwrap());
                sql = Some(db.into_inner());
                store
            }
        };
        Self {
            store,
            _sql: sql,
            _redis: redis,
            _dir: dir,
        }
    }
}

/// The driver entity, the example's Parquet file and a view of four features, in `project`.
async fn apply(reg: &dyn Registry, project: &str) {
    let parquet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/driver-stats/data/driver_stats.parquet");
    let mut source = file_source("driver_stats_source", &parquet.display().to_string());
    source.created_timestamp_column = "created".into();
    let view = ViewBuilder::new(VIEW)
        .entity("driver")
        .entity_column("driver_id", ValueType::Int64)
        .feature("conv_rate", ValueType::Float)
        .feature("acc_rate", ValueType::Float)
        .feature("avg_daily_trips", ValueType::Int64)
        .feature("rating", ValueType::Double)
        .feature("city", ValueType::String)
        .source(source.clone());
    for o in [entity("driver", "driver_id").object(), source.object(), view.object()] {
        reg.apply(project, o).await.unwrap();
    }
}

async fn intervals(reg: &dyn Registry, project: &str) -> usize {
    match reg.get(project, FeastKind::FeatureView, VIEW).await.unwrap() {
        Some(FeastObject::FeatureView(v)) => v.meta.map(|m| m.materialization_intervals.len()).unwrap_or(0),
        other => panic!("view {VIEW} of {project}: {other:?}"),
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

/// Every key's stored row (or `None`) in `project`: the store's contents for the view.
async fn contents(store: &dyn OnlineStore, project: &str) -> BTreeMap<Vec<u8>, Option<ReadRow>> {
    let schema = ViewSchema {
        name: VIEW.into(),
        features: vec![],
    };
    let keys: Vec<Vec<u8>> = IDS.map(key).collect();
    let features: Vec<String> = FEATURES.map(String::from).into();
    let rows = store.online_read(project, &schema, &keys, &features).await.unwrap();
    keys.into_iter().zip(rows).collect()
}

fn present(c: &BTreeMap<Vec<u8>, Option<ReadRow>>) -> BTreeSet<Vec<u8>> {
    c.iter().filter(|(_, r)| r.is_some()).map(|(k, _)| k.clone()).collect()
}

async fn run(reg: &Arc<dyn Registry>, store: &Arc<Recording>, project: &str, shard: Option<Shard>) -> ViewReport {
    let mut m = Materializer::new(reg.clone(), store.clone(), project);
    // Several reader batches and writes per run, so SQLite takes the
    // sorted-runs path and the others the streaming one.
    m.batch_rows = 128;
    m.write_batch_rows = Some(100);
    m.shard = shard;
    let mut reports = m
        .materialize(&[VIEW.to_string()], START, END, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    let r = reports.remove(0);
    assert!(r.error.is_none(), "{project} shard {shard:?}: {:?}", r.error);
    assert_eq!(r.shard, shard);
    r
}

async fn shards_partition_the_keys(kind: Kind) {
    let backend = Backend::new(kind).await;
    let store = Arc::new(Recording {
        inner: backend.store.clone(),
        keys: Mutex::new(Vec::new()),
    });
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&backend._dir.path().join("registry.pb")).unwrap());
    // One project (its own tables or key space) per way of running.
    let projects = ["whole", "n1", "n2", "n3", "n4"];
    for p in projects {
        apply(reg.as_ref(), p).await;
    }

    let whole = run(&reg, &store, "whole", None).await;
    assert_eq!(whole.rows, 1_000, "{kind:?}");
    let written: BTreeSet<Vec<u8>> = store.take().into_iter().collect();
    assert_eq!(written.len(), 1_000);
    assert_eq!(
        intervals(reg.as_ref(), "whole").await,
        1,
        "an unsharded run records its interval"
    );
    let expected = contents(backend.store.as_ref(), "whole").await;
    assert_eq!(present(&expected), written);

    for n in 1..=4u32 {
        let project = format!("n{n}");
        let mut owner: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        let mut sizes = Vec::new();
        for i in 0..n {
            let shard = Shard::new(i, n).unwrap();
            let report = run(&reg, &store, &project, Some(shard)).await;
            let keys = store.take();
            assert_eq!(
                report.rows as usize,
                keys.len(),
                "{kind:?} {shard}: report counts the writes"
            );
            assert!(!keys.is_empty(), "{kind:?} {shard}: every shard gets rows");
            for k in keys {
                assert!(
                    shard.contains(&k),
                    "{kind:?} {shard} wrote a key of shard {}",
                    Shard::of(&k, n)
                );
                if let Some(j) = owner.insert(k, i) {
                    assert_eq!(j, i, "{kind:?}: a key written by shards {j} and {i} of {n}");
                }
            }
            sizes.push(report.rows);
            assert_eq!(
                intervals(reg.as_ref(), &project).await,
                0,
                "{kind:?} {shard}: sharded runs record no interval"
            );
            // The store holds exactly the keys the shards so far wrote.
            let now = contents(backend.store.as_ref(), &project).await;
            assert_eq!(present(&now), owner.keys().cloned().collect::<BTreeSet<_>>());
        }
        assert_eq!(owner.len(), 1_000, "{kind:?} {n} shards: every key in some shard");
        assert_eq!(
            sizes.iter().sum::<u64>(),
            1_000,
            "{kind:?} {n} shards: each key written once"
        );
        // 1,000 keys split evenly enough that no shard is starved or doubled.
        for s in &sizes {
            let even = 1_000 / u64::from(n);
            assert!(s.abs_diff(even) * 100 <= even * 20, "{kind:?} {n} shards: {sizes:?}");
        }
        assert_eq!(
            contents(backend.store.as_ref(), &project).await,
            expected,
            "{kind:?} {n} shards: together the same rows, values and event times as one run"
        );
    }
    assert_eq!(intervals(reg.as_ref(), "whole").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_shards_partition_the_keys() {
    shards_partition_the_keys(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shards_partition_the_keys() {
    shards_partition_the_keys(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_partition_the_keys() {
    shards_partition_the_keys(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_shards_partition_the_keys() {
    shards_partition_the_keys(Kind::MySql).await;
}
