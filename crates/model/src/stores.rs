//! Where a FeatureStore keeps its registry and data, as the operator reads
//! it from `FeatureStore.spec`. Connection strings never appear in the
//! resource: each one is a reference to a key of a Secret in the store's
//! namespace, resolved by the operator at reconcile time.

use serde::{Deserialize, Serialize};

/// A key of a Secret in the FeatureStore's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub name: String,
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistrySpec {
    /// A SQL registry (Feast's `registry_type: sql`).
    pub sql: SqlRegistrySpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlRegistrySpec {
    /// The Secret key holding the registry URL: `postgresql://…` or `mysql://…`
    /// (Feast's SQLAlchemy forms such as `postgresql+psycopg://` work too).
    pub url_secret_ref: SecretKeyRef,
    /// How long servers cache the registry (Feast's `cache_ttl_seconds`).
    #[serde(default, rename = "cacheTTLSeconds", skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
}

/// Exactly one online store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "kube",
    derive(schemars::JsonSchema),
    schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.redis), has(self.postgres), has(self.mysql), has(self.sqlite)].exists_one(x, x)", "message": "set exactly one of redis, postgres, mysql or sqlite"}]))
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OnlineStoreSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisOnlineSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<UrlSecretSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<UrlSecretSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteOnlineSpec>,
}

impl OnlineStoreSpec {
    /// `redis`, `postgres`, `mysql` or `sqlite`; `None` unless exactly one is set.
    pub fn kind(&self) -> Option<&'static str> {
        let set: Vec<&'static str> = [
            self.redis.as_ref().map(|_| "redis"),
            self.postgres.as_ref().map(|_| "postgres"),
            self.mysql.as_ref().map(|_| "mysql"),
            self.sqlite.as_ref().map(|_| "sqlite"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisOnlineSpec {
    /// Feast's Redis `connection_string` (`host:port,db=0,password=…`).
    pub connection_string_secret_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UrlSecretSpec {
    /// The Secret key holding a `postgresql://user:password@host:port/database` (or `mysql://…`) URL.
    pub url_secret_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqliteOnlineSpec {
    /// Absolute path of the SQLite file, as the operator and servers see it.
    #[cfg_attr(feature = "kube", schemars(length(min = 1)))]
    pub path: String,
}

/// Exactly one offline store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "kube",
    derive(schemars::JsonSchema),
    schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.file), has(self.postgres)].exists_one(x, x)", "message": "set exactly one of file or postgres"}]))
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OfflineStoreSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileOfflineSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<UrlSecretSpec>,
}

/// Parquet files named by each FileSource; nothing to configure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FileOfflineSpec {}

/// What deleting a FeatureStore does to its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum DeletionPolicy {
    /// Keep the project's registry objects and online tables.
    #[default]
    Retain,
    /// Drop the project's registry objects and online tables.
    Delete,
}

impl DeletionPolicy {
    pub fn is_default(&self) -> bool {
        *self == DeletionPolicy::default()
    }
}

/// Who owns the project's registry objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum ObjectPolicy {
    /// Objects no resource declares (written by `feast apply`, say) are left alone.
    #[default]
    Shared,
    /// The resources are the whole truth: undeclared objects are deleted.
    Exclusive,
}

impl ObjectPolicy {
    pub fn is_default(&self) -> bool {
        *self == ObjectPolicy::default()
    }
}
