//! What every reconcile shares: the client, the reflectors' caches of the
//! six kinds, the open backends per FeatureStore, metrics, events and the
//! per-object retry backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource as _, ResourceExt};
use larder_model::Kind;
use larder_model::crd::{DataSource, Entity, FeatureService, FeatureStore, FeatureView, Permission};

use kube::runtime::controller::Action;

use crate::Error;
use crate::backend::Backends;
use crate::metrics::Metrics;

use crate::raw::{
    Cached, DataSourceKind, EntityKind, FeatureServiceKind, FeatureStoreKind, FeatureViewKind, PermissionKind, Raw,
};
use crate::{FIELD_MANAGER, FINALIZER};

/// The API resource of a kind (group larder.dev, version v1alpha1).
pub fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::FeatureStore => ApiResource::erase::<FeatureStore>(&()),
        Kind::Entity => ApiResource::erase::<Entity>(&()),
        Kind::DataSource => ApiResource::erase::<DataSource>(&()),
        Kind::FeatureView => ApiResource::erase::<FeatureView>(&()),
        Kind::FeatureService => ApiResource::erase::<FeatureService>(&()),
        Kind::Permission => ApiResource::erase::<Permission>(&()),
    }
}

/// Tunables of a running operator.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often a healthy resource is reconciled again (drift correction).
    pub resync: Duration,
    /// Longest wait between retries of a failing resource.
    pub max_backoff: Duration,
    /// The image of the workloads when a FeatureStore names none.
    pub defaults: larder_deploy::Defaults,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            max_backoff: Duration::from_secs(300),
            defaults: larder_deploy::Defaults::default(),
        }
    }
}

/// The shared reflectors' read side, one per kind.
#[derive(Clone)]
pub struct Caches {
    pub stores: Store<Raw<FeatureStoreKind>>,
    pub entities: Store<Raw<EntityKind>>,
    pub sources: Store<Raw<DataSourceKind>>,
    pub views: Store<Raw<FeatureViewKind>>,
    pub services: Store<Raw<FeatureServiceKind>>,
    pub permissions: Store<Raw<PermissionKind>>,
}

fn erase<M: Send + Sync + 'static>(v: Vec<Arc<Raw<M>>>) -> Vec<Cached> {
    v.into_iter().map(|o| o as Cached).collect()
}

fn erase_one<M: Send + Sync + 'static>(o: Option<Arc<Raw<M>>>) -> Option<Cached> {
    o.map(|o| o as Cached)
}

impl Caches {
    /// One resource, looked up by key (no scan).
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Cached> {
        fn r<M: crate::raw::KindMarker>(ns: &str, name: &str) -> ObjectRef<Raw<M>> {
            ObjectRef::new(name).within(ns)
        }
        match kind {
            Kind::FeatureStore => erase_one(self.stores.get(&r(namespace, name))),
            Kind::Entity => erase_one(self.entities.get(&r(namespace, name))),
            Kind::DataSource => erase_one(self.sources.get(&r(namespace, name))),
            Kind::FeatureView => erase_one(self.views.get(&r(namespace, name))),
            Kind::FeatureService => erase_one(self.services.get(&r(namespace, name))),
            Kind::Permission => erase_one(self.permissions.get(&r(namespace, name))),
        }
    }

    /// Every cached resource of `kind`.
    pub fn all(&self, kind: Kind) -> Vec<Cached> {
        match kind {
            Kind::FeatureStore => erase(self.stores.state()),
            Kind::Entity => erase(self.entities.state()),
            Kind::DataSource => erase(self.sources.state()),
            Kind::FeatureView => erase(self.views.state()),
            Kind::FeatureService => erase(self.services.state()),
            Kind::Permission => erase(self.permissions.state()),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub backends: Backends,
    pub settings: Settings,
    /// Which optional APIs (autoscaling/v2, policy/v1) the cluster serves.
    pub apis: crate::workloads::ServedApis,
    recorder: Recorder,
    caches: Caches,
    synced: Arc<AtomicBool>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Metrics,
        settings: Settings,
        caches: Caches,
        synced: Arc<AtomicBool>,
        instance: &str,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(instance.to_string()),
            },
        );
        Context {
            client,
            metrics,
            backends: Backends::default(),
            settings,
            apis: Default::default(),
            recorder,
            caches,
            synced,
            failures: Mutex::default(),
        }
    }

    pub fn api(&self, kind: Kind, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &api_resource(kind))
    }

    /// The cached objects of `kind` in `namespace`.
    pub fn cached(&self, kind: Kind, namespace: &str) -> Vec<Cached> {
        self.caches
            .all(kind)
            .into_iter()
            .filter(|o| o.obj().metadata.namespace.as_deref() == Some(namespace))
            .collect()
    }

    /// Whether every reflector has listed its kind once.
    pub fn caches_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Metadata names of the namespace's FeatureStores.
    pub fn store_names(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .cached(Kind::FeatureStore, namespace)
            .iter()
            .map(|o| o.obj().name_any())
            .collect();
        names.sort();
        names
    }

    /// One cached resource by kind, namespace and metadata name.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Cached> {
        self.caches.get(kind, namespace, name)
    }

    /// Record an event on `obj`; failures are logged, never fatal.
    pub async fn event(&self, obj: &DynamicObject, ar: &ApiResource, warning: bool, reason: &str, note: String) {
        let reference = obj.object_ref(ar);
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            if is_gone(&e) {
                tracing::debug!(error = %e, reason, "no event: the object or its namespace is going away");
            } else {
                tracing::warn!(error = %e, reason, "cannot record event");
            }
        }
    }

    /// Add or remove the operator's finalizer with a server-side apply.
    pub async fn set_finalizer(&self, kind: Kind, obj: &DynamicObject, present: bool) -> Result<(), kube::Error> {
        let has = obj.finalizers().iter().any(|f| f == FINALIZER);
        if has == present {
            return Ok(());
        }
        let ar = api_resource(kind);
        let finalizers: Vec<&str> = if present { vec![FINALIZER] } else { Vec::new() };
        // The resourceVersion makes this an update of the object we saw: an apply
        // patch on an object deleted meanwhile must fail, not create it anew.
        let patch = serde_json::json!({
            "apiVersion": ar.api_version,
            "kind": ar.kind,
            "metadata": {
                "name": obj.name_any(),
                "finalizers": finalizers,
                "resourceVersion": obj.resource_version(),
            },
        });
        let api = self.api(kind, &obj.namespace().unwrap_or_default());
        match api
            .patch(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Removing it from an object already gone (the apply could not create it): done.
            Err(e)
                if !present
                    && self
                        .api(kind, &obj.namespace().unwrap_or_default())
                        .get_opt(&obj.name_any())
                        .await?
                        .is_none() =>
            {
                tracing::debug!(error = %e, "finalizer of a deleted object");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Server-side apply `status` unless it is what the object already has.
    pub async fn apply_status(
        &self,
        kind: Kind,
        obj: &DynamicObject,
        status: serde_json::Value,
    ) -> Result<(), kube::Error> {
        if obj.data.get("status") == Some(&status) {
            return Ok(());
        }
        let ar = api_resource(kind);
        let patch = serde_json::json!({
            "apiVersion": ar.api_version,
            "kind": ar.kind,
            "metadata": {"name": obj.name_any()},
            "status": status,
        });
        match self
            .api(kind, &obj.namespace().unwrap_or_default())
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Deleted since the cache saw it: there is no status left to report.
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Run one reconcile of `obj` in a tracing span, counted and timed by
    /// kind; a failure is counted by its reason.
    pub async fn instrument<F>(&self, kind: Kind, obj: &DynamicObject, reconcile: F) -> Result<Action, Error>
    where
        F: std::future::Future<Output = Result<Action, Error>>,
    {
        let label = kind.as_str();
        let started = std::time::Instant::now();
        self.metrics.reconciles.with_label_values(&[label]).inc();
        let span = tracing::info_span!("reconcile", kind = label, object = %key(obj));
        let result = tracing::Instrument::instrument(reconcile, span).await;
        self.metrics
            .duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.errors.with_label_values(&[label, e.label()]).inc();
        }
        result
    }

    /// Next retry delay for a failing object: 1 s doubling to the maximum.
    pub fn backoff(&self, key: &str) -> Duration {
        let n = self
            .failures
            .lock()
            .map(|mut m| {
                let n = m.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        let secs = 1u64.checked_shl(n.saturating_sub(1).min(20)).unwrap_or(u64::MAX);
        Duration::from_secs(secs).min(self.settings.max_backoff)
    }

    /// A success resets the object's backoff.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }
}

/// The object (or its namespace, which refuses new content) is being deleted.
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || (s.code == 403 && s.message.contains("being terminated")))
}

/// `namespace/name` of an object.
pub fn key(obj: &DynamicObject) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
