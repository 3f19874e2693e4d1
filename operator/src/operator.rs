//! Wiring: one shared reflector per kind (and per watched namespace), a
//! controller per kind on those shared streams, watch mappings from what a
//! resource refers to back to the resource, leader election, and the
//! `/metrics`, `/healthz`, `/readyz` endpoints.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use kube::api::DynamicObject;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use larder_model::Kind;

use crate::context::{Caches, Context, Settings};
use crate::leader::LeaderElection;
use crate::metrics::Metrics;
use crate::objects;
use crate::raw::{
    DataSourceKind, EntityKind, FeatureServiceKind, FeatureStoreKind, FeatureViewKind, KindMarker, PermissionKind, Raw,
};
use crate::{Error, reconcile_object, reconcile_store};

#[derive(Debug, Clone)]
pub struct LeaderSettings {
    pub namespace: String,
    pub lease: String,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces to watch; empty = all namespaces.
    pub namespaces: Vec<String>,
    pub settings: Settings,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; `None` = nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// `None` = no election (a single replica).
    pub leader: Option<LeaderSettings>,
    /// This replica's name in events and the Lease (the pod name in a cluster).
    pub identity: String,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespaces: Vec::new(),
            settings: Settings::default(),
            metrics_addr: None,
            leader: None,
            identity: "larder-operator".into(),
            concurrency: 8,
        }
    }
}

/// What a running operator exposes to its caller (and to tests).
#[derive(Clone, Default)]
pub struct Status {
    pub metrics: Metrics,
    /// Leading (or running without election).
    pub leading: Arc<AtomicBool>,
    /// Every reflector listed once.
    pub synced: Arc<AtomicBool>,
}

/// Run until `shutdown` resolves (or the leader lease is lost: an error).
pub async fn run(
    client: Client,
    config: Config,
    status: Status,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.shared();
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::InvalidSpec(format!("cannot listen on {addr}: {e}")))?;
        let app = health_router(status.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    let election = config
        .leader
        .as_ref()
        .map(|l| LeaderElection::new(client.clone(), &l.namespace, &l.lease, &config.identity, l.duration));
    if let Some(e) = &election {
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown.clone() => return Ok(()),
        }
    }
    status.leading.store(true, Ordering::Release);
    status.metrics.leader.set(1);
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut synced_flags = Vec::new();
    for scope in scopes {
        let flag = Arc::new(AtomicBool::new(false));
        synced_flags.push(flag.clone());
        tasks.extend(scope_tasks(
            &client,
            scope.as_deref(),
            &config,
            &status,
            flag,
            shutdown.clone().boxed(),
        ));
    }
    let all_synced = status.synced.clone();
    tasks.push(
        async move {
            while !synced_flags.iter().all(|f| f.load(Ordering::Acquire)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            all_synced.store(true, Ordering::Release);
        }
        .boxed(),
    );
    let controllers = futures_util::future::join_all(tasks);
    let result = match &election {
        Some(e) => tokio::select! {
            _ = controllers => Ok(()),
            _ = e.hold() => Err(Error::InvalidSpec("lost the leader lease".into())),
        },
        None => {
            controllers.await;
            Ok(())
        }
    };
    status.leading.store(false, Ordering::Release);
    status.metrics.leader.set(0);
    if let Some(e) = &election {
        e.release().await;
    }
    result
}

fn health_router(status: Status) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let metrics = status.metrics.clone();
    axum::Router::new()
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .route("/healthz", get(|| std::future::ready("ok")))
        .route(
            "/readyz",
            get(move || {
                // A standby replica is ready (it serves metrics and waits); a leader once its caches synced.
                let ready = !status.leading.load(Ordering::Acquire) || status.synced.load(Ordering::Acquire);
                std::future::ready(if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                })
            }),
        )
}

/// The shared reflector of one kind in one scope.
struct Reflector<M: KindMarker> {
    writer: Writer<Raw<M>>,
}

impl<M: KindMarker> Reflector<M> {
    fn new() -> Self {
        Reflector {
            writer: Writer::new_shared(1024, ()),
        }
    }

    fn reader(&self) -> Store<Raw<M>> {
        self.writer.as_reader()
    }

    /// A stream of this kind's changes for one more controller or watch.
    fn subscribe(&self) -> BoxStream<'static, Arc<Raw<M>>> {
        // A shared writer always hands out subscribers.
        match self.writer.subscribe() {
            Some(s) => s.boxed(),
            None => futures_util::stream::empty().boxed(),
        }
    }

    /// The watch feeding the reflector, until `stop`.
    fn run(self, client: &Client, scope: Option<&str>, stop: Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, ()> {
        let api: Api<Raw<M>> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let stream = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect_shared(self.writer)
            .for_each(|ev| {
                if let Err(e) = ev {
                    tracing::warn!(kind = M::KIND.as_str(), error = %e, "watch error (retrying)");
                }
                std::future::ready(())
            });
        async move {
            tokio::select! {
                _ = stream => {}
                _ = stop => {}
            }
        }
        .boxed()
    }
}

fn objref<M: KindMarker>(obj: &DynamicObject) -> ObjectRef<Raw<M>> {
    ObjectRef::new(&obj.name_any()).within(&obj.namespace().unwrap_or_default())
}

/// Pass an object on only when `key` of it changed since last seen: the
/// store's status churn must not requeue every resource of the store.
fn changed_only<M, F, T>(stream: BoxStream<'static, Arc<Raw<M>>>, key: F) -> BoxStream<'static, Arc<Raw<M>>>
where
    M: KindMarker,
    F: Fn(&DynamicObject) -> T + Send + Sync + 'static,
    T: PartialEq + Send + 'static,
{
    let seen: Arc<Mutex<HashMap<String, T>>> = Arc::default();
    stream
        .filter(move |o| {
            let k = key(&o.obj);
            let uid = o.obj.uid().unwrap_or_default();
            let changed = seen
                .lock()
                .map(|mut m| match m.get(&uid) {
                    Some(prev) if *prev == k => false,
                    _ => {
                        m.insert(uid, k);
                        true
                    }
                })
                .unwrap_or(true);
            std::future::ready(changed)
        })
        .boxed()
}

fn ready_status(o: &DynamicObject) -> Option<String> {
    o.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| format!("{}{}", c["status"], c["reason"]))
}

/// The key of a resource whose change matters to the resources referring to it.
/// It holds the observed generation: after a spec change a dependency turns
/// "current and ready" when its status catches up, with the same Ready
/// status and reason as before, and its dependents waiting for that must
/// still hear of it.
fn relevant(o: &DynamicObject) -> (Option<i64>, Option<i64>, bool, Option<String>) {
    (
        o.metadata.generation,
        o.data["status"]["observedGeneration"].as_i64(),
        o.metadata.deletion_timestamp.is_some(),
        ready_status(o),
    )
}

struct Reflectors {
    stores: Reflector<FeatureStoreKind>,
    entities: Reflector<EntityKind>,
    sources: Reflector<DataSourceKind>,
    views: Reflector<FeatureViewKind>,
    services: Reflector<FeatureServiceKind>,
    permissions: Reflector<PermissionKind>,
}

fn scope_tasks(
    client: &Client,
    scope: Option<&str>,
    config: &Config,
    status: &Status,
    synced: Arc<AtomicBool>,
    shutdown: BoxFuture<'static, ()>,
) -> Vec<BoxFuture<'static, ()>> {
    let shutdown = shutdown.shared();
    let r = Reflectors {
        stores: Reflector::new(),
        entities: Reflector::new(),
        sources: Reflector::new(),
        views: Reflector::new(),
        services: Reflector::new(),
        permissions: Reflector::new(),
    };
    let caches = Caches {
        stores: r.stores.reader(),
        entities: r.entities.reader(),
        sources: r.sources.reader(),
        views: r.views.reader(),
        services: r.services.reader(),
        permissions: r.permissions.reader(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        status.metrics.clone(),
        config.settings.clone(),
        caches.clone(),
        synced.clone(),
        &config.identity,
    ));
    // No debounce: a trailing debounce is reset by every new trigger, and a
    // FeatureStore is triggered by each of its resources, so it starved.
    let cc = kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();

    // The FeatureStore controller: requeued when one of its resources changes
    // readiness, appears or goes, so the counts in its status follow; and when
    // one of its Deployments changes (rollout progress, a hand edit to revert,
    // a deletion to undo).
    tasks.push(
        Controller::for_shared_stream(r.stores.subscribe(), caches.stores.clone())
            .with_config(cc.clone())
            .graceful_shutdown_on(shutdown.clone())
            .watches_stream(owned_deployments(client, scope), store_of_child)
            .watches_shared_stream(changed_only(r.entities.subscribe(), relevant), store_of(&caches.stores))
            .watches_shared_stream(changed_only(r.sources.subscribe(), relevant), store_of(&caches.stores))
            .watches_shared_stream(changed_only(r.views.subscribe(), relevant), store_of(&caches.stores))
            .watches_shared_stream(changed_only(r.services.subscribe(), relevant), store_of(&caches.stores))
            .watches_shared_stream(
                changed_only(r.permissions.subscribe(), relevant),
                store_of(&caches.stores),
            )
            .run(
                |o: Arc<Raw<FeatureStoreKind>>, ctx| reconcile_store::reconcile(Arc::new(o.obj.clone()), ctx),
                |o: Arc<Raw<FeatureStoreKind>>, e, ctx| reconcile_store::error_policy(Arc::new(o.obj.clone()), e, ctx),
                ctx.clone(),
            )
            .for_each(|_| std::future::ready(()))
            .boxed(),
    );

    // Each object controller: its own kind, the FeatureStores, and what it refers to.
    let store_trigger = || {
        changed_only(r.stores.subscribe(), |o: &DynamicObject| {
            (
                o.metadata.generation,
                ready_status(o),
                o.metadata.deletion_timestamp.is_some(),
            )
        })
    };
    let e = object_controller(&r.entities, &caches, store_trigger(), &cc, &shutdown).watches_shared_stream(
        changed_only(r.entities.subscribe(), relevant),
        dependents_of(&caches.entities),
    );
    let d = object_controller(&r.sources, &caches, store_trigger(), &cc, &shutdown).watches_shared_stream(
        changed_only(r.sources.subscribe(), relevant),
        dependents_of(&caches.sources),
    );
    let v = object_controller(&r.views, &caches, store_trigger(), &cc, &shutdown)
        // A view's materialization Jobs finishing move its runs on.
        .watches_stream(materialization_jobs(client, scope), view_of_job)
        .watches_shared_stream(
            changed_only(r.entities.subscribe(), relevant),
            dependents_of(&caches.views),
        )
        .watches_shared_stream(
            changed_only(r.sources.subscribe(), relevant),
            dependents_of(&caches.views),
        )
        .watches_shared_stream(
            changed_only(r.views.subscribe(), relevant),
            dependents_of(&caches.views),
        );
    let s = object_controller(&r.services, &caches, store_trigger(), &cc, &shutdown)
        .watches_shared_stream(
            changed_only(r.views.subscribe(), relevant),
            dependents_of(&caches.services),
        )
        .watches_shared_stream(
            changed_only(r.services.subscribe(), relevant),
            dependents_of(&caches.services),
        );
    let p = object_controller(&r.permissions, &caches, store_trigger(), &cc, &shutdown).watches_shared_stream(
        changed_only(r.permissions.subscribe(), relevant),
        dependents_of(&caches.permissions),
    );
    tasks.push(run_objects(e, &ctx));
    tasks.push(run_objects(d, &ctx));
    tasks.push(run_objects(v, &ctx));
    tasks.push(run_objects(s, &ctx));
    tasks.push(run_objects(p, &ctx));

    // The reflectors themselves: one watch per kind, shared by every controller above.
    tasks.push(r.stores.run(client, scope, shutdown.clone()));
    tasks.push(r.entities.run(client, scope, shutdown.clone()));
    tasks.push(r.sources.run(client, scope, shutdown.clone()));
    tasks.push(r.views.run(client, scope, shutdown.clone()));
    tasks.push(r.services.run(client, scope, shutdown.clone()));
    tasks.push(r.permissions.run(client, scope, shutdown.clone()));
    tasks.push(
        async move {
            let _ = caches.stores.wait_until_ready().await;
            let _ = caches.entities.wait_until_ready().await;
            let _ = caches.sources.wait_until_ready().await;
            let _ = caches.views.wait_until_ready().await;
            let _ = caches.services.wait_until_ready().await;
            let _ = caches.permissions.wait_until_ready().await;
            synced.store(true, Ordering::Release);
        }
        .boxed(),
    );
    tasks
}

/// The Deployments the operator rolled out, in the scope.
fn owned_deployments(
    client: &Client,
    scope: Option<&str>,
) -> BoxStream<'static, Result<k8s_openapi::api::apps::v1::Deployment, watcher::Error>> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = format!("app.kubernetes.io/managed-by={}", larder_deploy::MANAGED_BY);
    watcher(api, watcher::Config::default().labels(&selector).any_semantic())
        .default_backoff()
        .touched_objects()
        .boxed()
}

/// The materialization Jobs the operator created, in the scope.
fn materialization_jobs(
    client: &Client,
    scope: Option<&str>,
) -> BoxStream<'static, Result<k8s_openapi::api::batch::v1::Job, watcher::Error>> {
    let api: Api<k8s_openapi::api::batch::v1::Job> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = format!(
        "app.kubernetes.io/managed-by={},app.kubernetes.io/component={}",
        larder_deploy::MANAGED_BY,
        larder_deploy::jobs::COMPONENT
    );
    watcher(api, watcher::Config::default().labels(&selector).any_semantic())
        .default_backoff()
        .touched_objects()
        .boxed()
}

/// The FeatureView a materialization Job runs for, from its view label.
fn view_of_job(job: k8s_openapi::api::batch::v1::Job) -> Option<ObjectRef<Raw<FeatureViewKind>>> {
    let view = job.labels().get(larder_deploy::jobs::VIEW_LABEL)?.clone();
    Some(ObjectRef::new(&view).within(&job.namespace().unwrap_or_default()))
}

/// The FeatureStore a child belongs to, from its store label.
fn store_of_child<K: kube::Resource>(child: K) -> Option<ObjectRef<Raw<FeatureStoreKind>>> {
    let store = child.labels().get(larder_deploy::STORE_LABEL)?.clone();
    Some(ObjectRef::new(&store).within(&child.namespace().unwrap_or_default()))
}

/// A controller of one object kind on its shared stream, requeued by the
/// FeatureStores it may belong to.
fn object_controller<M: KindMarker>(
    own: &Reflector<M>,
    caches: &Caches,
    stores: BoxStream<'static, Arc<Raw<FeatureStoreKind>>>,
    cc: &kube::runtime::controller::Config,
    shutdown: &Shared<BoxFuture<'static, ()>>,
) -> Controller<Raw<M>> {
    let reader = own.reader();
    let all_stores = caches.stores.clone();
    Controller::for_shared_stream(own.subscribe(), own.reader())
        .with_config(cc.clone())
        .graceful_shutdown_on(shutdown.clone())
        .watches_shared_stream(stores, move |store: Arc<Raw<FeatureStoreKind>>| {
            let ns = store.obj.namespace().unwrap_or_default();
            let names: Vec<String> = all_stores
                .state()
                .iter()
                .filter(|o| o.obj.namespace().as_deref() == Some(ns.as_str()))
                .map(|o| o.obj.name_any())
                .collect();
            reader
                .state()
                .into_iter()
                .filter(|o| o.obj.namespace().as_deref() == Some(ns.as_str()))
                .filter(|o| objects::raw_store_name(&o.obj, &names).is_none_or(|n| n == store.obj.name_any()))
                .map(|o| objref::<M>(&o.obj))
                .collect::<Vec<_>>()
        })
}

fn run_objects<M: KindMarker>(c: Controller<Raw<M>>, ctx: &Arc<Context>) -> BoxFuture<'static, ()> {
    c.run(
        |o: Arc<Raw<M>>, ctx| reconcile_object::reconcile(M::KIND, Arc::new(o.obj.clone()), ctx),
        |o: Arc<Raw<M>>, e, ctx| reconcile_object::error_policy(M::KIND, Arc::new(o.obj.clone()), e, ctx),
        ctx.clone(),
    )
    .for_each(|_| std::future::ready(()))
    .boxed()
}

/// The mapper from a resource of kind `O` to the FeatureStore it belongs to.
fn store_of<O: KindMarker>(
    stores: &Store<Raw<FeatureStoreKind>>,
) -> impl Fn(Arc<Raw<O>>) -> Option<ObjectRef<Raw<FeatureStoreKind>>> + Send + Sync + 'static {
    let stores = stores.clone();
    move |changed: Arc<Raw<O>>| {
        let ns = changed.obj.namespace().unwrap_or_default();
        let names: Vec<String> = stores
            .state()
            .iter()
            .filter(|o| o.obj.namespace().as_deref() == Some(ns.as_str()))
            .map(|o| o.obj.name_any())
            .collect();
        let store = objects::raw_store_name(&changed.obj, &names)?;
        Some(ObjectRef::new(&store).within(&ns))
    }
}

/// The mapper from a changed resource (of kind `O`) to the resources of
/// kind `M` to requeue.
fn dependents_of<M: KindMarker, O: KindMarker>(
    reader: &Store<Raw<M>>,
) -> impl Fn(Arc<Raw<O>>) -> Vec<ObjectRef<Raw<M>>> + Send + Sync + 'static {
    let reader = reader.clone();
    move |changed: Arc<Raw<O>>| {
        let candidates = reader.state();
        dependents(M::KIND, O::KIND, &changed.obj, candidates.iter().map(|o| &o.obj))
            .into_iter()
            .map(|o| objref::<M>(o))
            .collect()
    }
}

/// Resources of `kind` to requeue when `changed` (of kind `other`) changes:
/// those that refer to it by name, and those of the same kind that share
/// its registry name (a NameConflict may resolve).
fn dependents<'a>(
    kind: Kind,
    other: Kind,
    changed: &DynamicObject,
    candidates: impl Iterator<Item = &'a DynamicObject>,
) -> Vec<&'a DynamicObject> {
    let ns = changed.namespace().unwrap_or_default();
    let changed_name = changed.name_any();
    let changed_feast = objects::raw_feast_name(changed);
    candidates
        .filter(|o| o.namespace().as_deref() == Some(ns.as_str()) && !(kind == other && o.name_any() == changed_name))
        .filter(|o| {
            let refers = objects::raw_references(kind, o)
                .iter()
                .any(|(k, n)| *k == other && *n == changed_name);
            let same_name = kind == other && objects::raw_feast_name(o) == changed_feast;
            refers || same_name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn obj(ns: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            data: serde_json::json!({ "spec": spec }),
        }
    }

    fn names(v: Vec<&DynamicObject>) -> Vec<String> {
        v.into_iter().map(|o| o.name_any()).collect()
    }

    #[test]
    fn a_change_requeues_what_refers_to_it_in_its_namespace() {
        let entity = obj("a", "driver", serde_json::json!({"valueType": "Int64"}));
        let views = [
            obj(
                "a",
                "uses-driver",
                serde_json::json!({"entities": ["driver"], "source": "s"}),
            ),
            obj(
                "a",
                "uses-rider",
                serde_json::json!({"entities": ["rider"], "source": "s"}),
            ),
            obj(
                "b",
                "other-namespace",
                serde_json::json!({"entities": ["driver"], "source": "s"}),
            ),
            obj(
                "a",
                "uses-source-driver",
                serde_json::json!({"entities": ["x"], "source": "driver"}),
            ),
        ];
        assert_eq!(
            names(dependents(Kind::FeatureView, Kind::Entity, &entity, views.iter())),
            vec!["uses-driver"]
        );
        let source = obj("a", "s", serde_json::json!({"file": {"path": "/x"}}));
        assert_eq!(
            names(dependents(Kind::FeatureView, Kind::DataSource, &source, views.iter())),
            vec!["uses-driver", "uses-rider"]
        );
    }

    #[test]
    fn a_change_requeues_resources_sharing_its_registry_name() {
        let gone = obj("a", "old", serde_json::json!({"name": "driver", "valueType": "Int64"}));
        let entities = [
            gone.clone(),
            obj("a", "new", serde_json::json!({"name": "driver", "valueType": "Int64"})),
            obj("a", "driver", serde_json::json!({"valueType": "Int64"})),
            obj("a", "other", serde_json::json!({"valueType": "Int64"})),
        ];
        assert_eq!(
            names(dependents(Kind::Entity, Kind::Entity, &gone, entities.iter())),
            vec!["new", "driver"],
            "the resource itself is not requeued; both others named `driver` in the registry are"
        );
    }
}
