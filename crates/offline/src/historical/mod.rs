//! Point-in-time correct historical retrieval (Feast's
//! `get_historical_features`): for every row of an entity frame (join keys,
//! an event timestamp and any other columns, which are kept) and every
//! requested view, the newest feature row of the same entity key with
//! `event_ts <= row ts` and, when the view has a ttl, `event_ts >= row ts −
//! ttl`; equal event timestamps are decided by the created timestamp (a
//! missing one loses), and full ties by the row read first. Rows with no
//! such feature row get nulls: unlike Feast's file offline store, which
//! drops entity rows that precede all feature data, every entity row is
//! returned, in the entity frame's order.
//!
//! Execution, per view, never holds the feature data:
//!
//! 1. The entity frame's rows are grouped by key into sorted, distinct
//!    timestamps ("points"); each point owns the interval `(previous point,
//!    point]` of its key's timeline.
//! 2. The source is scanned once, decoding only join keys and timestamps
//!    (Parquet row groups outside `[min row ts − ttl, max row ts]` are
//!    skipped by their statistics). Each feature row is offered to the one
//!    point whose interval holds its event time (a binary search), which
//!    keeps the best row offered: O(log n) per row, 24 bytes per point.
//! 3. Walking each key's points in time order, a point's answer is its own
//!    best row or else the previous point's answer; the ttl is checked on
//!    that answer.
//! 4. Only the winning rows' feature columns are decoded (row groups
//!    without winners are skipped) and assembled in entity-frame order.
//!
//! Memory is bounded by the entity frame and the answer, not by the size
//! of the feature data.

mod asof;
mod frame;
mod keys;
mod parquet_scan;
mod postgres_scan;
pub(crate) mod time;

use arrow::record_batch::RecordBatch;
use larder_model::types::FeatureType;

pub use frame::ENTITY_TIMESTAMP_COLUMN;

use crate::{OfflineError, SourceSpec};

/// A join key of a requested view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalJoinKey {
    /// The join key's name in the view (and its source, through the
    /// source's field mapping).
    pub name: String,
    /// The entity frame column holding its values (differs from `name`
    /// under a feature service projection's join-key map).
    pub column: String,
    pub value_type: FeatureType,
}

/// One view of a historical request.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalView {
    /// The view's name (messages).
    pub name: String,
    /// Prefix of full feature names: the projection's alias, else the name.
    pub shown_as: String,
    pub source: SourceSpec,
    /// The view's join keys; empty for an entityless view (every row of the
    /// frame matches every feature row).
    pub join_keys: Vec<HistoricalJoinKey>,
    /// Features to return (names as in the view; read through the source's
    /// field mapping) and their declared types.
    pub features: Vec<(String, FeatureType)>,
    /// Time to live in nanoseconds; 0 means unbounded.
    pub ttl_ns: i64,
}

/// A historical request: views to join onto an entity frame.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalRequest {
    pub views: Vec<HistoricalView>,
    /// Name feature columns `<view or alias>__<feature>` instead of `<feature>`.
    pub full_feature_names: bool,
}

/// Counters of one view's retrieval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewStats {
    pub view: String,
    pub files: u64,
    pub row_groups_total: u64,
    /// Row groups whose keys and timestamps were decoded.
    pub row_groups_scanned: u64,
    /// Row groups whose feature columns were decoded (they hold a winner).
    pub row_groups_fetched: u64,
    pub rows_scanned: u64,
    /// Entity rows that got a feature row.
    pub rows_matched: u64,
}

/// The answer: the entity frame's columns followed by one column per
/// requested feature, one row per entity row, in the frame's order.
#[derive(Debug, Clone)]
pub struct HistoricalResult {
    pub batch: RecordBatch,
    pub stats: Vec<ViewStats>,
}

/// Join `request`'s views onto `entities` as of each row's timestamp.
///
/// `entities` must hold the event timestamp column ([`ENTITY_TIMESTAMP_COLUMN`],
/// or else its only timestamp column) and every join key column of every
/// view; `progress` is called with the number of views done.
///
/// Blocking: call it from a blocking thread (`spawn_blocking`), a
/// multi-threaded Tokio runtime's worker, or outside any runtime
/// (PostgreSQL sources then run on a runtime of their own).
pub fn get_historical_features(
    entities: &RecordBatch,
    request: &HistoricalRequest,
    progress: &mut dyn FnMut(usize),
) -> Result<HistoricalResult, OfflineError> {
    let frame = frame::EntityFrame::new(entities)?;
    let names = frame::output_names(entities, request)?;
    let mut columns = entities.columns().to_vec();
    let mut fields: Vec<arrow::datatypes::FieldRef> = entities.schema().fields().iter().cloned().collect();
    let mut stats = Vec::with_capacity(request.views.len());
    let mut names = names.into_iter();
    for (i, view) in request.views.iter().enumerate() {
        let (arrays, view_stats) = retrieve_view(&frame, view)?;
        for ((feature, _), array) in view.features.iter().zip(arrays) {
            let name = names.next().unwrap_or_else(|| feature.clone());
            fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
                name,
                array.data_type().clone(),
                true,
            )));
            columns.push(array);
        }
        stats.push(view_stats);
        progress(i + 1);
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(entities.num_rows())),
    )
    .map_err(|e| OfflineError::EntityFrame {
        message: format!("cannot assemble the result: {e}"),
    })?;
    Ok(HistoricalResult { batch, stats })
}

/// One view's feature columns, in entity-frame order.
fn retrieve_view(
    frame: &frame::EntityFrame,
    view: &HistoricalView,
) -> Result<(Vec<arrow::array::ArrayRef>, ViewStats), OfflineError> {
    match &view.source.location {
        crate::SourceLocation::Parquet(root) => {
            let entity_keys = frame.keys(view)?;
            let points = asof::Points::new(&entity_keys.row_keys, frame.timestamps(), entity_keys.distinct);
            parquet_scan::retrieve(root, view, &entity_keys.index, &points)
        }
        crate::SourceLocation::Postgres { .. } => {
            let keys = frame.key_columns(view)?;
            postgres_scan::retrieve_blocking(frame.batch, frame.timestamps(), &keys, view)
        }
    }
}
