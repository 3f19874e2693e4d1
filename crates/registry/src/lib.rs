//! Larder's feature registry.
//!
//! One [`Registry`] trait over Feast's registry layouts: the SQL backend
//! ([`sql::SqlRegistry`], PostgreSQL / MySQL / MariaDB / SQLite, Feast's
//! 14 tables) and the file backend ([`file::FileRegistry`], one serialized
//! `feast.core.Registry`). [`cache::CachedRegistry`] adds the TTL read cache
//! servers use, and [`plan`] diffs desired objects against a registry.

pub mod cache;
pub mod config;
pub mod error;
pub mod file;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod plan;
pub mod sql;
mod store;

use async_trait::async_trait;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use prost_types::Timestamp;

pub use config::{RegistryConfig, open};
pub use error::RegistryError;

pub type Result<T> = std::result::Result<T, RegistryError>;

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated => "updated",
            ApplyOutcome::Unchanged => "unchanged",
        }
    }
}

/// A Feast registry. Every write is atomic per object; concurrent writers
/// of different objects (and of one view's materialization intervals) lose
/// nothing.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Upsert one object (a `Project` too) keyed by (kind, name, project).
    /// Creates the project if it does not exist. Keeps `created_timestamp`
    /// and, for feature views, the materialization intervals and state.
    async fn apply(&self, project: &str, obj: FeastObject) -> Result<ApplyOutcome>;

    /// Apply many objects, then delete `deletes`. Backends that can do it
    /// cheaply (the file backend) write once; others loop.
    async fn apply_all(
        &self,
        project: &str,
        objects: Vec<FeastObject>,
        deletes: Vec<(FeastKind, String)>,
    ) -> Result<Vec<ApplyOutcome>> {
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            out.push(self.apply(project, o).await?);
        }
        for (kind, name) in deletes {
            self.delete(project, kind, &name).await?;
        }
        Ok(out)
    }

    /// One object, with its project set from where it was found.
    async fn get(&self, project: &str, kind: FeastKind, name: &str) -> Result<Option<FeastObject>>;

    /// All objects of a kind in a project, sorted by name.
    async fn list(&self, project: &str, kind: FeastKind) -> Result<Vec<FeastObject>>;

    /// Delete one object; `false` when it did not exist. Deleting a
    /// `Project` deletes everything in it.
    async fn delete(&self, project: &str, kind: FeastKind, name: &str) -> Result<bool>;

    async fn list_projects(&self) -> Result<Vec<fc::Project>>;

    /// Append `[start, end)` to a feature view's materialization intervals
    /// and mark it AVAILABLE_ONLINE, as Feast's `ApplyMaterialization` does.
    async fn apply_materialization(&self, project: &str, view: &str, start: Timestamp, end: Timestamp) -> Result<()>;

    async fn get_infra(&self, project: &str) -> Result<fc::Infra>;

    async fn update_infra(&self, project: &str, infra: fc::Infra) -> Result<()>;

    async fn list_project_metadata(&self, project: &str) -> Result<Vec<fc::ProjectMetadata>>;

    /// The whole registry as one `feast.core.Registry` (what Feast's cache holds).
    async fn snapshot(&self) -> Result<fc::Registry>;

    /// Remove the registry's storage (tables or file).
    async fn teardown(&self) -> Result<()>;
}

/// Now as a protobuf timestamp with microsecond precision, as Python writes.
pub fn now_timestamp() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: (d.subsec_micros() * 1000) as i32,
    }
}
