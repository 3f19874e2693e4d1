//! Larder's object model.
//!
//! One parser, one validator and one conversion to Feast protobufs for every
//! surface (YAML files, CRDs, gRPC, SQL blobs): manifests are parsed
//! ([`load`]), checked as a set ([`validate`]), and converted to the exact
//! protobufs Feast 0.67's Python SDK writes ([`convert`]) and back
//! ([`reverse`]). Feast value and entity-key encodings live here too.

pub mod convert;
#[cfg(feature = "kube")]
pub mod crd;
pub mod duration;
pub mod entity_key;
pub mod error;
pub mod feast;
pub mod instant;
pub mod json;
pub mod load;
pub mod manifest;
pub mod names;
pub mod permissions;
pub mod reverse;
pub mod rows;
pub mod stores;
pub mod types;
pub mod url;
pub mod validate;
pub mod workloads;

pub use error::{ManifestError, ManifestErrors};
pub use manifest::{Kind, Object};

/// The `apiVersion` every Larder document carries.
pub const API_VERSION: &str = "larder.dev/v1alpha1";
