//! Parquet sources: latest-per-key against a brute-force computation, errors,
//! pruning, key bytes, the bundled example.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use larder_model::entity_key::serialize_entity_key;
use larder_model::rows::EntityRow;
use larder_model::types::FeatureType;
use larder_offline::{
    OfflineError, ReadSpec, ReadStats, SourceLocation, SourceSpec, read_latest, read_parquet_blocking,
};
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Int64List, Value};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const US_PER_HOUR: i64 = 3_600_000_000;
/// 2024-01-01T00:00:00Z in microseconds.
const BASE_US: i64 = 1_704_067_200_000_000;

fn ft(s: &str) -> FeatureType {
    FeatureType::parse(s).unwrap()
}

fn hour_ns(h: i64) -> i64 {
    (BASE_US + h * US_PER_HOUR) * 1_000
}

fn int64_key(name: &str, v: i64) -> Vec<u8> {
    serialize_entity_key(&EntityKey {
        join_keys: vec![name.to_string()],
        entity_values: vec![Value {
            val: Some(Val::Int64Val(v)),
        }],
    })
    .unwrap()
}

fn val(v: Val) -> Value {
    Value { val: Some(v) }
}

/// A small deterministic generator.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One row of the synthetic source.
#[derive(Debug, Clone)]
struct TRow {
    id: Option<i64>,
    ts_us: i64,
    created_us: Option<i64>,
    rate: Option<f32>,
    score: Option<f64>,
    name: Option<String>,
    tags: Option<Vec<i64>>,
    /// Stored in column `trips_src`, mapped to feature `trips`.
    trips: Option<i32>,
}

fn gen_rows(seed: u64, n: usize, keys: u64) -> Vec<TRow> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|i| {
            let id = if r.below(100) == 0 {
                None
            } else {
                Some(1000 + r.below(keys) as i64)
            };
            let hour = r.below(48) as i64;
            TRow {
                id,
                ts_us: BASE_US + hour * US_PER_HOUR,
                created_us: if r.below(5) == 0 {
                    None
                } else {
                    Some(BASE_US + hour * US_PER_HOUR + r.below(4) as i64 * 1_000_000)
                },
                rate: if r.below(10) == 0 {
                    None
                } else {
                    Some(r.below(1000) as f32 / 1000.0)
                },
                score: if r.below(10) == 0 { None } else { Some(i as f64 * 0.5) },
                name: if r.below(10) == 0 {
                    None
                } else {
                    Some(format!("n{}", r.below(50)))
                },
                tags: if r.below(10) == 0 {
                    None
                } else {
                    Some((0..r.below(4) as i64).map(|x| x * 7 + i as i64).collect())
                },
                trips: if r.below(10) == 0 {
                    None
                } else {
                    Some(r.below(100) as i32)
                },
            }
        })
        .collect()
}

fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new("event_timestamp", ts.clone(), true),
        Field::new("created", ts, true),
        Field::new("rate", DataType::Float32, true),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            true,
        ),
        Field::new("trips_src", DataType::Int32, true),
        Field::new("unused", DataType::Utf8, true),
    ]))
}

fn to_batch(rows: &[TRow]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.iter().map(|r| r.id).collect::<Vec<_>>())),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| Some(r.ts_us)).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.created_us).collect::<Vec<_>>()).with_timezone("UTC"),
        ),
        Arc::new(Float32Array::from(rows.iter().map(|r| r.rate).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.score).collect::<Vec<_>>())),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(rows.iter().map(
            |r| r.tags.as_ref().map(|t| t.iter().map(|x| Some(*x)).collect::<Vec<_>>()),
        ))),
        Arc::new(Int32Array::from(rows.iter().map(|r| r.trips).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|_| Some("x")).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

fn write_batch(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn write_rows(path: &Path, rows: &[TRow], row_group_rows: usize) {
    write_batch(path, &to_batch(rows), row_group_rows);
}

fn source(path: &Path) -> SourceSpec {
    SourceSpec {
        name: "test_source".into(),
        location: SourceLocation::Parquet(path.to_path_buf()),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: BTreeMap::from([("trips_src".to_string(), "trips".to_string())]),
    }
}

fn spec(start_h: i64, end_h: i64) -> ReadSpec {
    ReadSpec {
        join_keys: vec![("driver_id".into(), ft("Int64"))],
        features: vec![
            ("rate".into(), ft("Float32")),
            ("score".into(), ft("Float64")),
            ("name".into(), ft("String")),
            ("tags".into(), ft("Array(Int64)")),
            ("trips".into(), ft("Int32")),
        ],
        start_ns: hour_ns(start_h),
        end_ns: hour_ns(end_h),
        batch_rows: 37,
        dedup_capacity: 100_000,
    }
}

fn expected_values(r: &TRow) -> Vec<Value> {
    let opt = |v: Option<Val>| v.map(val).unwrap_or_default();
    vec![
        opt(r.rate.map(Val::FloatVal)),
        opt(r.score.map(Val::DoubleVal)),
        opt(r.name.clone().map(Val::StringVal)),
        opt(r.tags.clone().map(|t| Val::Int64ListVal(Int64List { val: t }))),
        opt(r.trips.map(Val::Int32Val)),
    ]
}

/// Latest row per key in [start, end): larger event time, then larger created
/// time (None oldest); on a full tie the row read first stays.
fn brute_force(rows: &[TRow], start_h: i64, end_h: i64) -> HashMap<Vec<u8>, EntityRow> {
    let (start, end) = (hour_ns(start_h), hour_ns(end_h));
    let mut best: HashMap<Vec<u8>, EntityRow> = HashMap::new();
    for r in rows {
        let Some(id) = r.id else { continue };
        let ts = r.ts_us * 1000;
        if ts < start || ts >= end {
            continue;
        }
        let row = EntityRow {
            entity_key: int64_key("driver_id", id),
            event_ts: ts,
            created_ts: r.created_us.map(|c| c * 1000),
            values: expected_values(r),
        };
        match best.get(&row.entity_key) {
            Some(old) if !row.is_newer_than(old) => {}
            _ => {
                best.insert(row.entity_key.clone(), row);
            }
        }
    }
    best
}

fn read_all(source: &SourceSpec, spec: &ReadSpec) -> Result<(Vec<EntityRow>, ReadStats), OfflineError> {
    let mut rows = Vec::new();
    let stats = read_parquet_blocking(source, spec, &mut |b| {
        assert!(b.rows.len() <= spec.batch_rows, "batch larger than batch_rows");
        assert_eq!(b.features.len(), spec.features.len());
        rows.extend(b.rows);
        true
    })?;
    Ok((rows, stats))
}

fn assert_same(got: Vec<EntityRow>, want: &HashMap<Vec<u8>, EntityRow>) {
    let mut by_key: HashMap<Vec<u8>, EntityRow> = HashMap::new();
    for r in got {
        let k = r.entity_key.clone();
        assert!(by_key.insert(k.clone(), r).is_none(), "key {k:?} emitted twice");
    }
    assert_eq!(by_key.len(), want.len(), "number of keys");
    for (k, w) in want {
        let g = by_key.get(k).unwrap_or_else(|| panic!("key {k:?} missing"));
        assert_eq!(g, w, "row of key {k:?}");
    }
}

/// Rows spread over three files (one in a subdirectory) plus files the
/// reader must ignore; several row groups per file.
fn write_dir(dir: &Path, rows: &[TRow]) {
    let third = rows.len() / 3;
    // Path order is a, c, sub/b: write the chunks so that file order = row order.
    write_rows(&dir.join("a.parquet"), &rows[..third], 50);
    write_rows(&dir.join("c.parquet"), &rows[third..2 * third], 64);
    write_rows(&dir.join("sub/b.parquet"), &rows[2 * third..], 100);
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.join(".hidden.parquet"), b"not parquet").unwrap();
    std::fs::write(dir.join("notes.txt"), b"not parquet").unwrap();
}

#[test]
fn latest_per_key_matches_brute_force_over_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = gen_rows(7, 3000, 200);
    write_dir(tmp.path(), &rows);
    let (got, stats) = read_all(&source(tmp.path()), &spec(10, 40)).unwrap();
    let want = brute_force(&rows, 10, 40);
    assert!(want.len() > 150, "the test data should cover most keys");
    assert_eq!(stats.files, 3);
    assert!(stats.null_key_rows > 0, "some null keys in the window are skipped");
    assert!(stats.row_groups_total > 30);
    assert_same(got, &want);
}

#[test]
fn created_timestamp_breaks_ties() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ties.parquet");
    let mk = |id, created: Option<i64>, trips| TRow {
        id: Some(id),
        ts_us: BASE_US + 5 * US_PER_HOUR,
        created_us: created.map(|c| BASE_US + c),
        rate: None,
        score: None,
        name: None,
        tags: None,
        trips: Some(trips),
    };
    let rows = vec![
        mk(1, Some(10), 1),
        mk(1, Some(30), 2), // wins for key 1
        mk(1, Some(20), 3),
        mk(2, None, 4),
        mk(2, Some(0), 5), // a created time beats none
        mk(3, Some(7), 6), // full tie with the next one: the first stays
        mk(3, Some(7), 7),
    ];
    write_rows(&path, &rows, 2);
    let (got, _) = read_all(&source(&path), &spec(0, 48)).unwrap();
    let trips: HashMap<Vec<u8>, Value> = got.into_iter().map(|r| (r.entity_key, r.values[4].clone())).collect();
    assert_eq!(trips[&int64_key("driver_id", 1)], val(Val::Int32Val(2)));
    assert_eq!(trips[&int64_key("driver_id", 2)], val(Val::Int32Val(5)));
    assert_eq!(trips[&int64_key("driver_id", 3)], val(Val::Int32Val(6)));
}

#[test]
fn small_dedup_capacity_keeps_every_key_and_newest_wins_overall() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = gen_rows(11, 3000, 200);
    write_dir(tmp.path(), &rows);
    let mut s = spec(10, 40);
    s.dedup_capacity = 16;
    let (got, stats) = read_all(&source(tmp.path()), &s).unwrap();
    let want = brute_force(&rows, 10, 40);
    assert!(stats.dedup_flushes > 0);
    assert!(
        got.len() > want.len(),
        "with a small map some keys come out more than once"
    );
    // Newer-wins over the whole output (what the online store does) gives the answer.
    let mut newest: HashMap<Vec<u8>, EntityRow> = HashMap::new();
    for r in got {
        match newest.get(&r.entity_key) {
            Some(old) if !r.is_newer_than(old) => {}
            _ => {
                newest.insert(r.entity_key.clone(), r);
            }
        }
    }
    assert_eq!(newest.len(), want.len());
    for (k, w) in &want {
        let g = &newest[k];
        assert_eq!((g.event_ts, g.created_ts), (w.event_ts, w.created_ts), "key {k:?}");
        // Values too, except where a full tie may resolve to another row.
        let full_ties = rows
            .iter()
            .filter(|r| r.id.map(|id| int64_key("driver_id", id)) == Some(k.clone()))
            .filter(|r| r.ts_us * 1000 == w.event_ts && r.created_us.map(|c| c * 1000) == w.created_ts)
            .count();
        if full_ties == 1 {
            assert_eq!(g.values, w.values, "key {k:?}");
        }
    }
}

#[test]
fn row_groups_outside_the_window_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sorted.parquet");
    // 6 row groups of 100 rows; group g holds hour g only.
    let mut rows = Vec::new();
    for g in 0..6 {
        for i in 0..100 {
            let mut r = gen_rows(g * 1000 + i, 1, 50).remove(0);
            r.id = Some(1000 + i as i64 % 50);
            r.ts_us = BASE_US + g as i64 * US_PER_HOUR + i as i64;
            rows.push(r);
        }
    }
    write_rows(&path, &rows, 100);

    let (got, stats) = read_all(&source(&path), &spec(2, 4)).unwrap();
    assert_eq!(stats.row_groups_total, 6);
    assert_eq!(stats.row_groups_read, 2, "only hours 2 and 3 are read");
    assert_eq!(stats.rows_read, 200);
    assert_same(got, &brute_force(&rows, 2, 4));

    // Corrupt every column chunk of row group 0: a window that excludes it
    // still reads fine, one that includes it fails naming the file.
    let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .metadata()
        .clone();
    let mut bytes = std::fs::read(&path).unwrap();
    for c in meta.row_group(0).columns() {
        let (start, len) = c.byte_range();
        for b in &mut bytes[start as usize..(start + len) as usize] {
            *b = 0xff;
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    let (got, _) = read_all(&source(&path), &spec(2, 4)).unwrap();
    assert_same(got, &brute_force(&rows, 2, 4));
    let err = read_all(&source(&path), &spec(0, 4)).unwrap_err();
    assert!(matches!(err, OfflineError::Parquet { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nope.parquet");
    let err = read_all(&source(&path), &spec(0, 48)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::Io { .. }), "{msg}");
    assert!(msg.contains("nope.parquet"), "{msg}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = read_all(&source(&empty), &spec(0, 48)).unwrap_err();
    assert!(matches!(err, OfflineError::NoParquetFiles { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn truncated_and_garbage_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.parquet");
    write_rows(&path, &gen_rows(3, 500, 20), 100);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_all(&source(&path), &spec(0, 48)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::Parquet { .. }), "{msg}");
    assert!(msg.contains("cut.parquet"), "{msg}");

    let junk = tmp.path().join("junk.parquet");
    std::fs::write(&junk, b"hello").unwrap();
    let err = read_all(&source(&junk), &spec(0, 48)).unwrap_err();
    assert!(err.to_string().contains("junk.parquet"), "{err}");
}

#[test]
fn missing_column_names_column_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.parquet");
    write_rows(&path, &gen_rows(3, 50, 20), 100);
    let mut s = spec(0, 48);
    s.features.push(("conv_rate".into(), ft("Float32")));
    let err = read_all(&source(&path), &s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::MissingColumn { .. }), "{msg}");
    assert!(msg.contains("\"conv_rate\"") && msg.contains("data.parquet"), "{msg}");
    assert!(msg.contains("driver_id"), "lists the available columns: {msg}");

    // Through a field mapping the error names the source column.
    let mut src = source(&path);
    src.field_mapping.insert("rate_src".into(), "rate".into());
    let err = read_all(&src, &spec(0, 48)).unwrap_err();
    assert!(err.to_string().contains("\"rate_src\""), "{err}");

    let mut src = source(&path);
    src.timestamp_field = "ts".into();
    let err = read_all(&src, &spec(0, 48)).unwrap_err();
    assert!(
        err.to_string().contains("\"ts\"") && err.to_string().contains("data.parquet"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_column_file_and_both_types() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.parquet");
    write_rows(&path, &gen_rows(3, 50, 20), 100);
    let mut s = spec(0, 48);
    s.features[2] = ("name".into(), ft("Float32"));
    let err = read_all(&source(&path), &s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::WrongType { .. }), "{msg}");
    assert!(msg.contains("\"name\"") && msg.contains("data.parquet"), "{msg}");
    assert!(msg.contains("Utf8") && msg.contains("Float32"), "{msg}");

    let mut s = spec(0, 48);
    s.features[3] = ("tags".into(), ft("Array(String)"));
    let err = read_all(&source(&path), &s).unwrap_err();
    assert!(
        err.to_string().contains("\"tags\"") && err.to_string().contains("Array(String)"),
        "{err}"
    );

    let mut src = source(&path);
    src.created_timestamp_column = Some("name".into());
    let err = read_all(&src, &spec(0, 48)).unwrap_err();
    assert!(
        err.to_string().contains("\"name\"") && err.to_string().contains("timestamp"),
        "{err}"
    );

    let mut s = spec(0, 48);
    s.join_keys = vec![("name".into(), ft("Int64"))];
    let err = read_all(&source(&path), &s).unwrap_err();
    assert!(matches!(err, OfflineError::WrongType { .. }), "{err}");
}

#[test]
fn out_of_range_int32_names_column_file_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.parquet");
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", ts, false),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(TimestampMicrosecondArray::from(vec![BASE_US; 4])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(-5), Some(1 << 40)])),
        ],
    )
    .unwrap();
    write_batch(&path, &batch, 2);
    let src = SourceSpec {
        name: "big".into(),
        location: SourceLocation::Parquet(path.clone()),
        timestamp_field: "ts".into(),
        created_timestamp_column: None,
        field_mapping: BTreeMap::new(),
    };
    let mut s = ReadSpec::new(
        vec![("id".into(), ft("Int64"))],
        vec![("n".into(), ft("Int32"))],
        hour_ns(0),
        hour_ns(1),
    );
    let err = read_all(&src, &s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::BadValue { row: 3, .. }), "{msg}");
    assert!(
        msg.contains("\"n\"") && msg.contains("big.parquet") && msg.contains("row 3"),
        "{msg}"
    );
    // As Int64 it all fits.
    s.features = vec![("n".into(), ft("Int64"))];
    let (got, _) = read_all(&src, &s).unwrap();
    assert_eq!(got.len(), 4);
}

#[test]
fn entity_key_bytes_equal_serialize_entity_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("keys.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("zone", DataType::Utf8, false),
        Field::new("driver_id", DataType::Int32, false),
        Field::new("customer", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
        Field::new("day", DataType::Timestamp(TimeUnit::Second, None), false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
        Field::new("f", DataType::Float64, false),
    ]));
    let base_s = BASE_US / 1_000_000;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["north", "south", "ünï"])),
            Arc::new(Int32Array::from(vec![7, -1, 1 << 30])),
            Arc::new(Int64Array::from(vec![1001, i64::MIN, 0])),
            Arc::new(BinaryArray::from(vec![&b"\x00\x01"[..], b"", b"zz"])),
            Arc::new(TimestampSecondArray::from(vec![base_s, base_s - 86_400, 0])),
            Arc::new(TimestampSecondArray::from(vec![base_s; 3])),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])),
        ],
    )
    .unwrap();
    write_batch(&path, &batch, 10);
    let src = SourceSpec {
        name: "keys".into(),
        location: SourceLocation::Parquet(path),
        timestamp_field: "ts".into(),
        created_timestamp_column: None,
        field_mapping: BTreeMap::new(),
    };
    // Declared out of name order: the entity key sorts them.
    let join_keys = vec![
        ("zone".to_string(), ft("String")),
        ("driver_id".to_string(), ft("Int32")),
        ("customer".to_string(), ft("Int64")),
        ("blob".to_string(), ft("Bytes")),
        ("day".to_string(), ft("UnixTimestamp")),
    ];
    let s = ReadSpec::new(
        join_keys.clone(),
        vec![("f".into(), ft("Float64"))],
        hour_ns(-1),
        hour_ns(1),
    );
    let (got, _) = read_all(&src, &s).unwrap();
    assert_eq!(got.len(), 3);
    let zones = ["north", "south", "ünï"];
    let drivers = [7, -1, 1 << 30];
    let customers = [1001, i64::MIN, 0];
    let blobs: [&[u8]; 3] = [b"\x00\x01", b"", b"zz"];
    let days = [base_s, base_s - 86_400, 0];
    for i in 0..3 {
        let key = EntityKey {
            join_keys: join_keys.iter().map(|(k, _)| k.clone()).collect(),
            entity_values: vec![
                val(Val::StringVal(zones[i].into())),
                val(Val::Int32Val(drivers[i])),
                val(Val::Int64Val(customers[i])),
                val(Val::BytesVal(blobs[i].to_vec())),
                val(Val::UnixTimestampVal(days[i])),
            ],
        };
        let bytes = serialize_entity_key(&key).unwrap();
        let row = got
            .iter()
            .find(|r| r.entity_key == bytes)
            .unwrap_or_else(|| panic!("row {i} key differs"));
        assert_eq!(row.values, vec![val(Val::DoubleVal(0.5 + i as f64))]);
        assert_eq!(row.event_ts, base_s * 1_000_000_000);
    }
    // One key: no sorting, same bytes as the model too.
    let s = ReadSpec::new(vec![("zone".into(), ft("String"))], vec![], hour_ns(-1), hour_ns(1));
    let (got, _) = read_all(&src, &s).unwrap();
    let want = serialize_entity_key(&EntityKey {
        join_keys: vec!["zone".into()],
        entity_values: vec![val(Val::StringVal("north".into()))],
    })
    .unwrap();
    assert!(got.iter().any(|r| r.entity_key == want && r.values.is_empty()));
}

#[test]
fn timestamp_units_time_zones_dates_and_other_conversions() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("units.parquet");
    let base_ns = BASE_US * 1000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("America/New_York".into())),
            true,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("payload", DataType::Binary, true),
        Field::new("doc", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("small", DataType::Float64, true),
        Field::new("wide", DataType::Float32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(
                TimestampNanosecondArray::from(vec![Some(base_ns), Some(base_ns + 1), Some(base_ns - 1), None])
                    .with_timezone("America/New_York"),
            ),
            Arc::new(Date32Array::from(vec![Some(19723), None, Some(0), Some(1)])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_500_000),
                Some(-1),
                None,
                Some(0),
            ])),
            Arc::new(BinaryArray::from(vec![Some(&b"ab"[..]), None, Some(b""), Some(b"x")])),
            Arc::new(StringArray::from(vec![Some("{\"a\":1}"), None, Some("[]"), Some("1")])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)])),
            Arc::new(Float64Array::from(vec![Some(0.25), None, Some(1e300), Some(-2.0)])),
            Arc::new(Float32Array::from(vec![Some(0.5f32), None, Some(1.0), Some(2.0)])),
        ],
    )
    .unwrap();
    write_batch(&path, &batch, 10);
    let src = SourceSpec {
        name: "units".into(),
        location: SourceLocation::Parquet(path.clone()),
        timestamp_field: "ts".into(),
        created_timestamp_column: None,
        field_mapping: BTreeMap::new(),
    };
    let features = vec![
        ("day".to_string(), ft("UnixTimestamp")),
        ("at".to_string(), ft("UnixTimestamp")),
        ("payload".to_string(), ft("Bytes")),
        ("doc".to_string(), ft("Json")),
        ("flag".to_string(), ft("Bool")),
        ("small".to_string(), ft("Float32")),
        ("wide".to_string(), ft("Float64")),
    ];
    // The time zone does not shift instants; [base, base+1ns) holds row 1 only.
    let s = ReadSpec::new(vec![("id".into(), ft("Int64"))], features.clone(), base_ns, base_ns + 1);
    let (got, stats) = read_all(&src, &s).unwrap();
    assert_eq!(stats.null_timestamp_rows, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entity_key, int64_key("id", 1));
    assert_eq!(got[0].event_ts, base_ns);
    assert_eq!(
        got[0].values,
        vec![
            val(Val::UnixTimestampVal(19723 * 86_400)),
            val(Val::UnixTimestampVal(1)),
            val(Val::BytesVal(b"ab".to_vec())),
            val(Val::JsonVal("{\"a\":1}".into())),
            val(Val::BoolVal(true)),
            val(Val::FloatVal(0.25)),
            val(Val::DoubleVal(0.5)),
        ]
    );
    // A wider window: all three timed rows; nulls stay unset; -1 µs floors to -1 s.
    let s = ReadSpec::new(vec![("id".into(), ft("Int64"))], features, base_ns - 10, base_ns + 10);
    let (got, _) = read_all(&src, &s).unwrap();
    assert_eq!(got.len(), 3);
    let row2 = got.iter().find(|r| r.entity_key == int64_key("id", 2)).unwrap();
    assert_eq!(row2.values[0], Value::default());
    assert_eq!(row2.values[1], val(Val::UnixTimestampVal(-1)));
    assert_eq!(row2.values[2], Value::default());
    assert_eq!(row2.values[4], val(Val::BoolVal(false)));

    // A Date32 event timestamp works as well.
    let mut src = src;
    src.timestamp_field = "day".into();
    let s = ReadSpec::new(vec![("id".into(), ft("Int64"))], vec![], 0, 2 * 86_400 * 1_000_000_000);
    let (got, _) = read_all(&src, &s).unwrap();
    let mut ids: Vec<_> = got.iter().map(|r| r.event_ts).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 86_400 * 1_000_000_000]);
}

#[test]
fn entityless_views_use_the_dummy_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.parquet");
    let rows = gen_rows(5, 300, 20);
    write_rows(&path, &rows, 64);
    let mut s = spec(0, 48);
    s.join_keys.clear();
    let (got, _) = read_all(&source(&path), &s).unwrap();
    let dummy = serialize_entity_key(&EntityKey {
        join_keys: vec!["__dummy_id".into()],
        entity_values: vec![val(Val::StringVal(String::new()))],
    })
    .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entity_key, dummy);
    let max_ts = rows.iter().map(|r| r.ts_us * 1000).max().unwrap();
    assert_eq!(got[0].event_ts, max_ts);
    // The explicit dummy key (absent from the file) gives the same bytes.
    s.join_keys = vec![("__dummy_id".into(), ft("String"))];
    let (got2, _) = read_all(&source(&path), &s).unwrap();
    assert_eq!(got2, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_latest_streams_batches_through_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = gen_rows(21, 3000, 200);
    write_dir(tmp.path(), &rows);
    let mut rx = read_latest(source(tmp.path()), spec(10, 40));
    let mut got = Vec::new();
    while let Some(item) = rx.recv().await {
        got.extend(item.unwrap().rows);
    }
    assert_same(got, &brute_force(&rows, 10, 40));

    // Errors arrive as the last item.
    let mut rx = read_latest(source(&tmp.path().join("missing")), spec(10, 40));
    let err = rx.recv().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(rx.recv().await.is_none());

    // Dropping the receiver early stops the reader (no hang, no panic).
    let mut s = spec(0, 48);
    s.batch_rows = 1;
    let mut rx = read_latest(source(tmp.path()), s);
    assert!(rx.recv().await.unwrap().is_ok());
    drop(rx);
}

#[test]
fn read_latest_works_outside_a_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.parquet");
    let rows = gen_rows(2, 200, 10);
    write_rows(&path, &rows, 50);
    let mut rx = read_latest(source(&path), spec(0, 48));
    let mut got = Vec::new();
    while let Some(item) = rx.blocking_recv() {
        got.extend(item.unwrap().rows);
    }
    assert_same(got, &brute_force(&rows, 0, 48));
}

#[test]
fn invalid_specs_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.parquet");
    write_rows(&path, &gen_rows(2, 20, 10), 50);
    let mut s = spec(0, 48);
    s.features.push(("m".into(), ft("Map")));
    let err = read_all(&source(&path), &s).unwrap_err();
    assert!(
        matches!(err, OfflineError::InvalidSpec { .. }) && err.to_string().contains("\"m\""),
        "{err}"
    );
    let mut s = spec(0, 48);
    s.join_keys = vec![("rate".into(), ft("Float32"))];
    assert!(matches!(
        read_all(&source(&path), &s).unwrap_err(),
        OfflineError::InvalidSpec { .. }
    ));
    let mut s = spec(0, 48);
    s.batch_rows = 0;
    assert!(matches!(
        read_all(&source(&path), &s).unwrap_err(),
        OfflineError::InvalidSpec { .. }
    ));
    // An empty window reads nothing.
    let (got, _) = read_all(&source(&path), &spec(5, 5)).unwrap();
    assert!(got.is_empty());
}

/// The bundled example: 1,000 drivers × 48 hours.
#[test]
fn driver_stats_example_matches_brute_force() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/driver-stats/data/driver_stats.parquet");
    let features: Vec<(String, FeatureType)> = [
        ("conv_rate", "Float32"),
        ("acc_rate", "Float32"),
        ("avg_daily_trips", "Int64"),
        ("trips_today", "Int32"),
        ("rating", "Float64"),
        ("earnings_today", "Float64"),
        ("online_minutes", "Int32"),
        ("completed_trips", "Int64"),
        ("city", "String"),
        ("is_premium", "Bool"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), ft(t)))
    .collect();
    let src = SourceSpec {
        name: "driver_stats_source".into(),
        location: SourceLocation::Parquet(path.clone()),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: Some("created".into()),
        field_mapping: BTreeMap::new(),
    };
    // [2024-01-01T10:00Z, 2024-01-01T20:30Z): latest hour is 20:00.
    let (start, end) = (hour_ns(10), hour_ns(20) + 30 * 60 * 1_000_000_000);
    let s = ReadSpec::new(vec![("driver_id".into(), ft("Int64"))], features.clone(), start, end);
    let (got, stats) = read_all(&src, &s).unwrap();
    assert_eq!(got.len(), 1000);
    assert!(stats.row_groups_read < stats.row_groups_total, "{stats:?}");

    // Brute force straight from the file.
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut want: HashMap<Vec<u8>, EntityRow> = HashMap::new();
    let mut null_ratings = 0;
    for batch in reader {
        let b = batch.unwrap();
        let col = |n: &str| b.column(b.schema().index_of(n).unwrap()).clone();
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::*;
        let ids = col("driver_id");
        let ids = ids.as_primitive::<Int64Type>();
        let ts = col("event_timestamp");
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let created = col("created");
        let created = created.as_primitive::<TimestampMicrosecondType>();
        let (f32s, i64s, i32s, f64s) = (
            |n| col(n).as_primitive::<Float32Type>().clone(),
            |n| col(n).as_primitive::<Int64Type>().clone(),
            |n| col(n).as_primitive::<Int32Type>().clone(),
            |n| col(n).as_primitive::<Float64Type>().clone(),
        );
        let (conv, acc, avg, trips, rating, earn, online, completed) = (
            f32s("conv_rate"),
            f32s("acc_rate"),
            i64s("avg_daily_trips"),
            i32s("trips_today"),
            f64s("rating"),
            f64s("earnings_today"),
            i32s("online_minutes"),
            i64s("completed_trips"),
        );
        let city = col("city");
        let city = city.as_string::<i32>();
        let premium = col("is_premium");
        let premium = premium.as_boolean();
        for i in 0..b.num_rows() {
            let t = ts.value(i) * 1000;
            if t < start || t >= end {
                continue;
            }
            let rating_v = if rating.is_null(i) {
                null_ratings += 1;
                Value::default()
            } else {
                val(Val::DoubleVal(rating.value(i)))
            };
            let row = EntityRow {
                entity_key: int64_key("driver_id", ids.value(i)),
                event_ts: t,
                created_ts: Some(created.value(i) * 1000),
                values: vec![
                    val(Val::FloatVal(conv.value(i))),
                    val(Val::FloatVal(acc.value(i))),
                    val(Val::Int64Val(avg.value(i))),
                    val(Val::Int32Val(trips.value(i))),
                    rating_v,
                    val(Val::DoubleVal(earn.value(i))),
                    val(Val::Int32Val(online.value(i))),
                    val(Val::Int64Val(completed.value(i))),
                    val(Val::StringVal(city.value(i).to_string())),
                    val(Val::BoolVal(premium.value(i))),
                ],
            };
            match want.get(&row.entity_key) {
                Some(old) if !row.is_newer_than(old) => {}
                _ => {
                    want.insert(row.entity_key.clone(), row);
                }
            }
        }
    }
    assert!(null_ratings > 0, "the example has null ratings in the window");
    assert_eq!(want.len(), 1000);
    for r in &got {
        assert_eq!(r.event_ts, hour_ns(20));
    }
    assert_same(got, &want);
}

#[test]
fn dictionary_large_uuid_decimal_and_list_columns() {
    use arrow::array::{
        Array, Decimal128Array, DictionaryArray, FixedSizeBinaryArray, LargeListArray, LargeStringArray,
    };
    use arrow::datatypes::{Float64Type, Int32Type};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("types.parquet");
    let city: DictionaryArray<Int32Type> = vec![Some("Paris"), None, Some("Oslo")].into_iter().collect();
    let uuid_bytes: Vec<u8> = (0u8..16).collect();
    let uuids = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        vec![Some(uuid_bytes.clone()), None, Some(vec![0xff; 16])].into_iter(),
        16,
    )
    .unwrap();
    let price = Decimal128Array::from(vec![Some(12345), Some(-5), None])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let weights = LargeListArray::from_iter_primitive::<Float64Type, _, _>(vec![
        Some(vec![Some(0.5), Some(1.5)]),
        Some(vec![]),
        Some(vec![Some(1.0), None]),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            false,
        ),
        Field::new("city", city.data_type().clone(), true),
        Field::new("note", DataType::LargeUtf8, true),
        Field::new("uid", uuids.data_type().clone(), true),
        Field::new("price", price.data_type().clone(), true),
        Field::new("weights", weights.data_type().clone(), true),
    ]));
    let base_ms = BASE_US / 1000;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(
                arrow::array::TimestampMillisecondArray::from(vec![base_ms, base_ms, base_ms]).with_timezone("+02:00"),
            ),
            Arc::new(city),
            Arc::new(LargeStringArray::from(vec![Some("a"), Some(""), None])),
            Arc::new(uuids),
            Arc::new(price),
            Arc::new(weights),
        ],
    )
    .unwrap();
    write_batch(&path, &batch, 10);
    let src = SourceSpec {
        name: "types".into(),
        location: SourceLocation::Parquet(path.clone()),
        timestamp_field: "ts".into(),
        created_timestamp_column: None,
        field_mapping: BTreeMap::new(),
    };
    let features: Vec<(String, FeatureType)> = [
        ("city", "String"),
        ("note", "String"),
        ("uid", "Uuid"),
        ("price", "Decimal"),
        ("weights", "Array(Float32)"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), ft(t)))
    .collect();
    // Row 3 has a null list element: an error naming column, file and row.
    let s = ReadSpec::new(
        vec![("id".into(), ft("Int64"))],
        features.clone(),
        hour_ns(0),
        hour_ns(1),
    );
    let err = read_all(&src, &s).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"weights\"") && msg.contains("types.parquet") && msg.contains("row 2") && msg.contains("null"),
        "{msg}"
    );
    // Without the list, the rest converts.
    let s = ReadSpec::new(
        vec![("id".into(), ft("Int64"))],
        features[..4].to_vec(),
        hour_ns(0),
        hour_ns(1),
    );
    let (got, _) = read_all(&src, &s).unwrap();
    let row = |id| got.iter().find(|r| r.entity_key == int64_key("id", id)).unwrap();
    assert_eq!(
        row(1).values,
        vec![
            val(Val::StringVal("Paris".into())),
            val(Val::StringVal("a".into())),
            val(Val::UuidVal("00010203-0405-0607-0809-0a0b0c0d0e0f".into())),
            val(Val::DecimalVal("123.45".into())),
        ]
    );
    assert_eq!(row(2).values[0], Value::default());
    assert_eq!(row(2).values[1], val(Val::StringVal(String::new())));
    assert_eq!(row(2).values[3], val(Val::DecimalVal("-0.05".into())));
    assert_eq!(
        row(3).values[2],
        val(Val::UuidVal("ffffffff-ffff-ffff-ffff-ffffffffffff".into()))
    );
    // The list of rows 1-2 as Float32.
    let s = ReadSpec::new(
        vec![("id".into(), ft("Int64"))],
        features[4..].to_vec(),
        hour_ns(0),
        hour_ns(1),
    );
    let mut src2 = src.clone();
    let cut = tmp.path().join("two.parquet");
    write_batch(&cut, &batch.slice(0, 2), 10);
    src2.location = SourceLocation::Parquet(cut);
    let (got, _) = read_all(&src2, &s).unwrap();
    let r1 = got.iter().find(|r| r.entity_key == int64_key("id", 1)).unwrap();
    assert_eq!(
        r1.values,
        vec![val(Val::FloatListVal(larder_protos::feast::types::FloatList {
            val: vec![0.5, 1.5]
        }))]
    );
}
