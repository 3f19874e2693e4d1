//! `larder_offline::pull`: a Parquet source's rows in `[start, end)`, all
//! or the newest per key (Feast's `pull_*_from_table_or_query`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use larder_offline::pull::{PullColumns, pull_parquet};
use larder_offline::{SourceLocation, SourceSpec};

const H: i64 = 3_600_000_000; // an hour in µs

fn source(dir: &std::path::Path, rows: &[(i64, i64, Option<i64>, i64)]) -> SourceSpec {
    let ts = |v: Vec<Option<i64>>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("+00:00"));
    let tz = Some("+00:00".into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, tz.clone()), true),
        Field::new("cr", DataType::Timestamp(TimeUnit::Microsecond, tz), true),
        Field::new("v", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            ts(rows.iter().map(|r| Some(r.1)).collect()),
            ts(rows.iter().map(|r| r.2).collect()),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let path = dir.join("s.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    SourceSpec {
        name: "s".into(),
        location: SourceLocation::Parquet(path),
        timestamp_field: "ts".into(),
        created_timestamp_column: Some("cr".into()),
        field_mapping: BTreeMap::new(),
    }
}

fn values(b: &RecordBatch) -> BTreeMap<i64, i64> {
    let k = b.column(0).as_primitive::<Int64Type>();
    let v = b.column(1).as_primitive::<Int64Type>();
    (0..b.num_rows()).map(|i| (k.value(i), v.value(i))).collect()
}

#[test]
fn window_and_latest_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        dir.path(),
        &[
            (1, 0, None, 10),        // at start: in
            (1, 2 * H, Some(1), 11), // newest of key 1 (created 1)...
            (1, 2 * H, Some(0), 12), // ...beats this (created 0)
            (1, 2 * H, None, 13),    // and null created loses
            (1, 3 * H, None, 14),    // at end: out
            (2, H, None, 20),        // key 2: one row
            (3, -1, None, 30),       // before start: out
        ],
    );
    let cols = PullColumns {
        join_keys: vec!["k".into()],
        features: vec!["v".into()],
        timestamp: "ts".into(),
        created: Some("cr".into()),
    };
    let all = pull_parquet(&s, &cols, 0, 3 * H * 1_000, false).unwrap();
    assert_eq!(all.num_rows(), 5);
    let schema = all.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["k", "v", "ts", "cr"]);
    let latest = pull_parquet(&s, &cols, 0, 3 * H * 1_000, true).unwrap();
    assert_eq!(values(&latest), BTreeMap::from([(1, 11), (2, 20)]));
    assert!(!latest.column(3).is_null(0));
    // Unknown columns and non-Parquet sources are clear errors.
    let bad = PullColumns {
        features: vec!["nope".into()],
        ..cols
    };
    let err = pull_parquet(&s, &bad, 0, H, false).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}
