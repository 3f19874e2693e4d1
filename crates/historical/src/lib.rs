//! Historical retrieval as users ask for it: feature references
//! (`view:feature`) or a feature service resolved against the registry —
//! the same resolution as online serving, aliases and join-key maps of
//! projections included — into a [`HistoricalRequest`] over the views'
//! batch sources; entity frames read from Parquet or CSV; training sets
//! written to Parquet without ever leaving a partial file.

mod files;

use larder_model::types::FeatureType;
use larder_offline::historical::{HistoricalJoinKey, HistoricalRequest, HistoricalView};
use larder_offline::{OfflineError, SourceSpec};
use larder_registry::cache::Snapshot;

pub use files::{read_entity_file, write_parquet};

/// What can go wrong before or around the engine.
#[derive(Debug, thiserror::Error)]
pub enum HistoricalError {
    /// A feature reference, view, feature or service that does not resolve.
    #[error(transparent)]
    Resolve(#[from] larder_serving::ServeError),
    /// The engine or a source.
    #[error(transparent)]
    Offline(#[from] OfflineError),
    /// An entity or output file.
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Resolve `features` (or `feature_service`) in `project` of `snapshot`
/// into a request over the views' batch sources. `postgres_url` is the
/// offline store's connection for PostgreSQL sources.
pub fn resolve(
    snapshot: &Snapshot,
    project: &str,
    features: &[String],
    feature_service: Option<&str>,
    full_feature_names: bool,
    postgres_url: Option<&str>,
) -> Result<HistoricalRequest, HistoricalError> {
    let plan = larder_serving::plan_in(snapshot, project, features, feature_service)?;
    let mut views = Vec::with_capacity(plan.views.len());
    for read in &plan.views {
        let spec = read.view.spec.clone().unwrap_or_default();
        let source_proto = spec.batch_source.clone().unwrap_or_default();
        let source = SourceSpec::from_feast(&source_proto, postgres_url)?;
        let types: Vec<(String, FeatureType)> = read
            .features
            .iter()
            .map(|f| {
                let t = spec
                    .features
                    .iter()
                    .find(|s| &s.name == f)
                    .map(|s| FeatureType::from_proto(s.value_type))
                    .unwrap_or(FeatureType::from_proto(0));
                (f.clone(), t)
            })
            .collect();
        let ttl_ns = spec
            .ttl
            .map(|d| {
                d.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i64::from(d.nanos))
            })
            .unwrap_or(0)
            .max(0);
        views.push(HistoricalView {
            name: spec.name.clone(),
            shown_as: read.shown_as.clone(),
            source,
            join_keys: read
                .keys
                .iter()
                .filter(|k| k.name != larder_offline::DUMMY_ENTITY_ID)
                .map(|k| HistoricalJoinKey {
                    name: k.name.clone(),
                    column: k.column.clone(),
                    value_type: k.value_type,
                })
                .collect(),
            features: types,
            ttl_ns,
        });
    }
    Ok(HistoricalRequest {
        views,
        full_feature_names,
    })
}
