//! The Kubernetes objects a FeatureStore runs, built by pure functions:
//! the rendered `larder.yaml` ([`config`]), the feature server and
//! registry server with their ServiceAccounts, Services, autoscalers and
//! disruption budgets ([`servers`]), and materialization Jobs ([`jobs`]).
//! The operator applies what these return; `larder render` prints it. No
//! function here talks to a cluster, so every object can be reviewed from
//! the FeatureStore's YAML alone.

pub mod access;
pub mod config;
pub mod hash;
pub mod jobs;
pub mod render;
pub mod schedule;
pub mod servers;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use larder_model::manifest::FeatureStoreSpec;

/// The API group and version of Larder's custom resources.
pub const API_VERSION: &str = "larder.dev/v1alpha1";
/// Who manages the children (the `app.kubernetes.io/managed-by` label).
pub const MANAGED_BY: &str = "larder-operator";
/// The label naming the FeatureStore a child belongs to.
pub const STORE_LABEL: &str = "larder.dev/store";
/// The pod-template annotation that changes with the rendered config, so a
/// config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "larder.dev/config-hash";
/// The image used when the FeatureStore names none: this version's image.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/larder-dev/larder";
/// Longest FeatureStore name whose children's names fit a Service name (63).
pub const MAX_STORE_NAME: usize = 63 - "-registry-server".len();

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("{0}")]
    InvalidSpec(String),
}

impl BuildError {
    /// Short label for metrics and condition reasons.
    pub fn label(&self) -> &'static str {
        match self {
            BuildError::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

pub type Result<T> = std::result::Result<T, BuildError>;

/// One FeatureStore, as the builders need it.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// The resource's uid: children get an owner reference when it is known
    /// (`larder render` works without a cluster and leaves them out).
    pub uid: Option<&'a str>,
    pub spec: &'a FeatureStoreSpec,
}

/// Settings of the operator that apply to every store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `repository:tag` used when `spec.image` leaves parts unset.
    pub image: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            image: format!("{DEFAULT_IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Defaults {
    /// The image of a store's workloads: its own parts over the default's.
    pub fn image_for(&self, spec: &FeatureStoreSpec) -> String {
        let (default_repo, default_tag) = split_image(&self.image);
        let image = spec.image.as_ref();
        let repo = image.and_then(|i| i.repository.as_deref()).unwrap_or(default_repo);
        match image.and_then(|i| i.tag.as_deref()).or(default_tag) {
            Some(tag) => format!("{repo}:{tag}"),
            None => repo.to_string(),
        }
    }
}

/// `repo:tag` → (repo, Some(tag)); a `:` inside a registry host's port is not a tag.
fn split_image(image: &str) -> (&str, Option<&str>) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (image, None),
    }
}

/// Every object a FeatureStore owns apart from materialization Jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub service_accounts: Vec<ServiceAccount>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// What the servers' accounts may do (token checks with `auth: kubernetes`).
    pub access: access::Access,
}

impl Children {
    /// The objects as JSON documents (with `apiVersion` and `kind`), in the
    /// order they are applied: config and accounts before the pods that use them.
    pub fn documents(&self) -> Vec<serde_json::Value> {
        let mut out = vec![to_json(&self.config_map)];
        out.extend(self.service_accounts.iter().map(to_json));
        out.extend(self.services.iter().map(to_json));
        out.extend(self.deployments.iter().map(to_json));
        out.extend(self.autoscalers.iter().map(to_json));
        out.extend(self.disruption_budgets.iter().map(to_json));
        out.extend(self.access.roles.iter().map(to_json));
        out.extend(self.access.role_bindings.iter().map(to_json));
        out.extend(self.access.cluster_role_bindings.iter().map(to_json));
        out
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    // k8s-openapi's types always serialize; `Null` would only hide a bug in a test.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Build everything a FeatureStore runs (without Jobs).
pub fn build(store: Store<'_>, defaults: &Defaults) -> Result<Children> {
    let rendered = config::render(store)?;
    let mut children = Children {
        config_map: config::config_map(store, &rendered),
        ..Default::default()
    };
    for kind in servers::ServerKind::ALL {
        let Some(server) = kind.spec(store.spec).filter(|s| s.is_enabled()) else {
            continue;
        };
        check_name(store.name)?;
        let built = servers::build(store, defaults, kind, server, &rendered)?;
        children.service_accounts.push(built.service_account);
        children.deployments.push(built.deployment);
        children.services.push(built.service);
        children.autoscalers.extend(built.autoscaler);
        children.disruption_budgets.extend(built.disruption_budget);
    }
    children.access = access::build(store);
    Ok(children)
}

fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_STORE_NAME {
        return Err(BuildError::InvalidSpec(format!(
            "metadata.name {name:?} is {} characters; a FeatureStore that runs servers may have at most {MAX_STORE_NAME}, so its Services' names fit 63",
            name.len()
        )));
    }
    Ok(())
}

/// Labels every child carries; `component` says which workload.
pub fn labels(store: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector(store, component);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert("app.kubernetes.io/part-of".into(), "larder".into());
    l.insert(STORE_LABEL.into(), store.into());
    l
}

/// The labels a workload's pods are selected by (immutable in a Deployment).
pub fn selector(store: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "larder".to_string()),
        ("app.kubernetes.io/instance".to_string(), store.to_string()),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
    ])
}

/// Metadata of a child: name, namespace, labels, owner.
pub fn metadata(store: Store<'_>, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(store.namespace.to_string()),
        labels: Some(labels(store.name, component)),
        owner_references: store.uid.map(|uid| vec![owner(store.name, uid, "FeatureStore")]),
        ..Default::default()
    }
}

/// A controller owner reference to a Larder resource: the garbage collector
/// deletes the child with its owner.
pub fn owner(name: &str, uid: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_parts_fall_back_to_the_default() {
        let d = Defaults {
            image: "registry.local:5000/larder:1.2".into(),
        };
        let mut spec = FeatureStoreSpec::default();
        assert_eq!(d.image_for(&spec), "registry.local:5000/larder:1.2");
        spec.image = Some(larder_model::workloads::ImageSpec {
            tag: Some("dev".into()),
            ..Default::default()
        });
        assert_eq!(d.image_for(&spec), "registry.local:5000/larder:dev");
        let untagged = Defaults {
            image: "registry.local:5000/larder".into(),
        };
        assert_eq!(
            untagged.image_for(&FeatureStoreSpec::default()),
            "registry.local:5000/larder"
        );
        assert!(Defaults::default().image.starts_with("ghcr.io/larder-dev/larder:"));
    }

    #[test]
    fn long_store_names_are_refused() {
        assert!(check_name(&"a".repeat(MAX_STORE_NAME)).is_ok());
        let err = check_name(&"a".repeat(MAX_STORE_NAME + 1)).unwrap_err();
        assert_eq!(err.label(), "InvalidSpec");
        assert!(err.to_string().contains("at most 47"), "{err}");
    }
}
