//! The servers' RBAC (`larder_deploy::access`): apply the Role, RoleBinding
//! and the cluster-scoped `system:auth-delegator` binding when the store
//! checks Kubernetes tokens, remove them when it no longer does, and remove
//! the cluster binding when the FeatureStore goes (no owner reference can
//! reach a cluster-scoped object from a namespaced owner).

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use larder_deploy::access::{self, Access};
use larder_deploy::{MANAGED_BY, STORE_LABEL};

use crate::{Error, FIELD_MANAGER};

/// Apply what `access` holds and delete the store's access objects it no
/// longer holds. Returns how many objects were applied.
pub async fn roll_out(client: &Client, ns: &str, store: &str, access: &Access) -> Result<usize, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let cluster: Api<ClusterRoleBinding> = Api::all(client.clone());
    for r in &access.roles {
        roles.patch(&r.name_any(), &params, &Patch::Apply(r)).await?;
    }
    for b in &access.role_bindings {
        bindings.patch(&b.name_any(), &params, &Patch::Apply(b)).await?;
    }
    for c in &access.cluster_role_bindings {
        cluster.patch(&c.name_any(), &params, &Patch::Apply(c)).await?;
    }
    let selector = format!(
        "{STORE_LABEL}={store},app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/component={}",
        access::COMPONENT
    );
    let keep_roles: Vec<String> = access.roles.iter().map(|r| r.name_any()).collect();
    for r in roles.list(&ListParams::default().labels(&selector)).await? {
        if !keep_roles.contains(&r.name_any()) {
            delete(&roles, &r.name_any()).await?;
        }
    }
    let keep_bindings: Vec<String> = access.role_bindings.iter().map(|r| r.name_any()).collect();
    for b in bindings.list(&ListParams::default().labels(&selector)).await? {
        if !keep_bindings.contains(&b.name_any()) {
            delete(&bindings, &b.name_any()).await?;
        }
    }
    if access.cluster_role_bindings.is_empty() {
        remove_cluster_bindings(client, ns, store).await?;
    }
    Ok(access.roles.len() + access.role_bindings.len() + access.cluster_role_bindings.len())
}

/// Delete the store's cluster-scoped bindings (FeatureStore deleted, or it
/// stopped checking Kubernetes tokens).
pub async fn remove_cluster_bindings(client: &Client, ns: &str, store: &str) -> Result<(), Error> {
    let cluster: Api<ClusterRoleBinding> = Api::all(client.clone());
    let selector = access::cluster_selector(ns, store);
    for c in cluster.list(&ListParams::default().labels(&selector)).await? {
        delete(&cluster, &c.name_any()).await?;
    }
    Ok(())
}

async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(name, "deleted: the store's servers no longer check Kubernetes tokens");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
