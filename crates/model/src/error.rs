//! Errors that point at the exact place in a manifest.

use std::fmt;
use std::path::PathBuf;

/// Where a document came from, so an error can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file and the 0-based index of the document in it.
    File { file: PathBuf, doc: usize },
    /// A Kubernetes object (a custom resource the operator reads).
    Object {
        kind: crate::Kind,
        namespace: String,
        name: String,
    },
}

impl Origin {
    pub fn file(file: impl Into<PathBuf>, doc: usize) -> Self {
        Origin::File { file: file.into(), doc }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, doc } => write!(f, "{} (document {doc})", file.display()),
            Origin::Object { kind, namespace, name } => write!(f, "{kind} {namespace}/{name}"),
        }
    }
}

/// One problem in one document, with the field path that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub origin: Option<Origin>,
    /// Dotted field path such as `spec.features[2].type`; empty for whole-document problems.
    pub field: String,
    pub message: String,
}

impl ManifestError {
    pub fn new(origin: Option<&Origin>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin: origin.cloned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, so a user fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ManifestError> for ManifestErrors {
    fn from(e: ManifestError) -> Self {
        Self(vec![e])
    }
}
