//! gRPC `feast.serving.ServingService` (GetOnlineFeatures,
//! GetFeastServingInfo) over the same state as the HTTP API, plus the
//! standard gRPC health service.

use std::sync::Arc;

use larder_protos::feast::serving as fs;
use larder_protos::feast::serving::serving_service_server::{ServingService, ServingServiceServer};
use larder_protos::feast::types::Value;
use larder_serving::{FieldStatus, ServeError};
use tonic::{Request, Response, Status};

use crate::AppState;

pub struct Serving {
    state: Arc<AppState>,
}

impl Serving {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// Serving errors in gRPC terms, through the HTTP layer's mapping (one
/// mapping from each error to its Feast class and status).
fn status(e: ServeError) -> Status {
    api_status(e.into())
}

/// The gRPC code for an HTTP status of the same meaning.
fn code_for(status: axum::http::StatusCode) -> tonic::Code {
    use axum::http::StatusCode as S;
    match status {
        S::NOT_FOUND => tonic::Code::NotFound,
        S::UNAUTHORIZED => tonic::Code::Unauthenticated,
        S::FORBIDDEN => tonic::Code::PermissionDenied,
        S::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        S::GATEWAY_TIMEOUT => tonic::Code::DeadlineExceeded,
        s if s.is_server_error() => tonic::Code::Internal,
        _ => tonic::Code::InvalidArgument,
    }
}

/// The HTTP layer's errors in gRPC terms, with Feast's error details (the
/// JSON the Python client re-raises from; `FeastError` when no more
/// specific class applies).
fn api_status(e: crate::error::ApiError) -> Status {
    use crate::error::ApiError;
    let (code, class, message) = match e {
        ApiError::Unauthenticated(message) => return Status::unauthenticated(message),
        ApiError::Feast { status, class, message } => (code_for(status), class, message),
        ApiError::Message { status, message } => (code_for(status), "FeastError", message),
        ApiError::Validation { message, .. } => (tonic::Code::InvalidArgument, "FeastError", message),
    };
    let details = larder_model::feast::error_detail(class, &message);
    Status::with_details(code, message, details.into_bytes().into())
}

#[tonic::async_trait]
impl ServingService for Serving {
    async fn get_feast_serving_info(
        &self,
        _request: Request<fs::GetFeastServingInfoRequest>,
    ) -> Result<Response<fs::GetFeastServingInfoResponse>, Status> {
        Ok(Response::new(fs::GetFeastServingInfoResponse {
            version: format!("larder-{}", env!("CARGO_PKG_VERSION")),
        }))
    }

    async fn get_online_features(
        &self,
        request: Request<fs::GetOnlineFeaturesRequest>,
    ) -> Result<Response<fs::GetOnlineFeaturesResponse>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("invalid"));
        let user = self
            .state
            .authenticate(header)
            .await
            .map_err(|e| api_status(e.into()))?;
        let req = request.into_inner();
        let limits = &self.state.limits;
        let (features, service) = match req.kind {
            Some(fs::get_online_features_request::Kind::FeatureService(s)) => (Vec::new(), Some(s)),
            Some(fs::get_online_features_request::Kind::Features(f)) => (f.val, None),
            None => return Err(Status::invalid_argument("set features or feature_service")),
        };
        if features.len() > limits.max_features {
            return Err(Status::invalid_argument(format!(
                "{} features requested; the limit is {}",
                features.len(),
                limits.max_features
            )));
        }
        let entities: Vec<(String, Vec<Value>)> = req.entities.into_iter().map(|(k, v)| (k, v.val)).collect();
        if let Some((_, v)) = entities.first()
            && v.len() > limits.max_entities
        {
            return Err(Status::invalid_argument(format!(
                "{} entity rows requested; the limit is {}",
                v.len(),
                limits.max_entities
            )));
        }
        let plan = self
            .state
            .plan(&features, service.as_deref())
            .await
            .map_err(api_status)?;
        self.state
            .authorize_plan(&user, &plan, service.as_deref())
            .await
            .map_err(api_status)?;
        let resp = larder_serving::execute(
            &plan,
            self.state.online.as_ref(),
            &self.state.project,
            &entities,
            req.full_feature_names,
        )
        .await
        .map_err(status)?;
        let names = resp.columns.iter().map(|c| c.name.clone()).collect();
        let results = resp
            .columns
            .into_iter()
            .map(|c| fs::get_online_features_response::FeatureVector {
                values: c.values,
                statuses: c
                    .statuses
                    .iter()
                    .map(|s| match s {
                        FieldStatus::Present => fs::FieldStatus::Present as i32,
                        FieldStatus::NotFound => fs::FieldStatus::NotFound as i32,
                    })
                    .collect(),
                event_timestamps: c
                    .event_ts
                    .iter()
                    .map(|t| larder_online::encode::timestamp_from_nanos(*t))
                    .collect(),
            })
            .collect();
        Ok(Response::new(fs::GetOnlineFeaturesResponse {
            metadata: Some(fs::GetOnlineFeaturesResponseMetadata {
                feature_names: Some(fs::FeatureList { val: names }),
                ..Default::default()
            }),
            results,
            status: true,
        }))
    }
}

/// Serve gRPC (ServingService + health) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<tonic::transport::Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<ServingServiceServer<Serving>>().await;
    let max = state.limits.max_body_bytes;
    let svc = ServingServiceServer::new(Serving::new(state)).max_decoding_message_size(max);
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    // A span per call, continuing the caller's `traceparent` (no-op without OTLP).
    builder
        .layer(larder_runtime::telemetry::GrpcTraceLayer)
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}
