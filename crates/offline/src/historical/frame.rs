//! The entity frame: its event timestamps, its keys per view, and the
//! names of the feature columns added to it.

use std::collections::HashSet;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::keys::{KeyColumns, KeyIndex, key_compatible};
use super::{HistoricalRequest, HistoricalView};
use crate::OfflineError;

/// The entity frame's event timestamp column, as Feast names it.
pub const ENTITY_TIMESTAMP_COLUMN: &str = "event_timestamp";

fn error(message: impl Into<String>) -> OfflineError {
    OfflineError::EntityFrame {
        message: message.into(),
    }
}

fn columns_of(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

fn is_time(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64)
}

/// An entity frame with its timestamps read.
pub(crate) struct EntityFrame<'a> {
    pub(crate) batch: &'a RecordBatch,
    timestamps: Vec<i64>,
}

/// The entity keys of the frame for one view.
pub(crate) struct EntityKeys {
    /// Per row: its key's id, `None` when a join key value is null.
    pub row_keys: Vec<Option<u32>>,
    pub index: KeyIndex,
    pub distinct: usize,
}

impl<'a> EntityFrame<'a> {
    /// The frame's timestamps: the `event_timestamp` column, else its only
    /// timestamp (or date) column, as Feast infers it; strings are parsed
    /// (RFC 3339; without an offset, UTC), naive times are UTC.
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Self, OfflineError> {
        let schema = batch.schema_ref();
        let idx = match schema.index_of(ENTITY_TIMESTAMP_COLUMN) {
            Ok(i) => i,
            Err(_) => {
                let times: Vec<usize> = (0..schema.fields().len())
                    .filter(|&i| is_time(schema.field(i).data_type()))
                    .collect();
                match times.as_slice() {
                    [i] => *i,
                    [] => {
                        return Err(error(format!(
                            "no {ENTITY_TIMESTAMP_COLUMN} column and no other timestamp column (columns: {})",
                            columns_of(batch)
                        )));
                    }
                    _ => {
                        return Err(error(format!(
                            "no {ENTITY_TIMESTAMP_COLUMN} column, and several timestamp columns could be it; name one {ENTITY_TIMESTAMP_COLUMN} (columns: {})",
                            columns_of(batch)
                        )));
                    }
                }
            }
        };
        let name = schema.field(idx).name().clone();
        let column = batch.column(idx);
        let dt = column.data_type();
        let text = matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        if !is_time(dt) && !text {
            return Err(error(format!(
                "column {name} has type {dt}; the event timestamp must be a timestamp, a date or a string"
            )));
        }
        let values = super::time::nanos(column).map_err(|e| error(format!("column {name}: {e}")))?;
        if let Some(row) = values.iter().position(Option::is_none) {
            return Err(error(format!(
                "column {name}, row {row}: the event timestamp is null, unreadable or beyond the years 1677..2262"
            )));
        }
        Ok(EntityFrame {
            batch,
            timestamps: values.into_iter().flatten().collect(),
        })
    }

    /// Each row's event time, ns since the epoch.
    pub(crate) fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// The frame's join-key columns for `view`, checked and cast.
    pub(crate) fn key_columns(&self, view: &HistoricalView) -> Result<KeyColumns, OfflineError> {
        let schema = self.batch.schema_ref();
        let mut columns = Vec::with_capacity(view.join_keys.len().max(1));
        for k in &view.join_keys {
            let Ok(i) = schema.index_of(&k.column) else {
                let what = if k.column == k.name {
                    format!("join key {} of view {}", k.name, view.name)
                } else {
                    format!("join key {} of view {} (mapped to {})", k.name, view.name, k.column)
                };
                return Err(error(format!(
                    "no column {} for the {what} (columns: {})",
                    k.column,
                    columns_of(self.batch)
                )));
            };
            let dt = schema.field(i).data_type();
            if !key_compatible(k.value_type, dt) {
                return Err(error(format!(
                    "column {} has type {dt}, but join key {} of view {} is {}",
                    k.column, k.name, view.name, k.value_type
                )));
            }
            columns.push((Some(self.batch.column(i)), k.value_type));
        }
        if view.join_keys.is_empty() {
            columns.push((None, larder_model::types::FeatureType::STRING));
        }
        KeyColumns::new(&columns).map_err(|e| error(format!("view {}: {e}", view.name)))
    }

    /// The frame's keys for `view`, numbered.
    pub(crate) fn keys(&self, view: &HistoricalView) -> Result<EntityKeys, OfflineError> {
        let cols = self.key_columns(view)?;
        let mut index = KeyIndex::default();
        let mut row_keys = Vec::with_capacity(self.batch.num_rows());
        let mut buf = Vec::new();
        for i in 0..self.batch.num_rows() {
            if !cols.encode(i, &mut buf) {
                row_keys.push(None);
                continue;
            }
            let next = index.len() as u32;
            let id = match index.get(buf.as_slice()) {
                Some(id) => *id,
                None => {
                    index.insert(buf.clone().into_boxed_slice(), next);
                    next
                }
            };
            row_keys.push(Some(id));
        }
        let distinct = index.len();
        Ok(EntityKeys {
            row_keys,
            index,
            distinct,
        })
    }
}

/// The name of each requested feature's column, in request order:
/// `<feature>`, or `<view or alias>__<feature>` with full feature names.
/// Two equal names, or a name the frame already has, are an error (Feast's
/// `FeatureNameCollisionError`).
pub(crate) fn output_names(entities: &RecordBatch, request: &HistoricalRequest) -> Result<Vec<String>, OfflineError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for v in &request.views {
        for (f, _) in &v.features {
            let name = if request.full_feature_names {
                format!("{}__{f}", v.shown_as)
            } else {
                f.clone()
            };
            if entities.schema_ref().index_of(&name).is_ok() {
                return Err(error(format!(
                    "the entity frame already has a column {name}, which feature {}:{f} would be named; rename the column{}",
                    v.shown_as,
                    if request.full_feature_names {
                        ""
                    } else {
                        " or use full feature names"
                    }
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(OfflineError::InvalidRequest {
                    message: format!(
                        "feature name collision: {name} is requested twice; use full feature names (full_feature_names=True) or a feature service with aliases"
                    ),
                });
            }
            out.push(name);
        }
    }
    Ok(out)
}
