//! Stores that want key order (SQLite) get the view's rows through sorted
//! runs on disk once there is more than one batch: the result must equal a
//! single-batch materialization, and every write after the sort must be in
//! ascending entity-key order.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{END, START};
use larder_materialize::{Materializer, Quiet};
use larder_model::rows::RowBatch;
use larder_online::sqlite::SqliteStore;
use larder_online::{OnlineStore, ReadRow, ViewSchema, WriteStats};
use larder_registry::Registry;
use larder_registry::file::FileRegistry;

/// First key, last key, and whether the write was sorted within.
type Write = (Vec<u8>, Vec<u8>, bool);

/// A SQLite store that records the first and last key of every write.
struct Recording {
    inner: SqliteStore,
    writes: Mutex<Vec<Write>>,
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
        let sorted = b.rows.windows(2).all(|w| w[0].entity_key < w[1].entity_key);
        if let (Some(first), Some(last)) = (b.rows.first(), b.rows.last()) {
            let mut w = self.writes.lock().unwrap();
            w.push((first.entity_key.clone(), last.entity_key.clone(), sorted));
        }
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

const MANIFESTS: &str = "apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: driver}\nspec: {joinKey: driver_id, valueType: Int64}\n---\napiVersion: larder.dev/v1alpha1\nkind: DataSource\nmetadata: {name: src}\nspec: {timestampField: event_timestamp, createdTimestampColumn: created, file: {path: PATH}}\n---\napiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: stats}\nspec:\n  entities: [driver]\n  source: src\n  features:\n    - {name: conv_rate, type: Float32}\n    - {name: avg_daily_trips, type: Int64}\n    - {name: city, type: String}\n    - {name: rating, type: Float64}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_runs_give_the_same_rows_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/driver-stats/data/driver_stats.parquet");
    let reg: Arc<dyn Registry> = Arc::new(FileRegistry::open(&dir.path().join("registry.pb")).unwrap());
    let text = MANIFESTS.replace("PATH", &parquet.display().to_string());
    let docs = larder_model::load::parse_str(&text, Path::new("/tmp/m.yaml")).unwrap();
    let catalog = larder_model::validate::validate(docs).unwrap();
    for o in larder_model::convert::to_feast(&catalog, "ko") {
        reg.apply("ko", o).await.unwrap();
    }

    // One batch: the direct path.
    let direct = Arc::new(SqliteStore::open(&dir.path().join("direct.db")).await.unwrap());
    let m = Materializer::new(reg.clone(), direct.clone(), "ko");
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert!(reports[0].error.is_none(), "{:?}", reports[0].error);
    assert_eq!(reports[0].rows, 1_000);

    // Small reader batches, a small dedup map (keys come out several times,
    // older rows after newer ones) and small writes: many runs.
    let sorted = Arc::new(Recording {
        inner: SqliteStore::open(&dir.path().join("sorted.db")).await.unwrap(),
        writes: Mutex::new(Vec::new()),
    });
    let mut m = Materializer::new(reg.clone(), sorted.clone(), "ko");
    m.batch_rows = 64;
    m.dedup_capacity = 300;
    m.write_batch_rows = Some(97);
    let reports = m.materialize(&[], START, END, Arc::new(Quiet)).await.unwrap();
    assert!(reports[0].error.is_none(), "{:?}", reports[0].error);
    assert_eq!(reports[0].rows, 1_000, "one row per entity after the merge");

    let writes = sorted.writes.lock().unwrap().clone();
    assert!(writes.len() >= 10, "{} writes", writes.len());
    assert!(writes.iter().all(|w| w.2), "every write sorted within");
    assert!(
        writes.windows(2).all(|w| w[0].1 < w[1].0),
        "writes follow each other in key order"
    );

    let schema = ViewSchema {
        name: "stats".into(),
        features: vec![],
    };
    let features: Vec<String> = ["conv_rate", "avg_daily_trips", "city", "rating"]
        .map(String::from)
        .into();
    let keys: Vec<Vec<u8>> = (1001..=2000)
        .map(|id| {
            larder_model::entity_key::serialize_entity_key(&larder_protos::feast::types::EntityKey {
                join_keys: vec!["driver_id".into()],
                entity_values: vec![larder_protos::feast::types::Value {
                    val: Some(larder_protos::feast::types::value::Val::Int64Val(id)),
                }],
            })
            .unwrap()
        })
        .collect();
    let a = direct.online_read("ko", &schema, &keys, &features).await.unwrap();
    let b = sorted.online_read("ko", &schema, &keys, &features).await.unwrap();
    assert_eq!(a.iter().filter(|r| r.is_some()).count(), 1_000);
    assert_eq!(a, b, "same rows, values and event times");
}
