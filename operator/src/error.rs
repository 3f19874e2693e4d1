//! One error type for every reconcile. Each variant has a short label used
//! as the condition reason and the `reason` label of the error metric.

use larder_model::Kind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The resource does not parse as the model's type.
    #[error("{0}")]
    InvalidSpec(String),
    /// No FeatureStore to write to (named, or the only one of the namespace).
    #[error("{0}")]
    StoreNotFound(String),
    /// The FeatureStore exists but has not connected to its registry yet.
    #[error("FeatureStore {0} is not ready")]
    StoreNotReady(String),
    #[error("{kind} {name}: {message}")]
    Reference { kind: Kind, name: String, message: String },
    /// A resource this one depends on is itself invalid.
    #[error("{0}")]
    DependencyInvalid(String),
    /// A resource this one refers to is valid but not in the registry yet.
    #[error("{0}")]
    DependencyNotReady(String),
    /// Another resource declares the same registry object.
    #[error("{0}")]
    NameConflict(String),
    #[error("Secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("registry: {0}")]
    Registry(#[from] larder_registry::RegistryError),
    #[error("online store: {0}")]
    Online(#[from] larder_online::OnlineError),
    #[error("{0}")]
    Apply(#[from] larder_apply::ApplyError),
}

impl Error {
    /// Condition reason and metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::StoreNotFound(_) => "StoreNotFound",
            Error::StoreNotReady(_) => "StoreNotReady",
            Error::Reference { kind, .. } => match kind {
                Kind::Entity => "EntityNotFound",
                Kind::DataSource => "SourceNotFound",
                Kind::FeatureView => "FeatureViewNotFound",
                _ => "ReferenceNotFound",
            },
            Error::DependencyInvalid(_) => "DependencyInvalid",
            Error::DependencyNotReady(_) => "DependencyNotReady",
            Error::NameConflict(_) => "NameConflict",
            Error::Secret { .. } => "SecretError",
            Error::Registry(_) => "RegistryUnavailable",
            Error::Online(_) => "OnlineStoreUnavailable",
            Error::Apply(e) => e.label(),
        }
    }

    /// Whether retrying can help without the user changing anything.
    pub fn is_transient(&self) -> bool {
        // A missing Secret is usually created a moment later, and Secrets are not watched.
        matches!(
            self,
            Error::Kube(_) | Error::StoreNotReady(_) | Error::Registry(_) | Error::Online(_) | Error::Secret { .. }
        ) || matches!(
            self,
            Error::Apply(larder_apply::ApplyError::Registry(_) | larder_apply::ApplyError::Online(_))
        )
    }
}
