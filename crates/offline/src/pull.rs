//! Rows of a Parquet source in a time window, all of them or the latest
//! per key: what Feast's `pull_all_from_table_or_query` and
//! `pull_latest_from_table_or_query` answer (Feast's materialization
//! through a remote offline store asks for them). Columns are named as in
//! the source; the window is `[start, end)`; "latest" is the newest event
//! time, then the newest created time (null loses), then the row read
//! first, per distinct join-key values (all rows are one key without join
//! keys). The window's rows are held in memory, as Feast's stores hold them.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::historical::time::nanos;
use crate::parquet_read::{available_columns, list_files, location, row_groups_in_window};
use crate::{OfflineError, SourceLocation, SourceSpec};

/// The source columns a pull returns, in this order: join keys, features,
/// the event timestamp, the created timestamp (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullColumns {
    pub join_keys: Vec<String>,
    pub features: Vec<String>,
    pub timestamp: String,
    pub created: Option<String>,
}

impl PullColumns {
    fn all(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.join_keys.iter().map(String::as_str).collect();
        out.extend(self.features.iter().map(String::as_str));
        out.push(&self.timestamp);
        out.extend(self.created.as_deref());
        out
    }
}

/// The rows of `source` with `start_ns <= event time < end_ns` (`latest`:
/// only the newest per key), columns as `columns` lists them.
pub fn pull_parquet(
    source: &SourceSpec,
    columns: &PullColumns,
    start_ns: i64,
    end_ns: i64,
    latest: bool,
) -> Result<RecordBatch, OfflineError> {
    let SourceLocation::Parquet(root) = &source.location else {
        return Err(OfflineError::UnsupportedSource {
            source_name: source.name.clone(),
            message: "pulling rows is served for Parquet sources only".into(),
        });
    };
    let wanted = columns.all();
    let mut parts: Vec<RecordBatch> = Vec::new();
    let mut schema = None;
    for path in list_files(root)? {
        let file = File::open(&path).map_err(|e| OfflineError::Io {
            path: path.clone(),
            source: e,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| OfflineError::parquet(&path, e))?;
        let file_schema = builder.schema().clone();
        let mut roots = Vec::with_capacity(wanted.len());
        for c in &wanted {
            let i = file_schema.index_of(c).map_err(|_| OfflineError::MissingColumn {
                column: c.to_string(),
                location: location(&path),
                available: available_columns(&file_schema),
            })?;
            roots.push(i);
        }
        let ts_idx = roots[columns.join_keys.len() + columns.features.len()];
        let groups = row_groups_in_window(builder.metadata(), ts_idx, start_ns, end_ns);
        if groups.is_empty() {
            continue;
        }
        let mut sorted = roots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), sorted);
        let reader = builder
            .with_projection(mask)
            .with_row_groups(groups)
            .build()
            .map_err(|e| OfflineError::parquet(&path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| OfflineError::parquet(&path, e))?;
            let bad = |e: String| OfflineError::parquet(&path, e);
            let ordered: Vec<ArrayRef> = wanted
                .iter()
                .map(|c| {
                    batch
                        .column_by_name(c)
                        .cloned()
                        .ok_or_else(|| bad(format!("column {c} missing from a decoded batch")))
                })
                .collect::<Result<_, _>>()?;
            let ts = nanos(&ordered[columns.join_keys.len() + columns.features.len()]).map_err(bad)?;
            let keep: BooleanArray = ts
                .iter()
                .map(|t| Some(t.is_some_and(|t| t >= start_ns && t < end_ns)))
                .collect();
            let fields: Vec<arrow::datatypes::FieldRef> = wanted
                .iter()
                .zip(&ordered)
                .map(|(n, a)| Arc::new(arrow::datatypes::Field::new(*n, a.data_type().clone(), true)))
                .collect();
            let projected = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), ordered)
                .map_err(|e| bad(e.to_string()))?;
            let filtered = arrow::compute::filter_record_batch(&projected, &keep).map_err(|e| bad(e.to_string()))?;
            let target = schema.get_or_insert_with(|| filtered.schema()).clone();
            let conformed = if filtered.schema() == target {
                filtered
            } else {
                let cols = filtered
                    .columns()
                    .iter()
                    .zip(target.fields())
                    .map(|(a, f)| arrow::compute::cast(a, f.data_type()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("its columns' types differ from the first file's: {e}")))?;
                RecordBatch::try_new(target.clone(), cols).map_err(|e| bad(e.to_string()))?
            };
            if conformed.num_rows() > 0 {
                parts.push(conformed);
            }
        }
    }
    let Some(schema) = schema else {
        return Err(OfflineError::NoParquetFiles { path: root.clone() });
    };
    let all = arrow::compute::concat_batches(&schema, &parts).map_err(|e| OfflineError::parquet(root, e))?;
    if !latest || all.num_rows() == 0 {
        return Ok(all);
    }
    latest_per_key(&all, columns).map_err(|e| OfflineError::parquet(root, e))
}

/// The newest row of each key of `rows` (columns as [`PullColumns::all`]).
fn latest_per_key(rows: &RecordBatch, columns: &PullColumns) -> Result<RecordBatch, String> {
    let k = columns.join_keys.len();
    let f = columns.features.len();
    let ts = nanos(rows.column(k + f))?;
    let created = match columns.created {
        Some(_) => nanos(rows.column(k + f + 1))?,
        None => vec![None; rows.num_rows()],
    };
    let keys: Vec<ArrayRef> = rows.columns()[..k].to_vec();
    let converter = RowConverter::new(keys.iter().map(|a| SortField::new(a.data_type().clone())).collect())
        .map_err(|e| e.to_string())?;
    let encoded = converter.convert_columns(&keys).map_err(|e| e.to_string())?;
    let mut best: HashMap<Vec<u8>, (i64, i64, usize)> = HashMap::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    for i in 0..rows.num_rows() {
        if keys.iter().any(|a| a.is_null(i)) {
            continue;
        }
        let key = if k == 0 {
            Vec::new()
        } else {
            encoded.row(i).as_ref().to_vec()
        };
        let candidate = (ts[i].unwrap_or(i64::MIN), created[i].unwrap_or(i64::MIN), i);
        match best.get_mut(&key) {
            Some(b) if (candidate.0, candidate.1) > (b.0, b.1) => *b = candidate,
            Some(_) => {}
            None => {
                order.push(key.clone());
                best.insert(key, candidate);
            }
        }
    }
    let indices: UInt64Array = order.iter().map(|key| best[key].2 as u64).collect();
    arrow::compute::take_record_batch(rows, &indices).map_err(|e| e.to_string())
}
