//! Feast protobufs → manifests, for `larder get` and for registries that
//! Feast itself wrote. References become Kubernetes-style names derived
//! from Feast names; `spec.name` keeps the Feast name when the two differ.

use std::collections::BTreeMap;

use larder_protos::feast::core as fc;
use larder_protos::feast::core::data_source::{Options, SourceType};

use crate::duration::Ttl;
use crate::feast::FeastObject;
use crate::manifest::*;
use crate::names::dns_name_for;
use crate::permissions::{action_name, type_name};
use crate::types::FeatureType;

/// Why an object cannot be shown as a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}: {message}")]
pub struct ReverseError {
    pub kind: String,
    pub name: String,
    pub message: String,
}

fn tags<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Tags {
    m.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn meta_and_name(feast_name: &str) -> (ObjectMeta, Option<String>) {
    let dns = dns_name_for(feast_name);
    let explicit = (dns != feast_name).then(|| feast_name.to_string());
    (
        ObjectMeta {
            name: dns,
            ..Default::default()
        },
        explicit,
    )
}

fn env<S>(kind: Kind, metadata: ObjectMeta, spec: S) -> Document<S> {
    Document {
        api_version: crate::API_VERSION.into(),
        kind: kind.as_str().into(),
        metadata,
        spec,
    }
}

fn field(f: &fc::FeatureSpecV2, err: &dyn Fn(String) -> ReverseError) -> Result<FieldSpec, ReverseError> {
    let dtype = FeatureType::from_value_type(f.value_type).ok_or_else(|| {
        err(format!(
            "feature {:?} has unsupported value type {}",
            f.name, f.value_type
        ))
    })?;
    Ok(FieldSpec {
        name: f.name.clone(),
        dtype,
        description: f.description.clone(),
        tags: tags(&f.tags),
    })
}

/// Convert one Feast object to a manifest. Kinds Larder does not model
/// (stream/on-demand/label views, saved datasets, validation references)
/// give an error naming the kind.
pub fn to_manifest(obj: &FeastObject) -> Result<Object, ReverseError> {
    let name = obj.name().to_string();
    let err = |message: String| ReverseError {
        kind: obj.kind().to_string(),
        name: name.clone(),
        message,
    };
    match obj {
        FeastObject::Project(p) => {
            let s = p.spec.clone().unwrap_or_default();
            Ok(Object::FeatureStore(env(
                Kind::FeatureStore,
                ObjectMeta {
                    name: dns_name_for(&s.name),
                    ..Default::default()
                },
                FeatureStoreSpec {
                    project: s.name,
                    description: s.description,
                    owner: s.owner,
                    tags: tags(&s.tags),
                    ..Default::default()
                },
            )))
        }
        FeastObject::Entity(e) => {
            let s = e.spec.clone().unwrap_or_default();
            let (metadata, explicit) = meta_and_name(&s.name);
            let value_type = FeatureType::from_value_type(s.value_type)
                .ok_or_else(|| err(format!("unsupported value type {}", s.value_type)))?;
            Ok(Object::Entity(env(
                Kind::Entity,
                metadata,
                EntitySpec {
                    join_key: (s.join_key != s.name).then(|| s.join_key.clone()),
                    name: explicit,
                    store_ref: None,
                    value_type,
                    description: s.description,
                    owner: s.owner,
                    tags: tags(&s.tags),
                },
            )))
        }
        FeastObject::DataSource(ds) => {
            let (metadata, explicit) = meta_and_name(&ds.name);
            let mut spec = DataSourceSpec {
                name: explicit,
                description: ds.description.clone(),
                owner: ds.owner.clone(),
                tags: tags(&ds.tags),
                ..Default::default()
            };
            let batch_fields = |spec: &mut DataSourceSpec| {
                spec.timestamp_field = ds.timestamp_field.clone();
                spec.created_timestamp_column = ds.created_timestamp_column.clone();
                spec.date_partition_column = ds.date_partition_column.clone();
                spec.field_mapping = ds.field_mapping.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            };
            match (SourceType::try_from(ds.r#type), &ds.options) {
                (Ok(SourceType::BatchFile), Some(Options::FileOptions(f))) => {
                    batch_fields(&mut spec);
                    spec.file = Some(FileSourceSpec {
                        path: f.uri.clone(),
                        s3_endpoint_override: (!f.s3_endpoint_override.is_empty())
                            .then(|| f.s3_endpoint_override.clone()),
                    });
                }
                (Ok(SourceType::CustomSource), Some(Options::CustomOptions(c)))
                    if ds.data_source_class_type == crate::convert::POSTGRES_SOURCE_CLASS =>
                {
                    batch_fields(&mut spec);
                    let cfg: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&c.configuration)
                        .map_err(|e| err(format!("invalid PostgreSQL source configuration: {e}")))?;
                    let get = |k: &str| {
                        cfg.get(k)
                            .and_then(|v| v.as_str())
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    spec.postgres = Some(PostgresSourceSpec {
                        table: get("table"),
                        query: get("query"),
                    });
                }
                (Ok(SourceType::PushSource), _) => {
                    let batch = ds
                        .batch_source
                        .as_ref()
                        .ok_or_else(|| err("push source without a batch source".into()))?;
                    spec.push = Some(PushSourceSpec {
                        batch_source: dns_name_for(&batch.name),
                    });
                }
                (Ok(SourceType::RequestSource), Some(Options::RequestDataOptions(r))) => {
                    let schema = r.schema.iter().map(|f| field(f, &err)).collect::<Result<_, _>>()?;
                    spec.request = Some(RequestSourceSpec { schema });
                }
                (t, _) => return Err(err(format!("source type {t:?} is not supported by Larder"))),
            }
            Ok(Object::DataSource(env(Kind::DataSource, metadata, spec)))
        }
        FeastObject::FeatureView(v) => {
            let s = v.spec.clone().unwrap_or_default();
            let (metadata, explicit) = meta_and_name(&s.name);
            let source = match (&s.stream_source, &s.batch_source) {
                (Some(st), _) if st.r#type == SourceType::PushSource as i32 => dns_name_for(&st.name),
                (_, Some(b)) => dns_name_for(&b.name),
                _ => return Err(err("feature view without a batch source".into())),
            };
            let ttl = s.ttl.map(|d| Ttl {
                millis: (d.seconds.max(0) as u64) * 1000 + (d.nanos.max(0) as u64) / 1_000_000,
            });
            let features = s.features.iter().map(|f| field(f, &err)).collect::<Result<_, _>>()?;
            Ok(Object::FeatureView(env(
                Kind::FeatureView,
                metadata,
                FeatureViewSpec {
                    name: explicit,
                    store_ref: None,
                    entities: s.entities.iter().map(|e| dns_name_for(e)).collect(),
                    source,
                    ttl: ttl.filter(|t| t.millis > 0),
                    online: (!s.online).then_some(false),
                    offline: s.offline,
                    features,
                    description: s.description,
                    owner: s.owner,
                    tags: tags(&s.tags),
                    materialization: None,
                },
            )))
        }
        FeastObject::FeatureService(fs) => {
            let s = fs.spec.clone().unwrap_or_default();
            let (metadata, explicit) = meta_and_name(&s.name);
            let features = s
                .features
                .iter()
                .map(|p| ProjectionSpec {
                    view: dns_name_for(&p.feature_view_name),
                    features: p.feature_columns.iter().map(|c| c.name.clone()).collect(),
                    alias: (!p.feature_view_name_alias.is_empty()).then(|| p.feature_view_name_alias.clone()),
                    join_key_map: p.join_key_map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                })
                .collect();
            Ok(Object::FeatureService(env(
                Kind::FeatureService,
                metadata,
                FeatureServiceSpec {
                    name: explicit,
                    store_ref: None,
                    features,
                    description: s.description,
                    owner: s.owner,
                    tags: tags(&s.tags),
                },
            )))
        }
        FeastObject::Permission(p) => {
            use fc::policy::PolicyType;
            let s = p.spec.clone().unwrap_or_default();
            let (metadata, explicit) = meta_and_name(&s.name);
            let policy = match s.policy.and_then(|p| p.policy_type) {
                Some(PolicyType::RoleBasedPolicy(r)) => PolicySpec {
                    roles: Some(r.roles),
                    ..Default::default()
                },
                Some(PolicyType::GroupBasedPolicy(g)) => PolicySpec {
                    groups: Some(g.groups),
                    ..Default::default()
                },
                Some(PolicyType::NamespaceBasedPolicy(n)) => PolicySpec {
                    namespaces: Some(n.namespaces),
                    ..Default::default()
                },
                Some(PolicyType::CombinedGroupNamespacePolicy(c)) => PolicySpec {
                    groups_and_namespaces: Some(GroupsAndNamespaces {
                        groups: c.groups,
                        namespaces: c.namespaces,
                    }),
                    ..Default::default()
                },
                None => return Err(err("permission without a policy (Feast's allow-all default)".into())),
            };
            let types = if s.types.len() == 12 {
                Vec::new()
            } else {
                s.types.iter().map(|t| type_name(*t)).collect()
            };
            Ok(Object::Permission(env(
                Kind::Permission,
                metadata,
                PermissionSpec {
                    name: explicit,
                    store_ref: None,
                    types,
                    name_patterns: s.name_patterns,
                    required_tags: tags(&s.required_tags),
                    actions: s.actions.iter().map(|a| action_name(*a)).collect(),
                    policy,
                    tags: tags(&s.tags),
                },
            )))
        }
        other => Err(err(format!(
            "{} objects are stored as Feast protobufs only",
            other.kind()
        ))),
    }
}
