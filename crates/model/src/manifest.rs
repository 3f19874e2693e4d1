//! The documents users write. Field names are camelCase like every
//! Kubernetes API; unknown fields are rejected.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Ttl;
use crate::types::FeatureType;

pub type Tags = BTreeMap<String, String>;

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `apiVersion`/`kind`/`metadata`/`spec`, the envelope every kind shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(
        group = "larder.dev",
        version = "v1alpha1",
        kind = "FeatureStore",
        namespaced,
        status = "crate::crd::FeatureStoreStatus",
        shortname = "lfs",
        category = "larder"
    ),
    kube(
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
        printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.project"}"#,
        printcolumn = r#"{"name":"Registry","type":"string","jsonPath":".status.registry"}"#,
        printcolumn = r#"{"name":"Online store","type":"string","jsonPath":".status.onlineStore"}"#,
        printcolumn = r#"{"name":"Views","type":"integer","jsonPath":".status.objects.featureViews"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
pub struct FeatureStoreSpec {
    #[cfg_attr(
        feature = "kube",
        schemars(
            pattern(crate::names::PROJECT_PATTERN),
            length(min = 1, max = 128),
            extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.project is immutable: the store's registry objects and tables belong to it"}])
        )
    )]
    pub project: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
    /// Where the operator keeps the registry. `larder apply` uses larder.yaml instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::stores::RegistrySpec>,
    /// The online store the operator provisions tables in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_store: Option<crate::stores::OnlineStoreSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_store: Option<crate::stores::OfflineStoreSpec>,
    /// What deleting the FeatureStore does to its project (default Retain).
    #[serde(default, skip_serializing_if = "crate::stores::DeletionPolicy::is_default")]
    pub deletion_policy: crate::stores::DeletionPolicy,
    /// Whether registry objects of the project that no resource declares are kept (Shared, default) or deleted (Exclusive).
    #[serde(default, skip_serializing_if = "crate::stores::ObjectPolicy::is_default")]
    pub object_policy: crate::stores::ObjectPolicy,
    /// The image of the servers and materialization Jobs (default: the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::workloads::ImageSpec>,
    /// The feature server Deployment (HTTP 6566, gRPC 6567); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_server: Option<Box<crate::workloads::ServerSpec>>,
    /// The registry server Deployment (Feast's RegistryServer gRPC, 6570); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_server: Option<Box<crate::workloads::ServerSpec>>,
    /// Scheduled materialization as Kubernetes Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialization: Option<Box<crate::workloads::MaterializationSpec>>,
    /// Who may call the servers (default: anyone who can reach them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<crate::workloads::AuthSpec>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(group = "larder.dev", version = "v1alpha1", kind = "Entity", namespaced, status = "crate::crd::ObjectStatus", shortname = "lent", category = "larder"),
    kube(printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#, printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#, printcolumn = r#"{"name":"Join key","type":"string","jsonPath":".spec.joinKey"}"#, printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.valueType"}"#, printcolumn = r#"{"name":"Project","type":"string","jsonPath":".status.project","priority":1}"#, printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#),
    schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')", "message": "spec.name is immutable: delete the object and create a new one"}, {"rule": "(has(self.storeRef) ? self.storeRef : '') == (has(oldSelf.storeRef) ? oldSelf.storeRef : '')", "message": "spec.storeRef is immutable: delete the object and create it in the other store"}, {"rule": "(has(self.joinKey) ? self.joinKey : '') == (has(oldSelf.joinKey) ? oldSelf.joinKey : '')", "message": "spec.joinKey is immutable: views and stored rows are keyed by it"}, {"rule": "self.valueType == oldSelf.valueType", "message": "spec.valueType is immutable: stored entity keys are encoded with it"}]))
)]
pub struct EntitySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::FEAST_NAME_PATTERN), length(min = 1, max = 128))
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::IDENTIFIER_PATTERN), length(min = 1, max = 128))
    )]
    pub join_key: Option<String>,
    pub value_type: FeatureType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileSourceSpec {
    /// Local path (relative to the manifest's directory) or a URI.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint_override: Option<String>,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresSourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PushSourceSpec {
    pub batch_source: String,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSourceSpec {
    pub schema: Vec<FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(group = "larder.dev", version = "v1alpha1", kind = "DataSource", namespaced, status = "crate::crd::ObjectStatus", shortname = "lds", category = "larder"),
    kube(printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#, printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#, printcolumn = r#"{"name":"Timestamp","type":"string","jsonPath":".spec.timestampField"}"#, printcolumn = r#"{"name":"Project","type":"string","jsonPath":".status.project","priority":1}"#, printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#),
    schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')", "message": "spec.name is immutable: delete the object and create a new one"}, {"rule": "(has(self.storeRef) ? self.storeRef : '') == (has(oldSelf.storeRef) ? oldSelf.storeRef : '')", "message": "spec.storeRef is immutable: delete the object and create it in the other store"}, {"rule": "[has(self.file), has(self.postgres), has(self.push), has(self.request)].exists_one(x, x)", "message": "a DataSource needs exactly one of file, postgres, push or request"}]))
)]
pub struct DataSourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::FEAST_NAME_PATTERN), length(min = 1, max = 128))
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timestamp_field: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_timestamp_column: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub date_partition_column: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSourceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSourceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSourceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSourceSpec>,
}

/// Which kind of source a `DataSourceSpec` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Postgres,
    Push,
    Request,
}

impl DataSourceSpec {
    /// The declared kinds; a valid spec has exactly one.
    pub fn kinds(&self) -> Vec<SourceKind> {
        let mut k = Vec::new();
        if self.file.is_some() {
            k.push(SourceKind::File);
        }
        if self.postgres.is_some() {
            k.push(SourceKind::Postgres);
        }
        if self.push.is_some() {
            k.push(SourceKind::Push);
        }
        if self.request.is_some() {
            k.push(SourceKind::Request);
        }
        k
    }
}

/// A named, typed column: a feature or a request-source field.
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldSpec {
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::IDENTIFIER_PATTERN), length(min = 1, max = 128))
    )]
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: FeatureType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(group = "larder.dev", version = "v1alpha1", kind = "FeatureView", namespaced, status = "crate::crd::ObjectStatus", shortname = "lfv", category = "larder"),
    kube(printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#, printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#, printcolumn = r#"{"name":"Entities","type":"string","jsonPath":".spec.entities"}"#, printcolumn = r#"{"name":"Features","type":"integer","jsonPath":".status.featureCount"}"#, printcolumn = r#"{"name":"TTL","type":"string","jsonPath":".spec.ttl"}"#, printcolumn = r#"{"name":"Last materialized","type":"date","jsonPath":".status.lastMaterialized"}"#, printcolumn = r#"{"name":"Project","type":"string","jsonPath":".status.project","priority":1}"#, printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#),
    schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')", "message": "spec.name is immutable: delete the object and create a new one"}, {"rule": "(has(self.storeRef) ? self.storeRef : '') == (has(oldSelf.storeRef) ? oldSelf.storeRef : '')", "message": "spec.storeRef is immutable: delete the object and create it in the other store"}]))
)]
pub struct FeatureViewSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::FEAST_NAME_PATTERN), length(min = 1, max = 128))
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    #[serde(default)]
    pub entities: Vec<String>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    pub features: Vec<FieldSpec>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
    /// This view's own materialization schedule and shard count (operator only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialization: Option<crate::workloads::ViewMaterializationSpec>,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectionSpec {
    pub view: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub join_key_map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(group = "larder.dev", version = "v1alpha1", kind = "FeatureService", namespaced, status = "crate::crd::ObjectStatus", shortname = "lfsvc", category = "larder"),
    kube(printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#, printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#, printcolumn = r#"{"name":"Views","type":"string","jsonPath":".spec.features[*].view"}"#, printcolumn = r#"{"name":"Project","type":"string","jsonPath":".status.project","priority":1}"#, printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#),
    schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')", "message": "spec.name is immutable: delete the object and create a new one"}, {"rule": "(has(self.storeRef) ? self.storeRef : '') == (has(oldSelf.storeRef) ? oldSelf.storeRef : '')", "message": "spec.storeRef is immutable: delete the object and create it in the other store"}]))
)]
pub struct FeatureServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::FEAST_NAME_PATTERN), length(min = 1, max = 128))
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    pub features: Vec<ProjectionSpec>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupsAndNamespaces {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
}

#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_and_namespaces: Option<GroupsAndNamespaces>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(
    feature = "kube",
    derive(kube::CustomResource, schemars::JsonSchema),
    kube(group = "larder.dev", version = "v1alpha1", kind = "Permission", namespaced, status = "crate::crd::ObjectStatus", shortname = "lperm", category = "larder"),
    kube(printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#, printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#, printcolumn = r#"{"name":"Actions","type":"string","jsonPath":".spec.actions"}"#, printcolumn = r#"{"name":"Project","type":"string","jsonPath":".status.project","priority":1}"#, printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#),
    schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')", "message": "spec.name is immutable: delete the object and create a new one"}, {"rule": "(has(self.storeRef) ? self.storeRef : '') == (has(oldSelf.storeRef) ? oldSelf.storeRef : '')", "message": "spec.storeRef is immutable: delete the object and create it in the other store"}]))
)]
pub struct PermissionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(pattern(crate::names::FEAST_NAME_PATTERN), length(min = 1, max = 128))
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_tags: BTreeMap<String, String>,
    pub actions: Vec<String>,
    pub policy: PolicySpec,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
}

/// The kinds Larder models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    FeatureStore,
    Entity,
    DataSource,
    FeatureView,
    FeatureService,
    Permission,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::FeatureStore,
        Kind::Entity,
        Kind::DataSource,
        Kind::FeatureView,
        Kind::FeatureService,
        Kind::Permission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FeatureStore => "FeatureStore",
            Kind::Entity => "Entity",
            Kind::DataSource => "DataSource",
            Kind::FeatureView => "FeatureView",
            Kind::FeatureService => "FeatureService",
            Kind::Permission => "Permission",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed document of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    FeatureStore(Document<FeatureStoreSpec>),
    Entity(Document<EntitySpec>),
    DataSource(Document<DataSourceSpec>),
    FeatureView(Document<FeatureViewSpec>),
    FeatureService(Document<FeatureServiceSpec>),
    Permission(Document<PermissionSpec>),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::FeatureStore(_) => Kind::FeatureStore,
            Object::Entity(_) => Kind::Entity,
            Object::DataSource(_) => Kind::DataSource,
            Object::FeatureView(_) => Kind::FeatureView,
            Object::FeatureService(_) => Kind::FeatureService,
            Object::Permission(_) => Kind::Permission,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::FeatureStore(d) => &d.metadata,
            Object::Entity(d) => &d.metadata,
            Object::DataSource(d) => &d.metadata,
            Object::FeatureView(d) => &d.metadata,
            Object::FeatureService(d) => &d.metadata,
            Object::Permission(d) => &d.metadata,
        }
    }

    /// The name written to the registry: `spec.name`, else `metadata.name`
    /// (for a FeatureStore: its project).
    pub fn feast_name(&self) -> &str {
        let explicit = match self {
            Object::FeatureStore(d) => Some(&d.spec.project),
            Object::Entity(d) => d.spec.name.as_ref(),
            Object::DataSource(d) => d.spec.name.as_ref(),
            Object::FeatureView(d) => d.spec.name.as_ref(),
            Object::FeatureService(d) => d.spec.name.as_ref(),
            Object::Permission(d) => d.spec.name.as_ref(),
        };
        explicit.map(String::as_str).unwrap_or(&self.metadata().name)
    }

    pub fn store_ref(&self) -> Option<&str> {
        match self {
            Object::FeatureStore(_) => None,
            Object::Entity(d) => d.spec.store_ref.as_deref(),
            Object::DataSource(d) => d.spec.store_ref.as_deref(),
            Object::FeatureView(d) => d.spec.store_ref.as_deref(),
            Object::FeatureService(d) => d.spec.store_ref.as_deref(),
            Object::Permission(d) => d.spec.store_ref.as_deref(),
        }
    }

    /// Serialize back to a YAML/JSON-ready value.
    pub fn to_value(&self) -> serde_json::Value {
        let v = match self {
            Object::FeatureStore(d) => serde_json::to_value(d),
            Object::Entity(d) => serde_json::to_value(d),
            Object::DataSource(d) => serde_json::to_value(d),
            Object::FeatureView(d) => serde_json::to_value(d),
            Object::FeatureService(d) => serde_json::to_value(d),
            Object::Permission(d) => serde_json::to_value(d),
        };
        // Our own types always serialize; Null is unreachable in practice.
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// Build a document envelope with the Larder apiVersion.
pub fn document<S>(kind: Kind, name: String, spec: S) -> Document<S> {
    Document {
        api_version: crate::API_VERSION.to_string(),
        kind: kind.as_str().to_string(),
        metadata: ObjectMeta {
            name,
            ..Default::default()
        },
        spec,
    }
}

/// Why an object has no FeatureStore to belong to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreRefError {
    #[error(
        "spec.storeRef: no FeatureStore named {0:?} in this namespace (cross-namespace references are not allowed)"
    )]
    NotFound(String),
    #[error("no FeatureStore in this namespace; create one or set spec.storeRef")]
    NoStore,
    #[error("{} FeatureStores in this namespace ({}); set spec.storeRef", .0.len(), .0.join(", "))]
    Several(Vec<String>),
}

/// The FeatureStore an object belongs to, among the `stores` of its
/// namespace: the one its `spec.storeRef` names, else the only one. The
/// operator and `larder render` decide it the same way.
pub fn owning_store<'a>(store_ref: Option<&str>, stores: &'a [String]) -> Result<&'a str, StoreRefError> {
    match store_ref {
        Some(r) => stores
            .iter()
            .find(|s| *s == r)
            .map(String::as_str)
            .ok_or_else(|| StoreRefError::NotFound(r.to_string())),
        None => match stores {
            [one] => Ok(one),
            [] => Err(StoreRefError::NoStore),
            several => Err(StoreRefError::Several(several.to_vec())),
        },
    }
}
