//! Reconcile one Entity, DataSource, FeatureView, FeatureService or
//! Permission: dereference its FeatureStore and dependencies from the
//! caches, validate and build with the model, write the registry object
//! only when it differs, provision the view's online table, and report.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use larder_model::Kind;
use larder_model::crd::ObjectStatus;
use larder_model::feast::{FeastKind, FeastObject};
use larder_online::ViewSchema;
use larder_registry::ApplyOutcome;

use crate::Error;
use crate::backend::Backend;
use crate::conditions::{self, TABLES_PROVISIONED};
use crate::context::{Context, api_resource, key};
use crate::materialization;
use crate::objects::{self, Resource};
use crate::status::{self, Notice, Written};

pub async fn reconcile(kind: Kind, obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.instrument(kind, &obj, async {
        if obj.metadata.deletion_timestamp.is_some() {
            cleanup(kind, &obj, &ctx).await
        } else {
            apply(kind, &obj, &ctx).await
        }
    })
    .await
}

/// Retry transient failures with a growing delay; everything else waits
/// for a change (of this resource or of what it refers to).
pub fn error_policy(kind: Kind, obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    if matches!(err, Error::StoreNotReady(_)) {
        // Expected while a FeatureStore connects; its status says why.
        tracing::info!(kind = kind.as_str(), object = %key(&obj), error = %err, "waiting for the FeatureStore");
    } else {
        tracing::warn!(kind = kind.as_str(), object = %key(&obj), reason = err.label(), error = %err, "reconcile failed");
    }
    Action::requeue(ctx.backoff(&format!("{kind}/{}", key(&obj))))
}

fn previous_status(obj: &DynamicObject) -> ObjectStatus {
    obj.data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

async fn apply(kind: Kind, obj: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    ctx.set_finalizer(kind, obj, true).await?;
    let previous = previous_status(obj);
    let generation = obj.metadata.generation;
    match write(kind, obj, ctx, &previous).await {
        Ok((written, materialization)) => {
            let (mut status, notice) = status::object_written(&previous, &written, generation, &now());
            let mut requeue = ctx.settings.resync;
            let mut run_notice = None;
            if let Some(m) = materialization {
                status.materialization = m.status;
                if let Some(c) = m.condition {
                    status.conditions = conditions::merge(&status.conditions, &[c], generation, &now());
                }
                run_notice = m.notice;
                requeue = m.requeue.map_or(requeue, |r| r.min(requeue));
            }
            ctx.apply_status(kind, obj, to_value(&status)).await?;
            publish(ctx, kind, obj, notice).await;
            publish(ctx, kind, obj, run_notice).await;
            if let Some(Err(e)) = written.tables {
                // Retried with backoff: the registry is written, the table is not.
                return Err(Error::Online(larder_online::OnlineError::Config(e)));
            }
            ctx.succeeded(&format!("{kind}/{}", key(obj)));
            Ok(Action::requeue(requeue))
        }
        Err(e) => {
            let (status, notice) = status::object_failed(&previous, &e, generation, &now());
            ctx.apply_status(kind, obj, to_value(&status)).await?;
            publish(ctx, kind, obj, notice).await;
            if e.is_transient() {
                Err(e)
            } else {
                // The user (or a referenced resource appearing) fixes this; watches bring us back.
                Ok(Action::await_change())
            }
        }
    }
}

async fn publish(ctx: &Context, kind: Kind, obj: &DynamicObject, notice: Option<Notice>) {
    if let Some(n) = notice {
        ctx.event(obj, &api_resource(kind), n.warning, &n.reason, n.message)
            .await;
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn to_value(status: &ObjectStatus) -> serde_json::Value {
    serde_json::to_value(status).unwrap_or_default()
}

/// The store this resource belongs to and its open backend.
fn backend_for(res: &Resource, ns: &str, ctx: &Context) -> Result<(Resource, Arc<Backend>), Error> {
    let store_name = objects::store_name(res, &ctx.store_names(ns))?;
    let store_obj = ctx
        .cached(Kind::FeatureStore, ns)
        .into_iter()
        .find(|o| o.obj().name_any() == store_name)
        .ok_or_else(|| Error::StoreNotFound(format!("FeatureStore {store_name} is gone")))?;
    let store = objects::parse(Kind::FeatureStore, store_obj.obj())
        .map_err(|_| Error::StoreNotReady(format!("{store_name} (its spec is invalid)")))?;
    let backend = ctx
        .backends
        .get(&format!("{ns}/{store_name}"))
        .ok_or_else(|| Error::StoreNotReady(store_name.clone()))?;
    Ok((store, backend))
}

/// Dereference, validate, build and write; what was done (and, for a
/// view, what its materialization step did).
async fn write(
    kind: Kind,
    obj: &DynamicObject,
    ctx: &Context,
    previous: &ObjectStatus,
) -> Result<(Written, Option<materialization::Outcome>), Error> {
    let ns = obj.namespace().unwrap_or_default();
    let res = objects::parse(kind, obj)?;
    let (store, backend) = backend_for(&res, &ns, ctx)?;
    let store_name = store.name().to_string();
    let stores = ctx.store_names(&ns);
    // Same registry name, same store: only those need parsing for the conflict check.
    let fname = res.loaded.object.feast_name().to_string();
    let same_name: Vec<Resource> = ctx
        .cached(kind, &ns)
        .iter()
        .map(|o| o.obj())
        .filter(|o| o.name_any() != res.name() && objects::raw_feast_name(o) == fname)
        .filter(|o| objects::raw_store_name(o, &stores).as_deref() == Some(store_name.as_str()))
        .filter_map(|o| objects::parse(kind, o).ok())
        .collect();
    objects::check_name_conflict(&res, &same_name)?;
    // Dependencies by key, parsed only when they belong to the same store.
    let lookup = |k: Kind, name: &str| {
        let cached = ctx.get(k, &ns, name)?;
        (objects::raw_store_name(cached.obj(), &stores).as_deref() == Some(store_name.as_str()))
            .then(|| objects::parse(k, cached.obj()).ok())
            .flatten()
    };
    let catalog = objects::check(&res, objects::closure(&res, &store, lookup))?;
    objects::check_dependencies_ready(&res, |kind, name| {
        ctx.get(kind, &ns, name)
            .is_some_and(|o| objects::is_current_and_ready(o.obj()))
    })?;
    let project = backend.config.project.clone();
    let desired = objects::build(&catalog, &res, &project)?;
    let view = match &desired {
        FeastObject::FeatureView(v) => Some((ViewSchema::from_proto(v), v.spec.as_ref().is_some_and(|s| s.online))),
        _ => None,
    };
    let outcome = backend.registry.apply(&project, desired).await?;
    if outcome != ApplyOutcome::Unchanged {
        ctx.metrics.registry_writes.with_label_values(&[kind.as_str()]).inc();
    }
    let mut tables = None;
    let mut last_materialized = None;
    if let Some((schema, online)) = &view {
        let provisioned = conditions::is_true(&previous.conditions, TABLES_PROVISIONED)
            && previous.observed_generation == obj.metadata.generation;
        if let (Some(store), true) = (&backend.online, *online) {
            if outcome != ApplyOutcome::Unchanged || !provisioned {
                tables = Some(
                    store
                        .update(&project, std::slice::from_ref(schema), &[])
                        .await
                        .map_err(|e| e.to_string()),
                );
            } else {
                tables = Some(Ok(()));
            }
        }
    }
    let mut run = None;
    if let (larder_model::Object::FeatureView(view), larder_model::Object::FeatureStore(store_doc)) =
        (&res.loaded.object, &store.loaded.object)
    {
        let input = materialization::ViewInput {
            view_resource: res.name(),
            view_uid: obj.metadata.uid.as_deref(),
            namespace: &ns,
            created: obj
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0)),
            request: obj
                .annotations()
                .get(materialization::REQUEST_ANNOTATION)
                .map(String::as_str),
            feast_view: &fname,
            view_spec: &view.spec,
            store_name: &store_name,
            store_spec: &store_doc.spec,
            previous: previous.materialization.as_ref(),
        };
        run = Some(match materialization::step(ctx, &backend, input).await {
            Ok(outcome) => outcome,
            // The view itself is fine: its materialization says what went wrong and retries.
            Err(e) => materialization::Outcome {
                status: previous.materialization.clone(),
                condition: Some(conditions::Cond::failed(
                    conditions::MATERIALIZED,
                    e.label(),
                    e.to_string(),
                )),
                notice: None,
                requeue: Some(ctx.backoff(&format!("materialize/{}", key(obj)))),
            },
        });
    }
    if let Some((schema, _)) = &view {
        last_materialized = materialized_until(&backend, &project, &schema.name).await;
    }
    let written = Written {
        kind,
        feast_name: res.loaded.object.feast_name().to_string(),
        project,
        outcome,
        tables,
        feature_count: match &res.loaded.object {
            larder_model::Object::FeatureView(d) => Some(d.spec.features.len() as u32),
            _ => None,
        },
        last_materialized,
    };
    Ok((written, run))
}

/// The end of the view's latest materialization interval, RFC 3339.
async fn materialized_until(backend: &Backend, project: &str, view: &str) -> Option<String> {
    let Ok(Some(FeastObject::FeatureView(v))) = backend.registry.get(project, FeastKind::FeatureView, view).await
    else {
        return None;
    };
    let end = v
        .meta?
        .materialization_intervals
        .iter()
        .filter_map(|i| i.end_time.as_ref())
        .max_by_key(|t| (t.seconds, t.nanos))
        .cloned()?;
    jiff::Timestamp::new(end.seconds, end.nanos).ok().map(|t| t.to_string())
}

/// Remove the registry object (and a view's online table) this resource
/// wrote, then release the finalizer. A resource that never reached the
/// registry, or whose store is gone, only releases its finalizer.
async fn cleanup(kind: Kind, obj: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    if !obj.finalizers().iter().any(|f| f == crate::FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let status = previous_status(obj);
    if let (Some(project), Some(fname)) = (&status.project, &status.feast_name) {
        let backend = objects::parse(kind, obj)
            .ok()
            .and_then(|res| backend_for(&res, &ns, ctx).ok())
            .map(|(_, b)| b);
        // Another live resource declaring the same name keeps the registry object.
        let still_declared = ctx.cached(kind, &ns).iter().any(|o| {
            let o = o.obj();
            o.metadata.deletion_timestamp.is_none()
                && o.name_any() != obj.name_any()
                && objects::raw_feast_name(o) == fname
        });
        match backend {
            Some(b) if b.config.project == *project && !still_declared => {
                let fkind = objects::feast_kind(kind);
                if let (Some(online), FeastKind::FeatureView) = (&b.online, fkind)
                    && let Some(FeastObject::FeatureView(v)) = b.registry.get(project, fkind, fname).await?
                {
                    online.update(project, &[], &[ViewSchema::from_proto(&v)]).await?;
                }
                if b.registry.delete(project, fkind, fname).await? {
                    ctx.metrics.registry_writes.with_label_values(&[kind.as_str()]).inc();
                }
                tracing::info!(project, name = %fname, "removed from the registry");
            }
            Some(_) => {}
            None => tracing::warn!(
                project,
                name = %fname,
                "no ready FeatureStore: leaving the registry object in place"
            ),
        }
    }
    ctx.set_finalizer(kind, obj, false).await?;
    ctx.succeeded(&format!("{kind}/{}", key(obj)));
    Ok(Action::await_change())
}
