//! Roll out a FeatureStore's children: build them (pure, `larder-deploy`),
//! server-side apply each under the operator's field manager (so a hand
//! edit of an owned field is reverted at the next reconcile), delete the
//! servers' objects the spec no longer asks for, and read the Deployments'
//! own status back. An object whose API the cluster does not serve (an
//! `autoscaling/v2` HPA or a `policy/v1` PDB on an older cluster) is left
//! out and reported, instead of failing the rollout.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use larder_deploy::servers::{self, ServerKind};
use larder_deploy::{Defaults, STORE_LABEL, Store};
use larder_model::crd::ServerStatus;
use larder_model::manifest::FeatureStoreSpec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::status::{ServerState, Workloads};
use crate::{Error, FIELD_MANAGER};

/// Which optional APIs the cluster serves, asked at most once a minute.
#[derive(Default)]
pub struct ServedApis {
    seen: Mutex<HashMap<&'static str, (bool, Instant)>>,
}

impl ServedApis {
    const TTL: Duration = Duration::from_secs(60);

    /// Whether `group_version` (e.g. `autoscaling/v2`) is served.
    pub async fn served(&self, client: &Client, group_version: &'static str) -> Result<bool, Error> {
        if let Ok(seen) = self.seen.lock()
            && let Some((served, at)) = seen.get(group_version)
            && at.elapsed() < Self::TTL
        {
            return Ok(*served);
        }
        let served = match client.list_api_group_resources(group_version).await {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(e) => return Err(e.into()),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(group_version, (served, Instant::now()));
        }
        Ok(served)
    }
}

/// The optional APIs, with what needs them.
const AUTOSCALING: &str = "autoscaling/v2";
const DISRUPTION: &str = "policy/v1";

/// Apply the store's children and report what the servers' Deployments say.
pub async fn roll_out(
    client: &Client,
    apis: &ServedApis,
    defaults: &Defaults,
    obj: &DynamicObject,
    spec: &FeatureStoreSpec,
) -> Result<Workloads, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let uid = obj.uid();
    let store = Store {
        name: &name,
        namespace: &ns,
        uid: uid.as_deref(),
        spec,
    };
    let children = larder_deploy::build(store, defaults).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let mut out = Workloads {
        image: (!children.deployments.is_empty()).then(|| defaults.image_for(spec)),
        ..Default::default()
    };
    apply(client, &ns, &children.config_map).await?;
    out.applied += 1;
    for sa in &children.service_accounts {
        apply(client, &ns, sa).await?;
    }
    for svc in &children.services {
        apply(client, &ns, svc).await?;
    }
    let mut deployments = Vec::new();
    for d in &children.deployments {
        deployments.push(apply(client, &ns, d).await?);
    }
    out.applied += children.service_accounts.len() + children.services.len() + children.deployments.len();
    out.applied += crate::access::roll_out(client, &ns, &name, &children.access).await?;
    let autoscaling = apis.served(client, AUTOSCALING).await?;
    let disruption = apis.served(client, DISRUPTION).await?;
    for hpa in &children.autoscalers {
        if autoscaling {
            apply(client, &ns, hpa).await?;
            out.applied += 1;
        } else {
            out.unsupported.push(format!(
                "the cluster does not serve {AUTOSCALING} (Kubernetes 1.23+): HorizontalPodAutoscaler {} is not applied and the Deployment keeps its last replica count",
                hpa.name_any()
            ));
        }
    }
    for pdb in &children.disruption_budgets {
        if disruption {
            apply(client, &ns, pdb).await?;
            out.applied += 1;
        } else {
            out.unsupported.push(format!(
                "the cluster does not serve {DISRUPTION} (Kubernetes 1.21+): PodDisruptionBudget {} is not applied",
                pdb.name_any()
            ));
        }
    }
    // Servers the spec no longer asks for (and their HPA/PDB) go.
    let keep = |names: Vec<String>| names.into_iter().collect::<BTreeSet<String>>();
    let selector = format!(
        "{STORE_LABEL}={name},app.kubernetes.io/managed-by={}",
        larder_deploy::MANAGED_BY
    );
    prune::<Deployment>(
        client,
        &ns,
        &selector,
        &keep(children.deployments.iter().map(|d| d.name_any()).collect()),
    )
    .await?;
    prune::<Service>(
        client,
        &ns,
        &selector,
        &keep(children.services.iter().map(|d| d.name_any()).collect()),
    )
    .await?;
    prune::<ServiceAccount>(
        client,
        &ns,
        &selector,
        &keep(children.service_accounts.iter().map(|d| d.name_any()).collect()),
    )
    .await?;
    if autoscaling {
        prune::<HorizontalPodAutoscaler>(
            client,
            &ns,
            &selector,
            &keep(children.autoscalers.iter().map(|d| d.name_any()).collect()),
        )
        .await?;
    }
    if disruption {
        prune::<PodDisruptionBudget>(
            client,
            &ns,
            &selector,
            &keep(children.disruption_budgets.iter().map(|d| d.name_any()).collect()),
        )
        .await?;
    }
    for kind in ServerKind::ALL {
        let Some(server) = kind.spec(spec).filter(|s| s.is_enabled()) else {
            continue;
        };
        let deployment_name = kind.name(&name);
        if let Some(d) = deployments.iter().find(|d| d.name_any() == deployment_name) {
            out.servers.push(server_state(kind, server, d, &ns));
        }
    }
    Ok(out)
}

/// Server-side apply one child, forcing the operator's ownership of every
/// field it sets.
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await?)
}

/// Delete the server objects of the store that are not in `keep`.
async fn prune<K>(client: &Client, ns: &str, selector: &str, keep: &BTreeSet<String>) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    for o in api.list(&ListParams::default().labels(selector)).await? {
        let component = o.labels().get("app.kubernetes.io/component").map(String::as_str);
        let server = ServerKind::ALL.iter().any(|k| Some(k.component()) == component);
        if server && !keep.contains(&o.name_any()) {
            match api.delete(&o.name_any(), &DeleteParams::background()).await {
                Ok(_) => tracing::info!(
                    kind = K::kind(&()).as_ref(),
                    name = o.name_any(),
                    "deleted: no longer in the spec"
                ),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A server's state from its Deployment's own status.
pub fn server_state(
    kind: ServerKind,
    server: &larder_model::workloads::ServerSpec,
    d: &Deployment,
    ns: &str,
) -> ServerState {
    let name = d.name_any();
    let host = format!("{name}.{ns}.svc");
    let status = d.status.clone().unwrap_or_default();
    let wanted = d
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .or(status.replicas)
        .unwrap_or(1);
    let observed = status.observed_generation >= d.metadata.generation;
    let available_cond = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
        .cloned();
    let available_pods = status.available_replicas.unwrap_or(0);
    let available =
        observed && available_cond.as_ref().is_some_and(|c| c.status == "True") && (available_pods > 0 || wanted == 0);
    let message = if !observed {
        "waiting for the Deployment controller to observe the new spec".to_string()
    } else {
        let mut m = format!("{available_pods}/{wanted} replicas available");
        if let Some(updated) = status.updated_replicas.filter(|u| *u < wanted) {
            m.push_str(&format!(", {updated} updated (rolling out)"));
        }
        if let Some(c) = available_cond.filter(|c| c.status != "True")
            && let Some(msg) = c.message.filter(|m| !m.is_empty())
        {
            m.push_str(": ");
            m.push_str(&msg);
        }
        m
    };
    let tls = server.tls.is_some();
    let (endpoint, grpc_endpoint) = match kind {
        ServerKind::FeatureServer => (
            Some(format!(
                "{}://{host}:{}",
                if tls { "https" } else { "http" },
                servers::FEATURE_SERVER_HTTP_PORT
            )),
            server
                .grpc
                .unwrap_or(true)
                .then(|| format!("{host}:{}", servers::FEATURE_SERVER_GRPC_PORT)),
        ),
        ServerKind::RegistryServer => (Some(format!("{host}:{}", servers::REGISTRY_SERVER_GRPC_PORT)), None),
    };
    ServerState {
        kind,
        status: ServerStatus {
            deployment: name,
            endpoint,
            grpc_endpoint,
            replicas: Some(wanted),
            updated_replicas: status.updated_replicas,
            available_replicas: status.available_replicas,
        },
        available,
        message,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    use super::*;

    fn deployment(generation: i64, observed: i64, available: &str, pods: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("drivers-feature-server".into());
        d.metadata.generation = Some(generation);
        d.spec = Some(Default::default());
        if let Some(s) = d.spec.as_mut() {
            s.replicas = Some(2);
        }
        d.status = Some(DeploymentStatus {
            observed_generation: Some(observed),
            available_replicas: Some(pods),
            updated_replicas: Some(2),
            conditions: Some(vec![DeploymentCondition {
                type_: "Available".into(),
                status: available.into(),
                message: Some("Deployment does not have minimum availability.".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        d
    }

    #[test]
    fn availability_comes_from_the_deployment_controller() {
        let spec = larder_model::workloads::ServerSpec::default();
        let ok = server_state(ServerKind::FeatureServer, &spec, &deployment(3, 3, "True", 2), "team-a");
        assert!(ok.available, "{}", ok.message);
        assert_eq!(ok.message, "2/2 replicas available");
        assert_eq!(
            ok.status.endpoint.as_deref(),
            Some("http://drivers-feature-server.team-a.svc:6566")
        );
        assert_eq!(
            ok.status.grpc_endpoint.as_deref(),
            Some("drivers-feature-server.team-a.svc:6567")
        );
        let stale = server_state(ServerKind::FeatureServer, &spec, &deployment(4, 3, "True", 2), "team-a");
        assert!(!stale.available && stale.message.contains("observe"));
        let down = server_state(
            ServerKind::FeatureServer,
            &spec,
            &deployment(3, 3, "False", 0),
            "team-a",
        );
        assert!(!down.available);
        assert!(
            down.message
                .starts_with("0/2 replicas available: Deployment does not have"),
            "{}",
            down.message
        );
    }
}
