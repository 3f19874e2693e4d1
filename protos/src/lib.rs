//! Feast 0.67 wire-compatible protobuf messages for Larder.
//!
//! The `.proto` files under `proto/` were written from the Larder
//! compatibility fact sheet (`shared/feast-compat.md`, sections 1 and 2) and
//! are compiled at build time with the pure-Rust `protox` compiler and prost.
//! Messages, plus tonic clients and servers for the gRPC services
//! (`feast.serving.ServingService`, `feast.registry.RegistryServer`).
//!
//! Module layout mirrors the protobuf packages:
//! `feast.types` → [`feast::types`], `feast.core` → [`feast::core`],
//! `feast.registry` → [`feast::registry`], `feast.serving` →
//! [`feast::serving`], `feast.storage` → [`feast::storage`].
//!
//! `GrpcServer.proto` (package-less `GrpcFeatureServer`) declares only a
//! service, so it generates no Rust module; its messages live in
//! [`feast::serving`].
//!
//! Encoding order caveat: prost writes a `oneof` at the position of its
//! *lowest* field number, while python-protobuf writes every field in
//! field-number order. Where a oneof's numbers interleave with other fields
//! (`DataSource.options` 11..35 vs `data_source_class_type` 17 / `name` 20 /
//! ..., `ApplyFeatureViewRequest.label_view` 6 vs `project` 4 / `commit` 5),
//! the bytes can differ in field order from Feast's (they still decode to the
//! same message). All reference encodings in the fact sheet match exactly.

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `google.protobuf.FileDescriptorSet` of every Larder `.proto` file
/// (including imported well-known types and source info), for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/larder_descriptor.bin"));

/// Generated code for the Feast protobuf packages.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod feast {
    /// Package `feast.types`: `Value`, `ValueType`, `EntityKey`, `Field`.
    pub mod types {
        include!(concat!(env!("OUT_DIR"), "/feast.types.rs"));
    }

    /// Package `feast.core`: registry objects (entities, data sources,
    /// feature views, feature services, permissions, projects, ...).
    pub mod core {
        include!(concat!(env!("OUT_DIR"), "/feast.core.rs"));
    }

    /// Package `feast.registry`: request/response messages of the
    /// `feast.registry.RegistryServer` gRPC service.
    pub mod registry {
        include!(concat!(env!("OUT_DIR"), "/feast.registry.rs"));
    }

    /// Package `feast.serving`: online serving messages (also used by the
    /// package-less `GrpcFeatureServer` service).
    pub mod serving {
        include!(concat!(env!("OUT_DIR"), "/feast.serving.rs"));
    }

    /// Package `feast.storage`: legacy storage messages (`RedisKeyV2`).
    pub mod storage {
        include!(concat!(env!("OUT_DIR"), "/feast.storage.rs"));
    }
}
