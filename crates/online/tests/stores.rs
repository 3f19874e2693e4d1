//! Every online store against its real server: round trips of every value
//! type, missing keys, newer-wins, update/teardown idempotence, projects
//! side by side, and Feast's byte layout.

use std::sync::Arc;

use larder_model::entity_key::serialize_entity_key;
use larder_model::rows::{EntityRow, RowBatch};
use larder_model::types::FeatureType;
use larder_online::mysql::{MySqlSettings, MySqlStore};
use larder_online::postgres::{PostgresSettings, PostgresStore};
use larder_online::redis_store::{RedisSettings, RedisStore};
use larder_online::sqlite::SqliteStore;
use larder_online::{OnlineStore, ViewFeature, ViewSchema};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::*;
use larder_testkit::{MySqlDatabase, PgDatabase, REDIS_ADDR, SqlDatabase, unique_name};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sqlite,
    Redis,
    Postgres,
    MySql,
}

struct Backend {
    kind: Kind,
    store: Arc<dyn OnlineStore>,
    /// The test's own PostgreSQL or MariaDB database, dropped with it.
    _db: Option<SqlDatabase>,
    _dir: tempfile::TempDir,
}

impl Backend {
    async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, db): (Arc<dyn OnlineStore>, Option<SqlDatabase>) = match kind {
            Kind::Sqlite => (
                Arc::new(SqliteStore::open(&dir.path().join("online.db")).await.unwrap()),
                None,
            ),
            // Database 0, shared: every test writes under a project of its own.
            Kind::Redis => (
                Arc::new(
                    RedisStore::connect(&RedisSettings {
                        connection_string: REDIS_ADDR.into(),
                        key_ttl_seconds: None,
                        skip_dedup: false,
                    })
                    .await
                    .unwrap(),
                ),
                None,
            ),
            Kind::Postgres => {
                let db = PgDatabase::create("larder_on").await;
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
                (
                    Arc::new(PostgresStore::connect(&s).await.unwrap()),
                    Some(db.into_inner()),
                )
            }
            Kind::MySql => {
                let db = MySqlDatabase::create("larder_on").await;
                let s = MySqlSettings {
                    host: db.host().into(),
                    port: db.port(),
                    database: db.name().into(),
                    user: db.user().into(),
                    password: None,
                    max_conn: 4,
                };
                (Arc::new(MySqlStore::connect(&s).await.unwrap()), Some(db.into_inner()))
            }
        };
        Self {
            kind,
            store,
            _db: db,
            _dir: dir,
        }
    }

    /// Timestamps the store keeps: SQLite and MySQL (Feast's `timestamp`
    /// columns) whole seconds, PostgreSQL microseconds, Redis nanoseconds.
    fn stored_ts(&self, ns: i64) -> i64 {
        match self.kind {
            Kind::Sqlite | Kind::MySql => ns.div_euclid(1_000_000_000) * 1_000_000_000,
            Kind::Postgres => ns.div_euclid(1_000) * 1_000,
            Kind::Redis => ns,
        }
    }
}

fn project() -> String {
    unique_name("p")
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

fn v(val: Val) -> Value {
    Value { val: Some(val) }
}

/// One feature per supported value shape, plus a null.
fn all_types() -> (ViewSchema, Vec<String>, Vec<Value>) {
    let cols: Vec<(&str, i32, Value)> = vec![
        ("f_bytes", 1, v(Val::BytesVal(vec![0, 1, 255]))),
        ("f_string", 2, v(Val::StringVal("héllo".into()))),
        ("f_int32", 3, v(Val::Int32Val(-7))),
        ("f_int64", 4, v(Val::Int64Val(i64::MAX))),
        ("f_double", 5, v(Val::DoubleVal(0.9))),
        ("f_float", 6, v(Val::FloatVal(0.5))),
        ("f_bool", 7, v(Val::BoolVal(true))),
        ("f_ts", 8, v(Val::UnixTimestampVal(1_704_106_800))),
        (
            "f_bytes_list",
            11,
            v(Val::BytesListVal(BytesList {
                val: vec![vec![1], vec![]],
            })),
        ),
        (
            "f_string_list",
            12,
            v(Val::StringListVal(StringList {
                val: vec!["a".into(), "b".into()],
            })),
        ),
        ("f_int32_list", 13, v(Val::Int32ListVal(Int32List { val: vec![1, -2] }))),
        ("f_int64_list", 14, v(Val::Int64ListVal(Int64List { val: vec![] }))),
        (
            "f_double_list",
            15,
            v(Val::DoubleListVal(DoubleList {
                val: vec![1.5, f64::NAN],
            })),
        ),
        (
            "f_float_list",
            16,
            v(Val::FloatListVal(FloatList { val: vec![1.0, 2.0] })),
        ),
        (
            "f_bool_list",
            17,
            v(Val::BoolListVal(BoolList { val: vec![true, false] })),
        ),
        (
            "f_ts_list",
            18,
            v(Val::UnixTimestampListVal(Int64List { val: vec![1, 2] })),
        ),
        ("f_null", 6, Value { val: None }),
        ("f_null_val", 6, v(Val::NullVal(0))),
    ];
    let schema = ViewSchema {
        name: "stats".into(),
        features: cols
            .iter()
            .map(|(n, t, _)| ViewFeature::new(*n, FeatureType::from_proto(*t)))
            .collect(),
    };
    let names = cols.iter().map(|(n, _, _)| n.to_string()).collect();
    let values = cols.into_iter().map(|(_, _, v)| v).collect();
    (schema, names, values)
}

/// Value equality that treats NaN as equal to NaN (via the encoded bytes).
fn same(a: &Value, b: &Value) -> bool {
    use prost::Message;
    a.encode_to_vec() == b.encode_to_vec()
}

async fn round_trip(kind: Kind) {
    let b = Backend::new(kind).await;
    let p = project();
    let (schema, names, values) = all_types();
    b.store.update(&p, std::slice::from_ref(&schema), &[]).await.unwrap();
    b.store.update(&p, std::slice::from_ref(&schema), &[]).await.unwrap();
    let ts = 1_704_106_800_123_456_789i64;
    let batch = RowBatch {
        features: names.clone().into(),
        rows: (1..=3)
            .map(|i| EntityRow {
                entity_key: key(i),
                event_ts: ts + i,
                created_ts: Some(ts),
                values: values.clone(),
            })
            .collect(),
    };
    let stats = b.store.online_write_batch(&p, &schema, &batch).await.unwrap();
    assert_eq!(stats.rows, 3);
    let keys = vec![key(2), key(999), key(1)];
    let read = b.store.online_read(&p, &schema, &keys, &names).await.unwrap();
    assert_eq!(read.len(), 3);
    assert!(read[1].is_none(), "{kind:?}: missing key is None");
    for (row, id) in [(&read[0], 2), (&read[2], 1)] {
        let row = row.as_ref().unwrap_or_else(|| panic!("{kind:?}: key {id} present"));
        assert_eq!(row.event_ts, b.stored_ts(ts + id), "{kind:?}");
        for ((n, got), want) in names.iter().zip(&row.values).zip(&values) {
            let got = got.as_ref().unwrap_or_else(|| panic!("{kind:?}: {n} present"));
            assert!(same(got, want), "{kind:?} {n}: got {got:?} want {want:?}");
        }
    }
    // A subset of features, in another order.
    let sub = vec!["f_int64".to_string(), "f_string".to_string(), "nope".to_string()];
    let read = b.store.online_read(&p, &schema, &[key(3)], &sub).await.unwrap();
    let row = read[0].as_ref().unwrap();
    assert_eq!(row.values[0].as_ref().unwrap().val, Some(Val::Int64Val(i64::MAX)));
    assert_eq!(
        row.values[1].as_ref().unwrap().val,
        Some(Val::StringVal("héllo".into()))
    );
    assert!(row.values[2].is_none(), "{kind:?}: unknown feature has no value");
    b.store.teardown(&p, std::slice::from_ref(&schema)).await.unwrap();
    b.store.teardown(&p, std::slice::from_ref(&schema)).await.unwrap();
}

async fn newer_wins(kind: Kind) {
    let b = Backend::new(kind).await;
    let p = project();
    let schema = ViewSchema {
        name: "stats".into(),
        features: vec![ViewFeature::new("x", FeatureType::INT64)],
    };
    let names: Vec<String> = vec!["x".into()];
    b.store.update(&p, std::slice::from_ref(&schema), &[]).await.unwrap();
    let write = |ts: i64, x: i64| {
        let batch = RowBatch {
            features: names.clone().into(),
            rows: vec![EntityRow {
                entity_key: key(1),
                event_ts: ts * 1_000_000_000,
                created_ts: None,
                values: vec![v(Val::Int64Val(x))],
            }],
        };
        let store = b.store.clone();
        let schema = schema.clone();
        let p = p.clone();
        async move { store.online_write_batch(&p, &schema, &batch).await.unwrap() }
    };
    let read = || {
        let store = b.store.clone();
        let schema = schema.clone();
        let p = p.clone();
        let names = names.clone();
        async move {
            let r = store.online_read(&p, &schema, &[key(1)], &names).await.unwrap();
            let row = r[0].clone().unwrap();
            (row.event_ts / 1_000_000_000, row.values[0].clone().unwrap().val)
        }
    };
    write(100, 1).await;
    write(50, 2).await;
    assert_eq!(
        read().await,
        (100, Some(Val::Int64Val(1))),
        "{kind:?}: older row ignored"
    );
    write(200, 3).await;
    assert_eq!(read().await, (200, Some(Val::Int64Val(3))), "{kind:?}: newer row wins");
    write(200, 3).await;
    assert_eq!(
        read().await,
        (200, Some(Val::Int64Val(3))),
        "{kind:?}: re-run is a no-op"
    );
    // Duplicates inside one batch: the newest wins.
    let batch = RowBatch {
        features: names.clone().into(),
        rows: vec![
            EntityRow {
                entity_key: key(1),
                event_ts: 400_000_000_000,
                created_ts: None,
                values: vec![v(Val::Int64Val(5))],
            },
            EntityRow {
                entity_key: key(1),
                event_ts: 300_000_000_000,
                created_ts: None,
                values: vec![v(Val::Int64Val(4))],
            },
        ],
    };
    b.store.online_write_batch(&p, &schema, &batch).await.unwrap();
    assert_eq!(read().await, (400, Some(Val::Int64Val(5))), "{kind:?}");
    b.store.teardown(&p, std::slice::from_ref(&schema)).await.unwrap();
}

/// Two projects (one name a suffix of the other) with the same view and keys.
async fn projects_side_by_side(kind: Kind) {
    let b = Backend::new(kind).await;
    let base = project();
    let (p1, p2) = (format!("x{base}"), base.clone());
    let schema = ViewSchema {
        name: "stats".into(),
        features: vec![ViewFeature::new("x", FeatureType::INT64)],
    };
    let names: Vec<String> = vec!["x".into()];
    for (p, x) in [(&p1, 1), (&p2, 2)] {
        b.store.update(p, std::slice::from_ref(&schema), &[]).await.unwrap();
        let batch = RowBatch {
            features: names.clone().into(),
            rows: vec![EntityRow {
                entity_key: key(7),
                event_ts: 1_000_000_000,
                created_ts: None,
                values: vec![v(Val::Int64Val(x))],
            }],
        };
        b.store.online_write_batch(p, &schema, &batch).await.unwrap();
    }
    for (p, x) in [(&p1, 1), (&p2, 2)] {
        let r = b.store.online_read(p, &schema, &[key(7)], &names).await.unwrap();
        assert_eq!(
            r[0].as_ref().unwrap().values[0].as_ref().unwrap().val,
            Some(Val::Int64Val(x)),
            "{kind:?}"
        );
    }
    // Removing the view from one project leaves the other alone.
    b.store.update(&p2, &[], std::slice::from_ref(&schema)).await.unwrap();
    let r = b.store.online_read(&p1, &schema, &[key(7)], &names).await.unwrap();
    assert!(r[0].is_some(), "{kind:?}: other project untouched");
    if kind == Kind::Redis {
        let r = b.store.online_read(&p2, &schema, &[key(7)], &names).await.unwrap();
        assert!(r[0].is_none(), "redis: removed view's fields are gone");
    } else {
        b.store.update(&p2, std::slice::from_ref(&schema), &[]).await.unwrap();
        let r = b.store.online_read(&p2, &schema, &[key(7)], &names).await.unwrap();
        assert!(r[0].is_none(), "{kind:?}: recreated table is empty");
    }
    b.store.teardown(&p1, std::slice::from_ref(&schema)).await.unwrap();
}

/// A read of many keys (Redis: the pooled in-place parser) answers exactly
/// what one-key reads (Redis: the multiplexed connection) answer, in request
/// order, with missing keys in between.
async fn many_keys(kind: Kind) {
    let b = Backend::new(kind).await;
    let p = project();
    let (schema, names, values) = all_types();
    b.store.update(&p, std::slice::from_ref(&schema), &[]).await.unwrap();
    let ts = 1_704_106_800_000_000_000i64;
    let batch = RowBatch {
        features: names.clone().into(),
        rows: (0..300)
            .map(|i| {
                let mut vals = values.clone();
                vals[1] = v(Val::StringVal(format!("driver {i}")));
                vals[3] = v(Val::Int64Val(i));
                EntityRow {
                    entity_key: key(i),
                    event_ts: ts + i * 1_000_000_000,
                    created_ts: None,
                    values: vals,
                }
            })
            .collect(),
    };
    b.store.online_write_batch(&p, &schema, &batch).await.unwrap();
    // Every third key is missing; the rest are read back to front.
    let ids: Vec<i64> = (0..450)
        .rev()
        .map(|i| if i % 3 == 0 { 10_000 + i } else { i % 300 })
        .collect();
    let keys: Vec<Vec<u8>> = ids.iter().map(|&i| key(i)).collect();
    let all = b.store.online_read(&p, &schema, &keys, &names).await.unwrap();
    assert_eq!(all.len(), keys.len());
    for ((id, k), got) in ids.iter().zip(&keys).zip(&all) {
        let one = b
            .store
            .online_read(&p, &schema, std::slice::from_ref(k), &names)
            .await
            .unwrap();
        let same_row = match (got, &one[0]) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.event_ts == b.event_ts
                    && a.values.len() == b.values.len()
                    && a.values.iter().zip(&b.values).all(|(x, y)| match (x, y) {
                        (None, None) => true,
                        (Some(x), Some(y)) => same(x, y),
                        _ => false,
                    })
            }
            _ => false,
        };
        assert!(same_row, "{kind:?}: key {id}: {got:?} vs {:?}", one[0]);
        if *id >= 10_000 {
            assert!(got.is_none(), "{kind:?}: key {id} is missing");
            continue;
        }
        let row = got.as_ref().unwrap_or_else(|| panic!("{kind:?}: key {id} present"));
        assert_eq!(row.event_ts, b.stored_ts(ts + id * 1_000_000_000), "{kind:?}");
        assert_eq!(
            row.values[1].as_ref().unwrap().val,
            Some(Val::StringVal(format!("driver {id}")))
        );
        assert_eq!(row.values[3].as_ref().unwrap().val, Some(Val::Int64Val(*id)));
    }
    b.store.teardown(&p, std::slice::from_ref(&schema)).await.unwrap();
}

/// Batches larger than one write pipeline/statement (Redis writes several
/// pipelines concurrently): every key lands, and per key the newer row wins.
async fn large_batches(kind: Kind) {
    let b = Backend::new(kind).await;
    let p = project();
    let schema = ViewSchema {
        name: "big".into(),
        features: vec![
            ViewFeature::new("n", FeatureType::INT64),
            ViewFeature::new("s", FeatureType::STRING),
        ],
    };
    let names: Vec<String> = vec!["n".into(), "s".into()];
    b.store.update(&p, std::slice::from_ref(&schema), &[]).await.unwrap();
    let t = 1_704_106_800_000_000_000i64;
    let batch = |ts_of: &dyn Fn(i64) -> i64, tag: &str| RowBatch {
        features: names.clone().into(),
        rows: (0..7_000)
            .map(|i| EntityRow {
                entity_key: key(i),
                event_ts: ts_of(i),
                created_ts: None,
                values: vec![v(Val::Int64Val(i)), v(Val::StringVal(format!("{tag}{i}")))],
            })
            .collect(),
    };
    let first = b
        .store
        .online_write_batch(&p, &schema, &batch(&|_| t, "first-"))
        .await
        .unwrap();
    assert_eq!(first.rows, 7_000);
    // Even keys get an older row (ignored), odd keys a newer one (kept).
    let second = batch(
        &|i| {
            if i % 2 == 0 {
                t - 1_000_000_000
            } else {
                t + 1_000_000_000
            }
        },
        "second-",
    );
    let stats = b.store.online_write_batch(&p, &schema, &second).await.unwrap();
    assert_eq!(stats.rows, 7_000);
    if kind == Kind::Redis {
        assert_eq!(stats.skipped_older, 3_500, "Redis counts the rows it skipped");
    }
    let ids: Vec<i64> = (0..7_000).step_by(7).chain([6_999]).collect();
    let keys: Vec<Vec<u8>> = ids.iter().map(|&i| key(i)).collect();
    let read = b.store.online_read(&p, &schema, &keys, &names).await.unwrap();
    for (id, row) in ids.iter().zip(&read) {
        let row = row.as_ref().unwrap_or_else(|| panic!("{kind:?}: key {id} present"));
        let (tag, ts) = if id % 2 == 0 {
            ("first-", t)
        } else {
            ("second-", t + 1_000_000_000)
        };
        assert_eq!(
            row.values[1].as_ref().unwrap().val,
            Some(Val::StringVal(format!("{tag}{id}"))),
            "{kind:?}: key {id}"
        );
        assert_eq!(row.event_ts, b.stored_ts(ts), "{kind:?}: key {id}");
    }
    b.store.teardown(&p, std::slice::from_ref(&schema)).await.unwrap();
}

macro_rules! per_store {
    ($name:ident, $f:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                $f(Kind::Sqlite).await
            }
            #[tokio::test]
            async fn redis() {
                $f(Kind::Redis).await
            }
            #[tokio::test]
            async fn postgres() {
                $f(Kind::Postgres).await
            }
            #[tokio::test]
            async fn mysql() {
                $f(Kind::MySql).await
            }
        }
    };
}

per_store!(round_trip_all_types, round_trip);
per_store!(newer_row_wins, newer_wins);
per_store!(two_projects, projects_side_by_side);
per_store!(many_keys_in_one_read, many_keys);
per_store!(large_batches_newer_wins, large_batches);
