use std::path::PathBuf;
use std::time::Duration;

/// Registry failures. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("registry file {path} is locked by another writer; try again when it finishes")]
    Locked { path: PathBuf },
    #[error("cannot decode stored {kind} {name:?}: {source}")]
    Decode {
        kind: String,
        name: String,
        source: prost::DecodeError,
    },
    #[error("{kind} {name} does not exist in project {project}")]
    NotFound {
        kind: String,
        name: String,
        project: String,
    },
    /// A view's name is taken by a view of another kind (Feast keeps one
    /// name space for all views of a project).
    #[error(
        "a {existing} named {name:?} already exists in project {project}; view names must be unique across view kinds"
    )]
    ViewNameTaken {
        existing: larder_model::feast::FeastKind,
        name: String,
        project: String,
    },
    #[error("invalid registry configuration: {0}")]
    Config(String),
    /// A read the cache bounds (connect and query together) took too long:
    /// the registry's database is unreachable or overloaded.
    #[error("the registry did not answer within {0:?}")]
    Timeout(Duration),
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RegistryError {
        let path = path.into();
        move |source| RegistryError::Io { path, source }
    }
}
