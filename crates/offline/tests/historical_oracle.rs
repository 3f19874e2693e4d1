//! Historical retrieval (`larder_offline::historical`) against a brute-force
//! oracle: thousands of small random cases (seeded, reproducible), each a
//! fresh dataset written to Parquet, compared cell by cell with plain nested
//! loops written from the documented semantics; plus focused error tests.
//!
//! Reproduce one failing case with `HISTORICAL_ORACLE_SEED=<seed> cargo test
//! -p larder-offline --test historical_oracle` (the seed is printed in the
//! failure message).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, LargeStringArray,
    ListArray, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, TimeUnit};
use larder_model::types::FeatureType;
use larder_offline::historical::{HistoricalJoinKey, HistoricalRequest, HistoricalView, get_historical_features};
use larder_offline::{OfflineError, SourceLocation, SourceSpec};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

const NS: i64 = 1_000_000_000;
/// 2024-01-01T00:00:00Z in ns.
const BASE_NS: i64 = 1_704_067_200 * NS;
const BASE_SEED: u64 = 0x1a2d_e5f0_0c1e_0001;

// ---------------------------------------------------------------------------
// PRNG

use larder_testkit::Rng;

fn mix(seed: u64) -> u64 {
    Rng(seed).next_u64()
}

// ---------------------------------------------------------------------------
// Generated case

#[derive(Clone, Debug, PartialEq)]
enum Key {
    I(i64),
    S(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    I(i64),
    F(f64),
    S(String),
    B(bool),
    L(Vec<i64>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Int,
    Float,
    Str,
    Bool,
    List,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Int, Kind::Float, Kind::Str, Kind::Bool, Kind::List];

    fn feature_type(self) -> FeatureType {
        match self {
            Kind::Int => FeatureType::INT64,
            Kind::Float => FeatureType::DOUBLE,
            Kind::Str => FeatureType::STRING,
            Kind::Bool => FeatureType::BOOL,
            Kind::List => FeatureType::parse("Array(Int64)").unwrap(),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "str",
            Kind::Bool => "bool",
            Kind::List => "list",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum KeyKind {
    Int,
    Str,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    IntKey,
    StrKey,
    Composite,
    Entityless,
}

#[derive(Debug)]
struct JoinKeyGen {
    name: String,
    kind: KeyKind,
    /// Entity frame column (differs from `name` under a join-key map).
    frame_col: String,
    /// Source column (differs from `name` under a field mapping).
    src_col: String,
}

#[derive(Debug)]
struct FeatureGen {
    name: String,
    kind: Kind,
    src_col: String,
}

#[derive(Debug, Clone)]
struct SourceRow {
    keys: Vec<Option<Key>>,
    ts: Option<i64>,
    created: Option<i64>,
    values: Vec<Val>,
}

#[derive(Debug)]
struct ViewGen {
    name: String,
    shown_as: String,
    shape: Shape,
    keys: Vec<JoinKeyGen>,
    features: Vec<FeatureGen>,
    ttl_ns: i64,
    ts_field: String,
    ts_col: String,
    ts_unit: TimeUnit,
    ts_tz: Option<&'static str>,
    /// (created timestamp field, its source column).
    created: Option<(String, String)>,
    created_unit: TimeUnit,
    field_mapping: BTreeMap<String, String>,
    /// Write decoy columns named like the mapped fields, with other values.
    decoys: bool,
    /// Rows in read order (files in path order, rows in file order).
    rows: Vec<SourceRow>,
    /// Rows per file when the source is a directory; `None`: one file.
    parts: Option<Vec<usize>>,
    row_group_rows: usize,
    statistics: bool,
    dict_strings: bool,
    int32_keys: bool,
    path: PathBuf,
}

#[derive(Debug)]
struct FrameCol {
    name: String,
    kind: KeyKind,
    dtype: DataType,
    values: Vec<Option<Key>>,
}

#[derive(Debug, Clone)]
enum FrameTs {
    Time(TimeUnit, Option<&'static str>),
    /// RFC 3339 strings, with this offset in seconds.
    Text(i32),
}

#[derive(Debug)]
struct FrameGen {
    rows: usize,
    key_cols: Vec<FrameCol>,
    ts_name: String,
    ts_type: FrameTs,
    /// Each row's timestamp as the module must read it (after quantization).
    ts_ns: Vec<i64>,
    notes: Vec<Option<String>>,
    /// An extra timestamp column (only when the event column is named
    /// `event_timestamp`), to check that it is not taken for it.
    other_ts: Option<Vec<i64>>,
    ts_first: bool,
}

impl FrameGen {
    fn col(&self, name: &str) -> &FrameCol {
        self.key_cols.iter().find(|c| c.name == name).unwrap()
    }
}

struct Case {
    seed: u64,
    views: Vec<ViewGen>,
    frame: FrameGen,
    full_feature_names: bool,
    _dir: tempfile::TempDir,
}

fn unit_ns(u: TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => NS,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

const UNITS: [TimeUnit; 4] = [
    TimeUnit::Second,
    TimeUnit::Millisecond,
    TimeUnit::Microsecond,
    TimeUnit::Nanosecond,
];

fn gen_case(seed: u64) -> Case {
    let mut r = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let full_feature_names = r.percent(50);
    // Key pools: the source uses values 1..=np (and a stray 40 / "q"), the
    // frame 1..=np+1 (so some entity keys have no rows).
    let np = r.pick(&[1i64, 2, 3, 5]);
    let strs = ["a", "b", "c", "d", "e", "f"];
    let max_tick = r.pick(&[2i64, 4, 8, 20]);
    let n_views = r.range(1, 3) as usize;
    let mut views = Vec::with_capacity(n_views);
    for vi in 0..n_views {
        let shape = r.pick(&[Shape::IntKey, Shape::StrKey, Shape::Composite, Shape::Entityless]);
        let name = format!("v{vi}");
        let shown_as = if r.percent(30) {
            format!("alias{vi}")
        } else {
            name.clone()
        };
        let mut key_defs: Vec<(&str, KeyKind)> = match shape {
            Shape::IntKey => vec![("driver_id", KeyKind::Int)],
            Shape::StrKey => vec![("customer", KeyKind::Str)],
            Shape::Composite => vec![("driver_id", KeyKind::Int), ("customer", KeyKind::Str)],
            Shape::Entityless => vec![],
        };
        if r.percent(50) {
            key_defs.reverse();
        }
        let mut field_mapping = BTreeMap::new();
        let keys: Vec<JoinKeyGen> = key_defs
            .into_iter()
            .map(|(k, kind)| {
                let frame_col = if r.percent(25) {
                    format!("{name}_{k}")
                } else {
                    k.to_string()
                };
                let src_col = if r.percent(30) {
                    let c = format!("src_{k}");
                    field_mapping.insert(c.clone(), k.to_string());
                    c
                } else {
                    k.to_string()
                };
                JoinKeyGen {
                    name: k.to_string(),
                    kind,
                    frame_col,
                    src_col,
                }
            })
            .collect();
        let n_features = r.range(1, 4) as usize;
        let mut counts = BTreeMap::new();
        let features: Vec<FeatureGen> = (0..n_features)
            .map(|_| {
                let kind = r.pick(&Kind::ALL);
                let n = counts.entry(kind.tag()).or_insert(0);
                let fname = if full_feature_names {
                    format!("{}_{n}", kind.tag())
                } else {
                    format!("{name}_{}_{n}", kind.tag())
                };
                *n += 1;
                let src_col = if r.percent(30) {
                    let c = format!("col_{fname}");
                    field_mapping.insert(c.clone(), fname.clone());
                    c
                } else {
                    fname.clone()
                };
                FeatureGen {
                    name: fname,
                    kind,
                    src_col,
                }
            })
            .collect();
        let ts_field = "event_ts".to_string();
        let ts_col = if r.percent(30) {
            field_mapping.insert("raw_event_ts".into(), ts_field.clone());
            "raw_event_ts".to_string()
        } else {
            ts_field.clone()
        };
        let created = if r.percent(50) {
            let col = if r.percent(30) {
                field_mapping.insert("raw_created".into(), "created".into());
                "raw_created".to_string()
            } else {
                "created".to_string()
            };
            Some(("created".to_string(), col))
        } else {
            None
        };
        let ttl_ns = match r.below(10) {
            0..=3 => 0,
            4..=7 => r.range(1, 6) * NS,
            8 => r.range(1, 6) * NS + 500_000_000,
            _ => r.range(1, 3) * NS + r.pick(&[1, -1, 1_000]),
        };
        let ts_unit = r.pick(&UNITS);
        let ts_tz = r.pick(&[Some("UTC"), None, Some("+02:00")]);
        let created_unit = r.pick(&UNITS);

        // Rows.
        let n_rows = if r.percent(4) { 0 } else { r.range(1, 16) as usize };
        let rows: Vec<SourceRow> = (0..n_rows)
            .map(|_| {
                let keys = keys
                    .iter()
                    .map(|k| {
                        if r.percent(6) {
                            return None;
                        }
                        Some(match k.kind {
                            KeyKind::Int => Key::I(if r.percent(5) { 40 } else { r.range(1, np) }),
                            KeyKind::Str => Key::S(if r.percent(5) {
                                "q".to_string()
                            } else {
                                strs[r.range(0, np - 1) as usize].to_string()
                            }),
                        })
                    })
                    .collect();
                let ts = if r.percent(3) {
                    None
                } else {
                    let frac = if r.percent(20) {
                        unit_ns(ts_unit) * r.range(1, 2)
                    } else {
                        0
                    };
                    // Second-unit values must stay whole seconds.
                    let frac = if ts_unit == TimeUnit::Second { 0 } else { frac };
                    Some(BASE_NS + r.range(0, max_tick) * NS + frac)
                };
                let created_v = if r.percent(20) {
                    None
                } else {
                    Some(BASE_NS + r.range(0, 3) * NS)
                };
                let values = features.iter().map(|f| gen_value(&mut r, f.kind)).collect();
                SourceRow {
                    keys,
                    ts,
                    created: created_v,
                    values,
                }
            })
            .collect();
        let mut rows = rows;
        if r.percent(50) {
            // Sorted by time: row groups cover disjoint ranges, so pruning bites.
            rows.sort_by_key(|row| row.ts);
        }
        let parts = if r.percent(45) {
            let n_parts = r.range(2, 3) as usize;
            let mut cuts: Vec<usize> = (0..n_parts - 1)
                .map(|_| r.range(0, rows.len() as i64) as usize)
                .collect();
            cuts.sort_unstable();
            let mut sizes = Vec::new();
            let mut prev = 0;
            for c in cuts {
                sizes.push(c - prev);
                prev = c;
            }
            sizes.push(rows.len() - prev);
            Some(sizes)
        } else {
            None
        };
        let path = if parts.is_some() {
            dir.path().join(format!("{name}_dir"))
        } else {
            dir.path().join(format!("{name}.parquet"))
        };
        views.push(ViewGen {
            name,
            shown_as,
            shape,
            keys,
            features,
            ttl_ns,
            ts_field,
            ts_col,
            ts_unit,
            ts_tz,
            created,
            created_unit,
            field_mapping,
            decoys: r.percent(50),
            rows,
            parts,
            row_group_rows: r.pick(&[1usize, 2, 3, 4, 1024]),
            statistics: r.percent(85),
            dict_strings: r.percent(20),
            int32_keys: r.percent(20),
            path,
        });
    }

    // Entity frame.
    let n = if r.percent(2) { 0 } else { r.range(1, 12) as usize };
    let mut key_cols: Vec<FrameCol> = Vec::new();
    for v in &views {
        for k in &v.keys {
            if key_cols.iter().any(|c| c.name == k.frame_col) {
                continue;
            }
            let dtype = match k.kind {
                KeyKind::Int => r.pick(&[DataType::Int64, DataType::Int64, DataType::Int32]),
                KeyKind::Str => r.pick(&[
                    DataType::Utf8,
                    DataType::Utf8,
                    DataType::LargeUtf8,
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                ]),
            };
            let values = (0..n)
                .map(|_| {
                    if r.percent(7) {
                        return None;
                    }
                    Some(match k.kind {
                        KeyKind::Int => Key::I(r.range(1, np + 1)),
                        KeyKind::Str => Key::S(if r.percent(10) {
                            "zz".to_string()
                        } else {
                            strs[r.range(0, np) as usize].to_string()
                        }),
                    })
                })
                .collect();
            key_cols.push(FrameCol {
                name: k.frame_col.clone(),
                kind: k.kind,
                dtype,
                values,
            });
        }
    }
    let ts_type = match r.below(10) {
        0 => FrameTs::Text(r.pick(&[0, 0, 7200, -3600])),
        _ => FrameTs::Time(
            r.pick(&[
                TimeUnit::Nanosecond,
                TimeUnit::Nanosecond,
                TimeUnit::Microsecond,
                TimeUnit::Millisecond,
                TimeUnit::Second,
            ]),
            r.pick(&[Some("UTC"), None, Some("+01:00")]),
        ),
    };
    let ts_name = match ts_type {
        FrameTs::Time(..) if r.percent(15) => "requested_at".to_string(),
        _ => "event_timestamp".to_string(),
    };
    let mut raw_ts: Vec<i64> = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = BASE_NS + r.range(-3, max_tick + 4) * NS;
        if r.percent(10) {
            t += r.pick(&[1, -1, 500_000_000]);
        }
        if r.percent(50) {
            // Anchor the row on a source row: its key, its time plus the ttl
            // (the boundary), or just around it.
            let vi = r.below(views.len() as u64) as usize;
            let v = &views[vi];
            let anchors: Vec<&SourceRow> = v.rows.iter().filter(|row| row.ts.is_some()).collect();
            if !anchors.is_empty() {
                let row = anchors[r.below(anchors.len() as u64) as usize];
                for (k, jk) in v.keys.iter().enumerate() {
                    let col = key_cols.iter_mut().find(|c| c.name == jk.frame_col).unwrap();
                    col.values[i] = row.keys[k].clone();
                }
                let ev = row.ts.unwrap();
                let mut deltas = vec![0, 1, -1, NS, 3 * NS];
                if v.ttl_ns > 0 {
                    deltas.extend([v.ttl_ns, v.ttl_ns, v.ttl_ns + 1, v.ttl_ns - 1]);
                }
                t = ev + r.pick(&deltas);
            }
        }
        raw_ts.push(t);
    }
    let ts_ns = raw_ts
        .iter()
        .map(|&t| match ts_type {
            FrameTs::Time(u, _) => t.div_euclid(unit_ns(u)) * unit_ns(u),
            FrameTs::Text(_) => t,
        })
        .collect();
    let notes = (0..n)
        .map(|i| if r.percent(20) { None } else { Some(format!("note{i}")) })
        .collect();
    let other_ts = (ts_name == "event_timestamp" && r.percent(20))
        .then(|| (0..n).map(|_| BASE_NS + r.range(-5, 30) * NS).collect());
    let frame = FrameGen {
        rows: n,
        key_cols,
        ts_name,
        ts_type,
        ts_ns,
        notes,
        other_ts,
        ts_first: r.percent(50),
    };
    Case {
        seed,
        views,
        frame,
        full_feature_names,
        _dir: dir,
    }
}

fn gen_value(r: &mut Rng, kind: Kind) -> Val {
    if r.percent(15) {
        return Val::Null;
    }
    match kind {
        Kind::Int => Val::I(r.range(-5, 100)),
        Kind::Float => Val::F(r.range(-160, 800) as f64 / 8.0),
        Kind::Str => Val::S(format!("{}{}", r.pick(&["x", "", "héllo", "zz"]), r.below(50))),
        Kind::Bool => Val::B(r.percent(50)),
        Kind::List => Val::L((0..r.below(4)).map(|_| r.range(-3, 30)).collect()),
    }
}

// ---------------------------------------------------------------------------
// Writing

fn ts_array(unit: TimeUnit, tz: Option<&str>, ns: &[Option<i64>]) -> ArrayRef {
    let per = unit_ns(unit);
    let vals: Vec<Option<i64>> = ns.iter().map(|v| v.map(|v| v.div_euclid(per))).collect();
    let tz: Option<Arc<str>> = tz.map(Arc::from);
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(vals).with_timezone_opt(tz)),
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(vals).with_timezone_opt(tz)),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(vals).with_timezone_opt(tz)),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(vals).with_timezone_opt(tz)),
    }
}

fn key_array(kind: KeyKind, dtype: &DataType, vals: &[Option<Key>]) -> ArrayRef {
    match kind {
        KeyKind::Int => {
            let ints = vals.iter().map(|v| match v {
                Some(Key::I(i)) => Some(*i),
                None => None,
                Some(Key::S(_)) => unreachable!(),
            });
            match dtype {
                DataType::Int32 => Arc::new(ints.map(|v| v.map(|v| v as i32)).collect::<Int32Array>()),
                _ => Arc::new(ints.collect::<Int64Array>()),
            }
        }
        KeyKind::Str => {
            let strs: Vec<Option<&str>> = vals
                .iter()
                .map(|v| match v {
                    Some(Key::S(s)) => Some(s.as_str()),
                    None => None,
                    Some(Key::I(_)) => unreachable!(),
                })
                .collect();
            match dtype {
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(strs)),
                DataType::Dictionary(..) => Arc::new(strs.into_iter().collect::<DictionaryArray<Int32Type>>()),
                _ => Arc::new(StringArray::from(strs)),
            }
        }
    }
}

fn value_array(kind: Kind, dict: bool, vals: &[&Val]) -> ArrayRef {
    match kind {
        Kind::Int => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Val::I(i) => Some(*i),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        Kind::Float => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Val::F(f) => Some(*f),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        Kind::Str => {
            let strs: Vec<Option<&str>> = vals
                .iter()
                .map(|v| match v {
                    Val::S(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            if dict {
                Arc::new(strs.into_iter().collect::<DictionaryArray<Int32Type>>())
            } else {
                Arc::new(StringArray::from(strs))
            }
        }
        Kind::Bool => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Val::B(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::List => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vals.iter().map(
            |v| match v {
                Val::L(l) => Some(l.iter().map(|x| Some(*x)).collect::<Vec<_>>()),
                _ => None,
            },
        ))),
    }
}

/// A decoy of a value: same type, different value.
fn decoy(v: &Val) -> Val {
    match v {
        Val::Null => Val::I(-999),
        Val::I(i) => Val::I(i + 1000),
        Val::F(f) => Val::F(f + 1000.0),
        Val::S(s) => Val::S(format!("decoy-{s}")),
        Val::B(b) => Val::B(!b),
        Val::L(l) => Val::L(l.iter().map(|x| x + 1000).collect()),
    }
}

fn write_view(v: &ViewGen) {
    let files: Vec<(PathBuf, &[SourceRow])> = match &v.parts {
        None => vec![(v.path.clone(), &v.rows[..])],
        Some(sizes) => {
            std::fs::create_dir_all(v.path.join("sub")).unwrap();
            // Skipped entries: hidden, `_`-prefixed, not `*.parquet`.
            std::fs::write(v.path.join("_SUCCESS"), b"").unwrap();
            std::fs::write(v.path.join(".part-0.parquet.crc"), b"junk").unwrap();
            std::fs::write(v.path.join("_junk.parquet"), b"not parquet").unwrap();
            std::fs::write(v.path.join("README.txt"), b"hello").unwrap();
            let mut start = 0;
            sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    // Path order: part-0 < part-1 < sub/part-2.
                    let p = if i == 2 {
                        v.path.join("sub").join("part-2.parquet")
                    } else {
                        v.path.join(format!("part-{i}.parquet"))
                    };
                    let rows = &v.rows[start..start + n];
                    start += n;
                    (p, rows)
                })
                .collect()
        }
    };
    let str_type = if v.dict_strings {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    } else {
        DataType::Utf8
    };
    let int_key_type = if v.int32_keys { DataType::Int32 } else { DataType::Int64 };
    for (path, rows) in files {
        let mut fields: Vec<Field> = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        let mut push = |name: &str, a: ArrayRef| {
            fields.push(Field::new(name, a.data_type().clone(), true));
            cols.push(a);
        };
        for (k, jk) in v.keys.iter().enumerate() {
            let dtype = match jk.kind {
                KeyKind::Int => &int_key_type,
                KeyKind::Str => &str_type,
            };
            let vals: Vec<Option<Key>> = rows.iter().map(|r| r.keys[k].clone()).collect();
            push(&jk.src_col, key_array(jk.kind, dtype, &vals));
            if v.decoys && jk.src_col != jk.name {
                let vals: Vec<Option<Key>> = rows
                    .iter()
                    .map(|r| {
                        Some(match &r.keys[k] {
                            Some(Key::I(i)) => Key::I(i % 2 + 1),
                            Some(Key::S(_)) => Key::S("a".into()),
                            None => match jk.kind {
                                KeyKind::Int => Key::I(1),
                                KeyKind::Str => Key::S("b".into()),
                            },
                        })
                    })
                    .collect();
                push(&jk.name, key_array(jk.kind, dtype, &vals));
            }
        }
        let ts: Vec<Option<i64>> = rows.iter().map(|r| r.ts).collect();
        push(&v.ts_col, ts_array(v.ts_unit, v.ts_tz, &ts));
        if v.decoys && v.ts_col != v.ts_field {
            let ts: Vec<Option<i64>> = rows.iter().map(|r| Some(r.ts.unwrap_or(BASE_NS) - 7 * NS)).collect();
            push(&v.ts_field, ts_array(v.ts_unit, v.ts_tz, &ts));
        }
        if let Some((field, col)) = &v.created {
            let c: Vec<Option<i64>> = rows.iter().map(|r| r.created).collect();
            push(col, ts_array(v.created_unit, Some("UTC"), &c));
            if v.decoys && col != field {
                let c: Vec<Option<i64>> = rows
                    .iter()
                    .map(|r| Some(BASE_NS - r.created.unwrap_or(0) % NS))
                    .collect();
                push(field, ts_array(v.created_unit, Some("UTC"), &c));
            }
        }
        for (f, fg) in v.features.iter().enumerate() {
            let vals: Vec<&Val> = rows.iter().map(|r| &r.values[f]).collect();
            push(&fg.src_col, value_array(fg.kind, v.dict_strings, &vals));
            if v.decoys && fg.src_col != fg.name {
                let d: Vec<Val> = rows.iter().map(|r| decoy(&r.values[f])).collect();
                let d: Vec<&Val> = d.iter().collect();
                push(&fg.name, value_array(fg.kind, v.dict_strings, &d));
            }
        }
        let junk: ArrayRef = Arc::new((0..rows.len() as i64).collect::<Int64Array>());
        push("unrelated", junk);
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(v.row_group_rows))
            .set_statistics_enabled(if v.statistics {
                EnabledStatistics::Page
            } else {
                EnabledStatistics::None
            })
            .build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
        // Two writes when possible: batches and row groups need not align.
        let half = batch.num_rows() / 2;
        if half > 0 {
            w.write(&batch.slice(0, half)).unwrap();
            w.write(&batch.slice(half, batch.num_rows() - half)).unwrap();
        } else {
            w.write(&batch).unwrap();
        }
        w.close().unwrap();
    }
}

fn frame_batch(f: &FrameGen) -> RecordBatch {
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let ts: ArrayRef = match &f.ts_type {
        FrameTs::Time(u, tz) => {
            let v: Vec<Option<i64>> = f.ts_ns.iter().map(|t| Some(*t)).collect();
            ts_array(*u, *tz, &v)
        }
        FrameTs::Text(offset) => {
            let off = chrono::FixedOffset::east_opt(*offset).unwrap();
            let strs: Vec<String> = f
                .ts_ns
                .iter()
                .map(|t| {
                    chrono::DateTime::from_timestamp_nanos(*t)
                        .with_timezone(&off)
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                })
                .collect();
            Arc::new(StringArray::from(strs))
        }
    };
    if f.ts_first {
        fields.push(Field::new(&f.ts_name, ts.data_type().clone(), false));
        cols.push(ts.clone());
    }
    for c in &f.key_cols {
        let a = key_array(c.kind, &c.dtype, &c.values);
        fields.push(Field::new(&c.name, a.data_type().clone(), true));
        cols.push(a);
    }
    let notes: ArrayRef = Arc::new(StringArray::from(f.notes.clone()));
    fields.push(Field::new("note", DataType::Utf8, true));
    cols.push(notes);
    if let Some(o) = &f.other_ts {
        let v: Vec<Option<i64>> = o.iter().map(|t| Some(*t)).collect();
        let a = ts_array(TimeUnit::Microsecond, Some("UTC"), &v);
        fields.push(Field::new("signup_time", a.data_type().clone(), true));
        cols.push(a);
    }
    if !f.ts_first {
        fields.push(Field::new(&f.ts_name, ts.data_type().clone(), false));
        cols.push(ts);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn request(case: &Case) -> HistoricalRequest {
    HistoricalRequest {
        views: case
            .views
            .iter()
            .map(|v| HistoricalView {
                name: v.name.clone(),
                shown_as: v.shown_as.clone(),
                source: SourceSpec {
                    name: format!("{}_source", v.name),
                    location: SourceLocation::Parquet(v.path.clone()),
                    timestamp_field: v.ts_field.clone(),
                    created_timestamp_column: v.created.as_ref().map(|(f, _)| f.clone()),
                    field_mapping: v.field_mapping.clone(),
                },
                join_keys: v
                    .keys
                    .iter()
                    .map(|k| HistoricalJoinKey {
                        name: k.name.clone(),
                        column: k.frame_col.clone(),
                        value_type: match k.kind {
                            KeyKind::Int => FeatureType::INT64,
                            KeyKind::Str => FeatureType::STRING,
                        },
                    })
                    .collect(),
                features: v
                    .features
                    .iter()
                    .map(|f| (f.name.clone(), f.kind.feature_type()))
                    .collect(),
                ttl_ns: v.ttl_ns,
            })
            .collect(),
        full_feature_names: case.full_feature_names,
    }
}

// ---------------------------------------------------------------------------
// The oracle

/// For each frame row: the index (in read order) of the source row it gets
/// from `v`, straight from the semantics.
fn oracle(frame: &FrameGen, v: &ViewGen) -> Vec<Option<usize>> {
    (0..frame.rows)
        .map(|i| {
            let t = frame.ts_ns[i];
            let mut want: Vec<Key> = Vec::new();
            for jk in &v.keys {
                // A null join key in the frame: no match.
                want.push(frame.col(&jk.frame_col).values[i].clone()?);
            }
            let mut best: Option<(i64, Option<i64>, usize)> = None;
            for (ri, row) in v.rows.iter().enumerate() {
                let Some(ev) = row.ts else { continue };
                // A null join key in the source never matches.
                let mut same = true;
                for (k, w) in row.keys.iter().zip(&want) {
                    if k.as_ref() != Some(w) {
                        same = false;
                    }
                }
                if !same || ev > t {
                    continue;
                }
                if v.ttl_ns > 0 && ev < t - v.ttl_ns {
                    continue;
                }
                let created = if v.created.is_some() { row.created } else { None };
                // Strictly newer (event, created) wins; None < Some; a full tie keeps the first.
                let better = match best {
                    None => true,
                    Some((be, bc, _)) => ev > be || (ev == be && created > bc),
                };
                if better {
                    best = Some((ev, created, ri));
                }
            }
            best.map(|b| b.2)
        })
        .collect()
}

fn cell(a: &dyn Array, i: usize) -> Result<Val, String> {
    if a.is_null(i) {
        return Ok(Val::Null);
    }
    Ok(match a.data_type() {
        DataType::Int64 => Val::I(a.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Val::F(a.as_primitive::<arrow::datatypes::Float64Type>().value(i)),
        DataType::Utf8 => Val::S(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Val::S(a.as_string::<i64>().value(i).to_string()),
        DataType::Boolean => Val::B(a.as_boolean().value(i)),
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            let ints = l.as_primitive::<Int64Type>();
            if ints.null_count() > 0 {
                return Err("list with null elements".into());
            }
            Val::L(ints.values().to_vec())
        }
        other => return Err(format!("unexpected output type {other}")),
    })
}

fn describe(case: &Case) -> String {
    let mut s = String::new();
    let f = &case.frame;
    let _ = writeln!(
        s,
        "seed={:#018x} full_feature_names={} frame: ts column {:?} {:?}, {} rows",
        case.seed, case.full_feature_names, f.ts_name, f.ts_type, f.rows
    );
    for i in 0..f.rows {
        let keys: Vec<String> = f
            .key_cols
            .iter()
            .map(|c| format!("{}={:?}", c.name, c.values[i]))
            .collect();
        let _ = writeln!(
            s,
            "  frame[{i}] ts=BASE{:+}ns ({:+}s) {}",
            f.ts_ns[i] - BASE_NS,
            (f.ts_ns[i] - BASE_NS) as f64 / NS as f64,
            keys.join(" ")
        );
    }
    for v in &case.views {
        let _ = writeln!(
            s,
            "view {} as {} {:?} ttl={}ns keys={:?} features={:?} ts_col={} {:?}/{:?} created={:?} mapping={:?} parts={:?} rg_rows={} stats={} dict={} int32={} decoys={}",
            v.name,
            v.shown_as,
            v.shape,
            v.ttl_ns,
            v.keys
                .iter()
                .map(|k| format!("{}(frame {}, src {})", k.name, k.frame_col, k.src_col))
                .collect::<Vec<_>>(),
            v.features
                .iter()
                .map(|f| (&f.name, f.kind, &f.src_col))
                .collect::<Vec<_>>(),
            v.ts_col,
            v.ts_unit,
            v.ts_tz,
            v.created,
            v.field_mapping,
            v.parts,
            v.row_group_rows,
            v.statistics,
            v.dict_strings,
            v.int32_keys,
            v.decoys,
        );
        for (ri, row) in v.rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "  src[{ri}] keys={:?} ts={:?} created={:?} values={:?}",
                row.keys,
                row.ts.map(|t| format!("BASE{:+}ns", t - BASE_NS)),
                row.created.map(|t| format!("BASE{:+}ns", t - BASE_NS)),
                row.values
            );
        }
    }
    s
}

/// Runs one case; `Ok(true)` when some row group was pruned, `Err`
/// describes the first disagreement.
fn run_case(seed: u64) -> Result<bool, String> {
    let case = gen_case(seed);
    for v in &case.views {
        write_view(v);
    }
    let entities = frame_batch(&case.frame);
    let req = request(&case);
    let mut progress = Vec::new();
    let fail = |what: String| Err(format!("seed={seed:#018x}: {what}\n{}", describe(&case)));
    let res = match get_historical_features(&entities, &req, &mut |n| progress.push(n)) {
        Ok(r) => r,
        Err(e) => return fail(format!("retrieval failed: {e}")),
    };
    let out = &res.batch;
    let n_features: usize = case.views.iter().map(|v| v.features.len()).sum();
    if out.num_rows() != entities.num_rows() {
        return fail(format!("{} rows out for {} in", out.num_rows(), entities.num_rows()));
    }
    if out.num_columns() != entities.num_columns() + n_features {
        return fail(format!(
            "{} columns out, expected {} + {n_features}",
            out.num_columns(),
            entities.num_columns()
        ));
    }
    for (i, field) in entities.schema().fields().iter().enumerate() {
        if out.schema().field(i) != field.as_ref() || out.column(i).as_ref() != entities.column(i).as_ref() {
            return fail(format!("frame column {} changed", field.name()));
        }
    }
    if progress != (1..=case.views.len()).collect::<Vec<_>>() {
        return fail(format!("progress calls {progress:?}"));
    }
    if res.stats.len() != case.views.len() {
        return fail(format!("{} stats for {} views", res.stats.len(), case.views.len()));
    }
    let mut c = entities.num_columns();
    for (vi, v) in case.views.iter().enumerate() {
        let want = oracle(&case.frame, v);
        let matched = want.iter().filter(|w| w.is_some()).count() as u64;
        if res.stats[vi].rows_matched != matched {
            return fail(format!(
                "view {}: stats.rows_matched {} but the oracle matches {matched} rows",
                v.name, res.stats[vi].rows_matched
            ));
        }
        for (fi, f) in v.features.iter().enumerate() {
            let name = if case.full_feature_names {
                format!("{}__{}", v.shown_as, f.name)
            } else {
                f.name.clone()
            };
            if out.schema().field(c).name() != &name {
                return fail(format!(
                    "column {c} is named {} instead of {name}",
                    out.schema().field(c).name()
                ));
            }
            let col = out.column(c);
            for (row, w) in want.iter().enumerate() {
                let expected = w.map_or(Val::Null, |ri| v.rows[ri].values[fi].clone());
                let got = match cell(col.as_ref(), row) {
                    Ok(g) => g,
                    Err(e) => return fail(format!("column {name}, row {row}: {e}")),
                };
                if got != expected {
                    return fail(format!(
                        "view {} feature {} (column {name}), frame row {row}: got {got:?}, expected {expected:?} (from source row {w:?})",
                        v.name, f.name
                    ));
                }
            }
            c += 1;
        }
    }
    let pruned = res.stats.iter().any(|s| s.row_groups_scanned < s.row_groups_total);
    Ok(pruned)
}

fn run_group(group: u64, cases: u64) {
    if let Ok(s) = std::env::var("HISTORICAL_ORACLE_SEED") {
        let s = s.trim();
        let seed = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        };
        if group == 0
            && let Err(e) = run_case(seed)
        {
            panic!("{e}");
        }
        return;
    }
    let mut failures = Vec::new();
    let mut pruned = 0;
    for case in 0..cases {
        let seed = mix(BASE_SEED ^ (group << 32) ^ case);
        match run_case(seed) {
            Ok(p) => pruned += u64::from(p),
            Err(e) => failures.push(format!("case {case} of group {group}: {e}")),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {cases} cases disagree with the oracle; first ones:\n\n{}",
            failures.len(),
            failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n\n")
        );
    }
    // Row-group pruning by timestamp statistics is exercised, not just allowed.
    assert!(
        pruned >= cases / 20,
        "only {pruned} of {cases} cases pruned a row group"
    );
    eprintln!("group {group}: {cases} cases, {pruned} with pruned row groups");
}

const CASES_PER_GROUP: u64 = 800;

#[test]
fn oracle_group_0() {
    run_group(0, CASES_PER_GROUP);
}

#[test]
fn oracle_group_1() {
    run_group(1, CASES_PER_GROUP);
}

#[test]
fn oracle_group_2() {
    run_group(2, CASES_PER_GROUP);
}

#[test]
fn oracle_group_3() {
    run_group(3, CASES_PER_GROUP);
}

/// Sanity of the generator: the cases do exercise what they are meant to.
#[test]
fn generator_covers_the_interesting_situations() {
    let mut seen = BTreeMap::<&str, u32>::new();
    for case in 0..400u64 {
        let c = gen_case(mix(BASE_SEED ^ (7 << 32) ^ case));
        let mut hit = |k: &'static str, b: bool| {
            if b {
                *seen.entry(k).or_default() += 1;
            }
        };
        for v in &c.views {
            hit("entityless", v.shape == Shape::Entityless);
            hit("composite", v.shape == Shape::Composite);
            hit("directory", v.parts.is_some());
            hit("ttl0", v.ttl_ns == 0);
            hit("created", v.created.is_some());
            hit("mapped ts", v.ts_col != v.ts_field);
            hit("mapped key", v.keys.iter().any(|k| k.src_col != k.name));
            hit("join key map", v.keys.iter().any(|k| k.frame_col != k.name));
            hit("alias", v.shown_as != v.name);
            hit("small row groups", v.row_group_rows < 4 && v.rows.len() > 4);
            let want = oracle(&c.frame, v);
            for (i, w) in want.iter().enumerate() {
                let t = c.frame.ts_ns[i];
                hit("no match", w.is_none());
                if let Some(ri) = w {
                    let row = &v.rows[*ri];
                    hit("ttl boundary", v.ttl_ns > 0 && row.ts == Some(t - v.ttl_ns));
                    hit("null value", row.values.contains(&Val::Null));
                    let ties = v.rows.iter().filter(|r| r.ts == row.ts && r.keys == row.keys).count();
                    hit("event tie", ties > 1);
                    hit("event tie, created", ties > 1 && v.created.is_some());
                }
            }
        }
        hit(
            "int32 frame key",
            c.frame.key_cols.iter().any(|k| k.dtype == DataType::Int32),
        );
        hit("text ts", matches!(c.frame.ts_type, FrameTs::Text(_)));
        hit("inferred ts", c.frame.ts_name != "event_timestamp");
        hit(
            "null frame key",
            c.frame.key_cols.iter().any(|k| k.values.iter().any(Option::is_none)),
        );
    }
    for k in [
        "entityless",
        "composite",
        "directory",
        "ttl0",
        "created",
        "mapped ts",
        "mapped key",
        "join key map",
        "alias",
        "small row groups",
        "no match",
        "ttl boundary",
        "null value",
        "event tie",
        "event tie, created",
        "int32 frame key",
        "text ts",
        "inferred ts",
        "null frame key",
    ] {
        assert!(
            seen.get(k).copied().unwrap_or(0) >= 5,
            "situation {k:?} is rare: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Focused tests

fn write_simple(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new(
            "event_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("trips", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            ts_array(
                TimeUnit::Microsecond,
                Some("UTC"),
                &[Some(BASE_NS), Some(BASE_NS + 10 * NS), Some(BASE_NS + 5 * NS)],
            ),
            Arc::new(Int64Array::from(vec![10, 11, 20])),
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn simple_view(name: &str, path: &Path, features: &[&str]) -> HistoricalView {
    HistoricalView {
        name: name.to_string(),
        shown_as: name.to_string(),
        source: SourceSpec {
            name: format!("{name}_source"),
            location: SourceLocation::Parquet(path.to_path_buf()),
            timestamp_field: "event_ts".into(),
            created_timestamp_column: None,
            field_mapping: BTreeMap::new(),
        },
        join_keys: vec![HistoricalJoinKey {
            name: "driver_id".into(),
            column: "driver_id".into(),
            value_type: FeatureType::INT64,
        }],
        features: features.iter().map(|f| (f.to_string(), FeatureType::INT64)).collect(),
        ttl_ns: 0,
    }
}

fn frame(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn ts_col(secs: &[i64]) -> ArrayRef {
    let v: Vec<Option<i64>> = secs.iter().map(|s| Some(BASE_NS + s * NS)).collect();
    ts_array(TimeUnit::Nanosecond, Some("UTC"), &v)
}

fn run(entities: &RecordBatch, views: Vec<HistoricalView>, full: bool) -> Result<RecordBatch, OfflineError> {
    let req = HistoricalRequest {
        views,
        full_feature_names: full,
    };
    get_historical_features(entities, &req, &mut |_| {}).map(|r| r.batch)
}

fn trips(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

#[test]
fn frame_without_any_timestamp_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    let f = frame(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("note", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
    ]);
    let err = run(&f, vec![simple_view("v", &p, &["trips"])], false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::EntityFrame { .. }), "{err:?}");
    assert!(msg.contains("event_timestamp"), "{msg}");
    assert!(
        msg.contains("driver_id") && msg.contains("note"),
        "lists the columns: {msg}"
    );
}

#[test]
fn missing_join_key_column_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    let f = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("rider", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ]);
    let err = run(&f, vec![simple_view("v", &p, &["trips"])], false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::EntityFrame { .. }), "{err:?}");
    assert!(msg.contains("driver_id") && msg.contains("rider"), "{msg}");

    // Under a join-key map the message names the mapped column.
    let mut v = simple_view("v", &p, &["trips"]);
    v.join_keys[0].column = "driver".into();
    let err = run(&f, vec![v], false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("driver") && msg.contains("driver_id"), "{msg}");
}

#[test]
fn string_frame_column_for_an_int64_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    let f = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("driver_id", Arc::new(StringArray::from(vec!["1"])) as ArrayRef),
    ]);
    let err = run(&f, vec![simple_view("v", &p, &["trips"])], false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OfflineError::EntityFrame { .. }), "{err:?}");
    assert!(
        msg.contains("driver_id") && msg.contains("Utf8") && msg.contains("Int64"),
        "{msg}"
    );
}

#[test]
fn unknown_source_column_is_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    let f = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ]);
    let err = run(&f, vec![simple_view("v", &p, &["trips", "nope"])], false).unwrap_err();
    match &err {
        OfflineError::MissingColumn { column, available, .. } => {
            assert_eq!(column, "nope");
            assert!(available.contains("trips"), "{err}");
        }
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    // Through a field mapping: the missing source column is named.
    let mut v = simple_view("v", &p, &["trips"]);
    v.source.field_mapping.insert("trips_src".into(), "trips".into());
    let err = run(&f, vec![v], false).unwrap_err();
    assert!(
        matches!(&err, OfflineError::MissingColumn { column, .. } if column == "trips_src"),
        "{err:?}"
    );
    // A missing timestamp column, too.
    let mut v = simple_view("v", &p, &["trips"]);
    v.source.timestamp_field = "when".into();
    let err = run(&f, vec![v], false).unwrap_err();
    assert!(
        matches!(&err, OfflineError::MissingColumn { column, .. } if column == "when"),
        "{err:?}"
    );
}

#[test]
fn unreadable_file_is_a_parquet_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.parquet");
    std::fs::write(&p, b"this is not a parquet file at all").unwrap();
    let f = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ]);
    let err = run(&f, vec![simple_view("v", &p, &["trips"])], false).unwrap_err();
    assert!(
        matches!(&err, OfflineError::Parquet { path, .. } if path == &p),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad.parquet"), "{err}");
    // A missing path is an I/O error naming it.
    let missing = dir.path().join("nowhere.parquet");
    let err = run(&f, vec![simple_view("v", &missing, &["trips"])], false).unwrap_err();
    assert!(
        matches!(&err, OfflineError::Io { path, .. } if path == &missing),
        "{err:?}"
    );
}

#[test]
fn feature_name_collision_without_full_names_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    let f = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ]);
    let views = || vec![simple_view("a", &p, &["trips"]), simple_view("b", &p, &["trips"])];
    let err = run(&f, views(), false).unwrap_err();
    assert!(matches!(err, OfflineError::InvalidRequest { .. }), "{err:?}");
    assert!(err.to_string().contains("trips"), "{err}");
    // Full names resolve it.
    let b = run(&f, views(), true).unwrap();
    assert_eq!(trips(&b, "a__trips"), vec![Some(11)]);
    assert_eq!(trips(&b, "b__trips"), vec![Some(11)]);
    // A feature named like a frame column collides too.
    let f2 = frame(vec![
        ("event_timestamp", ts_col(&[20])),
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("trips", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
    ]);
    let err = run(&f2, vec![simple_view("a", &p, &["trips"])], false).unwrap_err();
    assert!(err.to_string().contains("trips"), "{err}");
}

#[test]
fn string_event_timestamps_are_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.parquet");
    write_simple(&p);
    // Driver 1 has rows at +0 s (10) and +10 s (11); driver 2 at +5 s (20).
    let f = frame(vec![
        (
            "driver_id",
            Arc::new(Int32Array::from(vec![1, 1, 1, 2, 2, 1, 1])) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(StringArray::from(vec![
                "2024-01-01T00:00:09Z",
                "2024-01-01T00:00:10.000000000Z",
                "2024-01-01T02:00:10+02:00",
                "2024-01-01T00:00:04.999999999+00:00",
                "2024-01-01T00:00:05",
                "2023-12-31T23:59:59Z",
                "2024-01-01T00:00:09.999999999Z",
            ])) as ArrayRef,
        ),
    ]);
    let b = run(&f, vec![simple_view("v", &p, &["trips"])], false).unwrap();
    assert_eq!(
        trips(&b, "trips"),
        vec![Some(10), Some(11), Some(11), None, Some(20), None, Some(10)]
    );
    // The frame's columns come first, unchanged.
    assert_eq!(b.column(0).as_ref(), f.column(0).as_ref());
    assert_eq!(b.column(1).as_ref(), f.column(1).as_ref());

    // An unparseable string is a clear error, not a panic.
    let bad = frame(vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        (
            "event_timestamp",
            Arc::new(StringArray::from(vec!["yesterday"])) as ArrayRef,
        ),
    ]);
    let err = run(&bad, vec![simple_view("v", &p, &["trips"])], false).unwrap_err();
    assert!(matches!(err, OfflineError::EntityFrame { .. }), "{err:?}");
    assert!(err.to_string().contains("event_timestamp"), "{err}");
}
