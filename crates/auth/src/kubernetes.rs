//! Kubernetes bearer tokens (`auth.type: kubernetes`): a TokenReview says
//! who the token belongs to; Feast's roles are the names of the Roles and
//! ClusterRoles bound to that identity by RoleBindings of the store's
//! namespace (Feast 0.67's `KubernetesTokenParser` reads the RoleBindings of
//! the server's own namespace the same way).
//!
//! Mapping, as Feast: a service account `system:serviceaccount:<ns>:<sa>` is
//! the user `<ns>:<sa>` in namespace `<ns>`; other users keep the review's
//! username. Groups are the review's; a `system:serviceaccounts:<ns>` group
//! adds namespace `<ns>`. Feast reads user (non-service-account) roles from
//! every namespace and ClusterRoleBindings too; Larder keeps to the store's
//! namespace, so a store's access is granted where the store lives and the
//! servers need no cluster-wide read access.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, Subject};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use crate::{AuthError, Authenticate, KubeSubject, User};

/// The longest an API server call may take before the request is refused.
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KubeAuthenticator {
    client: Client,
    namespace: String,
    /// Whether Feast roles are read from RoleBindings (not with
    /// `kubernetes-rbac`, where the API server decides and roles are unused,
    /// so the server needs no right to read RoleBindings).
    read_roles: bool,
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(format!("Kubernetes API server unreachable: {e}"))
}

impl KubeAuthenticator {
    /// A client from the pod's service account (or `KUBECONFIG` outside a
    /// cluster); `namespace` defaults to the pod's (the config's default).
    pub async fn new(namespace: Option<String>) -> Result<Self, AuthError> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| AuthError::Config(format!("auth type kubernetes: no Kubernetes client configuration: {e}")))?;
        config.connect_timeout = Some(API_TIMEOUT);
        config.read_timeout = Some(API_TIMEOUT);
        config.write_timeout = Some(API_TIMEOUT);
        let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)
            .map_err(|e| AuthError::Config(format!("auth type kubernetes: cannot build a client: {e}")))?;
        Ok(KubeAuthenticator {
            client,
            namespace,
            read_roles: true,
        })
    }

    pub fn from_client(client: Client, namespace: String) -> Self {
        KubeAuthenticator {
            client,
            namespace,
            read_roles: true,
        }
    }

    /// Leave the user's roles empty instead of reading RoleBindings.
    pub fn without_roles(mut self) -> Self {
        self.read_roles = false;
        self
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn review(&self, token: &str) -> Result<KubeSubject, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let done = tokio::time::timeout(API_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| unavailable("TokenReview timed out"))?
            .map_err(|e| match e {
                // The API server answered: a refusal of the review itself
                // (e.g. forbidden) is a server misconfiguration, still no pass.
                kube::Error::Api(s) => unavailable(format!("TokenReview refused: {}", s.message)),
                other => unavailable(other),
            })?;
        let status = done.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::Unauthenticated(format!(
                "invalid or expired access token{}",
                status.error.map(|e| format!(": {e}")).unwrap_or_default()
            )));
        }
        let user = status.user.unwrap_or_default();
        Ok(KubeSubject {
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default().into_iter().collect(),
        })
    }

    async fn role_bindings(&self) -> Result<Vec<RoleBinding>, AuthError> {
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = tokio::time::timeout(API_TIMEOUT, api.list(&ListParams::default()))
            .await
            .map_err(|_| unavailable("listing RoleBindings timed out"))?
            .map_err(|e| match e {
                kube::Error::Api(s) => {
                    unavailable(format!("cannot list RoleBindings in {}: {}", self.namespace, s.message))
                }
                other => unavailable(other),
            })?;
        Ok(list.items)
    }
}

/// `system:serviceaccount:<ns>:<sa>` → (`ns`, `sa`).
fn service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, sa) = rest.split_once(':')?;
    (!ns.is_empty() && !sa.is_empty() && !sa.contains(':')).then_some((ns, sa))
}

/// Whether a RoleBinding subject (in a binding of namespace `binding_ns`)
/// names the reviewed identity.
fn names(subject: &Subject, binding_ns: &str, who: &KubeSubject) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => service_account(&who.username).is_some_and(|(ns, sa)| {
            subject.name == sa
                && subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns)
                    == ns
        }),
        "User" => subject.name == who.username,
        "Group" => who.groups.contains(&subject.name),
        _ => false,
    }
}

/// The Feast user for a reviewed identity and the RoleBindings of the
/// store's namespace (pure; see the module doc for the rules).
pub fn user_for(who: KubeSubject, bindings: &[RoleBinding], store_ns: &str) -> User {
    let (username, mut namespaces) = match service_account(&who.username) {
        Some((ns, sa)) => (format!("{ns}:{sa}"), vec![ns.to_string()]),
        None => (who.username.clone(), Vec::new()),
    };
    for g in &who.groups {
        if let Some(ns) = g.strip_prefix("system:serviceaccounts:")
            && !ns.is_empty()
            && !namespaces.iter().any(|n| n == ns)
        {
            namespaces.push(ns.to_string());
        }
    }
    let mut roles: Vec<String> = Vec::new();
    for b in bindings {
        let binding_ns = b.metadata.namespace.as_deref().unwrap_or(store_ns);
        let bound = b
            .subjects
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|s| names(s, binding_ns, &who));
        if bound && !roles.contains(&b.role_ref.name) {
            roles.push(b.role_ref.name.clone());
        }
    }
    User {
        username,
        roles,
        groups: who.groups.clone(),
        namespaces,
        subject: Some(who),
    }
}

#[async_trait::async_trait]
impl Authenticate for KubeAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        let who = self.review(token).await?;
        let bindings = if self.read_roles {
            self.role_bindings().await?
        } else {
            Vec::new()
        };
        Ok(user_for(who, &bindings, &self.namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleRef;
    use kube::api::ObjectMeta;

    fn binding(role: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{role}-binding")),
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            api_group: None,
        }
    }

    #[test]
    fn service_accounts_get_the_roles_bound_to_them() {
        let who = KubeSubject {
            username: "system:serviceaccount:apps:reader".into(),
            groups: vec!["system:serviceaccounts".into(), "system:serviceaccounts:apps".into()],
            ..KubeSubject::default()
        };
        let bindings = [
            binding("feast-reader", vec![subject("ServiceAccount", "reader", Some("apps"))]),
            binding(
                "same-name-other-ns",
                vec![subject("ServiceAccount", "reader", Some("other"))],
            ),
            // No namespace on the subject: the binding's own (team), not apps.
            binding("implicit-ns", vec![subject("ServiceAccount", "reader", None)]),
            binding("by-group", vec![subject("Group", "system:serviceaccounts:apps", None)]),
            binding(
                "feast-reader",
                vec![subject("User", "system:serviceaccount:apps:reader", None)],
            ),
        ];
        let u = user_for(who, &bindings, "team");
        assert_eq!(u.username, "apps:reader");
        assert_eq!(u.roles, ["feast-reader", "by-group"]);
        assert_eq!(u.namespaces, ["apps"]);
        assert!(u.subject.is_some());
    }

    #[test]
    fn users_keep_their_name() {
        let who = KubeSubject {
            username: "jane".into(),
            groups: vec!["devs".into()],
            ..KubeSubject::default()
        };
        let bindings = [
            binding("writer", vec![subject("User", "jane", None)]),
            binding("dev", vec![subject("Group", "devs", None)]),
            binding("other", vec![subject("User", "john", None)]),
        ];
        let u = user_for(who, &bindings, "team");
        assert_eq!(u.username, "jane");
        assert_eq!(u.roles, ["writer", "dev"]);
        assert!(u.namespaces.is_empty());
        assert_eq!(service_account("system:serviceaccount:a:b:c"), None);
    }
}
