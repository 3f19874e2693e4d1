//! The RBAC of config/rbac is enough for everything the operator does —
//! and no more: the operator runs with a ServiceAccount token bound to
//! exactly those rules (RBAC is enforced for service accounts on the test
//! API server) and still brings the samples to Ready, records events,
//! holds its Lease, grants token-checking servers `system:auth-delegator`
//! and releases finalizers; the same token cannot list Secrets, read pods
//! or bind any other ClusterRole.

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use larder_model::Kind;
use larder_operator::operator::LeaderSettings;
use larder_testkit::{PgDatabase, SqliteFile};
use support::{RunningOperator, TEST_MANAGER, TestNs, cluster, eventually, repo_root, samples, with_sqlite_online};

/// Apply config/rbac's documents, moved into `ns` and renamed so parallel runs do not collide.
async fn apply_rbac(client: &Client, ns: &str) {
    let dir = repo_root().join("config/rbac");
    for file in [
        "service_account.yaml",
        "role.yaml",
        "role_binding.yaml",
        "leader_election_role.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = v["kind"].as_str().unwrap().to_string();
            let api_version = v["apiVersion"].as_str().unwrap().to_string();
            let cluster_scoped = kind.starts_with("Cluster");
            let text = serde_json::to_string(&v)
                .unwrap()
                .replace("\"namespace\":\"larder-system\"", &format!("\"namespace\":\"{ns}\""));
            v = serde_json::from_str(&text).unwrap();
            if cluster_scoped {
                let name = format!("{}-{ns}", v["metadata"]["name"].as_str().unwrap());
                v["metadata"]["name"] = name.clone().into();
                if kind == "ClusterRoleBinding" {
                    v["roleRef"]["name"] = format!("larder-operator-{ns}").into();
                }
            }
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let plural = match kind.as_str() {
                "ServiceAccount" => "serviceaccounts",
                "ClusterRole" => "clusterroles",
                "ClusterRoleBinding" => "clusterrolebindings",
                "Role" => "roles",
                "RoleBinding" => "rolebindings",
                other => panic!("unexpected {other} in config/rbac"),
            };
            let ar = ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                plural: plural.into(),
            };
            let api: Api<DynamicObject> = if cluster_scoped {
                Api::all_with(client.clone(), &ar)
            } else {
                Api::namespaced_with(client.clone(), ns, &ar)
            };
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            api.patch(&name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&v))
                .await
                .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        }
    }
}

/// A client that authenticates as the operator's ServiceAccount.
async fn service_account_client(admin: &Client, ns: &str) -> Client {
    let req: TokenRequest = serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_subresource("token", "larder-operator", &PostParams::default(), &req)
        .await
        .expect("TokenRequest");
    let token = token.status.expect("token status").token;
    let mut config = kube::Config::infer().await.expect("kube config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Client::try_from(config).expect("service-account client")
}

#[tokio::test]
async fn the_shipped_rbac_is_enough_and_no_more() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "op-rbac").await;
    apply_rbac(&admin, &ns.name).await;
    let sa = service_account_client(&admin, &ns.name).await;
    // Least privilege: Secrets may be read one by one, never listed; nothing else is reachable.
    let denied = Api::<Secret>::namespaced(sa.clone(), &ns.name)
        .list(&Default::default())
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{denied:?}"
    );
    // Workloads are the operator's to roll out, but it never reads pods.
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(sa.clone(), &ns.name)
        .list(&Default::default())
        .await;
    assert!(
        matches!(pods, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{pods:?}"
    );
    // It binds system:auth-delegator for token-checking servers, and no other ClusterRole.
    let escalate: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("escalate-{}", ns.name)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns.name}],
    }))
    .unwrap();
    let denied = Api::<ClusterRoleBinding>::all(sa.clone())
        .create(&PostParams::default(), &escalate)
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{denied:?}"
    );

    let db = PgDatabase::create("larder_op").await;
    let online = SqliteFile::new("online.db");
    ns.secret("larder-registry", "url", &db.postgresql_url()).await;
    let op = RunningOperator::start_with(
        &sa,
        &ns.name,
        Duration::from_secs(300),
        Some(LeaderSettings {
            namespace: ns.name.clone(),
            lease: "larder-operator-leader".into(),
            duration: Duration::from_secs(15),
        }),
        "rbac-replica",
    );
    ns.apply(&with_sqlite_online(&samples(), online.path())).await.unwrap();
    support::wait_all_ready(&ns).await;
    assert!(op.leading());
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("Applied")),
        "the operator's events were recorded"
    );
    // Servers that check Kubernetes tokens: their accounts get system:auth-delegator and a
    // Role reading RoleBindings, applied with the operator's own rights, gone when auth is.
    let crb_name = format!("larder:{}:driver-stats:auth-delegator", ns.name);
    let crbs = Api::<ClusterRoleBinding>::all(admin.clone());
    let set_auth = |auth: serde_json::Value| {
        let api = ns.api(Kind::FeatureStore);
        async move {
            let patch = serde_json::json!({"spec": {"featureServer": {}, "auth": auth}});
            api.patch("driver-stats", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    set_auth(serde_json::json!({"type": "kubernetes"})).await;
    eventually(Duration::from_secs(30), "the auth-delegator binding", || {
        let crbs = &crbs;
        let name = &crb_name;
        async move { crbs.get_opt(name).await.unwrap().is_some() }
    })
    .await;
    let crb = crbs.get(&crb_name).await.unwrap();
    assert_eq!(crb.role_ref.name, "system:auth-delegator");
    let subjects: Vec<String> = crb.subjects.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(subjects, ["driver-stats-feature-server"]);
    let roles = Api::<Role>::namespaced(admin.clone(), &ns.name);
    assert!(roles.get_opt("driver-stats-auth").await.unwrap().is_some());
    set_auth(serde_json::json!({"type": "oidc", "oidc": {"discoveryURL": "https://idp.example/.well-known/openid-configuration"}})).await;
    eventually(Duration::from_secs(30), "the auth objects removed", || {
        let (crbs, roles, name) = (&crbs, &roles, &crb_name);
        async move {
            crbs.get_opt(name).await.unwrap().is_none() && roles.get_opt("driver-stats-auth").await.unwrap().is_none()
        }
    })
    .await;
    // Deleting the store removes its cluster-scoped binding (no owner reference can).
    set_auth(serde_json::json!({"type": "kubernetes", "oidc": null})).await;
    eventually(Duration::from_secs(30), "the binding back", || {
        let (crbs, name) = (&crbs, &crb_name);
        async move { crbs.get_opt(name).await.unwrap().is_some() }
    })
    .await;

    // Finalizers are released with the same rights.
    ns.delete(Kind::FeatureService, "driver-activity").await;
    eventually(Duration::from_secs(30), "the service deleted", || {
        let ns = &ns;
        async move { ns.get(Kind::FeatureService, "driver-activity").await.is_none() }
    })
    .await;
    // The Lease lives in the test's namespace (in a cluster: larder-system), so the
    // resources go first, while the operator still leads, then the namespace.
    ns.delete_larder_resources().await;
    eventually(Duration::from_secs(30), "the binding deleted with the store", || {
        let (crbs, name) = (&crbs, &crb_name);
        async move { crbs.get_opt(name).await.unwrap().is_none() }
    })
    .await;
    op.stop().await;
    ns.remove(false).await;
    for (plural, name) in [
        ("clusterroles", format!("larder-operator-{}", ns.name)),
        ("clusterrolebindings", format!("larder-operator-{}", ns.name)),
    ] {
        let ar = ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: String::new(),
            plural: plural.into(),
        };
        let _ = Api::<DynamicObject>::all_with(admin.clone(), &ar)
            .delete(&name, &Default::default())
            .await;
    }
}
