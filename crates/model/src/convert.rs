//! Manifests → the Feast protobufs Feast 0.67's Python SDK writes, so
//! Feast reads what Larder stores (see feast-compat.md §1.9).

use std::path::{Component, Path, PathBuf};

use larder_protos::feast::core as fc;
use larder_protos::feast::core::data_source::{self, SourceType};

use crate::feast::FeastObject;
use crate::load::Loaded;
use crate::manifest::{DataSourceSpec, Document, FieldSpec, Object};
use crate::permissions::{parse_actions, parse_type};
use crate::validate::{Catalog, join_key};

pub const FILE_SOURCE_CLASS: &str = "feast.infra.offline_stores.file_source.FileSource";
pub const PUSH_SOURCE_CLASS: &str = "feast.data_source.PushSource";
pub const REQUEST_SOURCE_CLASS: &str = "feast.data_source.RequestSource";
pub const POSTGRES_SOURCE_CLASS: &str =
    "feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source.PostgreSQLSource";

/// Convert a validated catalog to Feast objects for `project`, in apply
/// order (data sources, entities, views, services, permissions). The
/// FeatureStore document, if any, becomes the `Project`.
pub fn to_feast(catalog: &Catalog, project: &str) -> Vec<FeastObject> {
    let mut out = Vec::new();
    for l in &catalog.objects {
        if let Object::FeatureStore(d) = &l.object {
            out.push(FeastObject::Project(fc::Project {
                spec: Some(fc::ProjectSpec {
                    name: d.spec.project.clone(),
                    description: d.spec.description.clone(),
                    tags: d.spec.tags.clone().into_iter().collect(),
                    owner: d.spec.owner.clone(),
                }),
                meta: None,
            }));
        }
    }
    for l in catalog.of_kind(crate::Kind::DataSource) {
        if let Object::DataSource(d) = &l.object {
            out.push(FeastObject::DataSource(data_source(catalog, l, d, project)));
        }
    }
    for l in catalog.of_kind(crate::Kind::Entity) {
        if let Object::Entity(d) = &l.object {
            out.push(FeastObject::Entity(fc::Entity {
                spec: Some(fc::EntitySpecV2 {
                    name: l.object.feast_name().to_string(),
                    project: project.to_string(),
                    value_type: d.spec.value_type.value_type(),
                    description: d.spec.description.clone(),
                    join_key: join_key(d).to_string(),
                    tags: d.spec.tags.clone().into_iter().collect(),
                    owner: d.spec.owner.clone(),
                }),
                meta: None,
            }));
        }
    }
    for l in catalog.of_kind(crate::Kind::FeatureView) {
        if let Object::FeatureView(d) = &l.object {
            out.push(FeastObject::FeatureView(feature_view(catalog, l, d, project)));
        }
    }
    for l in catalog.of_kind(crate::Kind::FeatureService) {
        if let Object::FeatureService(d) = &l.object {
            out.push(FeastObject::FeatureService(feature_service(catalog, l, d, project)));
        }
    }
    for l in catalog.of_kind(crate::Kind::Permission) {
        if let Object::Permission(d) = &l.object {
            out.push(FeastObject::Permission(permission(l, d, project)));
        }
    }
    out
}

fn feature_spec(f: &FieldSpec) -> fc::FeatureSpecV2 {
    fc::FeatureSpecV2 {
        name: f.name.clone(),
        value_type: f.dtype.value_type(),
        tags: f.tags.clone().into_iter().collect(),
        description: f.description.clone(),
        ..Default::default()
    }
}

/// Resolve a file source path: URIs stay as they are, relative paths are
/// anchored at the manifest's directory and made absolute, so every reader
/// (Larder, Feast) finds the same file wherever it runs from.
pub fn resolve_path(base_dir: &Path, path: &str) -> String {
    if path.contains("://") {
        return path.to_string();
    }
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    };
    let absolute = if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir().map(|d| d.join(&joined)).unwrap_or(joined)
    };
    normalize(&absolute).to_string_lossy().into_owned()
}

/// Lexically remove `.` and `..` (the file need not exist yet).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn data_source(catalog: &Catalog, l: &Loaded, d: &Document<DataSourceSpec>, project: &str) -> fc::DataSource {
    let s = &d.spec;
    let mut ds = fc::DataSource {
        name: l.object.feast_name().to_string(),
        project: project.to_string(),
        description: s.description.clone(),
        tags: s.tags.clone().into_iter().collect(),
        owner: s.owner.clone(),
        field_mapping: s.field_mapping.clone().into_iter().collect(),
        timestamp_field: s.timestamp_field.clone(),
        created_timestamp_column: s.created_timestamp_column.clone(),
        date_partition_column: s.date_partition_column.clone(),
        ..Default::default()
    };
    if let Some(f) = &s.file {
        ds.r#type = SourceType::BatchFile as i32;
        ds.data_source_class_type = FILE_SOURCE_CLASS.into();
        ds.options = Some(data_source::Options::FileOptions(data_source::FileOptions {
            file_format: None,
            uri: resolve_path(&l.base_dir, &f.path),
            s3_endpoint_override: f.s3_endpoint_override.clone().unwrap_or_default(),
        }));
    } else if let Some(pg) = &s.postgres {
        ds.r#type = SourceType::CustomSource as i32;
        ds.data_source_class_type = POSTGRES_SOURCE_CLASS.into();
        let config = serde_json::json!({
            "name": ds.name,
            "query": pg.query.clone().unwrap_or_default(),
            "table": pg.table.clone().unwrap_or_default(),
        });
        ds.options = Some(data_source::Options::CustomOptions(data_source::CustomSourceOptions {
            configuration: config.to_string().into_bytes(),
        }));
    } else if let Some(push) = &s.push {
        ds.r#type = SourceType::PushSource as i32;
        ds.data_source_class_type = PUSH_SOURCE_CLASS.into();
        if let Some((bl, bd)) = catalog.source(&push.batch_source) {
            let batch = data_source(catalog, bl, bd, project);
            // Python copies these up from the batch source (feast-compat §1.9).
            ds.timestamp_field = batch.timestamp_field.clone();
            ds.created_timestamp_column = batch.created_timestamp_column.clone();
            ds.field_mapping = batch.field_mapping.clone();
            ds.date_partition_column = batch.date_partition_column.clone();
            ds.batch_source = Some(Box::new(batch));
        }
    } else if let Some(r) = &s.request {
        ds.r#type = SourceType::RequestSource as i32;
        ds.data_source_class_type = REQUEST_SOURCE_CLASS.into();
        ds.options = Some(data_source::Options::RequestDataOptions(
            data_source::RequestDataOptions {
                schema: r.schema.iter().map(feature_spec).collect(),
                ..Default::default()
            },
        ));
    }
    ds
}

fn feature_view(
    catalog: &Catalog,
    l: &Loaded,
    d: &Document<crate::manifest::FeatureViewSpec>,
    project: &str,
) -> fc::FeatureView {
    let s = &d.spec;
    let entities: Vec<_> = s
        .entities
        .iter()
        .filter_map(|e| catalog.get(crate::Kind::Entity, e))
        .collect();
    let entity_columns = entities
        .iter()
        .filter_map(|e| match &e.object {
            Object::Entity(ed) => Some(fc::FeatureSpecV2 {
                name: join_key(ed).to_string(),
                value_type: ed.spec.value_type.value_type(),
                ..Default::default()
            }),
            _ => None,
        })
        .collect();
    let (batch_source, stream_source) = match catalog.source(&s.source) {
        Some((sl, sd)) => {
            let src = data_source(catalog, sl, sd, project);
            if src.r#type == SourceType::PushSource as i32 {
                (src.batch_source.as_deref().cloned(), Some(src))
            } else {
                (Some(src), None)
            }
        }
        None => (None, None),
    };
    let ttl = s.ttl.unwrap_or_default();
    fc::FeatureView {
        spec: Some(fc::FeatureViewSpec {
            name: l.object.feast_name().to_string(),
            project: project.to_string(),
            entities: entities.iter().map(|e| e.object.feast_name().to_string()).collect(),
            features: s.features.iter().map(feature_spec).collect(),
            tags: s.tags.clone().into_iter().collect(),
            ttl: Some(prost_types::Duration {
                seconds: ttl.seconds(),
                nanos: ttl.nanos(),
            }),
            batch_source,
            online: s.online.unwrap_or(true),
            stream_source,
            description: s.description.clone(),
            owner: s.owner.clone(),
            entity_columns,
            offline: s.offline,
            version: "latest".into(),
            ..Default::default()
        }),
        meta: None,
    }
}

fn feature_service(
    catalog: &Catalog,
    l: &Loaded,
    d: &Document<crate::manifest::FeatureServiceSpec>,
    project: &str,
) -> fc::FeatureService {
    let projections = d
        .spec
        .features
        .iter()
        .filter_map(|p| {
            let vl = catalog.get(crate::Kind::FeatureView, &p.view)?;
            let Object::FeatureView(vd) = &vl.object else {
                return None;
            };
            let view = feature_view(catalog, vl, vd, project);
            let spec = view.spec.unwrap_or_default();
            let columns = spec
                .features
                .iter()
                .filter(|f| p.features.is_empty() || p.features.contains(&f.name))
                .cloned()
                .collect();
            let batch = spec.batch_source.clone();
            Some(fc::FeatureViewProjection {
                feature_view_name: spec.name.clone(),
                feature_view_name_alias: p.alias.clone().unwrap_or_default(),
                feature_columns: columns,
                join_key_map: p.join_key_map.clone().into_iter().collect(),
                timestamp_field: batch.as_ref().map(|b| b.timestamp_field.clone()).unwrap_or_default(),
                date_partition_column: batch
                    .as_ref()
                    .map(|b| b.date_partition_column.clone())
                    .unwrap_or_default(),
                created_timestamp_column: batch
                    .as_ref()
                    .map(|b| b.created_timestamp_column.clone())
                    .unwrap_or_default(),
                batch_source: batch,
                view_type: "featureView".into(),
                ..Default::default()
            })
        })
        .collect();
    fc::FeatureService {
        spec: Some(fc::FeatureServiceSpec {
            name: l.object.feast_name().to_string(),
            project: project.to_string(),
            features: projections,
            tags: d.spec.tags.clone().into_iter().collect(),
            description: d.spec.description.clone(),
            owner: d.spec.owner.clone(),
            ..Default::default()
        }),
        meta: None,
    }
}

fn permission(l: &Loaded, d: &Document<crate::manifest::PermissionSpec>, project: &str) -> fc::Permission {
    use fc::policy::PolicyType;
    let s = &d.spec;
    let mut actions: Vec<i32> = Vec::new();
    for a in s.actions.iter().filter_map(|a| parse_actions(a).ok()).flatten() {
        if !actions.contains(&a) {
            actions.push(a);
        }
    }
    let pol = &s.policy;
    let policy_type = if let Some(r) = &pol.roles {
        PolicyType::RoleBasedPolicy(fc::RoleBasedPolicy { roles: r.clone() })
    } else if let Some(g) = &pol.groups {
        PolicyType::GroupBasedPolicy(fc::GroupBasedPolicy { groups: g.clone() })
    } else if let Some(n) = &pol.namespaces {
        PolicyType::NamespaceBasedPolicy(fc::NamespaceBasedPolicy { namespaces: n.clone() })
    } else {
        let gn = pol.groups_and_namespaces.clone().unwrap_or_default();
        PolicyType::CombinedGroupNamespacePolicy(fc::CombinedGroupNamespacePolicy {
            groups: gn.groups,
            namespaces: gn.namespaces,
        })
    };
    // Feast reads an empty type list as "all types"; writing all twelve keeps it explicit.
    let types = if s.types.is_empty() {
        (0..12).collect()
    } else {
        s.types.iter().filter_map(|t| parse_type(t).ok()).collect()
    };
    fc::Permission {
        spec: Some(fc::PermissionSpec {
            name: l.object.feast_name().to_string(),
            project: project.to_string(),
            types,
            name_patterns: s.name_patterns.clone(),
            required_tags: s.required_tags.clone().into_iter().collect(),
            actions,
            policy: Some(fc::Policy {
                policy_type: Some(policy_type),
                ..Default::default()
            }),
            tags: s.tags.clone().into_iter().collect(),
        }),
        meta: None,
    }
}
