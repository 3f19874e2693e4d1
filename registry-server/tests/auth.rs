//! Authentication and Feast Permissions on every registry RPC, over a real
//! socket and a SQLite registry, with a fixed token → user authenticator:
//! UNAUTHENTICATED without a token, PERMISSION_DENIED with Feast's
//! `FeastPermissionError` details, lists and `Proto` filtered to what the
//! caller may describe, CREATE for new objects, DESCRIBE+UPDATE for
//! existing ones, DELETE, and WRITE_ONLINE to record a materialization.

use std::sync::Arc;
use std::time::Duration;

use larder_auth::{Auth, AuthError, Authenticate, AuthorizationMode, User};
use larder_protos::feast::core as fc;
use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_registry::Registry;
use larder_registry::cache::CachedRegistry;
use larder_registry::sql::SqlRegistry;
use larder_testkit::objects::{self, IntoObject};
use tonic::transport::Channel;

const P: &str = "shop";

struct Fixed;

#[async_trait::async_trait]
impl Authenticate for Fixed {
    async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        let user = |name: &str, roles: &[&str]| User {
            username: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..User::default()
        };
        match token {
            "viewer" => Ok(user("vic", &["viewer"])),
            "admin" => Ok(user("ada", &["admin"])),
            "nobody" => Ok(user("bob", &[])),
            "down" => Err(AuthError::Unavailable("API server unreachable".into())),
            _ => Err(AuthError::Unauthenticated("unknown token".into())),
        }
    }
}

struct Harness {
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Entities `orders` and `secret_orders`, views `orders_v` and
    /// `secret_v`; `viewer` may describe what does not start with
    /// `secret`, `admin` may do anything.
    async fn new() -> Self {
        use fc::permission_spec::{AuthzedAction as A, Type as T};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("registry.db").display());
        let sql: Arc<dyn Registry> = Arc::new(SqlRegistry::connect(&url, 4).await.unwrap());
        use larder_model::feast::FeastObject as O;
        let view_source = objects::view_source();
        sql.apply(P, O::DataSource(view_source)).await.unwrap();
        for e in ["orders", "secret_orders"] {
            sql.apply(P, O::Entity(objects::entity(e, &format!("{e}_id"))))
                .await
                .unwrap();
        }
        for v in ["orders_v", "secret_v"] {
            sql.apply(P, O::FeatureView(objects::view(v).entity("orders").build()))
                .await
                .unwrap();
        }
        sql.apply(
            P,
            objects::permission("viewers")
                .project(P)
                .types(&[T::Entity, T::FeatureView, T::Permission])
                .patterns(&["[^s].*"])
                .actions(&[A::Describe])
                .roles(&["viewer"])
                .object(),
        )
        .await
        .unwrap();
        sql.apply(
            P,
            objects::permission("admins")
                .project(P)
                // With patterns: what admins refuses others is dropped from
                // their lists; without, Feast fails those lists.
                .patterns(&[".*"])
                .actions(&[
                    A::Create,
                    A::Describe,
                    A::Update,
                    A::Delete,
                    A::ReadOnline,
                    A::WriteOnline,
                ])
                .roles(&["admin"])
                .object(),
        )
        .await
        .unwrap();
        let reg = Arc::new(CachedRegistry::new(sql, Duration::from_secs(60)));
        let auth = Arc::new(Auth::with_authenticator(
            "test",
            Arc::new(Fixed),
            Duration::from_secs(10),
            AuthorizationMode::Permissions,
            None,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(larder_registry_server::serve_service(
            listener,
            larder_registry_server::RegistryService::with_auth(reg, auth),
            None,
            None,
            async {
                let _ = rx.await;
            },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            channel,
            stop: Some(tx),
            _dir: dir,
        }
    }

    fn client(&self) -> RegistryServerClient<Channel> {
        RegistryServerClient::new(self.channel.clone())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn feast_class(s: &tonic::Status) -> String {
    let v: serde_json::Value = serde_json::from_str(s.message()).unwrap_or_else(|_| panic!("no JSON message on {s:?}"));
    v["class"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_call_needs_a_valid_token() {
    let h = Harness::new().await;
    let mut c = h.client();
    let list = || fr::ListEntitiesRequest {
        project: P.into(),
        ..Default::default()
    };
    let e = c.list_entities(list()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = c.list_entities(with_token(list(), "forged")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains("forged"), "{e:?}");
    let e = c.list_entities(with_token(list(), "down")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    for e in [
        c.proto(()).await.unwrap_err(),
        c.refresh(fr::RefreshRequest { project: P.into() }).await.unwrap_err(),
        c.commit(()).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    }
    // The health service stays open for probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_are_checked_and_lists_filtered() {
    let h = Harness::new().await;
    let mut c = h.client();
    let entities = |token| {
        with_token(
            fr::ListEntitiesRequest {
                project: P.into(),
                ..Default::default()
            },
            token,
        )
    };
    let names = |v: Vec<fc::Entity>| -> Vec<String> { v.into_iter().map(|e| e.spec.unwrap().name).collect() };
    let mut all = names(c.list_entities(entities("admin")).await.unwrap().into_inner().entities);
    all.sort();
    assert_eq!(all, ["orders", "secret_orders"]);
    // The viewer's permission has name patterns: what it refuses is dropped.
    assert_eq!(
        names(c.list_entities(entities("viewer")).await.unwrap().into_inner().entities),
        ["orders"]
    );
    // Only the admins' permission names data sources: the viewer sees none.
    let sources = c
        .list_data_sources(with_token(
            fr::ListDataSourcesRequest {
                project: P.into(),
                ..Default::default()
            },
            "viewer",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(sources.data_sources.is_empty(), "{sources:?}");

    let get = |name: &str, token| {
        with_token(
            fr::GetFeatureViewRequest {
                project: P.into(),
                name: name.into(),
                allow_cache: true,
            },
            token,
        )
    };
    c.get_feature_view(get("orders_v", "viewer")).await.unwrap();
    let e = c.get_feature_view(get("secret_v", "viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(feast_class(&e), "FeastPermissionError");
    let e = c.get_feature_view(get("orders_v", "nobody")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // Unknown objects are still NOT_FOUND (checked after the lookup, as Feast).
    let e = c.get_feature_view(get("nope", "viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");

    // Proto: each list filtered as its List RPC.
    let reg = c.proto(with_token((), "admin")).await.unwrap().into_inner();
    assert_eq!(
        (reg.feature_views.len(), reg.entities.len(), reg.data_sources.len()),
        (2, 2, 1)
    );
    let reg = c.proto(with_token((), "viewer")).await.unwrap().into_inner();
    let views: Vec<_> = reg
        .feature_views
        .iter()
        .map(|v| v.spec.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(views, ["orders_v"]);
    assert_eq!((reg.entities.len(), reg.data_sources.len()), (1, 0));
    // A project without Permissions is open to every authenticated caller (Feast).
    let other = c
        .list_entities(with_token(
            fr::ListEntitiesRequest {
                project: "elsewhere".into(),
                ..Default::default()
            },
            "nobody",
        ))
        .await
        .unwrap();
    assert!(other.into_inner().entities.is_empty());
}

#[tokio::test]
async fn writes_need_create_update_delete_and_write_online() {
    let h = Harness::new().await;
    let mut c = h.client();
    let apply = |name: &str, token| {
        with_token(
            fr::ApplyEntityRequest {
                project: P.into(),
                entity: Some(objects::entity(name, "k")),
                commit: true,
            },
            token,
        )
    };
    let e = c.apply_entity(apply("new_one", "viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("CREATE"), "{e:?}");
    let e = c.apply_entity(apply("orders", "viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message().contains("DESCRIBE") && e.message().contains("UPDATE"),
        "{e:?}"
    );
    c.apply_entity(apply("new_one", "admin")).await.unwrap();
    c.apply_entity(apply("orders", "admin")).await.unwrap();

    let delete = |token| {
        with_token(
            fr::DeleteEntityRequest {
                project: P.into(),
                name: "new_one".into(),
                commit: true,
            },
            token,
        )
    };
    let e = c.delete_entity(delete("viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    c.delete_entity(delete("admin")).await.unwrap();

    let view = objects::view("orders_v").entity("orders").build();
    let materialize = |token| {
        with_token(
            fr::ApplyMaterializationRequest {
                project: P.into(),
                feature_view: Some(view.clone()),
                start_date: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
                end_date: Some(prost_types::Timestamp {
                    seconds: 3600,
                    nanos: 0,
                }),
                commit: true,
            },
            token,
        )
    };
    let e = c.apply_materialization(materialize("viewer")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("WRITE_ONLINE"), "{e:?}");
    c.apply_materialization(materialize("admin")).await.unwrap();
}
