//! The pure core of an object reconcile: a custom resource as the model's
//! [`Loaded`] document, the set of documents it depends on, validation with
//! the model's own validator, and the Feast object it becomes.
//!
//! Resources are watched as untyped objects and parsed here, so one that
//! fails to parse is reported on its own status and never breaks the watch
//! of the others.

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DynamicObject;
use larder_model::error::Origin;
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::load::{Loaded, parse_value};
use larder_model::manifest::Object;
use larder_model::validate::{Catalog, validate};
use larder_model::{Kind, convert};

use crate::Error;

/// The kinds written to the registry as objects (all but FeatureStore).
pub const OBJECT_KINDS: [Kind; 5] = [
    Kind::Entity,
    Kind::DataSource,
    Kind::FeatureView,
    Kind::FeatureService,
    Kind::Permission,
];

/// The registry kind a resource kind is written as.
pub fn feast_kind(kind: Kind) -> FeastKind {
    match kind {
        Kind::FeatureStore => FeastKind::Project,
        Kind::Entity => FeastKind::Entity,
        Kind::DataSource => FeastKind::DataSource,
        Kind::FeatureView => FeastKind::FeatureView,
        Kind::FeatureService => FeastKind::FeatureService,
        Kind::Permission => FeastKind::Permission,
    }
}

/// One watched resource, parsed.
#[derive(Debug, Clone)]
pub struct Resource {
    pub loaded: Loaded,
    pub creation: Option<Time>,
}

impl Resource {
    pub fn name(&self) -> &str {
        &self.loaded.object.metadata().name
    }

    pub fn kind(&self) -> Kind {
        self.loaded.object.kind()
    }
}

/// Parse a watched object of `kind` with the model's parser; the error
/// names the field.
pub fn parse(kind: Kind, obj: &DynamicObject) -> Result<Resource, Error> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let origin = Origin::Object {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let value = serde_json::json!({
        "apiVersion": larder_model::API_VERSION,
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": namespace},
        "spec": obj.data.get("spec").cloned().unwrap_or(serde_json::Value::Null),
    });
    let yaml = serde_yaml::to_value(&value).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let object = parse_value(yaml, &origin).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    Ok(Resource {
        loaded: Loaded {
            origin,
            // Relative Parquet paths have no meaning in a cluster; anchor them at the root.
            base_dir: PathBuf::from("/"),
            object,
        },
        creation: obj.metadata.creation_timestamp.clone(),
    })
}

/// The FeatureStore (metadata name) a resource belongs to: `spec.storeRef`,
/// else the only FeatureStore of its namespace.
pub fn store_name(res: &Resource, stores_in_namespace: &[String]) -> Result<String, Error> {
    larder_model::manifest::owning_store(res.loaded.object.store_ref(), stores_in_namespace)
        .map(str::to_string)
        .map_err(|e| Error::StoreNotFound(e.to_string()))
}

/// `references` read straight from a watched object's JSON, without
/// parsing it: the watch mappers run this for every candidate on every
/// change, where a full parse per object would dominate the CPU time.
pub fn raw_references(kind: Kind, obj: &DynamicObject) -> Vec<(Kind, String)> {
    let spec = &obj.data["spec"];
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match kind {
        Kind::DataSource => s(&spec["push"]["batchSource"])
            .map(|n| (Kind::DataSource, n))
            .into_iter()
            .collect(),
        Kind::FeatureView => spec["entities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(s)
            .map(|n| (Kind::Entity, n))
            .chain(s(&spec["source"]).map(|n| (Kind::DataSource, n)))
            .collect(),
        Kind::FeatureService => spec["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| s(&p["view"]))
            .map(|n| (Kind::FeatureView, n))
            .collect(),
        Kind::FeatureStore | Kind::Entity | Kind::Permission => Vec::new(),
    }
}

/// The registry name of a watched object (`spec.name`, else `metadata.name`), without parsing it.
pub fn raw_feast_name(obj: &DynamicObject) -> &str {
    obj.data["spec"]["name"]
        .as_str()
        .or(obj.metadata.name.as_deref())
        .unwrap_or_default()
}

/// The FeatureStore a watched object belongs to, without parsing it (see [`store_name`]).
pub fn raw_store_name(obj: &DynamicObject, stores_in_namespace: &[String]) -> Option<String> {
    larder_model::manifest::owning_store(obj.data["spec"]["storeRef"].as_str(), stores_in_namespace)
        .ok()
        .map(str::to_string)
}

/// The metadata names a resource refers to directly.
pub fn references(obj: &Object) -> Vec<(Kind, String)> {
    match obj {
        Object::DataSource(d) => d
            .spec
            .push
            .iter()
            .map(|p| (Kind::DataSource, p.batch_source.clone()))
            .collect(),
        Object::FeatureView(d) => d
            .spec
            .entities
            .iter()
            .map(|e| (Kind::Entity, e.clone()))
            .chain([(Kind::DataSource, d.spec.source.clone())])
            .collect(),
        Object::FeatureService(d) => d
            .spec
            .features
            .iter()
            .map(|p| (Kind::FeatureView, p.view.clone()))
            .collect(),
        Object::FeatureStore(_) | Object::Entity(_) | Object::Permission(_) => Vec::new(),
    }
}

/// `target`, the FeatureStore and everything `target` depends on
/// (transitively), found by `lookup` (kind, metadata name → the store's
/// resource). References that are missing stay missing: validation names them.
pub fn closure(target: &Resource, store: &Resource, lookup: impl Fn(Kind, &str) -> Option<Resource>) -> Vec<Loaded> {
    let mut out = vec![store.loaded.clone(), target.loaded.clone()];
    let mut todo = references(&target.loaded.object);
    let mut seen: Vec<(Kind, String)> = vec![(target.kind(), target.name().to_string())];
    while let Some((kind, name)) = todo.pop() {
        if seen.contains(&(kind, name.clone())) {
            continue;
        }
        seen.push((kind, name.clone()));
        if let Some(dep) = lookup(kind, &name) {
            todo.extend(references(&dep.loaded.object));
            out.push(dep.loaded);
        }
    }
    out
}

/// The resource that keeps a registry name when several declare it: the
/// oldest, then the first by metadata name. Others get `NameConflict`.
pub fn check_name_conflict(target: &Resource, same_kind: &[Resource]) -> Result<(), Error> {
    let fname = target.loaded.object.feast_name();
    let key = |r: &Resource| (r.creation.as_ref().map(|t| t.0), r.name().to_string());
    let winner = same_kind
        .iter()
        .filter(|r| r.loaded.object.feast_name() == fname)
        .chain([target])
        .min_by_key(|r| key(r));
    match winner {
        Some(w) if w.name() != target.name() => Err(Error::NameConflict(format!(
            "{} {:?} is already declared by {} {}",
            target.kind(),
            fname,
            target.kind(),
            w.name()
        ))),
        _ => Ok(()),
    }
}

/// Validate the closure with the model's validator. Problems of `target`
/// itself become `InvalidSpec` or a missing-reference error; problems of a
/// dependency become `DependencyInvalid`.
pub fn check(target: &Resource, closure: Vec<Loaded>) -> Result<Catalog, Error> {
    validate(closure).map_err(|errors| {
        let own: Vec<_> = errors
            .0
            .iter()
            .filter(|e| e.origin.as_ref() == Some(&target.loaded.origin))
            .collect();
        if let Some(missing) = own.iter().find_map(|e| missing_reference(&e.message)) {
            return Error::Reference {
                kind: missing.0,
                name: missing.1,
                message: own.iter().map(|e| field_message(e)).collect::<Vec<_>>().join("; "),
            };
        }
        if !own.is_empty() {
            return Error::InvalidSpec(own.iter().map(|e| field_message(e)).collect::<Vec<_>>().join("; "));
        }
        Error::DependencyInvalid(errors.to_string())
    })
}

fn field_message(e: &larder_model::ManifestError) -> String {
    if e.field.is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.field, e.message)
    }
}

/// `no Entity named "driver"` → (Entity, driver).
fn missing_reference(message: &str) -> Option<(Kind, String)> {
    let rest = message.strip_prefix("no ")?;
    let (kind, name) = rest.split_once(" named ")?;
    let kind = Kind::parse(kind)?;
    Some((kind, name.trim_matches('"').to_string()))
}

/// Whether a watched resource is in the registry as its current spec says:
/// `Ready=True` for its current generation.
pub fn is_current_and_ready(o: &DynamicObject) -> bool {
    let status = &o.data["status"];
    let ready = status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    ready && status["observedGeneration"].as_i64() == o.metadata.generation
}

/// Refuse to write `target` while a resource it refers to is not in the
/// registry yet, so Feast never reads a reference to a missing object.
/// `ready` says whether the resource of a kind and metadata name is
/// (see [`is_current_and_ready`]).
pub fn check_dependencies_ready(target: &Resource, ready: impl Fn(Kind, &str) -> bool) -> Result<(), Error> {
    let waiting: Vec<String> = references(&target.loaded.object)
        .into_iter()
        .filter(|(k, n)| !ready(*k, n))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(Error::DependencyNotReady(format!(
            "waiting for {} to be in the registry",
            waiting.join(", ")
        )))
    }
}

/// The Feast object `target` becomes in `project`.
pub fn build(catalog: &Catalog, target: &Resource, project: &str) -> Result<FeastObject, Error> {
    let kind = feast_kind(target.kind());
    let name = target.loaded.object.feast_name();
    convert::to_feast(catalog, project)
        .into_iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .ok_or_else(|| Error::InvalidSpec(format!("{kind} {name} did not convert")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use larder_protos::feast::core as fc;

    fn dynamic(kind: Kind, name: &str, spec: serde_json::Value, created: &str) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team-a".into()),
                creation_timestamp: Some(Time(created.parse().unwrap())),
                ..Default::default()
            },
            data: serde_json::json!({"spec": spec, "status": {"anything": 1}}),
        }
        .tap_kind(kind)
    }

    trait TapKind {
        fn tap_kind(self, kind: Kind) -> Self;
    }
    impl TapKind for DynamicObject {
        fn tap_kind(mut self, kind: Kind) -> Self {
            self.types = Some(kube::api::TypeMeta {
                api_version: larder_model::API_VERSION.into(),
                kind: kind.as_str().into(),
            });
            self
        }
    }

    fn res(kind: Kind, name: &str, spec: serde_json::Value) -> Resource {
        parse(kind, &dynamic(kind, name, spec, "2026-01-01T00:00:00Z")).unwrap()
    }

    fn store() -> Resource {
        res(
            Kind::FeatureStore,
            "drivers",
            serde_json::json!({"project": "driver_stats"}),
        )
    }

    fn view(entities: &[&str]) -> Resource {
        res(
            Kind::FeatureView,
            "driver-hourly-stats",
            serde_json::json!({"name": "driver_hourly_stats", "entities": entities, "source": "driver-stats-source", "ttl": "1d",
                               "features": [{"name": "conv_rate", "type": "Float32"}, {"name": "trips", "type": "Int64"}]}),
        )
    }

    fn find(all: &[Resource]) -> impl Fn(Kind, &str) -> Option<Resource> + '_ {
        move |k, n| all.iter().find(|r| r.kind() == k && r.name() == n).cloned()
    }

    fn deps() -> Vec<Resource> {
        vec![
            res(
                Kind::Entity,
                "driver",
                serde_json::json!({"joinKey": "driver_id", "valueType": "Int64"}),
            ),
            res(
                Kind::DataSource,
                "driver-stats-source",
                serde_json::json!({"push": {"batchSource": "driver-stats-batch"}}),
            ),
            res(
                Kind::DataSource,
                "driver-stats-batch",
                serde_json::json!({"file": {"path": "s3://bucket/driver_stats.parquet"}, "timestampField": "event_timestamp"}),
            ),
            res(Kind::Entity, "unrelated", serde_json::json!({"valueType": "String"})),
        ]
    }

    #[test]
    fn view_converts_with_its_entity_and_sources() {
        let v = view(&["driver"]);
        let c = closure(&v, &store(), find(&deps()));
        // store, view, entity, push source, batch source — not the unrelated entity
        assert_eq!(c.len(), 5);
        let catalog = check(&v, c).unwrap();
        let FeastObject::FeatureView(fv) = build(&catalog, &v, "driver_stats").unwrap() else {
            panic!("not a view")
        };
        let spec = fv.spec.unwrap();
        assert_eq!(spec.name, "driver_hourly_stats");
        assert_eq!(spec.project, "driver_stats");
        assert_eq!(spec.entities, vec!["driver"]);
        assert_eq!(spec.ttl.unwrap().seconds, 86_400);
        assert_eq!(spec.features.len(), 2);
        let batch = spec.batch_source.unwrap();
        assert_eq!(
            batch.options,
            Some(fc::data_source::Options::FileOptions(fc::data_source::FileOptions {
                uri: "s3://bucket/driver_stats.parquet".into(),
                ..Default::default()
            }))
        );
    }

    #[test]
    fn missing_entity_is_named() {
        let v = view(&["driver", "rider"]);
        let err = check(&v, closure(&v, &store(), find(&deps()))).unwrap_err();
        assert_eq!(err.label(), "EntityNotFound");
        assert!(err.to_string().contains("rider"), "{err}");
        let mut no_source = deps();
        no_source.retain(|d| d.kind() != Kind::DataSource);
        let v = view(&["driver"]);
        let err = check(&v, closure(&v, &store(), find(&no_source))).unwrap_err();
        assert_eq!(err.label(), "SourceNotFound");
    }

    #[test]
    fn a_broken_dependency_is_not_blamed_on_the_view() {
        let mut d = deps();
        d[0] = res(
            Kind::Entity,
            "driver",
            serde_json::json!({"joinKey": "driver-id", "valueType": "Int64"}),
        );
        let v = view(&["driver"]);
        let err = check(&v, closure(&v, &store(), find(&d))).unwrap_err();
        assert_eq!(err.label(), "DependencyInvalid");
        assert!(err.to_string().contains("Entity team-a/driver"), "{err}");
    }

    #[test]
    fn invalid_own_fields_and_unparsable_resources_are_invalid_spec() {
        let v = res(
            Kind::FeatureView,
            "v",
            serde_json::json!({"entities": ["driver"], "source": "driver-stats-source", "features": [{"name": "a", "type": "Int64"}, {"name": "a", "type": "Int64"}]}),
        );
        let err = check(&v, closure(&v, &store(), find(&deps()))).unwrap_err();
        assert_eq!(err.label(), "InvalidSpec");
        assert!(err.to_string().contains("spec.features[1].name"), "{err}");
        let bad = dynamic(
            Kind::FeatureView,
            "v",
            serde_json::json!({"entities": ["driver"], "source": "s", "ttl": "soon", "features": []}),
            "2026-01-01T00:00:00Z",
        );
        let err = parse(Kind::FeatureView, &bad).unwrap_err();
        assert_eq!(err.label(), "InvalidSpec");
        assert!(err.to_string().contains("spec.ttl"), "{err}");
    }

    #[test]
    fn a_view_waits_until_its_entity_and_source_are_ready() {
        let v = view(&["driver"]);
        let ready = |generation: i64, observed: i64, status: &str| {
            let mut o = dynamic(Kind::Entity, "x", serde_json::json!({}), "2026-01-01T00:00:00Z");
            o.metadata.generation = Some(generation);
            o.data["status"] = serde_json::json!({"observedGeneration": observed,
                "conditions": [{"type": "Ready", "status": status, "reason": "r", "message": "",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
            o
        };
        let ok = ready(2, 2, "True");
        let stale = ready(3, 2, "True");
        let failed = ready(2, 2, "False");
        assert!(is_current_and_ready(&ok));
        assert!(
            !is_current_and_ready(&stale),
            "a status of an older generation does not count"
        );
        assert!(!is_current_and_ready(&failed));
        let ready_if = |o: &DynamicObject| is_current_and_ready(o);
        assert!(check_dependencies_ready(&v, |_, _| ready_if(&ok)).is_ok());
        let err =
            check_dependencies_ready(&v, |k, _| ready_if(if k == Kind::Entity { &stale } else { &ok })).unwrap_err();
        assert_eq!(err.label(), "DependencyNotReady");
        assert!(err.to_string().contains("Entity driver"), "{err}");
        assert!(!err.to_string().contains("DataSource"), "{err}");
        let err = check_dependencies_ready(&v, |_, _| false).unwrap_err();
        assert!(err.to_string().contains("DataSource driver-stats-source"), "{err}");
        // Resources without references never wait.
        let e = res(Kind::Entity, "e", serde_json::json!({"valueType": "Int64"}));
        assert!(check_dependencies_ready(&e, |_, _| false).is_ok());
    }

    #[test]
    fn raw_accessors_agree_with_the_parsed_model() {
        let objs = [
            dynamic(
                Kind::FeatureView,
                "v",
                serde_json::json!({"name": "fv", "entities": ["a", "b"], "source": "s", "storeRef": "two", "features": []}),
                "2026-01-01T00:00:00Z",
            ),
            dynamic(
                Kind::DataSource,
                "p",
                serde_json::json!({"push": {"batchSource": "b"}}),
                "2026-01-01T00:00:00Z",
            ),
            dynamic(
                Kind::FeatureService,
                "svc",
                serde_json::json!({"features": [{"view": "v1"}, {"view": "v2", "features": ["x"]}]}),
                "2026-01-01T00:00:00Z",
            ),
            dynamic(
                Kind::Entity,
                "e",
                serde_json::json!({"valueType": "Int64"}),
                "2026-01-01T00:00:00Z",
            ),
        ];
        for (o, kind) in objs
            .iter()
            .zip([Kind::FeatureView, Kind::DataSource, Kind::FeatureService, Kind::Entity])
        {
            let r = parse(kind, o).unwrap();
            assert_eq!(raw_references(kind, o), references(&r.loaded.object), "{kind}");
            assert_eq!(raw_feast_name(o), r.loaded.object.feast_name(), "{kind}");
        }
        let stores = ["one".to_string(), "two".to_string()];
        assert_eq!(raw_store_name(&objs[0], &stores).as_deref(), Some("two"));
        assert_eq!(raw_store_name(&objs[3], &stores), None, "ambiguous without storeRef");
        assert_eq!(raw_store_name(&objs[3], &stores[..1]).as_deref(), Some("one"));
    }

    #[test]
    fn store_is_named_or_the_only_one() {
        let e = res(Kind::Entity, "e", serde_json::json!({"valueType": "Int64"}));
        assert_eq!(store_name(&e, &["a".into()]).unwrap(), "a");
        assert_eq!(store_name(&e, &[]).unwrap_err().label(), "StoreNotFound");
        assert!(
            store_name(&e, &["a".into(), "b".into()])
                .unwrap_err()
                .to_string()
                .contains("storeRef")
        );
        let e = res(
            Kind::Entity,
            "e",
            serde_json::json!({"valueType": "Int64", "storeRef": "b"}),
        );
        assert_eq!(store_name(&e, &["a".into(), "b".into()]).unwrap(), "b");
        assert_eq!(store_name(&e, &["a".into()]).unwrap_err().label(), "StoreNotFound");
    }

    #[test]
    fn the_oldest_resource_keeps_a_registry_name() {
        let older = parse(
            Kind::Entity,
            &dynamic(
                Kind::Entity,
                "b-old",
                serde_json::json!({"name": "driver", "valueType": "Int64"}),
                "2026-01-01T00:00:00Z",
            ),
        )
        .unwrap();
        let newer = parse(
            Kind::Entity,
            &dynamic(
                Kind::Entity,
                "a-new",
                serde_json::json!({"name": "driver", "valueType": "Int64"}),
                "2026-02-01T00:00:00Z",
            ),
        )
        .unwrap();
        let err = check_name_conflict(&newer, std::slice::from_ref(&older)).unwrap_err();
        assert_eq!(err.label(), "NameConflict");
        assert!(err.to_string().contains("b-old"), "{err}");
        assert!(check_name_conflict(&older, std::slice::from_ref(&newer)).is_ok());
    }
}
