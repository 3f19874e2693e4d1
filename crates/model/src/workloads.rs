//! What a FeatureStore runs: the feature server and registry server
//! Deployments and the materialization schedule (`FeatureStore.spec`
//! `image`, `featureServer`, `registryServer`, `materialization`). Pod
//! settings are Kubernetes' own types, passed through to the pod template.
//! `larder render` and the operator read these with the same builders.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

/// The container image of every workload; unset parts default to the
/// operator's own image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 255)))]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 128)))]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectReference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// A server Deployment: the feature server (`featureServer`) or the
/// registry server (`registryServer`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// Run this server (default true when the section is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pods when autoscaling is off (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 1000)))]
    pub replicas: Option<i32>,
    /// Feature server only: also serve Feast's gRPC ServingService on 6567 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Serve TLS with the `tls.crt`/`tls.key` of this Secret (a `kubernetes.io/tls` Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A HorizontalPodAutoscaler (`autoscaling/v2`); the replica count is then left to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// A PodDisruptionBudget (`policy/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra environment of the server container (after the operator's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

impl ServerSpec {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub secret_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "kube",
    derive(schemars::JsonSchema),
    schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}]))
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutoscalingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub min_replicas: Option<i32>,
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub max_replicas: i32,
    /// Average CPU utilization the autoscaler aims for (default 80).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 100)))]
    pub target_cpu_utilization_percentage: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "kube",
    derive(schemars::JsonSchema),
    schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.minAvailable), has(self.maxUnavailable)].exists_one(x, x)", "message": "set exactly one of minAvailable or maxUnavailable"}]))
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// When and how the operator materializes the store's views as Jobs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaterializationSpec {
    /// A five-field cron schedule (`0 * * * *`); no schedule, no scheduled runs
    /// (on-demand runs through the annotation still work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 128)))]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 64)))]
    pub time_zone: Option<String>,
    /// Start no scheduled runs (running Jobs finish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Jobs per run, each materializing the entity keys that hash to its shard (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 256)))]
    pub shards: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0)))]
    pub backoff_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0)))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// A FeatureView's own schedule and shard count, over the store's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ViewMaterializationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 128)))]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 256)))]
    pub shards: Option<u32>,
}

/// Who may call the store's servers: `auth` of the rendered `larder.yaml`
/// (Feast's `auth` keys plus Larder's `authorization`). With `kubernetes`
/// the operator also grants the servers' service accounts what checking
/// tokens needs: `system:auth-delegator` (TokenReview,
/// SubjectAccessReview) and reading the namespace's RoleBindings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "kube",
    derive(schemars::JsonSchema),
    schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.type == 'oidc' ? has(self.oidc) : !has(self.oidc)", "message": "spec.auth.oidc is required with type oidc, and only then"},
        {"rule": "!has(self.authorization) || self.authorization != 'kubernetes-rbac' || self.type == 'kubernetes'", "message": "authorization kubernetes-rbac needs type kubernetes: SubjectAccessReviews ask about Kubernetes users"}
    ]))
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSpec {
    /// `no_auth`, `kubernetes` (service-account and user tokens checked
    /// with TokenReview) or `oidc` (JWTs from an OpenID provider).
    #[serde(rename = "type")]
    pub auth_type: AuthType,
    /// `permissions` (default: Feast's Permission objects) or
    /// `kubernetes-rbac` (SubjectAccessReviews on larder.dev resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationMode>,
    /// How long a checked token and an RBAC decision are reused (default 10).
    #[serde(default, rename = "cacheTTLSeconds", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 3600)))]
    pub cache_ttl_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcAuthSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum AuthType {
    #[serde(rename = "no_auth")]
    NoAuth,
    #[serde(rename = "kubernetes")]
    Kubernetes,
    #[serde(rename = "oidc")]
    Oidc,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::NoAuth => "no_auth",
            AuthType::Kubernetes => "kubernetes",
            AuthType::Oidc => "oidc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum AuthorizationMode {
    #[serde(rename = "permissions")]
    Permissions,
    #[serde(rename = "kubernetes-rbac")]
    KubernetesRbac,
}

impl AuthorizationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationMode::Permissions => "permissions",
            AuthorizationMode::KubernetesRbac => "kubernetes-rbac",
        }
    }
}

/// The OpenID provider (Feast's `oidc` auth keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcAuthSpec {
    /// The provider's `.well-known/openid-configuration` URL.
    #[serde(rename = "discoveryURL")]
    #[cfg_attr(feature = "kube", schemars(pattern(r"^https?://"), length(min = 8, max = 2048)))]
    pub discovery_url: String,
    /// Roles are also read from the token's `resource_access.<clientId>.roles`.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The client secret, for Feast SDK clients that read the same config
    /// to fetch their own tokens; the servers never need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<crate::stores::SecretKeyRef>,
    /// Check the provider's TLS certificate (default true).
    #[serde(default, rename = "verifySSL", skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
    /// How long the provider's keys are cached (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 86400)))]
    pub jwks_cache_lifespan_seconds: Option<u32>,
}
