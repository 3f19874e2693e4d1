//! Reconcile a FeatureStore: resolve its Secrets, open (and create) the
//! registry and the project, check the online store, enforce the object
//! policy, count the project's objects, roll out its workloads, and report
//! `RegistryReady`, `OnlineStoreReady`, `WorkloadsApplied`,
//! `FeatureServerAvailable`, `RegistryServerAvailable` and `Ready`. Deleting it waits for its resources
//! that are being deleted, then applies the deletion policy.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use larder_model::Kind;
use larder_model::crd::{FeatureStoreStatus, ObjectCounts};
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::manifest::{FeatureStoreSpec, Object};
use larder_model::stores::{DeletionPolicy, ObjectPolicy, SecretKeyRef};
use larder_protos::feast::core as fc;
use larder_registry::ApplyOutcome;
use larder_registry::plan::MANAGED_KINDS;

use crate::Error;
use crate::backend::{self, Backend, StoreConfig};
use crate::context::{Context, api_resource, key};
use crate::objects;
use crate::status::{self, Connected};

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.instrument(Kind::FeatureStore, &obj, async {
        if obj.metadata.deletion_timestamp.is_some() {
            delete(&obj, &ctx).await
        } else {
            apply(&obj, &ctx).await
        }
    })
    .await
}

pub fn error_policy(obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %key(&obj), reason = err.label(), error = %err, "FeatureStore reconcile failed");
    Action::requeue(ctx.backoff(&format!("FeatureStore/{}", key(&obj))))
}

fn spec_of(obj: &DynamicObject) -> Result<FeatureStoreSpec, Error> {
    match objects::parse(Kind::FeatureStore, obj)?.loaded.object {
        Object::FeatureStore(d) => Ok(d.spec),
        _ => Err(Error::InvalidSpec("not a FeatureStore".into())),
    }
}

async fn read_secret(ctx: &Context, ns: &str, r: &SecretKeyRef) -> Result<String, Error> {
    let err = |message: String| Error::Secret {
        secret: format!("{}/{}", r.name, r.key),
        message,
    };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| err("not found".into()))?;
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(&r.key)) {
        return String::from_utf8(v.0.clone()).map_err(|_| err("is not UTF-8".into()));
    }
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(&r.key)) {
        return Ok(v.clone());
    }
    Err(err(format!("has no key {:?}", r.key)))
}

/// Resolve the spec, reading every Secret it names.
async fn resolve(ctx: &Context, ns: &str, spec: &FeatureStoreSpec) -> Result<StoreConfig, Error> {
    let mut refs: Vec<SecretKeyRef> = Vec::new();
    if let Some(r) = &spec.registry {
        refs.push(r.sql.url_secret_ref.clone());
    }
    if let Some(o) = &spec.online_store {
        refs.extend(o.redis.iter().map(|r| r.connection_string_secret_ref.clone()));
        refs.extend(o.postgres.iter().map(|r| r.url_secret_ref.clone()));
        refs.extend(o.mysql.iter().map(|r| r.url_secret_ref.clone()));
    }
    let mut values = Vec::new();
    for r in refs {
        let v = read_secret(ctx, ns, &r).await;
        values.push((r, v));
    }
    backend::resolve(spec, |r| match values.iter().find(|(k, _)| k == r).map(|(_, v)| v) {
        Some(Ok(v)) => Ok(v.clone()),
        Some(Err(Error::Secret { secret, message })) => Err(Error::Secret {
            secret: secret.clone(),
            message: message.clone(),
        }),
        Some(Err(e)) => Err(Error::Secret {
            secret: format!("{}/{}", r.name, r.key),
            message: e.to_string(),
        }),
        None => Err(Error::Secret {
            secret: format!("{}/{}", r.name, r.key),
            message: "not read".into(),
        }),
    })
}

/// The open backend for this configuration, reusing the current one when
/// nothing changed.
async fn backend(ctx: &Context, store_key: &str, config: StoreConfig) -> Result<Arc<Backend>, Error> {
    if let Some(b) = ctx.backends.get(store_key)
        && b.config.fingerprint() == config.fingerprint()
    {
        return Ok(b);
    }
    let b = Arc::new(Backend::open(config).await?);
    ctx.backends.insert(store_key.to_string(), b.clone());
    Ok(b)
}

fn project_object(spec: &FeatureStoreSpec) -> FeastObject {
    FeastObject::Project(fc::Project {
        spec: Some(fc::ProjectSpec {
            name: spec.project.clone(),
            description: spec.description.clone(),
            tags: spec.tags.clone().into_iter().collect(),
            owner: spec.owner.clone(),
        }),
        meta: None,
    })
}

async fn counts(b: &Backend, project: &str) -> Result<ObjectCounts, Error> {
    let n = |v: Vec<FeastObject>| v.iter().filter(|o| !o.name().starts_with("__")).count() as u32;
    Ok(ObjectCounts {
        entities: n(b.registry.list(project, FeastKind::Entity).await?),
        data_sources: n(b.registry.list(project, FeastKind::DataSource).await?),
        feature_views: n(b.registry.list(project, FeastKind::FeatureView).await?),
        feature_services: n(b.registry.list(project, FeastKind::FeatureService).await?),
        permissions: n(b.registry.list(project, FeastKind::Permission).await?),
    })
}

/// With `objectPolicy: Exclusive`, delete the project's registry objects
/// that no resource declares. Skipped (with a reason) until every cache has
/// synced and every resource of the store parses, so a half-known set of
/// resources never deletes a declared object.
async fn prune(ctx: &Context, ns: &str, store: &str, b: &Backend) -> Result<Option<String>, Error> {
    if !ctx.caches_synced() {
        return Ok(Some("waiting for the caches to sync before pruning".into()));
    }
    let stores = ctx.store_names(ns);
    let mut declared: HashSet<(FeastKind, String)> = HashSet::new();
    for kind in objects::OBJECT_KINDS {
        for o in ctx.cached(kind, ns) {
            let o = o.obj();
            match objects::parse(kind, o) {
                Ok(r) => {
                    if objects::store_name(&r, &stores).ok().as_deref() == Some(store) {
                        declared.insert((objects::feast_kind(kind), r.loaded.object.feast_name().to_string()));
                    }
                }
                Err(_) => {
                    return Ok(Some(format!("not pruning: {kind} {} does not parse", o.name_any())));
                }
            }
        }
    }
    let project = &b.config.project;
    // Dependents first: services, then views, then entities and sources.
    for kind in MANAGED_KINDS.iter().rev() {
        for o in b.registry.list(project, *kind).await? {
            let name = o.name().to_string();
            if name.starts_with("__") || declared.contains(&(*kind, name.clone())) {
                continue;
            }
            if *kind == FeastKind::FeatureView
                && let (Some(online), FeastObject::FeatureView(v)) = (&b.online, &o)
            {
                online
                    .update(project, &[], &[larder_online::ViewSchema::from_proto(v)])
                    .await?;
            }
            if b.registry.delete(project, *kind, &name).await? {
                ctx.metrics.registry_writes.with_label_values(&["FeatureStore"]).inc();
                tracing::info!(project, kind = %kind, name, "pruned: no resource declares it");
            }
        }
    }
    Ok(None)
}

async fn apply(obj: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    ctx.set_finalizer(Kind::FeatureStore, obj, true).await?;
    let store_key = key(obj);
    let previous: FeatureStoreStatus = obj
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let connected = connect(obj, ctx, &store_key).await;
    let (status, notice, retry) = status::store(
        &previous,
        &connected,
        obj.metadata.generation,
        &Time(jiff::Timestamp::now()),
    );
    ctx.apply_status(
        Kind::FeatureStore,
        obj,
        serde_json::to_value(&status).unwrap_or_default(),
    )
    .await?;
    if let Some(n) = notice {
        ctx.event(obj, &api_resource(Kind::FeatureStore), n.warning, &n.reason, n.message)
            .await;
    }
    let ok = connected.registry_result.is_ok() && connected.online_result.is_ok() && connected.workloads.is_ok();
    if ok {
        ctx.succeeded(&format!("FeatureStore/{store_key}"));
        Ok(Action::requeue(ctx.settings.resync))
    } else if retry {
        Ok(Action::requeue(ctx.backoff(&format!("FeatureStore/{store_key}"))))
    } else {
        Ok(Action::await_change())
    }
}

/// Resolve, open, create the project, prune (Exclusive), count, and check
/// the online store.
async fn connect(obj: &DynamicObject, ctx: &Context, store_key: &str) -> Connected {
    let mut c = Connected {
        registry: None,
        online_kind: None,
        registry_result: Ok(ObjectCounts::default()),
        online_result: Ok(false),
        workloads: Ok(Default::default()),
    };
    let spec = match spec_of(obj) {
        Ok(s) => s,
        Err(e) => {
            c.workloads = Err(Error::InvalidSpec(e.to_string()));
            c.registry_result = Err(e);
            return c;
        }
    };
    // The servers do not need the operator's connection: roll them out whatever the registry says.
    c.workloads = crate::workloads::roll_out(&ctx.client, &ctx.apis, &ctx.settings.defaults, obj, &spec).await;
    c.online_kind = spec.online_store.as_ref().and_then(|o| o.kind()).map(str::to_string);
    let ns = obj.namespace().unwrap_or_default();
    let backend = match resolve(ctx, &ns, &spec).await {
        Ok(config) => {
            c.registry = Some(config.registry_description());
            backend(ctx, store_key, config).await
        }
        Err(e) => Err(e),
    };
    let b = match backend {
        Ok(b) => b,
        Err(e) => {
            c.registry_result = Err(e);
            return c;
        }
    };
    c.registry_result = registry_pass(obj, ctx, &ns, &spec, &b).await;
    c.online_result = match &b.online {
        None => Ok(false),
        Some(o) => match tokio::time::timeout(Duration::from_secs(10), o.ping()).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(Error::Online(e)),
            Err(_) => Err(Error::Online(larder_online::OnlineError::Config(
                "no answer within 10 s".into(),
            ))),
        },
    };
    c
}

/// The registry's part: the project object, the Exclusive policy, the counts.
async fn registry_pass(
    obj: &DynamicObject,
    ctx: &Context,
    ns: &str,
    spec: &FeatureStoreSpec,
    b: &Backend,
) -> Result<ObjectCounts, Error> {
    let project = &b.config.project;
    if b.registry.apply(project, project_object(spec)).await? != ApplyOutcome::Unchanged {
        ctx.metrics.registry_writes.with_label_values(&["FeatureStore"]).inc();
    }
    if spec.object_policy == ObjectPolicy::Exclusive
        && let Some(why) = prune(ctx, ns, &obj.name_any(), b).await?
    {
        tracing::info!(store = %key(obj), "{why}");
    }
    counts(b, project).await
}

/// Whether the namespace itself is being deleted.
async fn namespace_terminating(ctx: &Context, ns: &str) -> Result<bool, Error> {
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
        .get_opt(ns)
        .await?;
    Ok(namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()))
}

async fn delete(obj: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    if !obj.finalizers().iter().any(|f| f == crate::FINALIZER) {
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let store = obj.name_any();
    let store_key = key(obj);
    // Resources being deleted still need this store's registry to clean up after themselves.
    // When the whole namespace goes, every resource of the store is about to be deleted
    // (the namespace controller deletes kind by kind): wait for all of them, marked or not.
    let namespace_going = namespace_terminating(ctx, &ns).await?;
    let stores = ctx.store_names(&ns);
    let waiting = objects::OBJECT_KINDS
        .into_iter()
        .flat_map(|k| ctx.cached(k, &ns).into_iter())
        .filter(|o| {
            let o = o.obj();
            (namespace_going || o.metadata.deletion_timestamp.is_some())
                && o.finalizers().iter().any(|f| f == crate::FINALIZER)
                && objects::raw_store_name(o, &stores).is_none_or(|s| s == store)
        })
        .count();
    if waiting > 0 {
        tracing::info!(
            store = store_key,
            waiting,
            "waiting for the store's resources to be cleaned up"
        );
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let policy = spec_of(obj).map(|s| s.deletion_policy).unwrap_or_default();
    if policy == DeletionPolicy::Delete {
        let b = match ctx.backends.get(&store_key) {
            Some(b) => Some(b),
            None => match spec_of(obj) {
                Ok(spec) => match resolve(ctx, &ns, &spec).await {
                    Ok(cfg) => Some(backend(ctx, &store_key, cfg).await?),
                    Err(e) => {
                        tracing::warn!(store = store_key, error = %e, "cannot reach the store to delete its project");
                        None
                    }
                },
                Err(_) => None,
            },
        };
        if let Some(b) = b {
            let online = b.online.as_deref();
            larder_apply::delete_project(b.registry.as_ref(), online, &b.config.project).await?;
            ctx.metrics.registry_writes.with_label_values(&["FeatureStore"]).inc();
            tracing::info!(store = store_key, project = b.config.project, "project deleted");
        }
    }
    ctx.backends.remove(&store_key);
    // The one child the garbage collector cannot reach (cluster-scoped).
    crate::access::remove_cluster_bindings(&ctx.client, &ns, &store).await?;
    ctx.set_finalizer(Kind::FeatureStore, obj, false).await?;
    ctx.succeeded(&format!("FeatureStore/{store_key}"));
    Ok(Action::await_change())
}
