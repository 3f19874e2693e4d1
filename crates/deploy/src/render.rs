//! `larder render`: every Kubernetes object the operator would create for
//! the FeatureStores and views of a set of manifests, with the same
//! builders, as multi-document YAML for review in a pull request.

use chrono::{DateTime, Utc};
use larder_model::Object;
use larder_model::manifest::FeatureStoreSpec;

use crate::schedule::Schedule;
use crate::{BuildError, Defaults, Result, Store, config, jobs};

/// Render `objects` as the operator would in `namespace` (a document's own
/// `metadata.namespace` wins). Views with a schedule get the Jobs of their
/// next run after `now`.
pub fn render(objects: &[Object], namespace: &str, defaults: &Defaults, now: DateTime<Utc>) -> Result<String> {
    let ns_of = |o: &Object| o.metadata().namespace.clone().unwrap_or_else(|| namespace.to_string());
    let stores: Vec<(&str, String, &FeatureStoreSpec)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::FeatureStore(d) => Some((d.metadata.name.as_str(), ns_of(o), &d.spec)),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    for (name, ns, spec) in &stores {
        let store = Store {
            name,
            namespace: ns,
            uid: None,
            spec,
        };
        let children = crate::build(store, defaults)?;
        out.push_str(&format!("# FeatureStore {ns}/{name}\n"));
        for doc in children.documents() {
            push_doc(&mut out, &doc)?;
        }
    }
    for o in objects {
        let Object::FeatureView(view) = o else { continue };
        let ns = ns_of(o);
        let names: Vec<String> = stores.iter().filter(|s| s.1 == ns).map(|s| s.0.to_string()).collect();
        let Ok(owner) = larder_model::manifest::owning_store(o.store_ref(), &names) else {
            continue;
        };
        let Some((store_name, _, store_spec)) = stores.iter().find(|s| s.1 == ns && s.0 == owner) else {
            continue;
        };
        let settings = store_spec.materialization.as_deref();
        let expr = view
            .spec
            .materialization
            .as_ref()
            .and_then(|m| m.schedule.clone())
            .or_else(|| settings.and_then(|s| s.schedule.clone()));
        let Some(expr) = expr else { continue };
        let schedule = Schedule::parse(&expr, settings.and_then(|s| s.time_zone.as_deref())).map_err(|e| {
            BuildError::InvalidSpec(format!("FeatureView {}: schedule {expr:?}: {e}", view.metadata.name))
        })?;
        let Some(end) = jiff::Timestamp::new(now.timestamp(), 0)
            .ok()
            .and_then(|t| schedule.next_after(t))
            .and_then(|t| DateTime::from_timestamp(t.as_second(), 0))
        else {
            continue;
        };
        let ttl = view.spec.ttl.map(|t| t.millis).unwrap_or(0);
        let start = if ttl > 0 {
            end - chrono::Duration::milliseconds(ttl as i64)
        } else {
            DateTime::UNIX_EPOCH
        };
        let shards = view
            .spec
            .materialization
            .as_ref()
            .and_then(|m| m.shards)
            .or_else(|| settings.and_then(|s| s.shards))
            .unwrap_or(1);
        let store = Store {
            name: store_name,
            namespace: &ns,
            uid: None,
            spec: store_spec,
        };
        let rendered = config::render(store)?;
        let run = jobs::Run {
            view_resource: &view.metadata.name,
            view_uid: None,
            feast_view: o.feast_name(),
            start,
            end,
            shards,
        };
        out.push_str(&format!(
            "# FeatureView {ns}/{}: the Jobs of its next run (schedule {expr:?}); the operator starts the window where the last recorded interval ends\n",
            view.metadata.name
        ));
        for job in jobs::build(store, defaults, &rendered, settings, &run)? {
            push_doc(&mut out, &serde_json::to_value(&job).unwrap_or_default())?;
        }
    }
    Ok(out)
}

fn push_doc(out: &mut String, doc: &serde_json::Value) -> Result<()> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(doc).map_err(|e| BuildError::InvalidSpec(e.to_string()))?);
    Ok(())
}
