//! The RegistryServer API in process, over a real socket and a SQLite SQL
//! registry: pagination and sorting, NOT_FOUND with Feast's error details
//! for every Get*, project isolation, bad input refused with the registry
//! unchanged.

use std::sync::Arc;
use std::time::Duration;

use larder_protos::feast::core as fc;
use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_client::RegistryServerClient;
use larder_registry::cache::CachedRegistry;
use larder_registry::sql::SqlRegistry;
use larder_testkit::objects;
use tonic::transport::Channel;

struct Harness {
    client: RegistryServerClient<Channel>,
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("registry.db").display());
        let reg = Arc::new(CachedRegistry::new(
            Arc::new(SqlRegistry::connect(&url, 4).await.unwrap()),
            Duration::from_secs(60),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(larder_registry_server::serve(listener, reg, None, async {
            let _ = rx.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            client: RegistryServerClient::new(channel.clone()),
            channel,
            stop: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
    }
}

/// Entity `name` (INT64 join key `<name>_id`) tagged with its team.
fn entity(name: &str, team: &str) -> fc::Entity {
    let mut e = objects::entity(name, &format!("{name}_id"));
    e.spec.as_mut().unwrap().tags.insert("team".into(), team.into());
    e
}

fn details(s: &tonic::Status) -> serde_json::Value {
    serde_json::from_str(s.message()).unwrap_or_else(|_| panic!("no JSON message on {s:?}"))
}

#[tokio::test]
async fn pagination_sorting_and_filters() {
    let mut h = Harness::new().await;
    for (i, name) in ["delta", "Alpha", "echo", "bravo", "charlie"].iter().enumerate() {
        let team = if i % 2 == 0 { "a" } else { "b" };
        h.client
            .apply_entity(fr::ApplyEntityRequest {
                entity: Some(entity(name, team)),
                project: "demo".into(),
                commit: true,
            })
            .await
            .unwrap();
    }
    let list = |page: i32, limit: i32, by: &str, order: &str| fr::ListEntitiesRequest {
        project: "demo".into(),
        pagination: Some(fr::PaginationParams { page, limit }),
        sorting: Some(fr::SortingParams {
            sort_by: by.into(),
            sort_order: order.into(),
        }),
        ..Default::default()
    };
    let names = |r: &fr::ListEntitiesResponse| {
        r.entities
            .iter()
            .map(|e| e.spec.as_ref().unwrap().name.clone())
            .collect::<Vec<_>>()
    };

    let r = h
        .client
        .list_entities(list(2, 2, "spec.name", "asc"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names(&r),
        vec!["charlie", "delta"],
        "case-insensitive name order, page 2"
    );
    let p = r.pagination.unwrap();
    assert_eq!(
        (
            p.page,
            p.limit,
            p.total_count,
            p.total_pages,
            p.has_next,
            p.has_previous
        ),
        (2, 2, 5, 3, true, true)
    );

    let r = h
        .client
        .list_entities(list(3, 2, "name", "DESC"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&r), vec!["Alpha"]);
    assert!(!r.pagination.unwrap().has_next);

    // No pagination: everything, total_pages 1.
    let r = h.client.list_entities(list(0, 0, "", "")).await.unwrap().into_inner();
    assert_eq!(r.entities.len(), 5);
    let p = r.pagination.unwrap();
    assert_eq!((p.total_count, p.total_pages, p.page, p.limit), (5, 1, 0, 0));

    // Tag filter.
    let mut req = list(0, 0, "name", "");
    req.tags = [("team".to_string(), "b".to_string())].into_iter().collect();
    let r = h.client.list_entities(req).await.unwrap().into_inner();
    assert_eq!(names(&r), vec!["Alpha", "bravo"]);

    // Another project sees nothing; empty results have all-zero metadata.
    let mut req = list(0, 0, "", "");
    req.project = "other".into();
    let r = h.client.list_entities(req).await.unwrap().into_inner();
    assert!(r.entities.is_empty());
    assert_eq!(r.pagination.unwrap(), fr::PaginationMetadata::default());

    // Unknown sort key is refused.
    let err = h.client.list_entities(list(0, 0, "spec.colour", "")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The project was created on first apply and is listed; Proto holds everything.
    let projects = h
        .client
        .list_projects(fr::ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(projects.projects.len(), 1);
    let proto = h.client.proto(()).await.unwrap().into_inner();
    assert_eq!(proto.entities.len(), 5);
    h.shutdown().await;
}

#[tokio::test]
async fn every_get_reports_not_found_like_feast() {
    let mut h = Harness::new().await;
    h.client
        .apply_entity(fr::ApplyEntityRequest {
            entity: Some(entity("driver", "a")),
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap();
    macro_rules! check {
        ($call:ident, $req:ident, $class:expr, $msg:expr) => {{
            let err = h
                .client
                .$call(fr::$req {
                    name: "nope".into(),
                    project: "demo".into(),
                    allow_cache: false,
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::NotFound, "{}", stringify!($call));
            let d = details(&err);
            assert_eq!(d["module"], "feast.errors");
            assert_eq!(d["class"], $class, "{}", stringify!($call));
            assert_eq!(d["message"], $msg, "{}", stringify!($call));
        }};
    }
    check!(
        get_entity,
        GetEntityRequest,
        "EntityNotFoundException",
        "Entity nope does not exist in project demo"
    );
    check!(
        get_data_source,
        GetDataSourceRequest,
        "DataSourceObjectNotFoundException",
        "Data source nope does not exist in project demo"
    );
    check!(
        get_feature_view,
        GetFeatureViewRequest,
        "FeatureViewNotFoundException",
        "Feature view nope does not exist in project demo"
    );
    check!(
        get_stream_feature_view,
        GetStreamFeatureViewRequest,
        "FeatureViewNotFoundException",
        "Feature view nope does not exist in project demo"
    );
    check!(
        get_on_demand_feature_view,
        GetOnDemandFeatureViewRequest,
        "FeatureViewNotFoundException",
        "Feature view nope does not exist in project demo"
    );
    check!(
        get_label_view,
        GetLabelViewRequest,
        "FeatureViewNotFoundException",
        "Feature view nope does not exist in project demo"
    );
    check!(
        get_any_feature_view,
        GetAnyFeatureViewRequest,
        "FeatureViewNotFoundException",
        "Feature view nope does not exist in project demo"
    );
    check!(
        get_feature_service,
        GetFeatureServiceRequest,
        "FeatureServiceNotFoundException",
        "Feature service nope does not exist in project demo"
    );
    check!(
        get_saved_dataset,
        GetSavedDatasetRequest,
        "SavedDatasetNotFound",
        "Saved dataset nope does not exist in project demo"
    );
    check!(
        get_validation_reference,
        GetValidationReferenceRequest,
        "ValidationReferenceNotFound",
        "Validation reference nope does not exist in project demo"
    );
    check!(
        get_permission,
        GetPermissionRequest,
        "PermissionObjectNotFoundException",
        "Permission nope does not exist in project demo"
    );
    let err = h
        .client
        .get_project(fr::GetProjectRequest {
            name: "nope".into(),
            allow_cache: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(details(&err)["class"], "ProjectObjectNotFoundException");
    assert_eq!(details(&err)["message"], "Project nope does not exist");
    // An object of project demo is not found from project other.
    let err = h
        .client
        .get_entity(fr::GetEntityRequest {
            name: "driver".into(),
            project: "other".into(),
            allow_cache: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = h
        .client
        .delete_entity(fr::DeleteEntityRequest {
            name: "nope".into(),
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let mut h = Harness::new().await;
    h.client
        .apply_entity(fr::ApplyEntityRequest {
            entity: Some(entity("driver", "a")),
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap();
    let before = h.client.proto(()).await.unwrap().into_inner().entities;
    for (name, project) in [
        ("", "demo"),
        ("a;b", "demo"),
        ("drop table x", "demo"),
        ("ok", "bad project"),
        ("ok", ""),
    ] {
        let err = h
            .client
            .apply_entity(fr::ApplyEntityRequest {
                entity: Some(entity(name, "a")),
                project: project.into(),
                commit: true,
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{name:?}/{project:?}: {err:?}"
        );
        assert_eq!(details(&err)["module"], "feast.errors");
    }
    let err = h
        .client
        .apply_entity(fr::ApplyEntityRequest {
            entity: None,
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let after = h.client.proto(()).await.unwrap().into_inner().entities;
    assert_eq!(before, after, "registry unchanged");

    // Materialization of an unknown view is NOT_FOUND; of a real one appends the interval.
    let fv = fc::FeatureView {
        spec: Some(fc::FeatureViewSpec {
            name: "stats".into(),
            ..Default::default()
        }),
        meta: None,
    };
    let ts = |s| prost_types::Timestamp { seconds: s, nanos: 0 };
    let err = h
        .client
        .apply_materialization(fr::ApplyMaterializationRequest {
            feature_view: Some(fv.clone()),
            project: "demo".into(),
            start_date: Some(ts(1)),
            end_date: Some(ts(2)),
            commit: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    h.client
        .apply_feature_view(fr::ApplyFeatureViewRequest {
            base_feature_view: Some(fr::apply_feature_view_request::BaseFeatureView::FeatureView(fv.clone())),
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap();
    h.client
        .apply_materialization(fr::ApplyMaterializationRequest {
            feature_view: Some(fv),
            project: "demo".into(),
            start_date: Some(ts(1)),
            end_date: Some(ts(2)),
            commit: true,
        })
        .await
        .unwrap();
    let got = h
        .client
        .get_feature_view(fr::GetFeatureViewRequest {
            name: "stats".into(),
            project: "demo".into(),
            allow_cache: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.meta.unwrap().materialization_intervals.len(), 1);
    // An on-demand view cannot take the name of an existing feature view.
    let odfv = fc::OnDemandFeatureView {
        spec: Some(fc::OnDemandFeatureViewSpec {
            name: "stats".into(),
            ..Default::default()
        }),
        meta: None,
    };
    let err = h
        .client
        .apply_feature_view(fr::ApplyFeatureViewRequest {
            base_feature_view: Some(fr::apply_feature_view_request::BaseFeatureView::OnDemandFeatureView(
                odfv,
            )),
            project: "demo".into(),
            commit: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    h.shutdown().await;
}

/// Server reflection and gRPC health answer on the same port.
#[tokio::test]
async fn reflection_and_health() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let h = Harness::new().await;
    let channel = h.channel.clone();
    let mut refl = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("{resp:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"feast.registry.RegistryServer".to_string()),
        "{names:?}"
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let s = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "feast.registry.RegistryServer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        s.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    h.shutdown().await;
}

/// Calls are counted per method and status and served on the side port.
#[tokio::test]
async fn metrics_side_port() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("registry.db").display());
    let reg = Arc::new(CachedRegistry::new(
        Arc::new(SqlRegistry::connect(&url, 2).await.unwrap()),
        Duration::from_secs(60),
    ));
    let metrics = Arc::new(larder_registry_server::metrics::Metrics::new().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mlistener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = mlistener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(larder_registry_server::serve_with_metrics(
        listener,
        reg,
        None,
        Some(metrics.clone()),
        stop(rx.clone()),
    ));
    let side = tokio::spawn(metrics.clone().serve(mlistener, stop(rx)));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = RegistryServerClient::new(channel);
    client
        .list_entities(fr::ListEntitiesRequest {
            project: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _ = client
        .get_entity(fr::GetEntityRequest {
            name: "nope".into(),
            project: "demo".into(),
            allow_cache: false,
        })
        .await;
    let mut s = tokio::net::TcpStream::connect(maddr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.contains("200 OK"), "{body}");
    assert!(
        body.contains("larder_registry_rpc_total{code=\"0\",method=\"ListEntities\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("larder_registry_rpc_total{code=\"5\",method=\"GetEntity\"} 1"),
        "NOT_FOUND counted: {body}"
    );
    assert!(body.contains("larder_registry_rpc_duration_seconds_bucket"));
    tx.send(true).unwrap();
    server.await.unwrap().unwrap();
    side.await.unwrap().unwrap();
}

/// Raw bytes over gRPC, to send what no generated client would.
mod raw {
    use bytes::{Buf, BufMut};
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    pub struct RawCodec;
    pub struct RawEncoder;
    pub struct RawDecoder;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let v = src.chunk().to_vec();
            src.advance(v.len());
            Ok(Some(v))
        }
    }
}

#[tokio::test]
async fn malformed_protobuf_is_refused_and_changes_nothing() {
    let h = Harness::new().await;
    let mut grpc = tonic::client::Grpc::new(h.channel.clone());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/feast.registry.RegistryServer/ApplyEntity");
    // A length-delimited field that runs past the end of the message.
    let garbage = vec![0x0a, 0xff, 0xff, 0x01, 0x02];
    let err = grpc
        .unary(tonic::Request::new(garbage), path, raw::RawCodec)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "decode failure is the client's: {err:?}"
    );
    assert!(err.message().to_lowercase().contains("decode"), "{err:?}");
    let mut client = h.client.clone();
    let r = client
        .list_entities(fr::ListEntitiesRequest {
            project: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.into_inner().entities.is_empty(), "nothing was written");
    h.shutdown().await;
}
