//! Appending rows to offline sources (`larder_offline::write`): Parquet
//! directories and single files read back through the materialization
//! reader (`read_latest`) and the point-in-time engine
//! (`get_historical_features`), the field mapping, schema checks, and
//! PostgreSQL tables (one transaction: a failing row inserts nothing).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use larder_model::types::FeatureType;
use larder_offline::historical::{HistoricalJoinKey, HistoricalRequest, HistoricalView, get_historical_features};
use larder_offline::write::{timestamps_to_array, values_to_array};
use larder_offline::{OfflineError, ReadSpec, SourceLocation, SourceSpec, check_batch, read_latest, write_batch};
use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;
use larder_testkit::PgDatabase;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sqlx::{Connection, Executor, PgConnection};

/// 2024-01-01T00:00:00Z.
const BASE_NS: i64 = 1_704_067_200_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;

fn utc_us() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// An existing source file as pandas would write it: `driver_id`,
/// `event_timestamp`, `created` (µs, UTC), `conv_rate` (float32), the
/// feature `trips` stored as column `trips_src` (int32), `city`.
fn write_existing(path: &Path, ids: &[i64], hour: i64, rate: f32) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new("event_timestamp", utc_us(), true),
        Field::new("created", utc_us(), true),
        Field::new("conv_rate", DataType::Float32, true),
        Field::new("trips_src", DataType::Int32, true),
        Field::new("city", DataType::Utf8, true),
    ]));
    let n = ids.len();
    let ts = (BASE_NS + hour * HOUR_NS) / 1_000;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(TimestampMicrosecondArray::from(vec![ts; n]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![ts; n]).with_timezone("UTC")),
        Arc::new(Float32Array::from(vec![rate; n])),
        Arc::new(Int32Array::from(vec![1; n])),
        Arc::new(StringArray::from(vec!["Oslo"; n])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn source(path: &Path) -> SourceSpec {
    SourceSpec {
        name: "driver_stats_source".into(),
        location: SourceLocation::Parquet(path.to_path_buf()),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: BTreeMap::from([("trips_src".to_string(), "trips".to_string())]),
    }
}

fn v(val: Val) -> Value {
    Value { val: Some(val) }
}

/// Pushed rows with Feast names, as the feature server builds them: a
/// float64 rate (cast to the file's float32), `trips` (mapped to `trips_src`).
fn pushed(ids: &[i64], hour: i64, rate: f64, trips: i64) -> RecordBatch {
    let n = ids.len();
    let ts = BASE_NS + hour * HOUR_NS;
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "driver_id",
            values_to_array(
                FeatureType::INT64,
                &ids.iter().map(|i| v(Val::Int64Val(*i))).collect::<Vec<_>>(),
            )
            .unwrap(),
        ),
        ("event_timestamp", timestamps_to_array(&vec![Some(ts); n])),
        ("created", timestamps_to_array(&vec![Some(ts + 1); n])),
        ("conv_rate", Arc::new(Float64Array::from(vec![rate; n]))),
        ("trips", Arc::new(Int64Array::from(vec![trips; n]))),
        (
            "city",
            values_to_array(FeatureType::STRING, &vec![v(Val::StringVal("Rome".into())); n]).unwrap(),
        ),
    ];
    let schema = Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, a)| a).collect()).unwrap()
}

/// Latest `conv_rate` and `trips` per driver through the materialization reader.
async fn latest(src: &SourceSpec) -> BTreeMap<i64, (Option<f32>, Option<i32>, i64)> {
    let spec = ReadSpec::new(
        vec![("driver_id".into(), FeatureType::INT64)],
        vec![
            ("conv_rate".into(), FeatureType::FLOAT),
            ("trips".into(), FeatureType::INT32),
        ],
        BASE_NS - 100 * HOUR_NS,
        BASE_NS + 100 * HOUR_NS,
    );
    let mut rx = read_latest(src.clone(), spec);
    let mut out = BTreeMap::new();
    while let Some(b) = rx.recv().await {
        for row in b.unwrap().rows {
            // The key is the serialized entity key; its last 8 bytes are the int64.
            let k = i64::from_le_bytes(row.entity_key[row.entity_key.len() - 8..].try_into().unwrap());
            let rate = match row.values[0].val {
                Some(Val::FloatVal(f)) => Some(f),
                _ => None,
            };
            let trips = match row.values[1].val {
                Some(Val::Int32Val(t)) => Some(t),
                _ => None,
            };
            out.insert(k, (rate, trips, row.event_ts));
        }
    }
    out
}

/// `conv_rate` and `trips` per entity row through the historical engine.
fn historical(src: &SourceSpec, ids: &[i64], hour: i64) -> Vec<(Option<f64>, Option<i64>)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new("event_timestamp", utc_us(), true),
    ]));
    let ts = (BASE_NS + hour * HOUR_NS) / 1_000;
    let entities = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(vec![ts; ids.len()]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    let req = HistoricalRequest {
        views: vec![HistoricalView {
            name: "driver_hourly_stats".into(),
            shown_as: "driver_hourly_stats".into(),
            source: src.clone(),
            join_keys: vec![HistoricalJoinKey {
                name: "driver_id".into(),
                column: "driver_id".into(),
                value_type: FeatureType::INT64,
            }],
            features: vec![
                ("conv_rate".into(), FeatureType::FLOAT),
                ("trips".into(), FeatureType::INT32),
            ],
            ttl_ns: 0,
        }],
        full_feature_names: false,
    };
    let res = get_historical_features(&entities, &req, &mut |_| {}).unwrap();
    let b = res.batch;
    let rate = arrow::compute::cast(b.column_by_name("conv_rate").unwrap(), &DataType::Float64).unwrap();
    let trips = arrow::compute::cast(b.column_by_name("trips").unwrap(), &DataType::Int64).unwrap();
    let (rate, trips) = (
        rate.as_primitive::<Float64Type>(),
        trips.as_primitive::<arrow::datatypes::Int64Type>(),
    );
    (0..b.num_rows())
        .map(|i| {
            (
                rate.is_valid(i).then(|| rate.value(i)),
                trips.is_valid(i).then(|| trips.value(i)),
            )
        })
        .collect()
}

fn visible_parquet(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            !n.starts_with('.') && n.ends_with(".parquet")
        })
        .collect();
    v.sort();
    v
}

fn file_schema(path: &Path) -> Arc<Schema> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .schema()
        .clone()
}

#[tokio::test]
async fn directory_source_gets_a_new_file_per_push() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stats");
    std::fs::create_dir(&root).unwrap();
    write_existing(&root.join("base.parquet"), &[1, 2], 0, 0.25);
    let src = source(&root);

    let out = write_batch(&src, pushed(&[2, 3], 5, 0.75, 7)).await.unwrap();
    assert_eq!(out.rows, 2);
    let part = out.path.unwrap();
    let name = part.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("part-") && name.ends_with(".parquet"), "{name}");
    assert_eq!(part.parent(), Some(root.as_path()));
    // Nothing but the two files: no temporary file left behind.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    // The existing file's schema: same columns, order and types (float32,
    // int32, µs timestamps), the mapped column under its source name.
    let base = file_schema(&root.join("base.parquet"));
    let new = file_schema(&part);
    let fields = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&new), fields(&base));

    // A second push: another file.
    write_batch(&src, pushed(&[4], 6, 0.5, 9)).await.unwrap();
    assert_eq!(visible_parquet(&root).len(), 3);

    let got = latest(&src).await;
    assert_eq!(got[&1], (Some(0.25), Some(1), BASE_NS));
    assert_eq!(
        got[&2],
        (Some(0.75), Some(7), BASE_NS + 5 * HOUR_NS),
        "the pushed row is newer"
    );
    assert_eq!(got[&3], (Some(0.75), Some(7), BASE_NS + 5 * HOUR_NS));
    assert_eq!(got[&4], (Some(0.5), Some(9), BASE_NS + 6 * HOUR_NS));

    // Point in time: before the push the old values, after it the pushed ones.
    assert_eq!(
        historical(&src, &[2, 3, 4], 1),
        vec![(Some(0.25), Some(1)), (None, None), (None, None)]
    );
    assert_eq!(
        historical(&src, &[2, 3, 4], 7),
        vec![(Some(0.75), Some(7)), (Some(0.75), Some(7)), (Some(0.5), Some(9))]
    );
}

#[tokio::test]
async fn empty_or_missing_directory_takes_the_batch_types() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new_source");
    let src = source(&root);
    check_batch(&src, &pushed(&[1], 0, 0.5, 3)).unwrap();
    let out = write_batch(&src, pushed(&[1], 0, 0.5, 3)).await.unwrap();
    assert!(root.is_dir(), "a path without .parquet is created as a directory");
    let schema = file_schema(out.path.as_ref().unwrap());
    assert_eq!(
        schema.field_with_name("trips_src").unwrap().data_type(),
        &DataType::Int64
    );
    assert!(
        schema.field_with_name("trips").is_err(),
        "written under the source's column name"
    );
    // The reader converts the batch's types to the declared ones.
    let got = latest(&src).await;
    assert_eq!(got[&1], (Some(0.5), Some(3), BASE_NS));
    // An empty batch writes nothing.
    let out = write_batch(&src, pushed(&[], 0, 0.5, 3)).await.unwrap();
    assert_eq!((out.rows, out.path), (0, None));
    assert_eq!(visible_parquet(&root).len(), 1);
}

#[tokio::test]
async fn single_file_source_is_rewritten_with_old_and_new_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driver_stats.parquet");
    write_existing(&path, &[1, 2], 0, 0.25);
    let src = source(&path);
    let out = write_batch(&src, pushed(&[2, 3], 5, 0.75, 7)).await.unwrap();
    assert_eq!(
        out,
        larder_offline::WriteOutcome {
            rows: 2,
            path: Some(path.clone())
        }
    );
    // Only the file itself in the directory: the temporary file was renamed over it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["driver_stats.parquet"]);
    let rows: usize = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 4, "old rows then new rows");
    assert_eq!(
        file_schema(&path).field_with_name("conv_rate").unwrap().data_type(),
        &DataType::Float32
    );

    let got = latest(&src).await;
    assert_eq!(got[&1], (Some(0.25), Some(1), BASE_NS));
    assert_eq!(got[&2], (Some(0.75), Some(7), BASE_NS + 5 * HOUR_NS));
    assert_eq!(got[&3], (Some(0.75), Some(7), BASE_NS + 5 * HOUR_NS));
    assert_eq!(
        historical(&src, &[1, 2, 3], 6),
        vec![(Some(0.25), Some(1)), (Some(0.75), Some(7)), (Some(0.75), Some(7))]
    );
}

#[tokio::test]
async fn concurrent_pushes_to_one_file_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("driver_stats.parquet");
    write_existing(&path, &[0], 0, 0.25);
    let src = source(&path);
    let mut tasks = Vec::new();
    for i in 1..=16i64 {
        let src = src.clone();
        tasks.push(tokio::spawn(
            async move { write_batch(&src, pushed(&[i], i, 0.5, i)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = latest(&src).await;
    assert_eq!(got.len(), 17, "{got:?}");
    for i in 1..=16i64 {
        assert_eq!(got[&i].1, Some(i as i32));
    }
}

#[tokio::test]
async fn rows_that_do_not_fit_the_file_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stats");
    std::fs::create_dir(&root).unwrap();
    write_existing(&root.join("base.parquet"), &[1], 0, 0.25);
    let single = dir.path().join("one.parquet");
    write_existing(&single, &[1], 0, 0.25);
    let before = std::fs::read(&single).unwrap();

    let good = pushed(&[2], 1, 0.5, 3);
    let replace = |name: &str, a: ArrayRef| {
        let i = good.schema().index_of(name).unwrap();
        let mut cols = good.columns().to_vec();
        cols[i] = a.clone();
        let mut fields: Vec<Field> = good.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = Field::new(name, a.data_type().clone(), true);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    let wrong_type = replace("city", Arc::new(Int64Array::from(vec![5])));
    let overflow = replace("trips", Arc::new(Int64Array::from(vec![1i64 << 40])));
    let truncating = replace("trips", Arc::new(Float64Array::from(vec![1.5])));
    let missing = good.project(&[0, 1, 2, 3, 4]).unwrap(); // no `city`
    let extra = {
        let mut fields: Vec<Field> = good.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("surprise", DataType::Int64, true));
        let mut cols = good.columns().to_vec();
        cols.push(Arc::new(Int64Array::from(vec![1])));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    for path in [&root, &single] {
        let src = source(path);
        let e = write_batch(&src, wrong_type.clone()).await.unwrap_err();
        assert!(
            matches!(&e, OfflineError::WrongType { column, .. } if column == "city"),
            "{e}"
        );
        assert!(e.to_string().contains("Utf8"), "{e}");
        let e = write_batch(&src, overflow.clone()).await.unwrap_err();
        assert!(
            matches!(&e, OfflineError::BadValue { column, row: 0, .. } if column == "trips_src"),
            "{e}"
        );
        let e = write_batch(&src, truncating.clone()).await.unwrap_err();
        assert!(
            matches!(&e, OfflineError::WrongType { .. }),
            "no silent truncation: {e}"
        );
        let e = write_batch(&src, missing.clone()).await.unwrap_err();
        assert!(
            matches!(&e, OfflineError::MissingColumn { column, .. } if column == "city"),
            "{e}"
        );
        let e = write_batch(&src, extra.clone()).await.unwrap_err();
        assert!(
            matches!(&e, OfflineError::MissingColumn { column, .. } if column == "surprise"),
            "{e}"
        );
        // check_batch refuses the same without writing.
        assert!(check_batch(&src, &wrong_type).is_err());
        assert!(check_batch(&src, &good).is_ok());
    }
    assert_eq!(visible_parquet(&root), [root.join("base.parquet")]);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1, "no temporary file left");
    assert_eq!(std::fs::read(&single).unwrap(), before, "the single file is untouched");
}

async fn pg_table(db: &PgDatabase, ddl: &str) {
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(ddl.to_string())).await.unwrap();
}

fn pg_source(db: &PgDatabase, table: Option<&str>, query: Option<&str>) -> SourceSpec {
    SourceSpec {
        name: "pg_stats".into(),
        location: SourceLocation::Postgres {
            url: db.url().to_string(),
            table: table.map(str::to_string),
            query: query.map(str::to_string),
        },
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: BTreeMap::from([("trips_src".to_string(), "trips".to_string())]),
    }
}

#[tokio::test]
async fn postgres_table_append_is_one_transaction() {
    let db = PgDatabase::create("larder_push").await;
    pg_table(
        &db,
        "CREATE TABLE stats (driver_id BIGINT NOT NULL, event_timestamp TIMESTAMPTZ NOT NULL, \
         created TIMESTAMPTZ, conv_rate REAL, trips_src INTEGER CHECK (trips_src >= 0), city TEXT, note TEXT DEFAULT 'x')",
    )
    .await;
    let src = pg_source(&db, Some("public.stats"), None);
    check_batch(&src, &pushed(&[1], 0, 0.5, 1)).unwrap();
    let out = write_batch(&src, pushed(&[1, 2], 3, 0.5, 4)).await.unwrap();
    assert_eq!((out.rows, out.path), (2, None));

    let got = latest(&src).await;
    assert_eq!(got[&1], (Some(0.5), Some(4), BASE_NS + 3 * HOUR_NS));
    assert_eq!(got[&2], (Some(0.5), Some(4), BASE_NS + 3 * HOUR_NS));

    // 30,000 rows × 6 columns need more than one INSERT (65,535 parameters
    // each); the last row breaks the CHECK: nothing of the push is stored.
    let n = 30_000;
    let ids: Vec<i64> = (100..100 + n).collect();
    let mut bad = pushed(&ids, 4, 0.25, 1);
    let i = bad.schema().index_of("trips").unwrap();
    let mut trips = vec![1i64; n as usize];
    trips[n as usize - 1] = -1;
    let mut cols = bad.columns().to_vec();
    cols[i] = Arc::new(Int64Array::from(trips));
    bad = RecordBatch::try_new(bad.schema(), cols).unwrap();
    let e = write_batch(&src, bad).await.unwrap_err();
    assert!(
        matches!(&e, OfflineError::Postgres { message, .. } if message.contains("check")),
        "{e}"
    );
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM stats")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2, "the failed push inserted nothing");
    let note: String = sqlx::query_scalar("SELECT note FROM stats LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(note, "x", "columns the rows lack get their defaults");

    // A value that does not fit the column's type, an unknown column, a query source.
    let e = write_batch(&src, pushed(&[1], 0, 0.5, 1i64 << 40)).await.unwrap_err();
    assert!(
        matches!(&e, OfflineError::BadValue { column, .. } if column == "trips_src"),
        "{e}"
    );
    let mut extra = pushed(&[1], 0, 0.5, 1);
    let mut fields: Vec<Field> = extra.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("surprise", DataType::Int64, true));
    let mut cols = extra.columns().to_vec();
    cols.push(Arc::new(Int64Array::from(vec![1])));
    extra = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let e = write_batch(&src, extra).await.unwrap_err();
    assert!(e.to_string().contains("surprise"), "{e}");
    let q = pg_source(&db, None, Some("SELECT * FROM stats"));
    let e = write_batch(&q, pushed(&[1], 0, 0.5, 1)).await.unwrap_err();
    assert!(matches!(&e, OfflineError::UnsupportedSource { .. }), "{e}");
    assert!(check_batch(&q, &pushed(&[1], 0, 0.5, 1)).is_err());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM stats")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
}
