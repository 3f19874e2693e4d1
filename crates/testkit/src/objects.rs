//! Feast objects for tests and benchmarks, shaped like what Feast 0.67's
//! Python SDK writes: the driver entity (join key `driver_id`, INT64), a
//! file source, feature views over that entity, and Permissions with a
//! role-based policy.
//!
//! The builders return protos; [`IntoObject::object`] wraps one in the
//! [`FeastObject`] the registry API takes.
//!
//! ```
//! use larder_testkit::objects::{IntoObject, ValueType, entity, file_source, view};
//!
//! let driver = entity("driver", "driver_id").object();
//! let stats = view("stats").description("a").object();
//! let wide = view("wide")
//!     .with_features(ValueType::Float, (0..10).map(|i| format!("f{i}")))
//!     .source(file_source("wide_source", "/tmp/wide.parquet"))
//!     .ttl_seconds(86_400)
//!     .build();
//! assert_eq!(wide.spec.unwrap().features.len(), 10);
//! # let _ = (driver, stats);
//!
//! use larder_testkit::objects::{PermissionAction as A, PermissionType as T, permission};
//! let readers = permission("readers")
//!     .types(&[T::FeatureView])
//!     .patterns(&["driver_.*"])
//!     .actions(&[A::Describe, A::ReadOnline])
//!     .roles(&["feast-reader"])
//!     .build();
//! assert_eq!(readers.spec.unwrap().actions.len(), 2);
//! ```

use larder_model::feast::FeastObject;
use larder_protos::feast::core as fc;
pub use larder_protos::feast::core::permission_spec::{AuthzedAction as PermissionAction, Type as PermissionType};
pub use larder_protos::feast::types::value_type::Enum as ValueType;
use prost_types::Timestamp;

/// `data_source_class_type` Feast's SDK writes for a `FileSource`.
pub const FILE_SOURCE_CLASS: &str = "feast.infra.offline_stores.file_source.FileSource";

/// Wrap a proto in the [`FeastObject`] the registry API takes.
pub trait IntoObject {
    fn object(self) -> FeastObject;
}

impl IntoObject for fc::Entity {
    fn object(self) -> FeastObject {
        FeastObject::Entity(self)
    }
}

impl IntoObject for fc::DataSource {
    fn object(self) -> FeastObject {
        FeastObject::DataSource(self)
    }
}

impl IntoObject for fc::FeatureView {
    fn object(self) -> FeastObject {
        FeastObject::FeatureView(self)
    }
}

impl IntoObject for fc::Permission {
    fn object(self) -> FeastObject {
        FeastObject::Permission(self)
    }
}

impl IntoObject for PermissionBuilder {
    fn object(self) -> FeastObject {
        FeastObject::Permission(self.build())
    }
}

impl IntoObject for ViewBuilder {
    fn object(self) -> FeastObject {
        FeastObject::FeatureView(self.build())
    }
}

/// Entity `name` with an INT64 join key `join_key`.
pub fn entity(name: &str, join_key: &str) -> fc::Entity {
    fc::Entity {
        spec: Some(fc::EntitySpecV2 {
            name: name.into(),
            join_key: join_key.into(),
            value_type: ValueType::Int64 as i32,
            ..Default::default()
        }),
        meta: None,
    }
}

/// A `FileSource` named `name` over `uri`, timestamp field `event_timestamp`.
pub fn file_source(name: &str, uri: &str) -> fc::DataSource {
    use fc::data_source::{FileOptions, Options, SourceType};
    fc::DataSource {
        name: name.into(),
        r#type: SourceType::BatchFile as i32,
        timestamp_field: "event_timestamp".into(),
        options: Some(Options::FileOptions(FileOptions {
            uri: uri.into(),
            ..Default::default()
        })),
        data_source_class_type: FILE_SOURCE_CLASS.into(),
        ..Default::default()
    }
}

/// The file source [`view`] reads: `src` over `/tmp/x.parquet`.
pub fn view_source() -> fc::DataSource {
    file_source("src", "/tmp/x.parquet")
}

/// Feature view `name` over entity `driver` (entity column `driver_id`,
/// INT64), one FLOAT feature `f`, batch source [`view_source`], online,
/// `version: latest`. The builder changes any of that.
pub fn view(name: &str) -> ViewBuilder {
    ViewBuilder::new(name)
        .entity("driver")
        .entity_column("driver_id", ValueType::Int64)
        .feature("f", ValueType::Float)
        .source(view_source())
        .version("latest")
}

/// A `FeatureView` under construction; [`ViewBuilder::build`] or
/// [`IntoObject::object`] finish it.
#[derive(Debug, Clone)]
pub struct ViewBuilder {
    spec: fc::FeatureViewSpec,
}

impl ViewBuilder {
    /// Only the name, and `online` (Feast's default); no entity, feature or source.
    pub fn new(name: &str) -> Self {
        Self {
            spec: fc::FeatureViewSpec {
                name: name.into(),
                online: true,
                ..Default::default()
            },
        }
    }

    /// Add entity `name` to `entities`.
    pub fn entity(mut self, name: &str) -> Self {
        self.spec.entities.push(name.into());
        self
    }

    /// Add an entity column (what Feast's SDK writes for each join key).
    pub fn entity_column(mut self, name: &str, value_type: ValueType) -> Self {
        self.spec.entity_columns.push(field(name, value_type));
        self
    }

    /// Add a feature.
    pub fn feature(mut self, name: &str, value_type: ValueType) -> Self {
        self.spec.features.push(field(name, value_type));
        self
    }

    /// Replace the features with `names`, all of `value_type`.
    pub fn with_features(mut self, value_type: ValueType, names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.spec.features = names.into_iter().map(|n| field(n.as_ref(), value_type)).collect();
        self
    }

    /// Set the batch source.
    pub fn source(mut self, source: fc::DataSource) -> Self {
        self.spec.batch_source = Some(source);
        self
    }

    /// Remove the batch source.
    pub fn no_source(mut self) -> Self {
        self.spec.batch_source = None;
        self
    }

    pub fn ttl_seconds(mut self, seconds: i64) -> Self {
        self.spec.ttl = Some(prost_types::Duration { seconds, nanos: 0 });
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.spec.description = description.into();
        self
    }

    pub fn version(mut self, version: &str) -> Self {
        self.spec.version = version.into();
        self
    }

    /// The proto, without meta (the registry fills it in).
    pub fn build(self) -> fc::FeatureView {
        fc::FeatureView {
            spec: Some(self.spec),
            meta: None,
        }
    }
}

fn field(name: &str, value_type: ValueType) -> fc::FeatureSpecV2 {
    fc::FeatureSpecV2 {
        name: name.into(),
        value_type: value_type as i32,
        ..Default::default()
    }
}

/// Permission `name` with a role-based policy: no project, types, name
/// patterns, actions or roles until the builder adds them (Feast reads no
/// types as all types, no patterns as any name).
pub fn permission(name: &str) -> PermissionBuilder {
    PermissionBuilder {
        spec: fc::PermissionSpec {
            name: name.into(),
            ..Default::default()
        },
        roles: Vec::new(),
    }
}

/// A `Permission` under construction; [`PermissionBuilder::build`] or
/// [`IntoObject::object`] finish it.
#[derive(Debug, Clone)]
pub struct PermissionBuilder {
    spec: fc::PermissionSpec,
    roles: Vec<String>,
}

impl PermissionBuilder {
    pub fn project(mut self, project: &str) -> Self {
        self.spec.project = project.into();
        self
    }

    /// Add the protected object types.
    pub fn types(mut self, types: &[PermissionType]) -> Self {
        self.spec.types.extend(types.iter().map(|t| *t as i32));
        self
    }

    /// Add name patterns (regular expressions).
    pub fn patterns(mut self, patterns: &[&str]) -> Self {
        self.spec.name_patterns.extend(patterns.iter().map(|p| p.to_string()));
        self
    }

    /// Add permitted actions.
    pub fn actions(mut self, actions: &[PermissionAction]) -> Self {
        self.spec.actions.extend(actions.iter().map(|a| *a as i32));
        self
    }

    /// Add roles to the policy.
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles.extend(roles.iter().map(|r| r.to_string()));
        self
    }

    /// The proto, without meta (the registry fills it in).
    pub fn build(mut self) -> fc::Permission {
        self.spec.policy = Some(fc::Policy {
            policy_type: Some(fc::policy::PolicyType::RoleBasedPolicy(fc::RoleBasedPolicy {
                roles: self.roles,
            })),
            ..Default::default()
        });
        fc::Permission {
            spec: Some(self.spec),
            meta: None,
        }
    }
}

/// A timestamp of whole seconds since the epoch.
pub fn ts(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_view_is_the_driver_view() {
        let v = view("stats").build().spec.unwrap();
        assert_eq!(v.entities, vec!["driver".to_string()]);
        assert_eq!(v.entity_columns, vec![field("driver_id", ValueType::Int64)]);
        assert_eq!(v.features, vec![field("f", ValueType::Float)]);
        assert_eq!(v.batch_source, Some(view_source()));
        assert!(v.online);
        assert_eq!(v.version, "latest");
        assert_eq!(entity("driver", "driver_id").spec.unwrap().value_type, 4);
    }

    #[test]
    fn objects_keep_their_kind() {
        use larder_model::feast::FeastKind;
        assert_eq!(entity("e", "k").object().kind(), FeastKind::Entity);
        assert_eq!(file_source("s", "/x").object().kind(), FeastKind::DataSource);
        assert_eq!(view("v").object().kind(), FeastKind::FeatureView);
        assert_eq!(view("v").no_source().build().spec.unwrap().batch_source, None);
        assert_eq!(permission("p").object().kind(), FeastKind::Permission);
    }

    #[test]
    fn permissions_have_a_role_based_policy() {
        let p = permission("p")
            .project("shop")
            .types(&[PermissionType::FeatureView, PermissionType::Entity])
            .patterns(&["a.*"])
            .actions(&[PermissionAction::ReadOnline])
            .roles(&["r", "s"])
            .build()
            .spec
            .unwrap();
        assert_eq!((p.name.as_str(), p.project.as_str()), ("p", "shop"));
        assert_eq!(p.types, vec![0, 4]);
        assert_eq!(p.name_patterns, vec!["a.*".to_string()]);
        assert_eq!(p.actions, vec![PermissionAction::ReadOnline as i32]);
        let roles = match p.policy.and_then(|p| p.policy_type) {
            Some(fc::policy::PolicyType::RoleBasedPolicy(r)) => r.roles,
            other => panic!("{other:?}"),
        };
        assert_eq!(roles, vec!["r".to_string(), "s".to_string()]);
    }
}
