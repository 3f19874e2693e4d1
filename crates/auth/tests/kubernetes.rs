//! `auth.type: kubernetes` and `authorization: kubernetes-rbac` against a
//! real API server (`KUBECONFIG`; `scripts/test.sh` starts the project's
//! test API server, e2e/kube/testenv.sh). Each test works in a namespace of
//! its own with ServiceAccounts whose tokens come from the TokenRequest API,
//! so what is checked is the API server's own TokenReview and
//! SubjectAccessReview, with Roles and RoleBindings created here.
//!
//! Without `KUBECONFIG` the tests skip with a note, except in CI (`CI` set),
//! where a missing cluster is a failure: they never skip there.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use larder_auth::kubernetes::KubeAuthenticator;
use larder_auth::rbac::Rbac;
use larder_auth::{Action, Auth, AuthError, AuthorizationMode, PermissionSet, Resource, ResourceType, User};
use larder_testkit::TcpProxy;
use larder_testkit::objects::{self, PermissionAction, PermissionType};
use serde_json::json;

const FV: ResourceType = ResourceType::FeatureView;

/// How long RBAC changes may take to reach the API server's authorizer.
const RBAC_PROPAGATION: Duration = Duration::from_secs(5);

/// A client of the test cluster (the admin kubeconfig: set-up only), or
/// `None` with a note when there is none locally. In CI a missing cluster
/// is a failure.
async fn cluster() -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("KUBECONFIG is not set: CI must run the cluster tests (scripts/test.sh starts e2e/kube/testenv.sh)");
        }
        eprintln!("SKIPPED: no KUBECONFIG (run scripts/test.sh, or e2e/kube/testenv.sh up)");
        return None;
    }
    let client = Client::try_default().await.expect("a client from KUBECONFIG");
    if let Err(e) = client.apiserver_version().await {
        panic!("KUBECONFIG is set but the API server does not answer: {e}");
    }
    Some(client)
}

/// Poll `check` every 100 ms until it holds; false when `within` runs out.
async fn within<F, Fut>(within: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A namespace of the test's own, its objects made by the admin client.
struct TestNs {
    admin: Client,
    name: String,
}

impl TestNs {
    async fn create(admin: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        TestNs {
            admin: admin.clone(),
            name,
        }
    }

    /// Delete the namespace (not waiting: the namespace controller finishes it).
    async fn remove(self) {
        let _ = Api::<Namespace>::all(self.admin.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }

    fn service_accounts(&self) -> Api<ServiceAccount> {
        Api::namespaced(self.admin.clone(), &self.name)
    }

    async fn service_account(&self, name: &str) -> ServiceAccount {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        self.service_accounts()
            .create(&PostParams::default(), &sa)
            .await
            .unwrap_or_else(|e| panic!("create ServiceAccount {name}: {e}"))
    }

    /// A token of ServiceAccount `name` from the TokenRequest API (bound to
    /// the ServiceAccount object; default audiences), valid for an hour.
    async fn token(&self, name: &str) -> String {
        self.token_for(name, 3600).await
    }

    /// Two requests in the same second with the same lifetime get the same
    /// token (same claims, deterministic signature): vary `seconds` for a distinct one.
    async fn token_for(&self, name: &str, seconds: i64) -> String {
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(seconds),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let done = self
            .service_accounts()
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {name}: {e}"));
        done.status.expect("TokenRequest status").token
    }

    async fn role(&self, name: &str, rules: serde_json::Value) {
        let role: Role = serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap();
        Api::<Role>::namespaced(self.admin.clone(), &self.name)
            .create(&PostParams::default(), &role)
            .await
            .unwrap_or_else(|e| panic!("create Role {name}: {e}"));
    }

    /// Bind `kind` (Role or ClusterRole) `role` to ServiceAccount `sa` of this namespace.
    async fn bind(&self, binding: &str, kind: &str, role: &str, sa: &str) {
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": self.name}],
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(self.admin.clone(), &self.name)
            .create(&PostParams::default(), &rb)
            .await
            .unwrap_or_else(|e| panic!("create RoleBinding {binding}: {e}"));
    }

    /// `reader` and `other`, and the Role `feast-reader` bound to `reader` only.
    async fn reader_and_other(&self) {
        self.service_account("reader").await;
        self.service_account("other").await;
        self.role(
            "feast-reader",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
        )
        .await;
        self.bind("feast-reader", "Role", "feast-reader", "reader").await;
    }

    fn authenticator(&self, client: &Client) -> Arc<KubeAuthenticator> {
        Arc::new(KubeAuthenticator::from_client(client.clone(), self.name.clone()))
    }

    /// The servers' Auth in `permissions` mode, nothing cached.
    fn permissions_auth(&self, client: &Client) -> Auth {
        Auth::with_authenticator(
            "kubernetes",
            self.authenticator(client),
            Duration::ZERO,
            AuthorizationMode::Permissions,
            None,
        )
    }

    /// The servers' Auth in `kubernetes-rbac` mode, nothing cached.
    fn rbac_auth(&self, client: &Client) -> Auth {
        Auth::with_authenticator(
            "kubernetes",
            self.authenticator(client),
            Duration::ZERO,
            AuthorizationMode::KubernetesRbac,
            Some(Rbac::new(client.clone(), self.name.clone(), Duration::ZERO)),
        )
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn login(auth: &Auth, token: &str) -> Arc<User> {
    auth.authenticate(Some(&bearer(token)))
        .await
        .unwrap_or_else(|e| panic!("authenticate: {e}"))
}

/// A client that authenticates with `token` (a ServiceAccount's), for the API server behind `KUBECONFIG`.
async fn client_with_token(token: &str) -> Client {
    let mut config = kube::Config::infer().await.expect("kube config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("a token client")
}

#[tokio::test]
async fn tokens_become_feast_users_with_the_roles_bound_in_the_namespace() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-users").await;
    ns.reader_and_other().await;
    let auth = ns.permissions_auth(&admin);

    let reader = login(&auth, &ns.token("reader").await).await;
    assert_eq!(reader.username, format!("{}:reader", ns.name));
    assert!(reader.namespaces.contains(&ns.name), "{reader:?}");
    assert_eq!(reader.roles, ["feast-reader"]);
    assert!(
        reader.groups.contains(&format!("system:serviceaccounts:{}", ns.name)),
        "{reader:?}"
    );
    let subject = reader.subject.as_ref().expect("the reviewed Kubernetes identity");
    assert_eq!(subject.username, format!("system:serviceaccount:{}:reader", ns.name));
    assert!(!subject.uid.is_empty(), "{subject:?}");

    let other = login(&auth, &ns.token("other").await).await;
    assert_eq!(other.username, format!("{}:other", ns.name));
    assert!(other.roles.is_empty(), "{other:?}");

    for header in [
        Some("Bearer not-a-token".to_string()),
        // A well-formed JWT the API server did not sign.
        Some(bearer(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2ln",
        )),
        None,
        Some("Basic dXNlcjpwYXNz".to_string()),
    ] {
        let got = auth.authenticate(header.as_deref()).await;
        assert!(matches!(got, Err(AuthError::Unauthenticated(_))), "{header:?}: {got:?}");
    }
    ns.remove().await;
}

/// TokenRequest tokens are bound to the ServiceAccount object (name and
/// UID): once it is deleted, the API server refuses them. Tokens it
/// reviewed successfully in the last 10 s stay valid that long (kube-apiserver's
/// own token success cache, `TokenSuccessCacheTTL`; measured 10.1 s on 1.20),
/// so only a token it never saw is refused at once. Larder's own cache TTL
/// adds to that window.
#[tokio::test]
async fn tokens_of_deleted_service_accounts_are_refused() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-gone").await;
    ns.service_account("gone").await;
    let seen = ns.token("gone").await;
    let unseen = ns.token_for("gone", 3601).await;
    assert_ne!(seen, unseen);
    let auth = ns.permissions_auth(&admin);
    assert_eq!(login(&auth, &seen).await.username, format!("{}:gone", ns.name));

    ns.service_accounts()
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete ServiceAccount");
    let refused = |token: String| {
        let auth = &auth;
        move || {
            let token = token.clone();
            async move {
                matches!(
                    auth.authenticate(Some(&bearer(&token))).await,
                    Err(AuthError::Unauthenticated(_))
                )
            }
        }
    };
    // Only the API server's informer has to catch up.
    assert!(
        within(RBAC_PROPAGATION, refused(unseen.clone())).await,
        "a never-reviewed token of a deleted ServiceAccount is still accepted after 5 s: {:?}",
        auth.authenticate(Some(&bearer(&unseen))).await
    );
    // A ServiceAccount of the same name is another object (UID): the old tokens stay refused.
    ns.service_account("gone").await;
    assert!(
        refused(unseen)().await,
        "a token of the deleted ServiceAccount works for its namesake"
    );
    assert!(
        within(Duration::from_secs(15), refused(seen)).await,
        "a reviewed token of a deleted ServiceAccount is still accepted after 15 s"
    );
    ns.remove().await;
}

#[tokio::test]
async fn feast_permissions_decide_with_the_kubernetes_roles() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-perms").await;
    ns.reader_and_other().await;
    let auth = ns.permissions_auth(&admin);
    let permissions = PermissionSet::compile(&[objects::permission("read-drivers")
        .types(&[PermissionType::FeatureView])
        .patterns(&["driver_.*"])
        .actions(&[PermissionAction::ReadOnline])
        .roles(&["feast-reader"])
        .build()])
    .unwrap();
    let driver = [Resource::new(FV, "driver_stats")];
    let customer = [Resource::new(FV, "customer_stats")];
    let read = [Action::ReadOnline];

    let reader = login(&auth, &ns.token("reader").await).await;
    auth.check(&reader, &permissions, &driver, &read)
        .await
        .expect("feast-reader may read driver_stats online");
    let got = auth.check(&reader, &permissions, &customer, &read).await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");
    let got = auth.check(&reader, &permissions, &driver, &[Action::WriteOnline]).await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");

    let other = login(&auth, &ns.token("other").await).await;
    let got = auth.check(&other, &permissions, &driver, &read).await;
    match got {
        Err(AuthError::Denied(d)) => assert!(d.0.contains("Requires roles ['feast-reader']"), "{d}"),
        other => panic!("other read driver_stats: {other:?}"),
    }
    ns.remove().await;
}

#[tokio::test]
async fn kubernetes_rbac_decides_per_object_and_action() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-rbac").await;
    ns.service_account("reader").await;
    ns.service_account("other").await;
    ns.role(
        "online-driver-stats",
        json!([{"apiGroups": ["larder.dev"], "resources": ["featureviews/online"],
                "resourceNames": ["driver_stats"], "verbs": ["get"]}]),
    )
    .await;
    ns.bind("online-driver-stats", "Role", "online-driver-stats", "reader")
        .await;
    let auth = ns.rbac_auth(&admin);
    // No Permissions would let every authenticated user through: RBAC alone decides here.
    let permissions = PermissionSet::default();
    let driver = [Resource::new(FV, "driver_stats")];
    let customer = [Resource::new(FV, "customer_stats")];
    let read = [Action::ReadOnline];

    let reader = login(&auth, &ns.token("reader").await).await;
    assert!(
        within(RBAC_PROPAGATION, || async {
            auth.check(&reader, &permissions, &driver, &read).await.is_ok()
        })
        .await,
        "reader may not get featureviews/online driver_stats after 5 s: {:?}",
        auth.check(&reader, &permissions, &driver, &read).await
    );
    for (resources, actions) in [
        (&customer, &read[..]),
        (&driver, &[Action::WriteOnline][..]),
        (&driver, &[Action::ReadOffline][..]),
        (&driver, &[Action::Describe][..]),
        (&driver, &[Action::ReadOnline, Action::WriteOnline][..]),
    ] {
        let got = auth.check(&reader, &permissions, resources, actions).await;
        assert!(
            matches!(got, Err(AuthError::Denied(_))),
            "{resources:?} {actions:?}: {got:?}"
        );
    }

    let other = login(&auth, &ns.token("other").await).await;
    let got = auth.check(&other, &permissions, &driver, &read).await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");
    // A user without a reviewed Kubernetes identity is never asked about, only refused.
    let stranger = User {
        username: "stranger".into(),
        ..User::default()
    };
    let got = auth.check(&stranger, &permissions, &driver, &read).await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");
    ns.remove().await;
}

#[tokio::test]
async fn kubernetes_rbac_filters_lists_by_get_or_list() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-list").await;
    ns.service_account("reader").await;
    ns.service_account("lister").await;
    ns.role(
        "get-a",
        json!([{"apiGroups": ["larder.dev"], "resources": ["featureviews"], "resourceNames": ["a"], "verbs": ["get"]}]),
    )
    .await;
    ns.bind("get-a", "Role", "get-a", "reader").await;
    ns.role(
        "list-views",
        json!([{"apiGroups": ["larder.dev"], "resources": ["featureviews"], "verbs": ["list"]}]),
    )
    .await;
    ns.bind("list-views", "Role", "list-views", "lister").await;
    let auth = ns.rbac_auth(&admin);
    let permissions = PermissionSet::default();
    let describe = [Action::Describe];
    let kept = |user: Arc<User>| {
        let (auth, permissions) = (&auth, &permissions);
        async move {
            let mut kept = Vec::new();
            for name in ["a", "b"] {
                let keep = auth
                    .permitted(&user, permissions, Resource::new(FV, name), &describe)
                    .await
                    .unwrap_or_else(|e| panic!("permitted {name}: {e}"));
                if keep {
                    kept.push(name);
                }
            }
            kept
        }
    };

    let reader = login(&auth, &ns.token("reader").await).await;
    let lister = login(&auth, &ns.token("lister").await).await;
    assert!(
        within(RBAC_PROPAGATION, || async {
            kept(reader.clone()).await == ["a"] && kept(lister.clone()).await == ["a", "b"]
        })
        .await,
        "get on [a] keeps {:?} (want [a]); list keeps {:?} (want [a, b])",
        kept(reader.clone()).await,
        kept(lister.clone()).await
    );
    // `list` is no licence to read the data.
    let got = auth
        .check(&lister, &permissions, &[Resource::new(FV, "a")], &[Action::ReadOnline])
        .await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");
    ns.remove().await;
}

/// The API server cannot be asked (partitioned, then gone): every call is
/// refused with `Unavailable`, never let through and never mistaken for a
/// bad token.
#[tokio::test]
async fn an_unreachable_api_server_refuses_with_unavailable() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-down").await;
    ns.service_account("reader").await;
    let token = ns.token("reader").await;

    let mut config = kube::Config::infer().await.expect("kube config");
    let url = config.cluster_url.clone();
    let host = url.host().expect("API server host").to_string();
    let proxy = TcpProxy::start(format!("{host}:{}", url.port_u16().unwrap_or(443))).await;
    config.cluster_url = format!("{}://127.0.0.1:{}", url.scheme_str().unwrap_or("https"), proxy.port())
        .parse()
        .unwrap();
    if config.tls_server_name.is_none() && host != "127.0.0.1" {
        // The certificate names the API server's own host.
        config.tls_server_name = Some(host);
    }
    let client = Client::try_from(config).expect("a client through the proxy");
    let auth = ns.rbac_auth(&client);
    let permissions = PermissionSet::default();
    let driver = [Resource::new(FV, "driver_stats")];

    // Through the proxy everything works.
    let reader = login(&auth, &token).await;
    let got = auth.check(&reader, &permissions, &driver, &[Action::ReadOnline]).await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");

    // Partitioned: connections hang, the 5 s limit refuses.
    proxy.cut();
    let got = auth.authenticate(Some(&bearer(&token))).await;
    assert!(
        matches!(got, Err(AuthError::Unavailable(_))),
        "authenticate while cut: {got:?}"
    );
    let got = auth.check(&reader, &permissions, &driver, &[Action::ReadOnline]).await;
    assert!(
        matches!(got, Err(AuthError::Unavailable(_))),
        "check while cut: {got:?}"
    );

    // Gone: connections are refused.
    drop(proxy);
    let started = Instant::now();
    let got = auth.authenticate(Some(&bearer(&token))).await;
    assert!(
        matches!(got, Err(AuthError::Unavailable(_))),
        "authenticate when closed: {got:?}"
    );
    let got = auth.check(&reader, &permissions, &driver, &[Action::ReadOnline]).await;
    assert!(
        matches!(got, Err(AuthError::Unavailable(_))),
        "check when closed: {got:?}"
    );
    let got = auth
        .permitted(&reader, &permissions, driver[0], &[Action::Describe])
        .await;
    assert!(
        matches!(got, Err(AuthError::Unavailable(_))),
        "permitted when closed: {got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(16), "{:?}", started.elapsed());
    ns.remove().await;
}

/// What a server needs in production: `system:auth-delegator` (TokenReview,
/// SubjectAccessReview) and `list rolebindings` in the store's namespace;
/// without them the server refuses everyone (`Unavailable`).
#[tokio::test]
async fn auth_delegator_and_listing_rolebindings_suffice() {
    let Some(admin) = cluster().await else { return };
    let ns = TestNs::create(&admin, "auth-server").await;
    ns.reader_and_other().await;
    ns.role(
        "online-driver-stats",
        json!([{"apiGroups": ["larder.dev"], "resources": ["featureviews/online"],
                "resourceNames": ["driver_stats"], "verbs": ["get"]}]),
    )
    .await;
    ns.bind("online-driver-stats", "Role", "online-driver-stats", "reader")
        .await;
    ns.service_account("larder-server").await;
    let server = client_with_token(&ns.token("larder-server").await).await;
    let reader_token = ns.token("reader").await;
    let driver = [Resource::new(FV, "driver_stats")];
    let permissions = PermissionSet::default();

    // No rights yet: nothing passes, and it is not the caller's fault.
    let auth = ns.rbac_auth(&server);
    let got = auth.authenticate(Some(&bearer(&reader_token))).await;
    assert!(matches!(got, Err(AuthError::Unavailable(_))), "{got:?}");

    let crb_name = format!("{}-auth-delegator", ns.name);
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": crb_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "larder-server", "namespace": ns.name}],
    }))
    .unwrap();
    let crbs = Api::<ClusterRoleBinding>::all(admin.clone());
    crbs.create(&PostParams::default(), &crb)
        .await
        .expect("create ClusterRoleBinding");
    ns.role(
        "read-rolebindings",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["list"]}]),
    )
    .await;
    ns.bind(
        "larder-server-rolebindings",
        "Role",
        "read-rolebindings",
        "larder-server",
    )
    .await;

    assert!(
        within(RBAC_PROPAGATION, || async {
            auth.authenticate(Some(&bearer(&reader_token))).await.is_ok()
        })
        .await,
        "the server still cannot authenticate after 5 s: {:?}",
        auth.authenticate(Some(&bearer(&reader_token))).await
    );
    let reader = login(&auth, &reader_token).await;
    assert_eq!(reader.roles, ["feast-reader", "online-driver-stats"]);
    assert!(
        within(RBAC_PROPAGATION, || async {
            auth.check(&reader, &permissions, &driver, &[Action::ReadOnline])
                .await
                .is_ok()
        })
        .await,
        "{:?}",
        auth.check(&reader, &permissions, &driver, &[Action::ReadOnline]).await
    );
    let got = auth
        .check(
            &reader,
            &permissions,
            &[Resource::new(FV, "customer_stats")],
            &[Action::ReadOnline],
        )
        .await;
    assert!(matches!(got, Err(AuthError::Denied(_))), "{got:?}");
    let other = login(&auth, &ns.token("other").await).await;
    assert!(other.roles.is_empty(), "{other:?}");

    let _ = crbs.delete(&crb_name, &DeleteParams::default()).await;
    ns.remove().await;
}
