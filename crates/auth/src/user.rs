//! Who is calling: what Feast's policies test (roles, groups, namespaces) and,
//! for Kubernetes tokens, the subject a SubjectAccessReview asks about.

use std::collections::BTreeMap;

/// An authenticated caller (Feast's `User`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// Feast's username: `<namespace>:<serviceaccount>` for service accounts,
    /// the identity provider's name otherwise; never empty once authenticated.
    pub username: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub namespaces: Vec<String>,
    /// The Kubernetes identity from a TokenReview, for `kubernetes-rbac`.
    pub subject: Option<KubeSubject>,
}

/// The user as the API server knows it (TokenReview's `status.user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeSubject {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The caller of a server without authentication (`auth.type: no_auth`).
    pub fn anonymous() -> Self {
        User {
            username: "anonymous".into(),
            ..User::default()
        }
    }

    pub fn has_any_role(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|r| self.roles.contains(r))
    }

    pub fn has_any_group(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|g| self.groups.contains(g))
    }

    pub fn has_any_namespace(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|n| self.namespaces.contains(n))
    }
}
