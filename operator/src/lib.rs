//! The Larder operator: `FeatureStore`, `Entity`, `DataSource`,
//! `FeatureView`, `FeatureService` and `Permission` resources reconciled
//! into a Feast registry and the online store's tables, and each
//! FeatureStore's serving workloads (config, servers, autoscaling) rolled
//! out from the pure builders of `larder-deploy`.
//!
//! Every reconcile runs the same steps: dereference (the resource, its
//! FeatureStore and what it references, from the shared reflectors) →
//! validate (pure, with the model's validator) → build (pure: the Feast
//! object) → apply (registry write only when it differs; online tables) →
//! status (conditions from what happened, one status patch).

pub mod access;
pub mod backend;
pub mod conditions;
pub mod context;
pub mod crdgen;
pub mod error;
pub mod leader;
pub mod materialization;
pub mod metrics;
pub mod objects;
pub mod operator;
pub mod raw;
pub mod reconcile_object;
pub mod reconcile_store;
pub mod status;
pub mod workloads;

pub use error::Error;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "larder-operator";
/// The finalizer that removes registry objects and online tables.
pub const FINALIZER: &str = "larder.dev/cleanup";
