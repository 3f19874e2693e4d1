//! Larder's online stores.
//!
//! One [`OnlineStore`] trait and four implementations that store exactly
//! Feast 0.67's layouts (feast-compat.md §6), so Feast's SDK reads what
//! Larder writes and the other way round: [`sqlite::SqliteStore`] (the
//! embedded default), [`redis_store::RedisStore`], [`postgres::PostgresStore`]
//! and [`mysql::MySqlStore`].
//!
//! Writes keep the newest event per entity key and feature: an older row
//! never overwrites a newer one, so re-runs and overlapping
//! materializations are safe.
//!
//! That also makes every store operation safe to repeat, so the network
//! stores run a request once more on a new connection when the server
//! dropped the old one (`retry`), and report a server that stays away as
//! [`OnlineError::Unavailable`], which callers may retry. SQLite has no
//! server and no connection to lose.

pub mod config;
pub mod encode;
pub mod mysql;
pub mod postgres;
pub mod redis_store;
pub mod resp;
mod retry;
pub mod sqlite;

use async_trait::async_trait;
use larder_model::rows::{EntityRow, RowBatch};
use larder_model::types::FeatureType;
use larder_protos::feast::core as fc;
use larder_protos::feast::types::Value;

pub use config::{OnlineStoreConfig, open};

/// The part of a feature view an online store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSchema {
    pub name: String,
    pub features: Vec<ViewFeature>,
}

/// A feature of a view: its name and declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFeature {
    pub name: String,
    pub value_type: FeatureType,
}

impl ViewFeature {
    pub fn new(name: impl Into<String>, value_type: FeatureType) -> Self {
        Self {
            name: name.into(),
            value_type,
        }
    }
}

impl ViewSchema {
    pub fn from_proto(view: &fc::FeatureView) -> Self {
        let spec = view.spec.clone().unwrap_or_default();
        Self {
            name: spec.name,
            features: spec
                .features
                .iter()
                .map(|f| ViewFeature::new(f.name.clone(), FeatureType::from_proto(f.value_type)))
                .collect(),
        }
    }

    pub fn has_string_feature(&self) -> bool {
        self.features.iter().any(|f| f.value_type == FeatureType::STRING)
    }
}

/// One entity key's stored values for the requested features.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRow {
    /// Event time of the stored row, nanoseconds since the epoch.
    pub event_ts: i64,
    /// One entry per requested feature; `None` when the store has no value
    /// for that feature.
    pub values: Vec<Option<Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error("online store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("online store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    RedisRead(#[from] resp::RespError),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("invalid online store configuration: {0}")]
    Config(String),
    /// A store's worker (a blocking task or a pool of readers) stopped:
    /// the process is shutting down or the task panicked.
    #[error("online store worker failed: {0}")]
    Worker(String),
    #[error("stored value for {feature:?} cannot be decoded: {source}")]
    Decode {
        feature: String,
        source: prost::DecodeError,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The store's server could not be reached, or dropped the connection
    /// and the one retry on a new connection failed too. Always
    /// [retryable](OnlineError::is_retryable): the server may be back a
    /// moment later, and every online read and write is safe to repeat.
    #[error("{store} online store at {address} is unavailable while {operation}: {source}; {}", .operation.advice())]
    Unavailable {
        /// `redis`, `postgres` or `mysql`.
        store: &'static str,
        /// `host:port` of the server.
        address: String,
        operation: Operation,
        source: Box<OnlineError>,
    },
}

/// What a store was doing when its server went away, for
/// [`OnlineError::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Opening the store.
    Connect,
    /// Reading (also `ping`).
    Read,
    /// Writing rows, or creating or dropping tables (`update`, `teardown`).
    Write,
}

impl Operation {
    /// What the caller may do about it; for writes, whether repeating one
    /// that may have been applied is safe.
    fn advice(self) -> &'static str {
        match self {
            Operation::Connect => "is the server running and reachable from here?",
            Operation::Read => "the read can be retried",
            Operation::Write => {
                "the write may or may not have been applied and can be retried: online writes are idempotent \
                 (the newer row per entity key wins)"
            }
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connecting",
            Operation::Read => "reading",
            Operation::Write => "writing",
        })
    }
}

impl OnlineError {
    /// Whether the same request may succeed if repeated later: the store was
    /// unreachable, not wrong. Servers answer these with 503 instead of 500.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OnlineError::Unavailable { .. })
    }
}

pub type Result<T> = std::result::Result<T, OnlineError>;

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Entity rows handed to the store.
    pub rows: usize,
    /// Entity rows skipped because the store already held a newer one
    /// (where the store can tell cheaply; SQL stores skip inside the upsert).
    pub skipped_older: usize,
}

#[async_trait]
pub trait OnlineStore: Send + Sync {
    /// Create tables/indexes for `keep` and drop those of `remove`. Idempotent.
    async fn update(&self, project: &str, keep: &[ViewSchema], remove: &[ViewSchema]) -> Result<()>;

    /// One round trip to the store, so the operator can tell a reachable store from a dead one.
    async fn ping(&self) -> Result<()>;

    /// Drop everything the store holds for these views.
    async fn teardown(&self, project: &str, views: &[ViewSchema]) -> Result<()>;

    /// Write rows of one view (values in `batch.features` order).
    async fn online_write_batch(&self, project: &str, view: &ViewSchema, batch: &RowBatch) -> Result<WriteStats>;

    /// How many entity rows a write should carry to be efficient. SQLite
    /// wants few, large transactions: each commit writes every page it
    /// touched to the WAL, and random keys touch most of the table.
    fn preferred_batch_rows(&self) -> usize {
        10_000
    }

    /// Whether writes are much faster in entity-key order across batches
    /// (the materializer then sorts through temporary files first).
    fn prefers_key_order(&self) -> bool {
        false
    }

    /// Read many entity keys (v3 bytes) × `features` of one view in one
    /// round trip; `None` for keys the store does not hold.
    async fn online_read(
        &self,
        project: &str,
        view: &ViewSchema,
        keys: &[Vec<u8>],
        features: &[String],
    ) -> Result<Vec<Option<ReadRow>>>;
}

/// Keep only the newest row per entity key (first occurrence order kept):
/// a multi-row upsert must not touch one key twice.
pub fn newest_per_key(rows: &[EntityRow]) -> Vec<&EntityRow> {
    let mut index: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::with_capacity(rows.len());
    let mut out: Vec<&EntityRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match index.get(r.entity_key.as_slice()) {
            Some(&i) => {
                if r.is_newer_than(out[i]) {
                    out[i] = r;
                }
            }
            None => {
                index.insert(&r.entity_key, out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Gathers the rows a SQL store returns (one per key and feature) into one
/// [`ReadRow`] per requested key, in request order.
pub(crate) struct ReadAssembler<'a> {
    position: std::collections::HashMap<&'a str, usize>,
    found: std::collections::HashMap<Vec<u8>, ReadRow>,
    width: usize,
}

impl<'a> ReadAssembler<'a> {
    pub(crate) fn new(features: &'a [String], keys: usize) -> Self {
        Self {
            position: features.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect(),
            found: std::collections::HashMap::with_capacity(keys),
            width: features.len(),
        }
    }

    /// Add one stored cell; features nobody asked for are skipped.
    pub(crate) fn add(&mut self, key: Vec<u8>, feature: &str, value: &[u8], event_ts: Option<i64>) -> Result<()> {
        let Some(&i) = self.position.get(feature) else {
            return Ok(());
        };
        let width = self.width;
        let entry = self.found.entry(key).or_insert_with(|| ReadRow {
            event_ts: i64::MIN,
            values: vec![None; width],
        });
        entry.values[i] = Some(decode_value(feature, value)?);
        if let Some(ts) = event_ts {
            entry.event_ts = entry.event_ts.max(ts);
        }
        Ok(())
    }

    pub(crate) fn finish(self, keys: &[Vec<u8>]) -> Vec<Option<ReadRow>> {
        keys.iter().map(|k| self.found.get(k).cloned()).collect()
    }
}

/// `<project>_<view>`, the table/hash name Feast uses, after checking both
/// names so nothing unexpected can reach SQL.
pub fn table_name(project: &str, view: &str) -> Result<String> {
    larder_model::names::check_project(project).map_err(|e| OnlineError::InvalidName(format!("project: {e}")))?;
    larder_model::names::check_feast_name(view).map_err(|e| OnlineError::InvalidName(format!("feature view: {e}")))?;
    Ok(format!("{project}_{view}"))
}

/// Decode a stored `Value`; empty bytes are an unset value.
pub fn decode_value(feature: &str, bytes: &[u8]) -> Result<Value> {
    <Value as prost::Message>::decode(bytes).map_err(|source| OnlineError::Decode {
        feature: feature.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_newest() {
        let row = |k: u8, ts: i64| EntityRow {
            entity_key: vec![k],
            event_ts: ts,
            created_ts: None,
            values: vec![],
        };
        let rows = vec![row(1, 5), row(2, 1), row(1, 9), row(1, 7)];
        let d = newest_per_key(&rows);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].event_ts, 9);
        assert_eq!(d[1].entity_key, vec![2]);
    }

    #[test]
    fn table_names_are_checked() {
        assert_eq!(
            table_name("demo", "driver_hourly_stats").unwrap(),
            "demo_driver_hourly_stats"
        );
        assert!(table_name("demo", "a\"; drop").is_err());
        assert!(table_name("de mo", "v").is_err());
    }
}
