//! PostgreSQL sources against the local server (127.0.0.1:5432, trust auth):
//! each test gets a database of its own (larder-testkit), dropped at the end.

use std::collections::{BTreeMap, HashMap};

use larder_model::entity_key::serialize_entity_key;
use larder_model::rows::EntityRow;
use larder_model::types::FeatureType;
use larder_offline::{OfflineError, ReadSpec, SourceLocation, SourceSpec, read_latest};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, FloatList, Int64List, StringList, Value};
use larder_testkit::PgDatabase;
use sqlx::{Connection, Executor, PgConnection};

/// 2024-01-01T00:00:00Z in ns.
const BASE_NS: i64 = 1_704_067_200_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;

/// A database of the test's own with `setup` applied, dropped with it.
struct TestDb {
    url: String,
    _db: PgDatabase,
}

impl TestDb {
    async fn new(setup: &[&str]) -> TestDb {
        let db = PgDatabase::create("larder_off").await;
        let url = db.url().to_string();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        for sql in setup {
            conn.execute(sqlx::AssertSqlSafe(sql.to_string())).await.unwrap();
        }
        conn.close().await.unwrap();
        TestDb { url, _db: db }
    }

    fn source(&self, table: Option<&str>, query: Option<&str>) -> SourceSpec {
        SourceSpec {
            name: "pg_source".into(),
            location: SourceLocation::Postgres {
                url: self.url.clone(),
                table: table.map(str::to_string),
                query: query.map(str::to_string),
            },
            timestamp_field: "event_timestamp".into(),
            created_timestamp_column: Some("created".into()),
            field_mapping: BTreeMap::new(),
        }
    }
}

fn ft(s: &str) -> FeatureType {
    FeatureType::parse(s).unwrap()
}

fn val(v: Val) -> Value {
    Value { val: Some(v) }
}

fn key(name: &str, v: Val) -> Vec<u8> {
    serialize_entity_key(&EntityKey {
        join_keys: vec![name.into()],
        entity_values: vec![val(v)],
    })
    .unwrap()
}

async fn read(source: SourceSpec, spec: ReadSpec) -> Result<Vec<EntityRow>, OfflineError> {
    let mut rx = read_latest(source, spec);
    let mut rows = Vec::new();
    while let Some(item) = rx.recv().await {
        rows.extend(item?.rows);
    }
    Ok(rows)
}

fn by_key(rows: Vec<EntityRow>) -> HashMap<Vec<u8>, EntityRow> {
    let mut m = HashMap::new();
    for r in rows {
        let k = r.entity_key.clone();
        assert!(m.insert(k.clone(), r).is_none(), "key {k:?} twice");
    }
    m
}

const DRIVER_TABLE: &[&str] = &[
    "CREATE TABLE driver_stats (
        driver_id BIGINT,
        event_timestamp TIMESTAMPTZ,
        created TIMESTAMPTZ,
        conv_rate REAL,
        trips INTEGER,
        rating DOUBLE PRECISION,
        city TEXT,
        premium BOOLEAN,
        tags BIGINT[],
        weights REAL[],
        doc JSONB,
        price NUMERIC,
        small SMALLINT,
        trips_src INTEGER
    )",
    // driver 1: latest in window at hour 5 (hour 9 is outside [0, 8)).
    "INSERT INTO driver_stats VALUES
        (1, '2024-01-01T01:00Z', '2024-01-01T01:00Z', 0.1, 10, 4.5, 'Paris', true, '{1,2}', '{0.5}', '{\"a\": 1}', 1.50, 3, 100),
        (1, '2024-01-01T05:00Z', '2024-01-01T05:10Z', 0.5, 50, NULL, 'Berlin', false, '{}', NULL, NULL, NULL, NULL, 500),
        (1, '2024-01-01T09:00Z', '2024-01-01T09:00Z', 0.9, 90, 1.0, 'Rome', true, NULL, NULL, NULL, NULL, NULL, 900)",
    // driver 2: tie on event time, created decides (NULL created loses).
    "INSERT INTO driver_stats VALUES
        (2, '2024-01-01T03:00Z', '2024-01-01T03:30Z', 0.2, 21, 2.0, 'Lisbon', false, '{7}', '{1,2}', '[]', 2.25, 1, 210),
        (2, '2024-01-01T03:00Z', '2024-01-01T03:50Z', 0.3, 22, 3.0, 'Madrid', true, '{8}', '{3}', '[1]', 3.75, 2, 220),
        (2, '2024-01-01T03:00Z', NULL, 0.4, 23, 4.0, 'Warsaw', true, '{9}', '{4}', '{}', 4, 3, 230)",
    // driver 3: only outside the window; a NULL key row inside it.
    "INSERT INTO driver_stats VALUES
        (3, '2024-01-01T08:00Z', '2024-01-01T08:00Z', 0.3, 30, 3.0, 'Oslo', true, NULL, NULL, NULL, NULL, NULL, 300),
        (NULL, '2024-01-01T02:00Z', NULL, 0.0, 0, 0.0, 'None', false, NULL, NULL, NULL, NULL, NULL, 0)",
];

#[tokio::test]
async fn table_source_distinct_on_ties_window_and_types() {
    let db = TestDb::new(DRIVER_TABLE).await;
    let spec = ReadSpec::new(
        vec![("driver_id".into(), ft("Int64"))],
        vec![
            ("conv_rate".into(), ft("Float32")),
            ("trips".into(), ft("Int32")),
            ("rating".into(), ft("Float64")),
            ("city".into(), ft("String")),
            ("premium".into(), ft("Bool")),
            ("tags".into(), ft("Array(Int64)")),
            ("weights".into(), ft("Array(Float32)")),
            ("doc".into(), ft("Json")),
            ("price".into(), ft("Decimal")),
            ("small".into(), ft("Int64")),
            ("created".into(), ft("UnixTimestamp")),
        ],
        BASE_NS,
        BASE_NS + 8 * HOUR_NS,
    );
    let got = by_key(read(db.source(Some("driver_stats"), None), spec).await.unwrap());
    assert_eq!(got.len(), 2, "driver 3 is outside the window, the NULL key is skipped");

    let d1 = &got[&key("driver_id", Val::Int64Val(1))];
    assert_eq!(d1.event_ts, BASE_NS + 5 * HOUR_NS);
    assert_eq!(d1.created_ts, Some(BASE_NS + 5 * HOUR_NS + 600_000_000_000));
    assert_eq!(
        d1.values,
        vec![
            val(Val::FloatVal(0.5)),
            val(Val::Int32Val(50)),
            Value::default(),
            val(Val::StringVal("Berlin".into())),
            val(Val::BoolVal(false)),
            val(Val::Int64ListVal(Int64List { val: vec![] })),
            Value::default(),
            Value::default(),
            Value::default(),
            Value::default(),
            val(Val::UnixTimestampVal(BASE_NS / 1_000_000_000 + 5 * 3600 + 600)),
        ]
    );
    let d2 = &got[&key("driver_id", Val::Int64Val(2))];
    assert_eq!(d2.created_ts, Some(BASE_NS + 3 * HOUR_NS + 50 * 60 * 1_000_000_000));
    assert_eq!(d2.values[0], val(Val::FloatVal(0.3)));
    assert_eq!(d2.values[3], val(Val::StringVal("Madrid".into())));
    assert_eq!(d2.values[5], val(Val::Int64ListVal(Int64List { val: vec![8] })));
    assert_eq!(d2.values[6], val(Val::FloatListVal(FloatList { val: vec![3.0] })));
    assert_eq!(d2.values[7], val(Val::JsonVal("[1]".into())));
    assert_eq!(d2.values[8], val(Val::DecimalVal("3.75".into())));
    assert_eq!(d2.values[9], val(Val::Int64Val(2)));
}

#[tokio::test]
async fn field_mapping_query_source_and_small_batches() {
    let db = TestDb::new(DRIVER_TABLE).await;
    let mut src = db.source(None, Some("SELECT driver_id AS id, event_timestamp AS ts, created, trips_src, city FROM driver_stats WHERE city <> 'Madrid'"));
    src.timestamp_field = "event_ts".into();
    src.field_mapping = BTreeMap::from([
        ("trips_src".to_string(), "trips".to_string()),
        ("id".to_string(), "driver".to_string()),
        ("ts".to_string(), "event_ts".to_string()),
    ]);
    let mut spec = ReadSpec::new(
        vec![("driver".into(), ft("Int64"))],
        vec![("trips".into(), ft("Int64")), ("city".into(), ft("String"))],
        BASE_NS,
        BASE_NS + 24 * HOUR_NS,
    );
    spec.batch_rows = 1;
    let mut rx = read_latest(src, spec);
    let mut rows = Vec::new();
    while let Some(b) = rx.recv().await {
        let b = b.unwrap();
        assert_eq!(b.rows.len(), 1);
        assert_eq!(&*b.features, &["trips".to_string(), "city".to_string()]);
        rows.extend(b.rows);
    }
    let got = by_key(rows);
    assert_eq!(got.len(), 3);
    assert_eq!(got[&key("driver", Val::Int64Val(1))].values[0], val(Val::Int64Val(900)));
    // Madrid filtered out by the query: the 03:30 row wins over the NULL-created one.
    assert_eq!(
        got[&key("driver", Val::Int64Val(2))].values[1],
        val(Val::StringVal("Lisbon".into()))
    );
    assert_eq!(got[&key("driver", Val::Int64Val(3))].values[0], val(Val::Int64Val(300)));
}

#[tokio::test]
async fn string_keys_timestamp_without_zone_and_schema_qualified_table() {
    let db = TestDb::new(&[
        "CREATE SCHEMA feats",
        "CREATE TABLE feats.\"Users\" (user_id VARCHAR(20), region TEXT, ts TIMESTAMP, score FLOAT8, names TEXT[])",
        "INSERT INTO feats.\"Users\" VALUES
            ('u1', 'eu', '2024-01-01 00:00:00', 1.0, '{a,b}'),
            ('u1', 'eu', '2024-01-01 00:59:59.999999', 2.0, '{c}'),
            ('u1', 'us', '2024-01-01 00:30:00', 3.0, NULL),
            ('u2', 'eu', '2024-01-01 01:00:00', 4.0, '{}')",
    ])
    .await;
    let mut src = db.source(Some("feats.Users"), None);
    src.timestamp_field = "ts".into();
    src.created_timestamp_column = None;
    let spec = ReadSpec::new(
        vec![("user_id".into(), ft("String")), ("region".into(), ft("String"))],
        vec![("score".into(), ft("Float64")), ("names".into(), ft("Array(String)"))],
        BASE_NS,
        BASE_NS + HOUR_NS, // u2's row at exactly the end is excluded
    );
    let got = by_key(read(src, spec).await.unwrap());
    assert_eq!(got.len(), 2);
    let k = |u: &str, r: &str| {
        serialize_entity_key(&EntityKey {
            join_keys: vec!["user_id".into(), "region".into()],
            entity_values: vec![val(Val::StringVal(u.into())), val(Val::StringVal(r.into()))],
        })
        .unwrap()
    };
    let eu = &got[&k("u1", "eu")];
    assert_eq!(eu.event_ts, BASE_NS + HOUR_NS - 1_000);
    assert_eq!(eu.created_ts, None);
    assert_eq!(
        eu.values,
        vec![
            val(Val::DoubleVal(2.0)),
            val(Val::StringListVal(StringList { val: vec!["c".into()] }))
        ]
    );
    assert_eq!(got[&k("u1", "us")].values[1], Value::default());
}

#[tokio::test]
async fn errors_name_the_column_and_the_source() {
    let db = TestDb::new(DRIVER_TABLE).await;
    let spec = |features: Vec<(&str, &str)>| {
        ReadSpec::new(
            vec![("driver_id".into(), ft("Int64"))],
            features.into_iter().map(|(n, t)| (n.to_string(), ft(t))).collect(),
            BASE_NS,
            BASE_NS + 8 * HOUR_NS,
        )
    };
    // Wrong type.
    let err = read(db.source(Some("driver_stats"), None), spec(vec![("city", "Float32")]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::WrongType { .. }), "{msg}");
    assert!(
        msg.contains("\"city\"") && msg.contains("driver_stats") && msg.contains("TEXT") && msg.contains("Float32"),
        "{msg}"
    );
    // Missing column.
    let err = read(db.source(Some("driver_stats"), None), spec(vec![("nope", "Float32")]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::Postgres { .. }), "{msg}");
    assert!(msg.contains("nope") && msg.contains("driver_stats"), "{msg}");
    // Missing table.
    let err = read(db.source(Some("missing_table"), None), spec(vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing_table"), "{err}");
    // Int32 overflow is a value error naming the column.
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute("INSERT INTO driver_stats (driver_id, event_timestamp, trips_src) VALUES (4, '2024-01-01T02:00Z', 1)")
        .await
        .unwrap();
    conn.execute("ALTER TABLE driver_stats ADD COLUMN big BIGINT")
        .await
        .unwrap();
    conn.execute("UPDATE driver_stats SET big = 5000000000 WHERE driver_id = 4")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = read(db.source(Some("driver_stats"), None), spec(vec![("big", "Int32")]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, OfflineError::BadValue { .. }) && msg.contains("\"big\"") && msg.contains("5000000000"),
        "{msg}"
    );
    // Identifiers with a double quote are refused before reaching SQL.
    let err = read(db.source(Some("driver_stats"), None), spec(vec![("a\"b", "Float32")]))
        .await
        .unwrap_err();
    assert!(matches!(err, OfflineError::InvalidSpec { .. }), "{err}");
    // A bad connection URL does not leak the URL.
    let mut src = db.source(Some("driver_stats"), None);
    src.location = SourceLocation::Postgres {
        url: "postgres://root:secret@127.0.0.1:1/x".into(),
        table: Some("driver_stats".into()),
        query: None,
    };
    let err = read(src, spec(vec![])).await.unwrap_err();
    assert!(
        matches!(err, OfflineError::Postgres { .. }) && !err.to_string().contains("secret"),
        "{err}"
    );
}

#[tokio::test]
async fn from_feast_postgres_source_reads() {
    use larder_protos::feast::core::DataSource;
    use larder_protos::feast::core::data_source::{CustomSourceOptions, Options};
    let db = TestDb::new(DRIVER_TABLE).await;
    let ds = DataSource {
        name: "pg".into(),
        r#type: 6,
        data_source_class_type: larder_offline::POSTGRES_SOURCE_CLASS.into(),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: "created".into(),
        options: Some(Options::CustomOptions(CustomSourceOptions {
            configuration: br#"{"name": "pg", "query": "", "table": "driver_stats"}"#.to_vec(),
        })),
        ..Default::default()
    };
    let src = SourceSpec::from_feast(&ds, Some(&db.url)).unwrap();
    let spec = ReadSpec::new(
        vec![("driver_id".into(), ft("Int64"))],
        vec![("conv_rate".into(), ft("Float32"))],
        BASE_NS,
        BASE_NS + 24 * HOUR_NS,
    );
    let got = by_key(read(src, spec).await.unwrap());
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[&key("driver_id", Val::Int64Val(2))].values[0],
        val(Val::FloatVal(0.3))
    );
}
