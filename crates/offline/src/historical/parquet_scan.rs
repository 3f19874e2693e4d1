//! Historical retrieval from a Parquet source (a file or a directory of
//! files): a key-and-timestamp scan that finds each point's best row, then
//! a fetch of the winners' feature columns.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt64Array, new_null_array};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;

use super::asof::{Candidate, Points, RowLoc, Slots};
use super::keys::{KeyColumns, KeyIndex, key_compatible};
use super::time::nanos;
use super::{HistoricalView, ViewStats};
use crate::arrow_col;
use crate::parquet_read::{available_columns, list_files, location, row_groups_in_window};
use crate::spec::DUMMY_ENTITY_ID;
use crate::target::Target;
use crate::{OfflineError, SourceSpec};

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// The source columns one view reads.
struct Columns {
    /// Per join key: its source column; `None` for the implicit empty key.
    keys: Vec<Option<String>>,
    ts: String,
    created: Option<String>,
    features: Vec<String>,
}

impl Columns {
    fn new(view: &HistoricalView) -> Self {
        let src = &view.source;
        Columns {
            keys: if view.join_keys.is_empty() {
                vec![None]
            } else {
                view.join_keys
                    .iter()
                    .map(|k| Some(src.source_column(&k.name).to_string()))
                    .collect()
            },
            ts: src.source_column(&src.timestamp_field).to_string(),
            created: src
                .created_timestamp_column
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(|c| src.source_column(c).to_string()),
            features: view
                .features
                .iter()
                .map(|(f, _)| src.source_column(f).to_string())
                .collect(),
        }
    }
}

/// One open file: its reader builder's parts.
struct OpenFile {
    path: PathBuf,
    schema: SchemaRef,
    meta: Arc<ParquetMetaData>,
    /// First file row of each row group.
    group_starts: Vec<u64>,
}

fn open(path: &Path) -> Result<(OpenFile, ParquetRecordBatchReaderBuilder<File>), OfflineError> {
    let file = File::open(path).map_err(|e| OfflineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| OfflineError::parquet(path, e))?;
    let meta = builder.metadata().clone();
    let mut group_starts = Vec::with_capacity(meta.num_row_groups());
    let mut row = 0u64;
    for rg in meta.row_groups() {
        group_starts.push(row);
        row += u64::try_from(rg.num_rows()).unwrap_or(0);
    }
    Ok((
        OpenFile {
            path: path.to_path_buf(),
            schema: builder.schema().clone(),
            meta,
            group_starts,
        },
        builder,
    ))
}

impl OpenFile {
    fn column(&self, name: &str) -> Result<usize, OfflineError> {
        self.schema.index_of(name).map_err(|_| OfflineError::MissingColumn {
            column: name.to_string(),
            location: location(&self.path),
            available: available_columns(&self.schema),
        })
    }

    fn check(&self, idx: usize, ok: bool, expected: impl FnOnce() -> String) -> Result<(), OfflineError> {
        if ok {
            return Ok(());
        }
        let f = self.schema.field(idx);
        Err(OfflineError::WrongType {
            column: f.name().clone(),
            location: location(&self.path),
            actual: f.data_type().to_string(),
            expected: expected(),
        })
    }

    /// File rows of the rows a reader over `groups` yields, in order.
    fn rows_of(&self, groups: &[usize]) -> RowCursor {
        RowCursor {
            spans: groups
                .iter()
                .map(|&g| {
                    (
                        self.group_starts[g],
                        u64::try_from(self.meta.row_group(g).num_rows()).unwrap_or(0),
                    )
                })
                .collect(),
            span: 0,
            offset: 0,
        }
    }
}

/// Maps the rows of a reader over selected row groups back to file rows
/// (batches may span row groups).
struct RowCursor {
    spans: Vec<(u64, u64)>,
    span: usize,
    offset: u64,
}

impl RowCursor {
    /// The file row of the next row read.
    #[inline]
    fn next_row(&mut self) -> u64 {
        while let Some((start, len)) = self.spans.get(self.span) {
            if self.offset < *len {
                let row = start + self.offset;
                self.offset += 1;
                return row;
            }
            self.span += 1;
            self.offset = 0;
        }
        u64::MAX
    }
}

/// A reader of the `roots` columns of the row groups `groups`.
fn read_groups(
    builder: ParquetRecordBatchReaderBuilder<File>,
    roots: &[usize],
    groups: &[usize],
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, OfflineError> {
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    builder
        .with_projection(mask)
        .with_row_groups(groups.to_vec())
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| OfflineError::parquet(path, e))
}

/// The feature columns of `view` for every entity row (nulls where no
/// feature row matched), and the read's counters.
pub(crate) fn retrieve(
    root: &Path,
    view: &HistoricalView,
    index: &KeyIndex,
    points: &Points,
) -> Result<(Vec<ArrayRef>, ViewStats), OfflineError> {
    let src: &SourceSpec = &view.source;
    let cols = Columns::new(view);
    let files = list_files(root)?;
    let mut stats = ViewStats {
        view: view.name.clone(),
        files: files.len() as u64,
        ..Default::default()
    };
    let mut slots = Slots::new(points);
    // Output types: each feature's type in the first file; later files are cast to it.
    let mut out_types: Vec<Option<DataType>> = vec![None; cols.features.len()];
    let window = points.ts_range().map(|(min, max)| {
        let start = if view.ttl_ns > 0 {
            min.saturating_sub(view.ttl_ns)
        } else {
            i64::MIN
        };
        (start, max.saturating_add(1))
    });

    for (fi, path) in files.iter().enumerate() {
        let (file, builder) = open(path)?;
        stats.row_groups_total += file.meta.num_row_groups() as u64;
        // Resolve and type-check every column before reading anything.
        let mut roots = Vec::new();
        let mut key_idx: Vec<Option<usize>> = Vec::new();
        for (k, col) in cols.keys.iter().enumerate() {
            let Some(col) = col else {
                key_idx.push(None);
                continue;
            };
            let jk = &view.join_keys[k];
            if jk.name == DUMMY_ENTITY_ID && file.schema.index_of(col).is_err() {
                key_idx.push(None);
                continue;
            }
            let i = file.column(col)?;
            file.check(
                i,
                key_compatible(jk.value_type, file.schema.field(i).data_type()),
                || format!("join key type {}", jk.value_type),
            )?;
            roots.push(i);
            key_idx.push(Some(i));
        }
        let ts_idx = file.column(&cols.ts)?;
        let ts_expected = || "a timestamp (Timestamp or Date column)".to_string();
        file.check(
            ts_idx,
            arrow_col::timestamp_compatible(file.schema.field(ts_idx).data_type()),
            ts_expected,
        )?;
        roots.push(ts_idx);
        let created_idx = match &cols.created {
            Some(c) => {
                let i = file.column(c)?;
                file.check(
                    i,
                    arrow_col::timestamp_compatible(file.schema.field(i).data_type()),
                    ts_expected,
                )?;
                roots.push(i);
                Some(i)
            }
            None => None,
        };
        for ((name, t), col) in view.features.iter().zip(&cols.features) {
            let i = file.column(col)?;
            let target = Target::from_feature_type(*t).ok_or_else(|| OfflineError::InvalidSpec {
                source_name: src.name.clone(),
                message: format!("feature {name:?} has type {t}, which Larder cannot read from an offline source"),
            })?;
            file.check(
                i,
                arrow_col::compatible(target, file.schema.field(i).data_type()),
                || format!("feature type {t}"),
            )?;
        }
        for (f, col) in cols.features.iter().enumerate() {
            if out_types[f].is_none() {
                let dt = file.schema.field_with_name(col).map(|f| f.data_type().clone()).ok();
                out_types[f] = dt.map(|dt| match dt {
                    DataType::Dictionary(_, v) => *v,
                    other => other,
                });
            }
        }
        let Some((start, end)) = window else { continue };
        roots.sort_unstable();
        roots.dedup();
        // Row groups that may hold rows in the window, by their timestamp statistics.
        let groups = row_groups_in_window(&file.meta, ts_idx, start, end);
        stats.row_groups_scanned += groups.len() as u64;
        if groups.is_empty() {
            continue;
        }
        let reader = read_groups(builder, &roots, &groups, path)?;
        let mut rows = file.rows_of(&groups);
        let mut buf = Vec::with_capacity(16);
        for batch in reader {
            let batch = batch.map_err(|e| OfflineError::parquet(path, e))?;
            let bad = |e: String| OfflineError::parquet(path, e);
            let col = |i: usize| {
                let name = file.schema.field(i).name();
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("column {name} missing from a decoded batch")))
            };
            let key_arrays: Vec<Option<ArrayRef>> = key_idx
                .iter()
                .map(|i| i.map(col).transpose())
                .collect::<Result<_, _>>()?;
            let key_cols: Vec<(Option<&ArrayRef>, larder_model::types::FeatureType)> = key_arrays
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    let t = view
                        .join_keys
                        .get(k)
                        .map_or(larder_model::types::FeatureType::STRING, |j| j.value_type);
                    (a.as_ref(), t)
                })
                .collect();
            let keys = KeyColumns::new(&key_cols).map_err(bad)?;
            let ts = nanos(&col(ts_idx)?).map_err(bad)?;
            let created = match created_idx {
                Some(i) => Some(nanos(&col(i)?).map_err(bad)?),
                None => None,
            };
            stats.rows_scanned += batch.num_rows() as u64;
            for i in 0..batch.num_rows() {
                let row = rows.next_row();
                let Some(event_ns) = ts[i] else { continue };
                if !keys.encode(i, &mut buf) {
                    continue;
                }
                let Some(&key) = index.get(buf.as_slice()) else {
                    continue;
                };
                let Some(point) = points.point_for(key, event_ns, view.ttl_ns) else {
                    continue;
                };
                let created_ns = created.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN);
                slots.offer(
                    point,
                    Candidate {
                        event_ns,
                        created_ns,
                        loc: RowLoc { file: fi as u32, row },
                    },
                );
            }
        }
    }

    // Each entity row's winning feature row.
    let answers = slots.resolve(points, view.ttl_ns);
    let winners: Vec<Option<RowLoc>> = points
        .row_points()
        .iter()
        .map(|p| p.and_then(|p| answers[p as usize]).map(|c| c.loc))
        .collect();
    stats.rows_matched = winners.iter().filter(|w| w.is_some()).count() as u64;
    let mut per_file: Vec<Vec<u64>> = vec![Vec::new(); files.len()];
    for w in winners.iter().flatten() {
        per_file[w.file as usize].push(w.row);
    }
    for rows in &mut per_file {
        rows.sort_unstable();
        rows.dedup();
    }
    let out_types: Vec<DataType> = out_types.into_iter().map(|t| t.unwrap_or(DataType::Null)).collect();

    // Fetch the winners' feature values, file by file.
    let mut chunks: Vec<Vec<ArrayRef>> = vec![Vec::new(); cols.features.len()];
    let mut position: HashMap<RowLoc, (usize, usize)> = HashMap::with_capacity(winners.len().min(1 << 20));
    for (fi, rows) in per_file.iter().enumerate() {
        if rows.is_empty() || cols.features.is_empty() {
            continue;
        }
        let path = &files[fi];
        let (file, builder) = open(path)?;
        let groups: Vec<usize> = (0..file.meta.num_row_groups())
            .filter(|&g| {
                let start = file.group_starts[g];
                let end = start + u64::try_from(file.meta.row_group(g).num_rows()).unwrap_or(0);
                let i = rows.partition_point(|r| *r < start);
                rows.get(i).is_some_and(|r| *r < end)
            })
            .collect();
        stats.row_groups_fetched += groups.len() as u64;
        let feature_idx: Vec<usize> = cols.features.iter().map(|c| file.column(c)).collect::<Result<_, _>>()?;
        let mut roots = feature_idx.clone();
        roots.sort_unstable();
        roots.dedup();
        let reader = read_groups(builder, &roots, &groups, path)?;
        let mut cursor = file.rows_of(&groups);
        let mut next = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| OfflineError::parquet(path, e))?;
            let bad = |e: String| OfflineError::parquet(path, e);
            let mut take: Vec<u64> = Vec::new();
            let mut took: Vec<u64> = Vec::new();
            for i in 0..batch.num_rows() {
                let row = cursor.next_row();
                while next < rows.len() && rows[next] < row {
                    next += 1;
                }
                if next < rows.len() && rows[next] == row {
                    take.push(i as u64);
                    took.push(row);
                }
            }
            if take.is_empty() {
                continue;
            }
            let indices = UInt64Array::from(take);
            let chunk = chunks[0].len();
            for (f, &idx) in feature_idx.iter().enumerate() {
                let name = file.schema.field(idx).name();
                let a = batch
                    .column_by_name(name)
                    .ok_or_else(|| bad(format!("column {name} missing from a decoded batch")))?;
                let a = arrow_col::undictionary(a).map_err(bad)?;
                let taken = arrow::compute::take(&a, &indices, None).map_err(|e| bad(e.to_string()))?;
                let taken = if taken.data_type() == &out_types[f] {
                    taken
                } else {
                    arrow::compute::cast(&taken, &out_types[f]).map_err(|e| {
                        bad(format!(
                            "column {name}: cannot read its {} values as the {} of the first file: {e}",
                            taken.data_type(),
                            out_types[f]
                        ))
                    })?
                };
                chunks[f].push(taken);
            }
            for (offset, row) in took.into_iter().enumerate() {
                position.insert(RowLoc { file: fi as u32, row }, (chunk, offset));
            }
        }
    }

    // Assemble in entity-frame order; unmatched rows read the trailing null.
    let mut out = Vec::with_capacity(cols.features.len());
    let missing = chunks.first().map_or(0, Vec::len);
    let indices: Vec<(usize, usize)> = winners
        .iter()
        .map(|w| w.and_then(|w| position.get(&w).copied()).unwrap_or((missing, 0)))
        .collect();
    for (f, mut parts) in chunks.into_iter().enumerate() {
        parts.push(new_null_array(&out_types[f], 1));
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let array = arrow::compute::interleave(&refs, &indices).map_err(|e| OfflineError::InvalidSpec {
            source_name: src.name.clone(),
            message: format!("cannot assemble feature {}: {e}", view.features[f].0),
        })?;
        out.push(array);
    }
    Ok((out, stats))
}
