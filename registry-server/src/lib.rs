//! Feast's `feast.registry.RegistryServer` gRPC API over the Larder
//! registry (feast-compat.md §2.1): the RPCs Feast 0.67's remote registry
//! client calls, with its pagination, sorting, `allow_cache` and error
//! details (`{"module": "feast.errors", "class": …, "message": …}`).
//! Writes go through the same atomic registry code as `larder apply`.

use std::sync::Arc;

use larder_registry::cache::CachedRegistry;

pub mod authz;
mod errors;
pub mod metrics;
mod query;
mod rpc;
pub mod run;
mod service;

pub use errors::not_found;
pub use query::{Tags, paginate, sort};
pub use service::RegistryService;

/// Serve the registry API (plus gRPC health) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<CachedRegistry>,
    tls: Option<tonic::transport::Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve_with_metrics(listener, registry, tls, None, shutdown).await
}

/// [`serve`], recording every call in `metrics` when given.
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    registry: Arc<CachedRegistry>,
    tls: Option<tonic::transport::Identity>,
    metrics: Option<Arc<metrics::Metrics>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve_service(listener, RegistryService::new(registry), tls, metrics, shutdown).await
}

/// [`serve_with_metrics`] for a configured [`RegistryService`] (authentication).
pub async fn serve_service(
    listener: tokio::net::TcpListener,
    service: RegistryService,
    tls: Option<tonic::transport::Identity>,
    metrics: Option<Arc<metrics::Metrics>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use larder_protos::feast::registry::registry_server_server::RegistryServerServer;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RegistryServerServer<RegistryService>>().await;
    // Reflection lets grpcurl and similar tools discover the API.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(larder_protos::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let layer = tower::util::option_layer(metrics.map(metrics::MetricsLayer));
    let mut router = builder
        .layer(larder_runtime::telemetry::GrpcTraceLayer)
        .layer(layer)
        .layer(metrics::DecodeErrorsLayer)
        .add_service(health);
    match reflection {
        Ok(r) => router = router.add_service(r),
        Err(e) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
    }
    router
        .add_service(RegistryServerServer::new(service).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}
