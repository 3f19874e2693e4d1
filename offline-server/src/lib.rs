//! Larder's offline server: Feast 0.67's remote offline store protocol
//! (`feast serve_offline`, Arrow Flight) over Larder's point-in-time
//! historical retrieval, so a Feast SDK configured with
//! `offline_store: {type: remote, host, port}` builds its training sets
//! through Larder.

pub mod command;
pub mod run;
pub mod service;

pub use service::OfflineService;

/// Serve `service` on `listener` until `shutdown` resolves (TLS with
/// `identity`), with the standard gRPC health service.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: OfflineService,
    identity: Option<tonic::transport::Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use arrow_flight::flight_service_server::FlightServiceServer;
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = identity {
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    // Entity frames and training sets are large: no 4 MiB message cap.
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    builder
        .layer(larder_runtime::telemetry::GrpcTraceLayer)
        .add_service(flight)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}
