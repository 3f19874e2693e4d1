//! What the operator reports on each custom resource, and the JSON schemas
//! of the model's own scalar types. Built only with the `kube` feature: the
//! CLI and the servers never compile kube.
//!
//! The custom resources themselves are derived on the manifest specs in
//! [`crate::manifest`] (`FeatureStore`, `Entity`, `DataSource`,
//! `FeatureView`, `FeatureService`, `Permission`), so a manifest that
//! `larder apply` accepts is the same document `kubectl apply` sends.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::duration::Ttl;
use crate::types::FeatureType;

pub use crate::manifest::{DataSource, Entity, FeatureService, FeatureStore, FeatureView, Permission};

/// Status of an Entity, DataSource, FeatureView, FeatureService or Permission.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// `Ready` (and, for views, `TablesProvisioned`), Kubernetes-style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Feast project the object was written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The object's name in the registry (`spec.name`, else `metadata.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feast_name: Option<String>,
    /// FeatureView: how many features it declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_count: Option<u32>,
    /// FeatureView: end of its latest materialization interval (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_materialized: Option<String>,
    /// FeatureView: the operator's materialization runs (Jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialization: Option<MaterializationStatus>,
}

/// A FeatureView's scheduled and on-demand materialization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaterializationStatus {
    /// The schedule in effect (the view's, else the store's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The last due time a run was started for (or found nothing to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When the next scheduled run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<String>,
    /// The `larder.dev/materialize-requested-at` value already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<MaterializationRun>,
}

/// One run: a window materialized by one Job per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaterializationRun {
    pub id: String,
    /// The window `[start, end)`, RFC 3339.
    pub start: String,
    pub end: String,
    pub shards: u32,
    /// The run's Jobs, by shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    /// `Running`, `Succeeded` or `Failed`.
    pub outcome: String,
    /// Why it failed, in the Job controller's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Status of a FeatureStore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureStoreStatus {
    /// `RegistryReady`, `OnlineStoreReady` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The registry, described without credentials (`postgresql://host:5432/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The online store's kind (`redis`, `postgres`, `mysql`, `sqlite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_store: Option<String>,
    /// The project's objects in the registry, by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectCounts>,
    /// The image the workloads run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The feature server Deployment, as its own status reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_server: Option<ServerStatus>,
    /// The registry server Deployment, as its own status reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_server: Option<ServerStatus>,
}

/// A server Deployment of a FeatureStore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The Deployment's name.
    pub deployment: String,
    /// In-cluster URL of the HTTP API (feature server) or the gRPC API (registry server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// In-cluster address of the feature server's gRPC ServingService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_endpoint: Option<String>,
    /// Pods wanted (the autoscaler's choice when autoscaling is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Pods ready for at least `minReadySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
}

/// How many registry objects a project holds, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    pub entities: u32,
    pub data_sources: u32,
    pub feature_views: u32,
    pub feature_services: u32,
    pub permissions: u32,
}

impl JsonSchema for Ttl {
    fn schema_name() -> Cow<'static, str> {
        "Ttl".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// A whole number of seconds or a duration such as `1d`, `1h30m` or `500ms`.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds, or a duration such as 0, 30s, 15m, 24h, 1d, 1h30m or 500ms.",
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-validations": [{
                "rule": "type(self) == int ? self >= 0 : self.matches('^(0|([0-9]+(ms|s|m|h|d))+)$')",
                "message": "must be a non-negative number of seconds or a duration such as 30s, 15m, 24h, 1d, 1h30m or 500ms"
            }]
        })
    }
}

impl JsonSchema for FeatureType {
    fn schema_name() -> Cow<'static, str> {
        "FeatureType".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = FeatureType::spellings().collect();
        json_schema!({
            "description": "A Feast type: Bool, Bytes, String, Int32, Int64, Float32, Float64, UnixTimestamp, Json, Uuid, Decimal, Map, Struct, Array(T), Set(T), or a ValueType name such as FLOAT or INT64_LIST.",
            "type": "string",
            "enum": names
        })
    }
}
