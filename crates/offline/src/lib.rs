//! Larder's offline sources, read for materialization.
//!
//! [`read_latest`] streams the latest row per entity key inside a time
//! window `[start, end)` of a Parquet or PostgreSQL source as
//! [`RowBatch`]es of Feast `Value`s, through a small bounded channel (so a
//! slow consumer slows the reader instead of growing memory):
//!
//! - **Parquet** (a file or a directory of `*.parquet` files): only the
//!   needed columns are decoded (projection), row groups whose timestamp
//!   statistics lie outside the window are skipped, and rows are decoded in
//!   batches of 8,192 on a blocking thread. The latest row per key is kept
//!   in a map of at most [`ReadSpec::dedup_capacity`] keys.
//! - **PostgreSQL** (a table or a query): one `SELECT DISTINCT ON (keys)`
//!   query, so the database picks the latest rows; they are streamed, not
//!   fetched all at once.
//!
//! "Latest" means the largest event timestamp; ties go to the larger created
//! timestamp (a missing created timestamp loses), and full ties keep the row
//! read first (Parquet) or either row (PostgreSQL).
//!
//! Column names go through the source's `field_mapping` like Feast's:
//! for a feature, join key or timestamp name `n`, the column read is the
//! mapping key whose value is `n`, else `n` itself.

mod arrow_col;
mod error;
pub mod historical;
mod latest;
mod parquet_read;
mod postgres;
pub mod pull;
mod spec;
mod target;
pub mod write;

use larder_model::rows::RowBatch;
use tokio::sync::mpsc;

pub use error::OfflineError;
pub use parquet_read::read_parquet_blocking;
pub use spec::{DUMMY_ENTITY_ID, POSTGRES_SOURCE_CLASS, ReadSpec, SourceLocation, SourceSpec};
pub use write::{WriteOutcome, check_batch, write_batch, write_parquet_blocking};

/// Batches buffered between the reader and the consumer.
pub const CHANNEL_BATCHES: usize = 4;

/// Counters of one read (logged at debug level when a read ends; returned
/// by [`read_parquet_blocking`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Parquet files opened.
    pub files: u64,
    /// Row groups in those files.
    pub row_groups_total: u64,
    /// Row groups decoded (the others were pruned by their statistics).
    pub row_groups_read: u64,
    /// Rows decoded.
    pub rows_read: u64,
    /// Decoded rows whose event time lies in the window.
    pub rows_in_window: u64,
    /// Rows skipped because a join key was null.
    pub null_key_rows: u64,
    /// Rows skipped because the event timestamp was null.
    pub null_timestamp_rows: u64,
    /// Rows handed to the consumer.
    pub rows_emitted: u64,
    pub batches_emitted: u64,
    /// Times the dedup map was full and emptied early.
    pub dedup_flushes: u64,
    /// The consumer went away before the read finished.
    pub cancelled: bool,
}

/// Latest row per entity key in `[spec.start_ns, spec.end_ns)`, streamed in
/// batches of at most `spec.batch_rows` rows through a channel holding at
/// most [`CHANNEL_BATCHES`] batches.
///
/// The stream ends after the last batch; an error is sent as the last item.
/// Dropping the receiver stops the reader.
///
/// Each key appears once, with its latest row, as long as the source holds
/// at most `spec.dedup_capacity` distinct keys in the window (Parquet; the
/// PostgreSQL query always returns one row per key). With more keys, the
/// key map is emitted and cleared whenever it fills up, so a key may appear
/// more than once, and an older row may come after a newer one: writers
/// must keep the newer row (the online stores' newer-wins upsert does).
///
/// Call it inside a Tokio runtime (PostgreSQL sources need one; Parquet
/// sources fall back to a plain thread outside a runtime).
pub fn read_latest(source: SourceSpec, spec: ReadSpec) -> mpsc::Receiver<Result<RowBatch, OfflineError>> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let name = source.name.clone();
    match &source.location {
        SourceLocation::Parquet(_) => {
            let job = move || {
                let data_tx = tx.clone();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_parquet_blocking(&source, &spec, &mut |batch| data_tx.blocking_send(Ok(batch)).is_ok())
                }));
                let err = match run {
                    Ok(Ok(stats)) => {
                        tracing::info!(
                            source = %name,
                            files = stats.files,
                            row_groups_read = stats.row_groups_read,
                            row_groups_total = stats.row_groups_total,
                            rows_read = stats.rows_read,
                            rows_emitted = stats.rows_emitted,
                            "offline read finished"
                        );
                        return;
                    }
                    Ok(Err(e)) => e,
                    Err(panic) => OfflineError::ReaderFailed {
                        source_name: name,
                        message: panic_message(&panic),
                    },
                };
                let _ = tx.blocking_send(Err(err));
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn_blocking(job);
                }
                Err(_) => {
                    std::thread::spawn(job);
                }
            }
        }
        SourceLocation::Postgres { .. } => match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let inner_tx = tx.clone();
                let inner = handle.spawn(async move { postgres::read_postgres(&source, &spec, &inner_tx).await });
                handle.spawn(async move {
                    let err = match inner.await {
                        Ok(Ok(_)) => return,
                        Ok(Err(e)) => e,
                        Err(join) => OfflineError::ReaderFailed {
                            source_name: name,
                            message: join.to_string(),
                        },
                    };
                    let _ = tx.send(Err(err)).await;
                });
            }
            Err(_) => {
                let _ = tx.try_send(Err(OfflineError::ReaderFailed {
                    source_name: name,
                    message: "PostgreSQL sources must be read inside a Tokio runtime".into(),
                }));
            }
        },
    }
    rx
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}
