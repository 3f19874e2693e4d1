//! Reconcile one Entity, DataSource, FeatureView, FeatureService or
//! Permission: dereference its FeatureStore and dependencies from the
//! caches, validate and build with the model, write the registry object
//! only when it differs, provision the view's online table, and report.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
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
use crate::conditions::{self, Cond, READY, TABLES_PROVISIONED};
use crate::context::{Context, api_resource, key};
use crate::objects::{self, Resource};

/// What one successful pass did, for status and events.
struct Applied {
    resource: Resource,
    project: String,
    outcome: ApplyOutcome,
    tables: Option<Result<(), String>>,
    last_materialized: Option<String>,
}

pub async fn reconcile(kind: Kind, obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let label = kind.as_str();
    ctx.metrics.reconciles.with_label_values(&[label]).inc();
    let span = tracing::info_span!("reconcile", kind = label, object = %key(&obj));
    let _enter = span.enter();
    let result = if obj.metadata.deletion_timestamp.is_some() {
        cleanup(kind, &obj, &ctx).await
    } else {
        apply(kind, &obj, &ctx).await
    };
    ctx.metrics
        .duration
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        ctx.metrics.errors.with_label_values(&[label, e.label()]).inc();
    }
    result
}

/// Retry transient failures with a growing delay; everything else waits
/// for a change (of this resource or of what it refers to).
pub fn error_policy(kind: Kind, obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(kind = kind.as_str(), object = %key(&obj), reason = err.label(), error = %err, "reconcile failed");
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
    match write(kind, obj, ctx).await {
        Ok(applied) => {
            report_success(kind, obj, ctx, &previous, &applied).await?;
            ctx.succeeded(&format!("{kind}/{}", key(obj)));
            Ok(Action::requeue(ctx.settings.resync))
        }
        Err(e) => {
            let mut status = previous.clone();
            status.conditions = conditions::merge(
                &previous.conditions,
                &[Cond::failed(READY, e.label(), e.to_string())],
                obj.metadata.generation,
                &now(),
            );
            status.observed_generation = obj.metadata.generation;
            let reason_changed = ready_reason(&previous.conditions) != Some(e.label());
            ctx.apply_status(kind, obj, to_value(&status)).await?;
            if reason_changed {
                ctx.event(obj, &api_resource(kind), true, e.label(), e.to_string())
                    .await;
            }
            if e.is_transient() {
                Err(e)
            } else {
                // The user (or a referenced resource appearing) fixes this; watches bring us back.
                Ok(Action::await_change())
            }
        }
    }
}

fn ready_reason(conds: &[Condition]) -> Option<&str> {
    conds.iter().find(|c| c.type_ == READY).map(|c| c.reason.as_str())
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

async fn write(kind: Kind, obj: &DynamicObject, ctx: &Context) -> Result<Applied, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let res = objects::parse(kind, obj)?;
    let (store, backend) = backend_for(&res, &ns, ctx)?;
    let store_name = store.name().to_string();
    let candidates = ctx.store_resources(&ns, &store_name);
    let same_kind: Vec<Resource> = candidates
        .iter()
        .filter(|c| c.kind() == kind && c.name() != res.name())
        .cloned()
        .collect();
    objects::check_name_conflict(&res, &same_kind)?;
    let catalog = objects::check(&res, objects::closure(&res, &store, &candidates))?;
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
    if let Some((schema, online)) = view {
        let provisioned = conditions::is_true(&previous_status(obj).conditions, TABLES_PROVISIONED)
            && previous_status(obj).observed_generation == obj.metadata.generation;
        if let (Some(store), true) = (&backend.online, online) {
            if outcome != ApplyOutcome::Unchanged || !provisioned {
                tables = Some(
                    store
                        .update(&project, std::slice::from_ref(&schema), &[])
                        .await
                        .map_err(|e| e.to_string()),
                );
            } else {
                tables = Some(Ok(()));
            }
        }
        last_materialized = materialized_until(&backend, &project, &schema.name).await;
    }
    Ok(Applied {
        resource: res,
        project,
        outcome,
        tables,
        last_materialized,
    })
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

async fn report_success(
    kind: Kind,
    obj: &DynamicObject,
    ctx: &Context,
    previous: &ObjectStatus,
    applied: &Applied,
) -> Result<(), Error> {
    let ar = api_resource(kind);
    let fname = applied.resource.loaded.object.feast_name().to_string();
    let mut wanted = Vec::new();
    let (table_ok, table_msg) = match &applied.tables {
        Some(Ok(())) => (true, String::new()),
        Some(Err(e)) => (false, e.clone()),
        None => (true, String::new()),
    };
    if applied.tables.is_some() {
        wanted.push(if table_ok {
            Cond::ok(TABLES_PROVISIONED, "Provisioned", "the online table exists")
        } else {
            Cond::failed(TABLES_PROVISIONED, "OnlineStoreUnavailable", table_msg.clone())
        });
    }
    let verb = match applied.outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "in sync",
    };
    wanted.push(if table_ok {
        Cond::ok(
            READY,
            "Applied",
            format!(
                "{} {fname} {verb} in project {}",
                objects::feast_kind(kind),
                applied.project
            ),
        )
    } else {
        Cond::failed(READY, "OnlineStoreUnavailable", table_msg)
    });
    let status = ObjectStatus {
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, &now()),
        observed_generation: obj.metadata.generation,
        project: Some(applied.project.clone()),
        feast_name: Some(fname.clone()),
        feature_count: match &applied.resource.loaded.object {
            larder_model::Object::FeatureView(d) => Some(d.spec.features.len() as u32),
            _ => None,
        },
        last_materialized: applied.last_materialized.clone(),
    };
    ctx.apply_status(kind, obj, to_value(&status)).await?;
    let was_in_sync =
        conditions::is_true(&previous.conditions, READY) && previous.observed_generation == obj.metadata.generation;
    match applied.outcome {
        ApplyOutcome::Updated if was_in_sync => {
            ctx.event(
                obj,
                &ar,
                false,
                "DriftCorrected",
                format!(
                    "{} {fname} in the registry differed from this resource (changed outside the operator) and was rewritten",
                    objects::feast_kind(kind)
                ),
            )
            .await
        }
        ApplyOutcome::Created | ApplyOutcome::Updated => {
            ctx.event(obj, &ar, false, "Applied", format!("{} {fname} {verb}", objects::feast_kind(kind)))
                .await
        }
        ApplyOutcome::Unchanged => {}
    }
    if !table_ok {
        return Err(Error::Online(larder_online::OnlineError::Config(
            "provisioning the online table failed".into(),
        )));
    }
    Ok(())
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
                && objects::parse(kind, o).is_ok_and(|r| r.loaded.object.feast_name() == fname)
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
