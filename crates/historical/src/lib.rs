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

/// Resolve a request as Feast's remote offline store client sends it: the
/// views by name, each with the alias of its feature service projection (or
/// none), and `view-or-alias:feature` references. As Feast's offline server
/// does, an aliased view takes the join-key map of a feature service
/// projection with that alias.
pub fn resolve_views(
    snapshot: &Snapshot,
    project: &str,
    view_names: &[String],
    aliases: &[Option<String>],
    feature_refs: &[String],
    full_feature_names: bool,
    postgres_url: Option<&str>,
) -> Result<HistoricalRequest, HistoricalError> {
    use larder_model::feast::{FeastKind, FeastObject};
    use larder_serving::ServeError;
    let services = snapshot.list(project, FeastKind::FeatureService);
    let mut views = Vec::with_capacity(view_names.len());
    for (i, name) in view_names.iter().enumerate() {
        let alias = aliases.get(i).cloned().flatten().filter(|a| !a.is_empty());
        let Some(FeastObject::FeatureView(view)) = snapshot.get(project, FeastKind::FeatureView, name) else {
            return Err(ServeError::FeatureViewNotFound {
                name: name.clone(),
                project: project.to_string(),
            }
            .into());
        };
        let shown_as = alias.clone().unwrap_or_else(|| name.clone());
        let spec = view.spec.clone().unwrap_or_default();
        let mut features: Vec<String> = Vec::new();
        for r in feature_refs {
            let Some((prefix, feature)) = r.split_once(':') else {
                return Err(ServeError::InvalidReference(r.clone()).into());
            };
            let prefix = prefix.split_once('@').map_or(prefix, |(p, _)| p);
            if prefix != shown_as {
                continue;
            }
            if !spec.features.iter().any(|f| f.name == feature) {
                return Err(ServeError::FeatureNotFound {
                    feature: feature.to_string(),
                    view: shown_as.clone(),
                }
                .into());
            }
            if !features.iter().any(|n| n == feature) {
                features.push(feature.to_string());
            }
        }
        let join_key_map: std::collections::HashMap<String, String> = alias
            .as_ref()
            .and_then(|a| {
                services.iter().find_map(|o| match o {
                    FeastObject::FeatureService(s) => s.spec.as_ref().and_then(|spec| {
                        spec.features
                            .iter()
                            .find(|p| &p.feature_view_name_alias == a)
                            .map(|p| p.join_key_map.clone().into_iter().collect())
                    }),
                    _ => None,
                })
            })
            .unwrap_or_default();
        views.push(historical_view(
            &spec,
            shown_as,
            &features,
            &join_key_map,
            postgres_url,
        )?);
    }
    Ok(HistoricalRequest {
        views,
        full_feature_names,
    })
}

/// One requested view over its batch source: `features` typed as the view
/// declares them, its join keys the view's entity columns (Feast's
/// `__dummy_id` left out), each read from the frame column `join_key_map`
/// names (else its own name), its ttl in ns (0, unbounded, when unset).
fn historical_view(
    spec: &larder_protos::feast::core::FeatureViewSpec,
    shown_as: String,
    features: &[String],
    join_key_map: &std::collections::HashMap<String, String>,
    postgres_url: Option<&str>,
) -> Result<HistoricalView, HistoricalError> {
    let source = SourceSpec::from_feast(&spec.batch_source.clone().unwrap_or_default(), postgres_url)?;
    let features = features
        .iter()
        .map(|f| {
            let t = spec
                .features
                .iter()
                .find(|s| &s.name == f)
                .map_or(FeatureType::from_proto(0), |s| FeatureType::from_proto(s.value_type));
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
    Ok(HistoricalView {
        name: spec.name.clone(),
        shown_as,
        source,
        join_keys: spec
            .entity_columns
            .iter()
            .filter(|c| c.name != larder_offline::DUMMY_ENTITY_ID)
            .map(|c| HistoricalJoinKey {
                name: c.name.clone(),
                column: join_key_map.get(&c.name).cloned().unwrap_or_else(|| c.name.clone()),
                value_type: FeatureType::from_proto(c.value_type),
            })
            .collect(),
        features,
        ttl_ns,
    })
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
        let join_key_map = read.keys.iter().map(|k| (k.name.clone(), k.column.clone())).collect();
        views.push(historical_view(
            &spec,
            read.shown_as.clone(),
            &read.features,
            &join_key_map,
            postgres_url,
        )?);
    }
    Ok(HistoricalRequest {
        views,
        full_feature_names,
    })
}
