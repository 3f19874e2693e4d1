//! What the servers' service accounts may do in the cluster, from
//! `spec.auth`: nothing unless the servers check Kubernetes tokens; then
//! exactly what that needs and no more:
//!
//! - `system:auth-delegator` (create TokenReviews and SubjectAccessReviews)
//!   through a ClusterRoleBinding — cluster-scoped, so it cannot be owned by
//!   the namespaced FeatureStore: the operator selects it by
//!   [`STORE_NAMESPACE_LABEL`] and [`STORE_LABEL`] to prune and delete it;
//! - with Feast Permissions deciding (`authorization: permissions`, the
//!   default), reading the RoleBindings of the store's namespace (Feast's
//!   roles are the Roles bound there) through a Role and RoleBinding it
//!   owns; with `kubernetes-rbac` the API server decides and this is not
//!   needed.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use larder_model::workloads::{AuthType, AuthorizationMode};

use crate::servers::ServerKind;
use crate::{STORE_LABEL, Store, labels, metadata};

/// The component label of the access objects.
pub const COMPONENT: &str = "auth";
/// The ClusterRole every token-checking server is bound to.
pub const AUTH_DELEGATOR: &str = "system:auth-delegator";
/// On cluster-scoped children: the namespace of their FeatureStore.
pub const STORE_NAMESPACE_LABEL: &str = "larder.dev/store-namespace";

/// The RBAC objects of a store (all empty unless `spec.auth.type` is kubernetes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// The Role, RoleBinding and ClusterRoleBinding names of a store.
pub fn role_name(store: &str) -> String {
    format!("{store}-auth")
}

pub fn cluster_role_binding_name(namespace: &str, store: &str) -> String {
    format!("larder:{namespace}:{store}:auth-delegator")
}

/// Labels that select a store's cluster-scoped children.
pub fn cluster_labels(store: Store<'_>) -> BTreeMap<String, String> {
    let mut l = labels(store.name, COMPONENT);
    l.insert(STORE_NAMESPACE_LABEL.into(), store.namespace.into());
    l
}

/// The label selector of [`cluster_labels`].
pub fn cluster_selector(namespace: &str, store: &str) -> String {
    format!("{STORE_LABEL}={store},{STORE_NAMESPACE_LABEL}={namespace},app.kubernetes.io/component={COMPONENT}")
}

pub fn build(store: Store<'_>) -> Access {
    let auth = store.spec.auth.as_deref();
    let kubernetes = auth.is_some_and(|a| a.auth_type == AuthType::Kubernetes);
    let reads_roles = auth.is_some_and(|a| a.authorization != Some(AuthorizationMode::KubernetesRbac));
    let subjects: Vec<Subject> = ServerKind::ALL
        .iter()
        .filter(|k| k.spec(store.spec).is_some_and(|s| s.is_enabled()))
        .map(|k| Subject {
            kind: "ServiceAccount".into(),
            name: k.name(store.name),
            namespace: Some(store.namespace.to_string()),
            api_group: None,
        })
        .collect();
    if !kubernetes || subjects.is_empty() {
        return Access::default();
    }
    let name = role_name(store.name);
    let role = Role {
        metadata: metadata(store, name.clone(), COMPONENT),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["rbac.authorization.k8s.io".into()]),
            resources: Some(vec!["rolebindings".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: metadata(store, name.clone(), COMPONENT),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(subjects.clone()),
    };
    let delegator = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(cluster_role_binding_name(store.namespace, store.name)),
            labels: Some(cluster_labels(store)),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: AUTH_DELEGATOR.into(),
        },
        subjects: Some(subjects),
    };
    if !reads_roles {
        return Access {
            cluster_role_bindings: vec![delegator],
            ..Access::default()
        };
    }
    Access {
        roles: vec![role],
        role_bindings: vec![binding],
        cluster_role_bindings: vec![delegator],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::tests::store_spec;

    fn access(yaml: &str) -> Access {
        let spec = store_spec(&format!(
            "project: p\nregistry: {{sql: {{urlSecretRef: {{name: reg, key: url}}}}}}\n{yaml}"
        ));
        build(Store {
            name: "drivers",
            namespace: "team-a",
            uid: Some("u1"),
            spec: &spec,
        })
    }

    #[test]
    fn only_kubernetes_auth_gets_cluster_rights() {
        assert_eq!(access("featureServer: {}\n"), Access::default());
        assert_eq!(
            access("featureServer: {}\nauth: {type: oidc, oidc: {discoveryURL: 'https://idp/x'}}\n"),
            Access::default()
        );
        // No server, nobody to grant anything to.
        assert_eq!(access("auth: {type: kubernetes}\n"), Access::default());
    }

    #[test]
    fn kubernetes_auth_binds_both_servers_and_nothing_more() {
        let a = access("featureServer: {}\nregistryServer: {}\nauth: {type: kubernetes}\n");
        let crb = &a.cluster_role_bindings[0];
        assert_eq!(crb.role_ref.name, "system:auth-delegator");
        assert_eq!(
            crb.metadata.name.as_deref(),
            Some("larder:team-a:drivers:auth-delegator")
        );
        assert!(
            crb.metadata.owner_references.is_none(),
            "cluster-scoped: no namespaced owner"
        );
        let names: Vec<(&str, Option<&str>)> = crb
            .subjects
            .as_deref()
            .unwrap()
            .iter()
            .map(|s| (s.name.as_str(), s.namespace.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("drivers-feature-server", Some("team-a")),
                ("drivers-registry-server", Some("team-a"))
            ]
        );
        let rules = a.roles[0].rules.as_deref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.as_deref(), Some(&["rolebindings".to_string()][..]));
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        assert_eq!(a.role_bindings[0].role_ref.name, "drivers-auth");
        assert_eq!(a.roles[0].metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let only_feature = access("featureServer: {}\nauth: {type: kubernetes}\n");
        assert_eq!(only_feature.role_bindings[0].subjects.as_ref().unwrap().len(), 1);
        // With RBAC decisions the API server decides: no RoleBinding reading.
        let rbac = access("featureServer: {}\nauth: {type: kubernetes, authorization: kubernetes-rbac}\n");
        assert_eq!(
            (
                rbac.roles.len(),
                rbac.role_bindings.len(),
                rbac.cluster_role_bindings.len()
            ),
            (0, 0, 1)
        );
    }
}
