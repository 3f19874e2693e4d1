//! The API server side: a client from a kubeconfig, the benchmark's
//! namespace, server-side apply with bounded concurrency, and readiness
//! counts from list calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::Value;

/// Field manager of the benchmark's applies.
pub const MANAGER: &str = "larder-bench";

/// The kinds the benchmark creates, in the order the table lists them.
pub const KINDS: [&str; 4] = ["FeatureStore", "Entity", "DataSource", "FeatureView"];

pub fn plural(kind: &str) -> &'static str {
    match kind {
        "FeatureStore" => "featurestores",
        "Entity" => "entities",
        "DataSource" => "datasources",
        "FeatureView" => "featureviews",
        "FeatureService" => "featureservices",
        "Permission" => "permissions",
        _ => "unknown",
    }
}

/// `FeatureStores`, `Entities`, … for tables.
pub fn plural_title(kind: &str) -> String {
    match kind {
        "Entity" => "Entities".into(),
        k => format!("{k}s"),
    }
}

pub fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Secret" => ApiResource::erase::<Secret>(&()),
        _ => ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("larder.dev", "v1alpha1", kind), plural(kind)),
    }
}

pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig).with_context(|| format!("read kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("load kubeconfig {}", kubeconfig.display()))?;
    let client = Client::try_from(config).context("build a Kubernetes client")?;
    let api = Api::<DynamicObject>::all_with(client.clone(), &api_resource("FeatureStore"));
    let params = ListParams::default().limit(1);
    match tokio::time::timeout(Duration::from_secs(20), api.list(&params)).await {
        Err(_) => bail!("the API server of {} did not answer within 20 s", kubeconfig.display()),
        Ok(Err(e)) => bail!(
            "the API server does not serve larder.dev/v1alpha1 featurestores ({e}); install the CRDs: \
             bash e2e/kube/testenv.sh install-crds crds"
        ),
        Ok(Ok(_)) => Ok(client),
    }
}

/// The server's `major.minor` (gitVersion).
pub async fn server_version(client: &Client) -> String {
    match client.apiserver_version().await {
        Ok(v) => v.git_version,
        Err(e) => format!("? ({e})"),
    }
}

pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/created-by": MANAGER}}
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .with_context(|| format!("create namespace {name}"))?;
    Ok(())
}

/// Ask for the namespace's deletion (404 = already gone).
pub async fn delete_namespace(client: &Client, name: &str) -> Result<()> {
    match Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(anyhow!(e).context(format!("delete namespace {name}"))),
    }
}

/// Poll (every 250 ms) until the namespace is gone; the time it took.
pub async fn wait_namespace_gone(client: &Client, name: &str, timeout: Duration, since: Instant) -> Result<Duration> {
    let api = Api::<Namespace>::all(client.clone());
    let deadline = since + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return Ok(since.elapsed()),
            Ok(Some(_)) | Err(_) if Instant::now() > deadline => {
                bail!(
                    "namespace {name} still exists {:.0} s after its deletion (finalizers left? `kubectl get larder -n {name}`)",
                    timeout.as_secs_f64()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Server-side apply one object (any of our kinds, or a Secret) in `ns`.
pub async fn apply(client: &Client, ns: &str, value: &Value) -> Result<()> {
    let kind = value["kind"].as_str().unwrap_or_default();
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &api_resource(kind))
        .patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(value))
        .await
        .with_context(|| format!("apply {kind} {ns}/{name}"))?;
    Ok(())
}

/// What the apply phase did.
pub struct Applied {
    pub wall: Duration,
    /// Per-request latencies, seconds, sorted.
    pub latencies: Vec<f64>,
}

/// Apply `objects` with at most `concurrency` requests in flight; every
/// request must succeed (each gets `request_timeout`).
pub async fn apply_all(
    client: &Client,
    ns: &str,
    objects: Vec<Value>,
    concurrency: usize,
    request_timeout: Duration,
) -> Result<Applied> {
    let started = Instant::now();
    let total = objects.len();
    let mut results = futures_util::stream::iter(objects.into_iter().map(|o| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let name = format!(
                "{} {}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            match tokio::time::timeout(request_timeout, apply(&client, ns, &o)).await {
                Ok(r) => r.map(|()| t.elapsed().as_secs_f64()),
                Err(_) => Err(anyhow!(
                    "apply {name}: no answer within {} s",
                    request_timeout.as_secs()
                )),
            }
        }
    }))
    .buffer_unordered(concurrency.max(1));
    let mut latencies = Vec::with_capacity(total);
    let mut last_report = Instant::now();
    while let Some(r) = results.next().await {
        latencies.push(r?);
        if last_report.elapsed() >= Duration::from_secs(2) {
            crate::progress(&format!("applied {}/{total}", latencies.len()));
            last_report = Instant::now();
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Applied {
        wall: started.elapsed(),
        latencies,
    })
}

/// Readiness of one kind in the namespace.
#[derive(Debug, Clone, Default)]
pub struct KindReadiness {
    pub total: usize,
    pub ready: usize,
    /// Not-ready objects by `Ready` reason (`NoStatus` without the condition).
    pub waiting: BTreeMap<String, usize>,
}

/// List `kind` in `ns` and count the objects with condition Ready=True.
/// `cached`: served from the API server's watch cache (resourceVersion=0,
/// cheaper, may lag by the watch latency) instead of a quorum read of etcd.
pub async fn readiness(client: &Client, ns: &str, kind: &str, cached: bool) -> Result<KindReadiness> {
    let params = if cached {
        ListParams::default().match_any()
    } else {
        ListParams::default()
    };
    let list = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &api_resource(kind))
        .list(&params)
        .await
        .with_context(|| format!("list {kind} in {ns}"))?;
    let mut r = KindReadiness {
        total: list.items.len(),
        ..Default::default()
    };
    for o in &list.items {
        let cond = o.data["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        match cond {
            Some(c) if c["status"] == "True" => r.ready += 1,
            Some(c) => {
                *r.waiting
                    .entry(c["reason"].as_str().unwrap_or("NoReason").to_string())
                    .or_default() += 1
            }
            None => *r.waiting.entry("NoStatus".into()).or_default() += 1,
        }
    }
    Ok(r)
}

/// Events in the namespace by reason (`type/reason`), and how many.
pub async fn events(client: &Client, ns: &str) -> Result<BTreeMap<String, usize>> {
    let list = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list events in {ns}"))?;
    let mut out = BTreeMap::new();
    for e in list.items {
        let key = format!(
            "{}/{}",
            e.type_.as_deref().unwrap_or("?"),
            e.reason.as_deref().unwrap_or("?")
        );
        *out.entry(key).or_default() += 1;
    }
    Ok(out)
}

/// Namespaces being deleted (left-overs whose finalizers nobody removes
/// keep the namespace controller busy).
pub async fn terminating_namespaces(client: &Client) -> Result<usize> {
    let list = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("list namespaces")?;
    Ok(list
        .items
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"))
        .count())
}
