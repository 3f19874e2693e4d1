//! Parquet sources: projected, row-group-pruned, streaming reads.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{ConvertedType, LogicalType, TimeUnit};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::arrow_col::{self, Col};
use crate::latest::{Emit, Latest};
use crate::spec::{DUMMY_ENTITY_ID, Plan};
use crate::target::{self, Target};
use crate::{OfflineError, ReadSpec, ReadStats, SourceLocation, SourceSpec};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;
/// Rows per decoded arrow batch (independent of the emitted batch size).
const DECODE_BATCH_ROWS: usize = 8192;

/// Read the latest row per entity key of a Parquet source in the calling
/// thread, handing finished batches to `emit` (which returns `false` to stop
/// early). Memory stays bounded: one decoded arrow batch of the projected
/// columns, at most `spec.dedup_capacity` keys, and what `emit` holds.
pub fn read_parquet_blocking(
    source: &SourceSpec,
    spec: &ReadSpec,
    emit: &mut dyn FnMut(larder_model::rows::RowBatch) -> bool,
) -> Result<ReadStats, OfflineError> {
    let SourceLocation::Parquet(root) = &source.location else {
        return Err(OfflineError::InvalidSpec {
            source_name: source.name.clone(),
            message: "not a Parquet source".into(),
        });
    };
    let plan = Plan::new(source, spec)?;
    let files = list_files(root)?;
    let mut latest = Latest::new(plan.feature_names.clone(), spec.dedup_capacity, spec.batch_rows);
    let mut stats = ReadStats::default();
    for path in &files {
        stats.files += 1;
        read_file(path, &plan, spec, &mut latest, emit, &mut stats)?;
        if latest.cancelled {
            break;
        }
    }
    latest.flush(emit);
    stats.rows_emitted = latest.rows_emitted;
    stats.batches_emitted = latest.batches_emitted;
    stats.dedup_flushes = latest.flushes;
    stats.cancelled = latest.cancelled;
    if stats.null_key_rows > 0 {
        tracing::warn!(
            source = %source.name,
            rows = stats.null_key_rows,
            "skipped rows whose join key is null"
        );
    }
    if stats.null_timestamp_rows > 0 {
        tracing::warn!(
            source = %source.name,
            rows = stats.null_timestamp_rows,
            "skipped rows whose event timestamp is null"
        );
    }
    tracing::debug!(source = %source.name, ?stats, "parquet read done");
    Ok(stats)
}

/// The Parquet files of a source: the file itself, or every `*.parquet`
/// below a directory (recursively, in path order; entries starting with
/// `.` or `_` are skipped, as Spark/pyarrow metadata files are).
pub(crate) fn list_files(root: &Path) -> Result<Vec<PathBuf>, OfflineError> {
    let io = |path: &Path, source| OfflineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(root).map_err(|e| io(root, e))?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| io(&path, e))?;
            if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
                dirs.push(path);
            } else if name.to_ascii_lowercase().ends_with(".parquet") {
                out.push(path);
            }
        }
    }
    if out.is_empty() {
        return Err(OfflineError::NoParquetFiles {
            path: root.to_path_buf(),
        });
    }
    out.sort();
    Ok(out)
}

pub(crate) fn location(path: &Path) -> String {
    format!("file {}", path.display())
}

pub(crate) fn available_columns(schema: &SchemaRef) -> String {
    const MAX: usize = 30;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut s = names.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

/// The leaf of top-level column `root` and its nanoseconds per stored unit,
/// when it is a timestamp/date whose statistics can prune row groups.
pub(crate) fn timestamp_leaf(md: &ParquetMetaData, root: usize) -> Option<(usize, i64)> {
    let ps = md.file_metadata().schema_descr();
    (0..ps.num_columns())
        .find(|&l| ps.get_column_root_idx(l) == root && ps.column(l).path().parts().len() == 1)
        .and_then(|l| stats_unit_ns(md, l).map(|u| (l, u)))
}

/// The non-empty row groups that may hold rows with `start <= time < end`
/// in top-level timestamp column `root` (all of them when its statistics
/// cannot tell).
pub(crate) fn row_groups_in_window(md: &ParquetMetaData, root: usize, start: i64, end: i64) -> Vec<usize> {
    let leaf = timestamp_leaf(md, root);
    (0..md.num_row_groups())
        .filter(|&g| md.row_group(g).num_rows() > 0 && row_group_may_match(md, g, leaf, start, end))
        .collect()
}

/// Nanoseconds per stored unit of a top-level timestamp/date leaf column,
/// from its Parquet logical (or converted) type; `None` when unknown (INT96,
/// nested), in which case no row group is pruned.
pub(crate) fn stats_unit_ns(md: &ParquetMetaData, leaf: usize) -> Option<i64> {
    let col = md.file_metadata().schema_descr().column(leaf);
    match col.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => Some(match t.unit {
            TimeUnit::MILLIS => 1_000_000,
            TimeUnit::MICROS => 1_000,
            TimeUnit::NANOS => 1,
        }),
        Some(LogicalType::Date) => Some(NS_PER_DAY),
        Some(_) => None,
        None => match col.converted_type() {
            ConvertedType::TIMESTAMP_MILLIS => Some(1_000_000),
            ConvertedType::TIMESTAMP_MICROS => Some(1_000),
            ConvertedType::DATE => Some(NS_PER_DAY),
            _ => None,
        },
    }
}

/// Whether row group `rg` may hold rows in `[start, end)` according to the
/// min/max statistics of the timestamp leaf column.
pub(crate) fn row_group_may_match(
    md: &ParquetMetaData,
    rg: usize,
    leaf: Option<(usize, i64)>,
    start: i64,
    end: i64,
) -> bool {
    let Some((leaf, unit)) = leaf else { return true };
    let (min, max) = match md.row_group(rg).column(leaf).statistics() {
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) => (*a, *b),
            _ => return true,
        },
        Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) => (i64::from(*a), i64::from(*b)),
            _ => return true,
        },
        _ => return true,
    };
    // Saturation keeps the comparisons right for values beyond i64 ns.
    let (min_ns, max_ns) = (min.saturating_mul(unit), max.saturating_mul(unit));
    !(max_ns < start || min_ns >= end)
}

/// How one join key is read from a file.
enum KeySrc {
    Column(String),
    /// The implicit `__dummy_id = ""` key.
    Empty,
}

fn read_file(
    path: &Path,
    plan: &Plan,
    spec: &ReadSpec,
    latest: &mut Latest,
    emit: Emit<'_>,
    stats: &mut ReadStats,
) -> Result<(), OfflineError> {
    let loc = location(path);
    let file = File::open(path).map_err(|e| OfflineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| OfflineError::parquet(path, e))?;
    let schema = builder.schema().clone();
    let md = builder.metadata().clone();

    // Resolve and type-check every needed column before reading anything.
    let mut roots: Vec<usize> = Vec::new();
    let mut need = |column: &str, ok: &dyn Fn(&DataType) -> bool, expected: &dyn Fn() -> String| {
        let Some(idx) = schema.fields().iter().position(|f| f.name() == column) else {
            return Err(OfflineError::MissingColumn {
                column: column.to_string(),
                location: loc.clone(),
                available: available_columns(&schema),
            });
        };
        let dt = schema.field(idx).data_type();
        if !ok(dt) {
            return Err(OfflineError::WrongType {
                column: column.to_string(),
                location: loc.clone(),
                actual: dt.to_string(),
                expected: expected(),
            });
        }
        roots.push(idx);
        Ok(idx)
    };
    let ts_expected = || "a timestamp (Timestamp or Date column)".to_string();
    let ts_idx = need(&plan.ts_col, &arrow_col::timestamp_compatible, &ts_expected)?;
    if let Some(c) = &plan.created_col {
        need(c, &arrow_col::timestamp_compatible, &ts_expected)?;
    }
    let mut key_srcs = Vec::with_capacity(plan.keys.len());
    for k in &plan.keys {
        let Some(col) = &k.column else {
            key_srcs.push(KeySrc::Empty);
            continue;
        };
        if k.name == DUMMY_ENTITY_ID && !schema.fields().iter().any(|f| f.name() == col) {
            key_srcs.push(KeySrc::Empty);
            continue;
        }
        let t = Target::Scalar(k.scalar);
        need(col, &|dt| arrow_col::compatible(t, dt), &|| {
            format!("join key type {}", k.declared)
        })?;
        key_srcs.push(KeySrc::Column(col.clone()));
    }
    for f in &plan.features {
        let t = f.target;
        need(&f.column, &|dt| arrow_col::compatible(t, dt), &|| {
            format!("feature type {}", f.declared)
        })?;
    }
    roots.sort_unstable();
    roots.dedup();

    // Row-group pruning on the timestamp column's statistics.
    let parquet_schema = builder.parquet_schema();
    let ts_leaf = timestamp_leaf(&md, ts_idx);
    let mut selected = Vec::new();
    let mut starts: Vec<(u64, u64)> = Vec::new(); // (first file row, rows) of each selected group
    let mut file_row = 0u64;
    for rg in 0..md.num_row_groups() {
        let rows = u64::try_from(md.row_group(rg).num_rows()).unwrap_or(0);
        stats.row_groups_total += 1;
        if rows > 0 && row_group_may_match(&md, rg, ts_leaf, spec.start_ns, spec.end_ns) {
            selected.push(rg);
            starts.push((file_row, rows));
            stats.row_groups_read += 1;
        }
        file_row += rows;
    }
    if selected.is_empty() {
        return Ok(());
    }
    let mask = ProjectionMask::roots(parquet_schema, roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_row_groups(selected)
        .with_batch_size(DECODE_BATCH_ROWS)
        .build()
        .map_err(|e| OfflineError::parquet(path, e))?;

    let file_row_of = |stream_pos: u64| -> u64 {
        let mut pos = stream_pos;
        for (start, rows) in &starts {
            if pos < *rows {
                return start + pos;
            }
            pos -= rows;
        }
        stream_pos
    };
    let mut stream_pos = 0u64;
    let mut key = Vec::with_capacity(64);
    for batch in reader {
        let batch = batch.map_err(|e| OfflineError::parquet(path, e))?;
        let n = batch.num_rows();
        stats.rows_read += n as u64;
        process_batch(
            &batch,
            plan,
            spec,
            &key_srcs,
            &loc,
            stream_pos,
            &file_row_of,
            &mut key,
            latest,
            emit,
            stats,
        )?;
        stream_pos += n as u64;
        if latest.cancelled {
            break;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn process_batch(
    batch: &RecordBatch,
    plan: &Plan,
    spec: &ReadSpec,
    key_srcs: &[KeySrc],
    loc: &str,
    stream_pos: u64,
    file_row_of: &dyn Fn(u64) -> u64,
    key: &mut Vec<u8>,
    latest: &mut Latest,
    emit: Emit<'_>,
    stats: &mut ReadStats,
) -> Result<(), OfflineError> {
    let schema = batch.schema();
    let array = |column: &str| -> Result<ArrayRef, OfflineError> {
        let internal = |message: String| OfflineError::BadValue {
            column: column.to_string(),
            location: loc.to_string(),
            row: file_row_of(stream_pos),
            message,
        };
        let idx = schema
            .index_of(column)
            .map_err(|_| internal("internal error: projected column missing from batch".into()))?;
        arrow_col::undictionary(batch.column(idx)).map_err(internal)
    };
    let wrap = |column: &str, message: String, i: usize| OfflineError::BadValue {
        column: column.to_string(),
        location: loc.to_string(),
        row: file_row_of(stream_pos + i as u64),
        message,
    };

    let ts_arr = array(&plan.ts_col)?;
    let created_arr = plan.created_col.as_deref().map(array).transpose()?;
    let mut key_arrs = Vec::with_capacity(key_srcs.len());
    for k in key_srcs {
        key_arrs.push(match k {
            KeySrc::Column(c) => Some(array(c)?),
            KeySrc::Empty => None,
        });
    }
    let feat_arrs = plan
        .features
        .iter()
        .map(|f| array(&f.column))
        .collect::<Result<Vec<_>, _>>()?;

    let ts = Col::new(ts_arr.as_ref()).map_err(|m| wrap(&plan.ts_col, m, 0))?;
    let created = match (&created_arr, &plan.created_col) {
        (Some(a), Some(c)) => Some(Col::new(a.as_ref()).map_err(|m| wrap(c, m, 0))?),
        _ => None,
    };
    let mut keys = Vec::with_capacity(key_arrs.len());
    for ((k, a), src) in plan.keys.iter().zip(&key_arrs).zip(key_srcs) {
        keys.push(match (a, src) {
            (Some(a), KeySrc::Column(c)) => {
                Some((Col::new(a.as_ref()).map_err(|m| wrap(c, m, 0))?, k.scalar, c.as_str()))
            }
            _ => None,
        });
    }
    let mut feats = Vec::with_capacity(feat_arrs.len());
    for (f, a) in plan.features.iter().zip(&feat_arrs) {
        feats.push((
            Col::new(a.as_ref()).map_err(|m| wrap(&f.column, m, 0))?,
            f.target,
            f.column.as_str(),
        ));
    }

    'rows: for i in 0..batch.num_rows() {
        if ts.is_null(i) {
            stats.null_timestamp_rows += 1;
            continue;
        }
        let Some(event_ns) = ts.ts_ns_at(i) else { continue };
        if event_ns < spec.start_ns || event_ns >= spec.end_ns {
            continue;
        }
        stats.rows_in_window += 1;
        key.clear();
        key.extend_from_slice(&plan.key_prefix);
        for k in &keys {
            match k {
                Some((c, scalar, column)) => {
                    if c.is_null(i) {
                        stats.null_key_rows += 1;
                        continue 'rows;
                    }
                    c.put_key(*scalar, i, key).map_err(|m| wrap(column, m, i))?;
                }
                None => target::put_key_value(key, 2, b""),
            }
        }
        let created_ns = created
            .as_ref()
            .and_then(|c| (!c.is_null(i)).then(|| c.ts_ns_saturating_at(i)));
        latest.offer(key, event_ns, created_ns, &mut *emit, |values| {
            for (c, t, column) in &feats {
                values.push(c.value_at(*t, i).map_err(|m| wrap(column, m, i))?);
            }
            Ok::<(), OfflineError>(())
        })?;
        if latest.cancelled {
            break;
        }
    }
    Ok(())
}
