//! Online feature retrieval, as Feast's `get_online_features` does it:
//! resolve `view:feature` references (or a feature service) against the
//! registry, build each view's entity keys, read every view once (views
//! concurrently), and lay the result out column by column.

use std::collections::{HashMap, HashSet};

use futures_util::future::try_join_all;
use larder_model::entity_key::serialize_entity_key;
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::types::FeatureType;
use larder_online::{OnlineStore, ViewSchema};
use larder_protos::feast::core as fc;
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Value};
use larder_registry::Registry;
use larder_registry::cache::Snapshot;
use serde_json::json;

/// `feast.serving.FieldStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStatus {
    Present,
    NotFound,
}

impl FieldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Present => "PRESENT",
            FieldStatus::NotFound => "NOT_FOUND",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRequest {
    /// `view:feature` references; ignored when `feature_service` is set.
    pub features: Vec<String>,
    pub feature_service: Option<String>,
    /// Join key → one value per entity row, in request order.
    pub entities: Vec<(String, Vec<Value>)>,
    pub full_feature_names: bool,
}

/// One response column: a value, status and event time per entity row.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<Value>,
    pub statuses: Vec<FieldStatus>,
    pub event_ts: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineResponse {
    pub columns: Vec<Column>,
}

impl OnlineResponse {
    /// Feast's HTTP JSON: `{"metadata": {"feature_names": [...]}, "results": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        let results: Vec<serde_json::Value> = self
            .columns
            .iter()
            .map(|c| {
                json!({
                    "values": c.values.iter().map(larder_model::json::value_to_json).collect::<Vec<_>>(),
                    "statuses": c.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "event_timestamps": c.event_ts.iter().map(|t| larder_model::json::timestamp_to_json(*t)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"metadata": {"feature_names": names}, "results": results})
    }
}

/// Errors named like Feast's exceptions so servers can map them.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("Feature view {name} does not exist in project {project}")]
    FeatureViewNotFound { name: String, project: String },
    #[error("Feature service {name} does not exist in project {project}")]
    FeatureServiceNotFound { name: String, project: String },
    #[error("Feature {feature} not found in projection {view}")]
    FeatureNotFound { feature: String, view: String },
    #[error("invalid feature reference {0:?}: use <feature_view>:<feature>")]
    InvalidReference(String),
    #[error("no features requested")]
    NoFeatures,
    #[error("entity column {0} is required by the requested features but missing")]
    MissingEntity(String),
    /// A key the entity-key serialization cannot encode (a value of a type
    /// keys cannot have).
    #[error("invalid entity key: {0}")]
    EntityKey(String),
    #[error("entity columns have different lengths: {0}")]
    LengthMismatch(String),
    #[error("no entity rows given")]
    NoEntities,
    #[error("entity {join_key} value {value} does not match its type {expected}")]
    WrongEntityType {
        join_key: String,
        value: String,
        expected: String,
    },
    #[error("registry: {0}")]
    Registry(#[from] larder_registry::RegistryError),
    #[error("online store: {0}")]
    Online(#[from] larder_online::OnlineError),
}

/// One view to read: which features, under which names, keyed how.
#[derive(Debug, Clone)]
pub struct ViewRead {
    pub view: fc::FeatureView,
    /// Prefix for full feature names (projection alias or view name).
    pub shown_as: String,
    pub features: Vec<String>,
    pub keys: Vec<JoinKey>,
    schema: ViewSchema,
}

/// How a view's join key is read from the request.
#[derive(Debug, Clone)]
pub struct JoinKey {
    /// The join key's name in the view (and in its stored entity keys).
    pub name: String,
    /// The request column holding its values (differs under a feature
    /// service projection's join-key map).
    pub column: String,
    pub value_type: FeatureType,
}

/// A resolved request: which views to read and how. Depends only on the
/// registry and the requested features, so servers cache it per registry
/// version instead of resolving on every request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub views: Vec<ViewRead>,
}

impl Plan {
    /// The join key value type of a request column, for converting request
    /// values (`None`: no requested view is keyed by it).
    pub fn key_type(&self, column: &str) -> Option<FeatureType> {
        self.views
            .iter()
            .flat_map(|v| v.keys.iter())
            .find(|k| k.column == column)
            .map(|k| k.value_type)
    }
}

async fn view_of(registry: &dyn Registry, project: &str, name: &str) -> Result<fc::FeatureView, ServeError> {
    view_in(
        registry.get(project, FeastKind::FeatureView, name).await?,
        project,
        name,
    )
}

fn view_in(found: Option<FeastObject>, project: &str, name: &str) -> Result<fc::FeatureView, ServeError> {
    match found {
        Some(FeastObject::FeatureView(v)) => Ok(v),
        _ => Err(ServeError::FeatureViewNotFound {
            name: name.to_string(),
            project: project.to_string(),
        }),
    }
}

/// A view a request names.
struct Wanted {
    view: String,
    /// Prefix of full feature names: the projection's alias, else the view name.
    shown_as: String,
    features: Vec<String>,
    /// Join key in the view → request column (a projection's join-key map).
    join_key_map: HashMap<String, String>,
}

/// Resolve `features` (or `feature_service`) against the registry.
pub async fn plan(
    registry: &dyn Registry,
    project: &str,
    features: &[String],
    feature_service: Option<&str>,
) -> Result<Plan, ServeError> {
    let wanted = match feature_service {
        Some(svc) => from_service(
            registry.get(project, FeastKind::FeatureService, svc).await?,
            project,
            svc,
        )?,
        None => from_references(features)?,
    };
    if wanted.is_empty() {
        return Err(ServeError::NoFeatures);
    }
    let views = try_join_all(wanted.iter().map(|w| view_of(registry, project, &w.view))).await?;
    assemble(views, wanted)
}

/// [`plan`] against one registry snapshot: the plan is valid exactly as
/// long as that snapshot (its [`Snapshot::generation`]) is served.
pub fn plan_in(
    snapshot: &Snapshot,
    project: &str,
    features: &[String],
    feature_service: Option<&str>,
) -> Result<Plan, ServeError> {
    let wanted = match feature_service {
        Some(svc) => from_service(snapshot.get(project, FeastKind::FeatureService, svc), project, svc)?,
        None => from_references(features)?,
    };
    if wanted.is_empty() {
        return Err(ServeError::NoFeatures);
    }
    let views = wanted
        .iter()
        .map(|w| view_in(snapshot.get(project, FeastKind::FeatureView, &w.view), project, &w.view))
        .collect::<Result<Vec<_>, _>>()?;
    assemble(views, wanted)
}

/// The key a resolved plan is cached under: the service name, or the
/// references exactly as requested, each a tag byte and its length (4 bytes)
/// before its bytes, so no list can forge another's key (`["a\nb"]` and
/// `["a", "b"]` differ). Built on every request, so it is only copied: lists
/// that resolve alike but are written differently (duplicates, `view@v2`
/// pins, views interleaved) get entries of their own, which the cache's bound
/// keeps in check. `None` when a name is longer than 4 GiB.
pub fn plan_key(features: &[String], feature_service: Option<&str>) -> Option<Vec<u8>> {
    fn push(key: &mut Vec<u8>, tag: u8, name: &str) -> Option<()> {
        key.push(tag);
        key.extend_from_slice(&u32::try_from(name.len()).ok()?.to_le_bytes());
        key.extend_from_slice(name.as_bytes());
        Some(())
    }
    let mut key = match feature_service {
        Some(svc) => Vec::with_capacity(svc.len() + 5),
        None => Vec::with_capacity(features.iter().map(|f| f.len() + 5).sum()),
    };
    match feature_service {
        Some(svc) => push(&mut key, b's', svc)?,
        None => {
            for f in features {
                push(&mut key, b'f', f)?;
            }
        }
    }
    Some(key)
}

fn from_service(found: Option<FeastObject>, project: &str, svc: &str) -> Result<Vec<Wanted>, ServeError> {
    let Some(FeastObject::FeatureService(fs)) = found else {
        return Err(ServeError::FeatureServiceNotFound {
            name: svc.to_string(),
            project: project.to_string(),
        });
    };
    Ok(fs
        .spec
        .unwrap_or_default()
        .features
        .into_iter()
        .map(|p| {
            let shown_as = if p.feature_view_name_alias.is_empty() {
                p.feature_view_name.clone()
            } else {
                p.feature_view_name_alias.clone()
            };
            Wanted {
                features: p.feature_columns.iter().map(|c| c.name.clone()).collect(),
                view: p.feature_view_name,
                shown_as,
                join_key_map: p.join_key_map.into_iter().collect(),
            }
        })
        .collect())
}

/// `view:feature` references grouped by view, in first-reference order.
fn from_references(features: &[String]) -> Result<Vec<Wanted>, ServeError> {
    let groups = group_references(features).map_err(|r| ServeError::InvalidReference(r.clone()))?;
    Ok(groups
        .into_iter()
        .map(|(view, feats)| Wanted {
            view: view.to_string(),
            shown_as: view.to_string(),
            features: feats.into_iter().map(String::from).collect(),
            join_key_map: HashMap::new(),
        })
        .collect())
}

/// References grouped by view, views and features in first-reference
/// order, duplicates and version pins dropped; `Err` is the first malformed
/// reference. Borrowed and allocation-light.
fn group_references(features: &[String]) -> Result<Vec<(&str, Vec<&str>)>, &String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    // Linear searches for the usual few references, hash lookups for long
    // lists (up to the server's feature limit); neither allocates until used.
    let long = features.len() > 32;
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for r in features {
        let (view, feat) = r.split_once(':').ok_or(r)?;
        // A version pin (`view@v2`) names the same table in 0.67's default layout.
        let view = view.split_once('@').map_or(view, |(v, _)| v);
        if view.is_empty() || feat.is_empty() {
            return Err(r);
        }
        if long {
            if !seen.insert((view, feat)) {
                continue;
            }
            let i = *index.entry(view).or_insert_with(|| {
                groups.push((view, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(feat);
        } else {
            match groups.iter_mut().find(|g| g.0 == view) {
                Some(g) if g.1.contains(&feat) => {}
                Some(g) => g.1.push(feat),
                None => groups.push((view, vec![feat])),
            }
        }
    }
    Ok(groups)
}

/// The plan for `wanted`, given each wanted view (same order).
fn assemble(views: Vec<fc::FeatureView>, wanted: Vec<Wanted>) -> Result<Plan, ServeError> {
    let mut out = Vec::new();
    for (
        view,
        Wanted {
            view: name,
            shown_as,
            features,
            join_key_map,
        },
    ) in views.into_iter().zip(wanted)
    {
        let spec = view.spec.clone().unwrap_or_default();
        for f in &features {
            if !spec.features.iter().any(|s| &s.name == f) {
                return Err(ServeError::FeatureNotFound {
                    feature: f.clone(),
                    view: name.clone(),
                });
            }
        }
        let keys = spec
            .entity_columns
            .iter()
            .map(|c| JoinKey {
                name: c.name.clone(),
                column: join_key_map.get(&c.name).cloned().unwrap_or_else(|| c.name.clone()),
                value_type: FeatureType::from_proto(c.value_type),
            })
            .collect();
        let schema = ViewSchema::from_proto(&view);
        out.push(ViewRead {
            view,
            shown_as,
            features,
            keys,
            schema,
        });
    }
    Ok(Plan { views: out })
}

/// Accept the value kinds a join key of type `t` takes (int32 widens to int64).
fn coerce_key(join_key: &str, v: &Value, t: FeatureType) -> Result<Value, ServeError> {
    let ok = match (&v.val, t) {
        (Some(Val::Int64Val(_)), FeatureType::INT64)
        | (Some(Val::Int32Val(_)), FeatureType::INT32)
        | (Some(Val::StringVal(_)), FeatureType::STRING) => true,
        (Some(Val::BytesVal(_)), FeatureType::BYTES)
        | (Some(Val::UnixTimestampVal(_)), FeatureType::UNIX_TIMESTAMP) => true,
        (Some(Val::Int32Val(i)), FeatureType::INT64) => {
            return Ok(Value {
                val: Some(Val::Int64Val(i64::from(*i))),
            });
        }
        (Some(Val::Int64Val(i)), FeatureType::INT32) if i32::try_from(*i).is_ok() => {
            return Ok(Value {
                val: Some(Val::Int32Val(*i as i32)),
            });
        }
        (Some(Val::Int64Val(i)), FeatureType::UNIX_TIMESTAMP) => {
            return Ok(Value {
                val: Some(Val::UnixTimestampVal(*i)),
            });
        }
        _ => false,
    };
    if ok {
        Ok(v.clone())
    } else {
        let expected = FeatureType::from_value_type(t.value_type())
            .map(|t| t.to_string())
            .unwrap_or_default();
        Err(ServeError::WrongEntityType {
            join_key: join_key.to_string(),
            value: larder_model::json::value_to_json(v).to_string(),
            expected,
        })
    }
}

/// Answer one request (resolve, then execute).
pub async fn get_online_features(
    registry: &dyn Registry,
    online: &dyn OnlineStore,
    project: &str,
    req: &OnlineRequest,
) -> Result<OnlineResponse, ServeError> {
    let plan = plan(registry, project, &req.features, req.feature_service.as_deref()).await?;
    execute(&plan, online, project, &req.entities, req.full_feature_names).await
}

/// Read a resolved plan for the given entity rows (in an `online.read`
/// span while traces are exported).
pub async fn execute(
    plan: &Plan,
    online: &dyn OnlineStore,
    project: &str,
    entities: &[(String, Vec<Value>)],
    full_feature_names: bool,
) -> Result<OnlineResponse, ServeError> {
    use tracing::Instrument;
    let span = larder_runtime::export_span!(
        "online.read",
        project = %project,
        views = plan.views.len(),
        rows = entities.first().map_or(0, |(_, v)| v.len())
    );
    read_plan(plan, online, project, entities, full_feature_names)
        .instrument(span)
        .await
}

async fn read_plan(
    plan: &Plan,
    online: &dyn OnlineStore,
    project: &str,
    entities: &[(String, Vec<Value>)],
    full_feature_names: bool,
) -> Result<OnlineResponse, ServeError> {
    let rows = match entities.first() {
        None => return Err(ServeError::NoEntities),
        Some((_, v)) => v.len(),
    };
    if rows == 0 {
        return Err(ServeError::NoEntities);
    }
    if let Some((k, v)) = entities.iter().find(|(_, v)| v.len() != rows) {
        return Err(ServeError::LengthMismatch(format!(
            "{} has {rows} values, {k} has {}",
            entities[0].0,
            v.len()
        )));
    }
    let reads = &plan.views;
    let entity = |name: &str| entities.iter().find(|(k, _)| k == name).map(|(_, v)| v);

    // Entity keys per view, checked before any read.
    let mut view_keys = Vec::with_capacity(reads.len());
    for r in reads {
        let mut keys = Vec::with_capacity(rows);
        let cols: Vec<(&JoinKey, &Vec<Value>)> = r
            .keys
            .iter()
            .map(|k| {
                entity(&k.column)
                    .map(|v| (k, v))
                    .ok_or_else(|| ServeError::MissingEntity(k.column.clone()))
            })
            .collect::<Result<_, _>>()?;
        for i in 0..rows {
            let mut ek = EntityKey::default();
            for (k, vals) in &cols {
                ek.join_keys.push(k.name.clone());
                ek.entity_values.push(coerce_key(&k.name, &vals[i], k.value_type)?);
            }
            keys.push(serialize_entity_key(&ek).map_err(|e| ServeError::EntityKey(e.to_string()))?);
        }
        view_keys.push(keys);
    }

    let results = try_join_all(
        reads
            .iter()
            .zip(&view_keys)
            .map(|(r, keys)| async move { online.online_read(project, &r.schema, keys, &r.features).await }),
    )
    .await?;

    let mut columns: Vec<Column> = entities
        .iter()
        .map(|(k, v)| Column {
            name: k.clone(),
            values: v.clone(),
            statuses: vec![FieldStatus::Present; rows],
            event_ts: vec![0; rows],
        })
        .collect();
    for (r, found) in reads.iter().zip(results) {
        for (fi, f) in r.features.iter().enumerate() {
            let name = if full_feature_names {
                format!("{}__{f}", r.shown_as)
            } else {
                f.clone()
            };
            let mut col = Column {
                name,
                values: Vec::with_capacity(rows),
                statuses: Vec::with_capacity(rows),
                event_ts: Vec::with_capacity(rows),
            };
            for row in &found {
                match row
                    .as_ref()
                    .and_then(|rr| rr.values[fi].clone().map(|v| (v, rr.event_ts)))
                {
                    Some((v, ts)) => {
                        col.values.push(v);
                        col.statuses.push(FieldStatus::Present);
                        col.event_ts.push(ts);
                    }
                    None => {
                        col.values.push(Value::default());
                        col.statuses.push(FieldStatus::NotFound);
                        col.event_ts.push(0);
                    }
                }
            }
            columns.push(col);
        }
    }
    Ok(OnlineResponse { columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    /// A key names one request list exactly: equal lists share it, any
    /// other list, service or layout of names has another.
    #[test]
    fn plan_keys_are_unambiguous() {
        let key = |r: &[&str]| plan_key(&refs(r), None);
        let base = key(&["a:x", "a:y", "b:z"]);
        assert!(base.is_some());
        assert_eq!(key(&["a:x", "a:y", "b:z"]), base);
        for other in [
            &["a:y", "a:x", "b:z"][..],
            &["b:z", "a:x", "a:y"],
            &["a:x", "a:y"],
            &["a:x", "a:y", "c:z"],
            &["a:x", "a:y", "b:z", "a:x"],
        ] {
            assert_ne!(key(other), base, "{other:?}");
        }
        // Names cannot forge the layout of another list.
        assert_ne!(key(&["ab:c"]), key(&["a:bc"]));
        assert_ne!(key(&["a:x\na:y"]), key(&["a:x", "a:y"]));
        assert_ne!(key(&["a:x", ""]), key(&["a:x"]));
        assert_ne!(plan_key(&[], Some("a")), key(&[]));
        assert_ne!(plan_key(&refs(&["a:a"]), Some("a")), key(&["a:a"]));
    }

    /// Lists that group alike resolve to the same views and features, in
    /// first-reference order, whether short (linear) or long (hashed).
    #[test]
    fn references_group_by_view() {
        let grouped = |r: &[String]| -> Vec<(String, Vec<String>)> {
            group_references(r)
                .unwrap()
                .into_iter()
                .map(|(v, fs)| (v.to_string(), fs.into_iter().map(String::from).collect()))
                .collect()
        };
        let base = grouped(&refs(&["a:x", "a:y", "b:z"]));
        for same in [
            &["a:x", "a:y", "b:z", "a:x"][..],
            &["a:x", "b:z", "a:y"],
            &["a@v2:x", "a:y", "b@latest:z"],
        ] {
            assert_eq!(grouped(&refs(same)), base, "{same:?}");
        }
        let long: Vec<String> = (0..40).map(|i| format!("v{}:f{}", i % 3, i % 7)).collect();
        let mut doubled = long.clone();
        doubled.extend(long.iter().rev().cloned());
        let short_way: Vec<String> = grouped(&long)
            .into_iter()
            .flat_map(|(v, fs)| fs.into_iter().map(move |f| format!("{v}:{f}")))
            .collect();
        assert!(short_way.len() <= 32);
        assert_eq!(grouped(&doubled), grouped(&short_way));
        for bad in ["nocolon", ":x", "v:"] {
            assert_eq!(group_references(&refs(&[bad])).unwrap_err(), bad);
        }
    }
}
