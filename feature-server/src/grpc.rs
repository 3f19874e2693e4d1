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

/// Feast's error details (the JSON the Python client re-raises from) on a gRPC status.
fn status(e: ServeError) -> Status {
    let message = e.to_string();
    let (code, class) = match &e {
        ServeError::FeatureViewNotFound { .. } => (tonic::Code::NotFound, "FeatureViewNotFoundException"),
        ServeError::FeatureServiceNotFound { .. } => (tonic::Code::NotFound, "FeatureServiceNotFoundException"),
        ServeError::Online(o) if o.is_retryable() => (tonic::Code::Unavailable, "FeastError"),
        ServeError::Registry(_) | ServeError::Online(_) => (tonic::Code::Internal, "FeastError"),
        _ => (tonic::Code::InvalidArgument, "FeastError"),
    };
    let details = serde_json::json!({"module": "feast.errors", "class": class, "message": message}).to_string();
    Status::with_details(code, message, details.into_bytes().into())
}

/// The HTTP layer's errors in gRPC terms.
fn api_status(e: crate::error::ApiError) -> Status {
    use crate::error::ApiError;
    match e {
        ApiError::Feast { status, class, message } => {
            let code = match status {
                axum::http::StatusCode::NOT_FOUND => tonic::Code::NotFound,
                axum::http::StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
                _ => tonic::Code::InvalidArgument,
            };
            let details = serde_json::json!({"module": "feast.errors", "class": class, "message": message}).to_string();
            Status::with_details(code, message, details.into_bytes().into())
        }
        ApiError::Message { status, message } if status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            Status::unavailable(message)
        }
        ApiError::Message { status, message } if status.is_server_error() => Status::internal(message),
        ApiError::Unauthenticated(message) => Status::unauthenticated(message),
        ApiError::Message { message, .. } | ApiError::Validation { message, .. } => Status::invalid_argument(message),
    }
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
        let user = self.state.auth.authenticate(header).await.map_err(|e| {
            self.state.metrics.auth_failures.with_label_values(&[e.label()]).inc();
            api_status(e.into())
        })?;
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
    builder
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}
