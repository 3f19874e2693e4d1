//! Appending rows to an offline source: push to the offline store (the
//! feature server's `/push` with `to: offline` / `online_and_offline`), and
//! the Arrow Flight `offline_write_batch` later.
//!
//! [`write_batch`] takes an Arrow [`RecordBatch`] whose columns carry Feast
//! names (join keys, features, the timestamp field, the created column) and
//! renames them to the source's columns through the reverse field mapping
//! ([`SourceSpec::source_column`]). Then, by source:
//!
//! - **Parquet directory**: a new file per batch. It is written under a
//!   hidden temporary name in the directory (readers skip names starting
//!   with `.`), fsynced, renamed to `part-<UTC time>-<uuid>.parquet` and the
//!   directory fsynced: a reader sees the whole file or none of it, also
//!   after a crash. Many writers (threads or processes) may push at once.
//! - **Parquet file**: rewritten as Feast's file offline store does (the
//!   old rows, then the new ones), but crash-safe: the combined file is
//!   written beside the original under a hidden temporary name, fsynced and
//!   renamed over it, so the file is always either the old or the new
//!   content. Writers to one path in this process take turns (a lock per
//!   path); two *processes* pushing to one single-file source may lose
//!   rows (the later rename wins), so use a directory source for that.
//! - **PostgreSQL table**: `INSERT`s of all rows in one transaction (all or
//!   nothing). A query source cannot be written to.
//!
//! Column types: for Parquet, the rows must fit the existing files' schema
//! (the last file in path order for a directory): every column of the file
//! must be in the batch, every batch column in the file, and each column is
//! cast to the file's type (integers to wider or narrower integers and to
//! floats, floats to floats, timestamps between units and time zones, text
//! to timestamps, lists element-wise). A value that does not fit (an
//! overflow, a text that is no timestamp) is an error naming its row;
//! nothing is written then. A source without files yet takes the batch's
//! types. For PostgreSQL, the batch columns must exist in the table and are
//! cast the same way to the columns' types; table columns the batch lacks
//! get their defaults.
//!
//! A path that does not exist yet is a single-file source when it ends in
//! `.parquet`, else a directory (created).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder, TimestampNanosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
    TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use larder_model::types::FeatureType;
use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::parquet_read::list_files;
use crate::{OfflineError, SourceLocation, SourceSpec};

/// What one write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows appended.
    pub rows: usize,
    /// The Parquet file written (the new part file of a directory, or the
    /// rewritten single file); `None` for PostgreSQL and for an empty batch.
    pub path: Option<PathBuf>,
}

/// The Arrow type Larder writes for a declared feature type when the
/// source has no file to take types from; `None` for types it cannot
/// write (maps, sets, structs). Text-like types (JSON, UUID, decimal) are
/// strings, `UnixTimestamp` a UTC timestamp in microseconds.
pub fn arrow_type(t: FeatureType) -> Option<DataType> {
    let scalar = |n: i32| -> Option<DataType> {
        Some(match n {
            1 => DataType::Binary,
            2 | 32 | 36 | 37 | 44 => DataType::Utf8,
            3 => DataType::Int32,
            4 => DataType::Int64,
            5 => DataType::Float64,
            6 => DataType::Float32,
            7 => DataType::Boolean,
            8 => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            _ => return None,
        })
    };
    let n = t.value_type();
    let elem = match n {
        11..=18 => n - 10,
        33 => 32,
        38 => 36,
        39 => 37,
        45 => 44,
        _ => return scalar(n),
    };
    Some(DataType::List(Arc::new(Field::new("item", scalar(elem)?, true))))
}

/// Feast `Value`s of declared type `t` as an Arrow array of
/// [`arrow_type`]`(t)`; an unset value is a null. `Err` says which value
/// does not have the type (its index) or that the type cannot be written.
pub fn values_to_array(t: FeatureType, values: &[Value]) -> Result<ArrayRef, String> {
    let bad = |i: usize, v: &Value| format!("value {i} ({v:?}) is not a {t}");
    macro_rules! scalars {
        ($builder:expr, $($pat:pat => $out:expr),+) => {{
            let mut b = $builder;
            for (i, v) in values.iter().enumerate() {
                match &v.val {
                    None => b.append_null(),
                    $(Some($pat) => b.append_value($out),)+
                    Some(_) => return Err(bad(i, v)),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        }};
    }
    macro_rules! lists {
        ($builder:expr, $($pat:pat => $items:expr),+) => {{
            let mut b = ListBuilder::new($builder);
            for (i, v) in values.iter().enumerate() {
                match &v.val {
                    None => b.append_null(),
                    $(Some($pat) => {
                        for x in $items {
                            b.values().append_value(x);
                        }
                        b.append(true);
                    })+
                    Some(_) => return Err(bad(i, v)),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        }};
    }
    let micros = |s: i64| {
        s.checked_mul(1_000_000)
            .ok_or_else(|| format!("timestamp {s} s is out of range"))
    };
    match t.value_type() {
        1 => scalars!(BinaryBuilder::new(), Val::BytesVal(x) => x),
        2 => scalars!(StringBuilder::new(), Val::StringVal(x) => x),
        32 => scalars!(StringBuilder::new(), Val::JsonVal(x) => x),
        36 => scalars!(StringBuilder::new(), Val::UuidVal(x) => x),
        37 => scalars!(StringBuilder::new(), Val::TimeUuidVal(x) => x),
        44 => scalars!(StringBuilder::new(), Val::DecimalVal(x) => x),
        3 => scalars!(Int32Builder::new(), Val::Int32Val(x) => *x),
        4 => scalars!(Int64Builder::new(), Val::Int64Val(x) => *x),
        5 => scalars!(Float64Builder::new(), Val::DoubleVal(x) => *x),
        6 => scalars!(Float32Builder::new(), Val::FloatVal(x) => *x),
        7 => scalars!(BooleanBuilder::new(), Val::BoolVal(x) => *x),
        8 => scalars!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            Val::UnixTimestampVal(x) => micros(*x)?
        ),
        11 => lists!(BinaryBuilder::new(), Val::BytesListVal(l) => &l.val),
        12 => lists!(StringBuilder::new(), Val::StringListVal(l) => &l.val),
        33 => lists!(StringBuilder::new(), Val::JsonListVal(l) => &l.val),
        38 => lists!(StringBuilder::new(), Val::UuidListVal(l) => &l.val),
        39 => lists!(StringBuilder::new(), Val::TimeUuidListVal(l) => &l.val),
        45 => lists!(StringBuilder::new(), Val::DecimalListVal(l) => &l.val),
        13 => lists!(Int32Builder::new(), Val::Int32ListVal(l) => l.val.iter().copied()),
        14 => lists!(Int64Builder::new(), Val::Int64ListVal(l) => l.val.iter().copied()),
        15 => lists!(Float64Builder::new(), Val::DoubleListVal(l) => l.val.iter().copied()),
        16 => lists!(Float32Builder::new(), Val::FloatListVal(l) => l.val.iter().copied()),
        17 => lists!(BooleanBuilder::new(), Val::BoolListVal(l) => l.val.iter().copied()),
        18 => lists!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            Val::UnixTimestampListVal(l) => l.val.iter().map(|s| micros(*s)).collect::<Result<Vec<_>, _>>()?
        ),
        _ => Err(format!("values of type {t} cannot be written to an offline source")),
    }
}

/// Event or created timestamps (nanoseconds since the epoch; `None` is a
/// null) as a UTC nanosecond timestamp array.
pub fn timestamps_to_array(nanos: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(nanos.to_vec()).with_timezone("UTC"))
}

/// Append `batch` (columns named as in Feast) to `source`; see the module
/// documentation. Parquet work runs on a blocking thread when called inside
/// a Tokio runtime.
pub async fn write_batch(source: &SourceSpec, batch: RecordBatch) -> Result<WriteOutcome, OfflineError> {
    match &source.location {
        SourceLocation::Parquet(_) => {
            let source = source.clone();
            let name = source.name.clone();
            tokio::task::spawn_blocking(move || write_parquet_blocking(&source, &batch))
                .await
                .map_err(|e| OfflineError::ReaderFailed {
                    source_name: name,
                    message: format!("writer stopped: {e}"),
                })?
        }
        SourceLocation::Postgres { .. } => write_postgres(source, &batch).await,
    }
}

/// Check, without writing, that `batch` can be appended to `source`: the
/// field mapping, and for Parquet the existing files' columns and types
/// (each value's fit included); for PostgreSQL only that the source is a
/// table with quotable names (its columns are checked by the write, which
/// is all or nothing anyway). Lets a caller writing to several stores
/// refuse bad rows before writing anywhere.
pub fn check_batch(source: &SourceSpec, batch: &RecordBatch) -> Result<(), OfflineError> {
    let batch = to_source_names(source, batch)?;
    match &source.location {
        SourceLocation::Parquet(root) => {
            if let Some(path) = reference_file(root)? {
                conform(&batch, &parquet_schema(&path)?, &format!("file {}", path.display()))?;
            }
            Ok(())
        }
        SourceLocation::Postgres { table, .. } => {
            let invalid = |message: String| OfflineError::UnsupportedSource {
                source_name: source.name.clone(),
                message,
            };
            let Some(table) = table else {
                return Err(invalid(QUERY_SOURCE.into()));
            };
            for name in table
                .split('.')
                .chain(batch.schema().fields().iter().map(|f| f.name().as_str()))
            {
                crate::postgres::quote_ident(name).map_err(&invalid)?;
            }
            Ok(())
        }
    }
}

/// The file whose schema new rows must match: the source file, or the
/// last file of a directory in path order; `None` before the first write.
fn reference_file(root: &Path) -> Result<Option<std::path::PathBuf>, OfflineError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => match list_files(root) {
            Ok(files) => Ok(files.last().cloned()),
            Err(OfflineError::NoParquetFiles { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        Ok(_) => Ok(Some(root.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OfflineError::Io {
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// The columns (source names) and Arrow types rows written to `source`
/// must have: a Parquet source's schema (`None` before its first file).
/// PostgreSQL sources are not described here.
pub fn parquet_source_schema(source: &SourceSpec) -> Result<Option<SchemaRef>, OfflineError> {
    let SourceLocation::Parquet(root) = &source.location else {
        return Err(OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: "only Parquet sources describe their columns here".into(),
        });
    };
    reference_file(root)?.map(|p| parquet_schema(&p)).transpose()
}

const QUERY_SOURCE: &str = "a PostgreSQL query source cannot be written to; pushing to the offline store needs a table";

/// [`write_batch`] for Parquet sources, in the calling thread.
pub fn write_parquet_blocking(source: &SourceSpec, batch: &RecordBatch) -> Result<WriteOutcome, OfflineError> {
    let SourceLocation::Parquet(root) = &source.location else {
        return Err(OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: "not a Parquet source".into(),
        });
    };
    let batch = to_source_names(source, batch)?;
    if batch.num_rows() == 0 {
        return Ok(WriteOutcome { rows: 0, path: None });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OfflineError::Io { path, source }
    };
    let is_dir = match std::fs::metadata(root) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = root.extension().is_some_and(|x| x.eq_ignore_ascii_case("parquet"));
            if !file {
                std::fs::create_dir_all(root).map_err(io(root))?;
            }
            !file
        }
        Err(e) => return Err(io(root)(e)),
    };
    if is_dir {
        write_part_file(root, &batch)
    } else {
        rewrite_single_file(root, &batch)
    }
}

/// Rename the batch's columns to the source's through the reverse field
/// mapping.
fn to_source_names(source: &SourceSpec, batch: &RecordBatch) -> Result<RecordBatch, OfflineError> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    for f in batch.schema().fields() {
        let column = source.source_column(f.name()).to_string();
        if fields.iter().any(|g: &Field| g.name() == &column) {
            return Err(OfflineError::UnsupportedSource {
                source_name: source.name.clone(),
                message: format!(
                    "two written columns map to source column {column:?} (check the source's field_mapping)"
                ),
            });
        }
        fields.push(f.as_ref().clone().with_name(column));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), batch.columns().to_vec()).map_err(|e| {
        OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: format!("the rows to write are not a valid table: {e}"),
        }
    })
}

/// Whether Larder converts a column of type `from` to a column of type
/// `to` when appending (values that do not fit are refused per row).
fn castable(from: &DataType, to: &DataType) -> bool {
    use DataType as D;
    let int = |d: &D| {
        matches!(
            d,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64
        )
    };
    let float = |d: &D| matches!(d, D::Float16 | D::Float32 | D::Float64);
    let text = |d: &D| matches!(d, D::Utf8 | D::LargeUtf8 | D::Utf8View);
    let binary = |d: &D| matches!(d, D::Binary | D::LargeBinary | D::BinaryView);
    let time = |d: &D| matches!(d, D::Timestamp(..) | D::Date32 | D::Date64);
    if from == to || matches!(from, D::Null) {
        return true;
    }
    match (from, to) {
        (_, D::Dictionary(_, v)) => castable(from, v),
        (D::Dictionary(_, v), _) => castable(v, to),
        (f, t) if int(f) => int(t) || float(t),
        (f, t) if float(f) => float(t),
        (f, t) if text(f) => text(t) || time(t) || matches!(t, D::Decimal128(..) | D::Decimal256(..)),
        (f, t) if binary(f) => binary(t),
        (D::Timestamp(..), D::Timestamp(..)) | (D::Date32 | D::Date64, D::Timestamp(..) | D::Date32 | D::Date64) => {
            true
        }
        (D::Decimal128(..) | D::Decimal256(..), D::Decimal128(..) | D::Decimal256(..)) => true,
        (
            D::List(a) | D::LargeList(a) | D::FixedSizeList(a, _),
            D::List(b) | D::LargeList(b) | D::FixedSizeList(b, _),
        ) => !matches!(to, D::FixedSizeList(..)) && castable(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// `array` (column `column` of the written rows) converted to `to`.
fn convert_column(array: &ArrayRef, to: &DataType, column: &str, location: &str) -> Result<ArrayRef, OfflineError> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    if !castable(array.data_type(), to) {
        return Err(OfflineError::WrongType {
            column: column.to_string(),
            location: format!("the rows written to {location}"),
            actual: array.data_type().to_string(),
            expected: format!("{to} (the column's type in {location})"),
        });
    }
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    let out = cast_with_options(array, to, &opts).map_err(|e| OfflineError::WrongType {
        column: column.to_string(),
        location: format!("the rows written to {location}"),
        actual: array.data_type().to_string(),
        expected: format!("{to} ({e})"),
    })?;
    // A safe cast turns a value that does not fit into a null: refuse it.
    if out.null_count() > array.null_count()
        && let Some(row) = (0..array.len()).find(|&i| array.is_valid(i) && out.is_null(i))
    {
        return Err(OfflineError::BadValue {
            column: column.to_string(),
            location: format!("the rows written to {location}"),
            row: row as u64,
            message: format!("the value does not fit the column's type {to}"),
        });
    }
    Ok(out)
}

/// The batch with `schema`'s columns, in its order and types.
fn conform(batch: &RecordBatch, schema: &SchemaRef, location: &str) -> Result<RecordBatch, OfflineError> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let have = batch.schema();
    if let Some(extra) = have.fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
        return Err(OfflineError::MissingColumn {
            column: extra.name().clone(),
            location: location.to_string(),
            available: names(schema),
        });
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let Ok(i) = have.index_of(f.name()) else {
            return Err(OfflineError::MissingColumn {
                column: f.name().clone(),
                location: format!("the rows written to {location}"),
                available: names(&have),
            });
        };
        let a = convert_column(batch.column(i), f.data_type(), f.name(), location)?;
        if !f.is_nullable()
            && let Some(row) = (0..a.len()).find(|&r| a.is_null(r))
        {
            return Err(OfflineError::BadValue {
                column: f.name().clone(),
                location: format!("the rows written to {location}"),
                row: row as u64,
                message: "null in a column the file declares non-nullable".into(),
            });
        }
        columns.push(a);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| OfflineError::Parquet {
        path: PathBuf::from(location),
        message: e.to_string(),
    })
}

fn parquet_schema(path: &Path) -> Result<SchemaRef, OfflineError> {
    let file = File::open(path).map_err(|source| OfflineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| OfflineError::parquet(path, e))?;
    Ok(b.schema().clone())
}

fn writer_props() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::SNAPPY).build()
}

/// Write a file at `temp` (created new), fill it, fsync it. The temp file is
/// removed when anything fails.
fn write_temp(
    temp: &Path,
    schema: SchemaRef,
    fill: &mut dyn FnMut(&mut ArrowWriter<File>) -> Result<(), OfflineError>,
) -> Result<(), OfflineError> {
    let run = || -> Result<(), OfflineError> {
        let io = |source| OfflineError::Io {
            path: temp.to_path_buf(),
            source,
        };
        let file = File::options().write(true).create_new(true).open(temp).map_err(io)?;
        let mut w =
            ArrowWriter::try_new(file, schema, Some(writer_props())).map_err(|e| OfflineError::parquet(temp, e))?;
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| OfflineError::parquet(temp, e))?;
        file.sync_all().map_err(io)?;
        Ok(())
    };
    let r = run();
    if r.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    r
}

/// Rename `from` to `to` and fsync the directory holding both.
fn publish(from: &Path, to: &Path) -> Result<(), OfflineError> {
    if let Err(source) = std::fs::rename(from, to) {
        let _ = std::fs::remove_file(from);
        return Err(OfflineError::Io {
            path: to.to_path_buf(),
            source,
        });
    }
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| OfflineError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn write_part_file(dir: &Path, batch: &RecordBatch) -> Result<WriteOutcome, OfflineError> {
    let (batch, schema) = match list_files(dir) {
        Ok(files) => {
            // The newest part file sorts last; its schema is the reference.
            let reference = files.last().cloned().unwrap_or_default();
            let schema = parquet_schema(&reference)?;
            let location = format!("file {}", reference.display());
            (conform(batch, &schema, &location)?, schema)
        }
        Err(OfflineError::NoParquetFiles { .. }) => (batch.clone(), batch.schema()),
        Err(e) => return Err(e),
    };
    let id = uuid::Uuid::new_v4();
    let temp = dir.join(format!(".tmp-{id}.parquet"));
    write_temp(&temp, schema, &mut |w| {
        w.write(&batch).map_err(|e| OfflineError::parquet(&temp, e))
    })?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ");
    let path = dir.join(format!("part-{stamp}-{id}.parquet"));
    publish(&temp, &path)?;
    Ok(WriteOutcome {
        rows: batch.num_rows(),
        path: Some(path),
    })
}

/// One lock per single-file source path: writers in this process take turns.
fn path_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

fn rewrite_single_file(path: &Path, batch: &RecordBatch) -> Result<WriteOutcome, OfflineError> {
    let lock = path_lock(path);
    let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let exists = path.exists();
    let (batch, schema) = if exists {
        let schema = parquet_schema(path)?;
        (conform(batch, &schema, &format!("file {}", path.display()))?, schema)
    } else {
        (batch.clone(), batch.schema())
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4()));
    write_temp(&temp, schema, &mut |w| {
        if exists {
            let file = File::open(path).map_err(|source| OfflineError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| OfflineError::parquet(path, e))?;
            for old in reader {
                let old = old.map_err(|e| OfflineError::parquet(path, e))?;
                w.write(&old).map_err(|e| OfflineError::parquet(&temp, e))?;
            }
        }
        w.write(&batch).map_err(|e| OfflineError::parquet(&temp, e))
    })?;
    publish(&temp, path)?;
    Ok(WriteOutcome {
        rows: batch.num_rows(),
        path: Some(path.to_path_buf()),
    })
}

// ---------------------------------------------------------------- PostgreSQL

/// One column's values, typed for its PostgreSQL column.
enum PgValues {
    Bool(Vec<Option<bool>>),
    I16(Vec<Option<i16>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Bytea(Vec<Option<Vec<u8>>>),
    Tstz(Vec<Option<chrono::DateTime<chrono::Utc>>>),
    Ts(Vec<Option<chrono::NaiveDateTime>>),
    Date(Vec<Option<chrono::NaiveDate>>),
    BoolArr(Vec<Option<Vec<bool>>>),
    I32Arr(Vec<Option<Vec<i32>>>),
    I64Arr(Vec<Option<Vec<i64>>>),
    F32Arr(Vec<Option<Vec<f32>>>),
    F64Arr(Vec<Option<Vec<f64>>>),
    TextArr(Vec<Option<Vec<String>>>),
}

/// The Arrow type a PostgreSQL column type is filled from.
fn pg_arrow_type(pg: &str) -> Option<DataType> {
    let list = |d: DataType| DataType::List(Arc::new(Field::new("item", d, true)));
    Some(match pg {
        "BOOL" => DataType::Boolean,
        "INT2" => DataType::Int16,
        "INT4" => DataType::Int32,
        "INT8" => DataType::Int64,
        "FLOAT4" => DataType::Float32,
        "FLOAT8" => DataType::Float64,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => DataType::Utf8,
        "BYTEA" => DataType::Binary,
        "TIMESTAMPTZ" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "DATE" => DataType::Date32,
        "BOOL[]" => list(DataType::Boolean),
        "INT4[]" => list(DataType::Int32),
        "INT8[]" => list(DataType::Int64),
        "FLOAT4[]" => list(DataType::Float32),
        "FLOAT8[]" => list(DataType::Float64),
        "TEXT[]" | "VARCHAR[]" => list(DataType::Utf8),
        _ => return None,
    })
}

fn pg_values(a: &ArrayRef, pg: &str) -> Result<PgValues, String> {
    fn opt<T>(a: &dyn Array, i: usize, f: impl FnOnce() -> T) -> Option<T> {
        a.is_valid(i).then(f)
    }
    fn list<T>(
        a: &ArrayRef,
        elem: impl Fn(&ArrayRef) -> Result<Vec<T>, String>,
    ) -> Result<Vec<Option<Vec<T>>>, String> {
        let l = a.as_list::<i32>();
        (0..l.len())
            .map(|i| {
                if l.is_null(i) {
                    return Ok(None);
                }
                let v = l.value(i);
                if v.null_count() > 0 {
                    return Err(format!("row {i}: a list holds a null element"));
                }
                elem(&v).map(Some)
            })
            .collect()
    }
    let n = a.len();
    Ok(match pg {
        "BOOL" => {
            let x = a.as_boolean();
            PgValues::Bool((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "INT2" => {
            let x = a.as_primitive::<Int16Type>();
            PgValues::I16((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "INT4" => {
            let x = a.as_primitive::<Int32Type>();
            PgValues::I32((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "INT8" => {
            let x = a.as_primitive::<Int64Type>();
            PgValues::I64((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "FLOAT4" => {
            let x = a.as_primitive::<Float32Type>();
            PgValues::F32((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "FLOAT8" => {
            let x = a.as_primitive::<Float64Type>();
            PgValues::F64((0..n).map(|i| opt(x, i, || x.value(i))).collect())
        }
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            let x = a.as_string::<i32>();
            PgValues::Text((0..n).map(|i| opt(x, i, || x.value(i).to_string())).collect())
        }
        "BYTEA" => {
            let x = a.as_binary::<i32>();
            PgValues::Bytea((0..n).map(|i| opt(x, i, || x.value(i).to_vec())).collect())
        }
        "TIMESTAMPTZ" | "TIMESTAMP" => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match x.is_valid(i) {
                    true => Some(
                        chrono::DateTime::from_timestamp_micros(x.value(i))
                            .ok_or_else(|| format!("row {i}: timestamp out of range"))?,
                    ),
                    false => None,
                });
            }
            if pg == "TIMESTAMP" {
                PgValues::Ts(out.into_iter().map(|d| d.map(|d| d.naive_utc())).collect())
            } else {
                PgValues::Tstz(out)
            }
        }
        "DATE" => {
            let x = a.as_primitive::<Date32Type>();
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match x.is_valid(i) {
                    true => Some(
                        epoch
                            .checked_add_signed(chrono::TimeDelta::days(i64::from(x.value(i))))
                            .ok_or_else(|| format!("row {i}: date out of range"))?,
                    ),
                    false => None,
                });
            }
            PgValues::Date(out)
        }
        "BOOL[]" => PgValues::BoolArr(list(a, |v| Ok(v.as_boolean().iter().flatten().collect()))?),
        "INT4[]" => PgValues::I32Arr(list(a, |v| Ok(v.as_primitive::<Int32Type>().values().to_vec()))?),
        "INT8[]" => PgValues::I64Arr(list(a, |v| Ok(v.as_primitive::<Int64Type>().values().to_vec()))?),
        "FLOAT4[]" => PgValues::F32Arr(list(a, |v| Ok(v.as_primitive::<Float32Type>().values().to_vec()))?),
        "FLOAT8[]" => PgValues::F64Arr(list(a, |v| Ok(v.as_primitive::<Float64Type>().values().to_vec()))?),
        "TEXT[]" | "VARCHAR[]" => PgValues::TextArr(list(a, |v| {
            Ok(v.as_string::<i32>().iter().flatten().map(str::to_string).collect())
        })?),
        other => return Err(format!("PostgreSQL type {other} cannot be written")),
    })
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind<'q>(q: PgQuery<'q>, v: &PgValues, i: usize) -> PgQuery<'q> {
    match v {
        PgValues::Bool(x) => q.bind(x[i]),
        PgValues::I16(x) => q.bind(x[i]),
        PgValues::I32(x) => q.bind(x[i]),
        PgValues::I64(x) => q.bind(x[i]),
        PgValues::F32(x) => q.bind(x[i]),
        PgValues::F64(x) => q.bind(x[i]),
        PgValues::Text(x) => q.bind(x[i].clone()),
        PgValues::Bytea(x) => q.bind(x[i].clone()),
        PgValues::Tstz(x) => q.bind(x[i]),
        PgValues::Ts(x) => q.bind(x[i]),
        PgValues::Date(x) => q.bind(x[i]),
        PgValues::BoolArr(x) => q.bind(x[i].clone()),
        PgValues::I32Arr(x) => q.bind(x[i].clone()),
        PgValues::I64Arr(x) => q.bind(x[i].clone()),
        PgValues::F32Arr(x) => q.bind(x[i].clone()),
        PgValues::F64Arr(x) => q.bind(x[i].clone()),
        PgValues::TextArr(x) => q.bind(x[i].clone()),
    }
}

/// Most bind parameters in one statement (PostgreSQL's limit is 65,535).
const MAX_PARAMS: usize = 65_535;

async fn write_postgres(source: &SourceSpec, batch: &RecordBatch) -> Result<WriteOutcome, OfflineError> {
    use sqlx::{AssertSqlSafe, Column, Connection, Executor, SqlSafeStr, Statement, TypeInfo};

    let SourceLocation::Postgres { url, table, .. } = &source.location else {
        return Err(OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: "not a PostgreSQL source".into(),
        });
    };
    let Some(table) = table else {
        return Err(OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: QUERY_SOURCE.into(),
        });
    };
    let batch = to_source_names(source, batch)?;
    if batch.num_rows() == 0 || batch.num_columns() == 0 {
        return Ok(WriteOutcome { rows: 0, path: None });
    }
    let location = source.postgres_location();
    let pg_err = |message: String| OfflineError::Postgres {
        location: location.clone(),
        message: if url.is_empty() {
            message
        } else {
            message.replace(url.as_str(), "<url>")
        },
    };
    let invalid = |message: String| OfflineError::UnsupportedSource {
        source_name: source.name.clone(),
        message,
    };
    let table_q = table
        .split('.')
        .map(crate::postgres::quote_ident)
        .collect::<Result<Vec<_>, _>>()
        .map_err(&invalid)?
        .join(".");
    let schema = batch.schema();
    let cols_q = schema
        .fields()
        .iter()
        .map(|f| crate::postgres::quote_ident(f.name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&invalid)?;

    // TLS files checked, the password never in a message.
    let mut conn = crate::postgres::connect(url, &location).await?;
    let mut tx = conn.begin().await.map_err(|e| pg_err(e.to_string()))?;

    // The columns' types (and whether they exist) before any row is sent.
    let probe = format!("SELECT {} FROM {table_q} LIMIT 0", cols_q.join(", "));
    let stmt = (&mut *tx)
        .prepare(AssertSqlSafe(probe).into_sql_str())
        .await
        .map_err(|e| pg_err(e.to_string()))?;
    let mut values = Vec::with_capacity(cols_q.len());
    for (i, col) in stmt.columns().iter().enumerate() {
        let name = schema.field(i).name();
        let ty = col.type_info().name().to_string();
        let Some(dt) = pg_arrow_type(&ty) else {
            return Err(OfflineError::WrongType {
                column: name.clone(),
                location: location.clone(),
                actual: ty,
                expected: "a type Larder writes (BOOL, INT2/4/8, FLOAT4/8, TEXT, BYTEA, TIMESTAMPTZ, TIMESTAMP, DATE, or an array of BOOL, INT4/8, FLOAT4/8, TEXT)".into(),
            });
        };
        let a = convert_column(batch.column(i), &dt, name, &location)?;
        values.push(pg_values(&a, &ty).map_err(|message| OfflineError::BadValue {
            column: name.clone(),
            location: location.clone(),
            row: 0,
            message,
        })?);
    }

    let ncols = cols_q.len();
    let per_stmt = (MAX_PARAMS / ncols).max(1);
    let rows = batch.num_rows();
    let mut start = 0;
    while start < rows {
        let end = (start + per_stmt).min(rows);
        let mut sql = format!("INSERT INTO {table_q} ({}) VALUES ", cols_q.join(", "));
        let mut p = 1;
        for r in start..end {
            if r > start {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..ncols {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${p}"));
                p += 1;
            }
            sql.push(')');
        }
        let mut q: PgQuery<'_> = sqlx::query(AssertSqlSafe(sql));
        for r in start..end {
            for v in &values {
                q = bind(q, v, r);
            }
        }
        q.execute(&mut *tx).await.map_err(|e| pg_err(e.to_string()))?;
        start = end;
    }
    tx.commit().await.map_err(|e| pg_err(e.to_string()))?;
    Ok(WriteOutcome { rows, path: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_rules() {
        use DataType as D;
        let ts_us = D::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let ts_ns = D::Timestamp(TimeUnit::Nanosecond, None);
        assert!(castable(&D::Int64, &D::Int32));
        assert!(castable(&D::Int64, &D::Float64));
        assert!(!castable(&D::Float64, &D::Int64), "no silent truncation");
        assert!(castable(&ts_ns, &ts_us));
        assert!(castable(&D::Utf8, &ts_us));
        assert!(!castable(&D::Utf8, &D::Int64));
        assert!(!castable(&D::Boolean, &D::Int64));
        assert!(castable(&D::Null, &D::Boolean));
    }

    #[test]
    fn overflow_is_refused_with_its_row() {
        let a: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(1), None, Some(1 << 40)]));
        let e = convert_column(&a, &DataType::Int32, "x", "file f").unwrap_err();
        assert!(matches!(e, OfflineError::BadValue { row: 2, .. }), "{e}");
    }

    #[test]
    fn values_become_arrays() {
        let v = |val| Value { val: Some(val) };
        let a = values_to_array(FeatureType::INT64, &[v(Val::Int64Val(3)), Value::default()]).unwrap();
        assert_eq!(a.data_type(), &DataType::Int64);
        assert!(a.is_null(1));
        assert!(values_to_array(FeatureType::INT64, &[v(Val::StringVal("x".into()))]).is_err());
        let l = values_to_array(
            FeatureType::from_proto(14),
            &[v(Val::Int64ListVal(larder_protos::feast::types::Int64List {
                val: vec![1, 2],
            }))],
        )
        .unwrap();
        assert_eq!(l.as_list::<i32>().value(0).len(), 2);
        assert_eq!(Some(l.data_type().clone()), arrow_type(FeatureType::from_proto(14)));
    }
}
