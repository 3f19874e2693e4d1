//! Prometheus metrics for the registry server: calls and latency per RPC
//! method and gRPC status, and the registry cache's snapshot age and
//! refresh failures, served on a side port with a health check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use larder_registry::cache::{CacheHealth, CachedRegistry};
use larder_registry::metrics::CacheMetrics;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    latency: HistogramVec,
    /// Set from the registry cache at each scrape of the side port.
    registry_cache: CacheMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new(
                "larder_registry_rpc_total",
                "Registry RPCs by method and gRPC status code",
            ),
            &["method", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("larder_registry_rpc_duration_seconds", "Registry RPC latency by method").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let registry_cache = CacheMetrics::register(&registry)?;
        Ok(Self {
            registry,
            calls,
            latency,
            registry_cache,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Serve `/metrics` on its own listener until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, metrics_route(self, None))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `GET /metrics` in Prometheus' text format, with the cache's state when given.
fn metrics_route(metrics: Arc<Metrics>, cache: Option<Arc<CachedRegistry>>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            let cache = cache.clone();
            async move {
                if let Some(c) = cache {
                    m.registry_cache.observe(&c.status());
                }
                let content_type = TextEncoder::new().format_type().to_string();
                ([(axum::http::header::CONTENT_TYPE, content_type)], m.render())
            }
        }),
    )
}

/// Serve the side port until `shutdown` resolves: `GET /metrics` and
/// `GET /healthz`, the registry server pods' readiness and liveness probe.
/// The check reads the cache's state, never the database, so it answers at
/// once even while the registry's database hangs.
pub async fn serve_side(
    metrics: Arc<Metrics>,
    registry: Arc<CachedRegistry>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = metrics_route(metrics, Some(registry.clone())).route(
        "/healthz",
        axum::routing::get(move || {
            let reg = registry.clone();
            async move { healthz(&reg).await }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// - 200 `ok`: the registry snapshot is current;
/// - 200 `stale: …`: the registry cannot be read and cached reads are
///   served from the last good snapshot (writes and uncached reads fail).
///   Still 200 on purpose: every replica shares the database, so failing
///   readiness would turn an outage the cache rides out into a total one,
///   and a restart would lose the snapshot; alert on
///   `larder_registry_snapshot_age_seconds` or `larder_registry_stale`;
/// - 503 `registry unavailable`: no snapshot has been loaded.
///
/// The cause goes to the log, not the body: probes and scrapers need no
/// database details.
async fn healthz(registry: &CachedRegistry) -> (axum::http::StatusCode, String) {
    let mut status = registry.status();
    if status.health() == CacheHealth::Unavailable {
        // Not loaded yet (the binary loads at start): try, briefly.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), registry.snapshot_cached()).await;
        status = registry.status();
    }
    match status.health() {
        CacheHealth::Fresh => (axum::http::StatusCode::OK, "ok".into()),
        CacheHealth::Stale => (
            axum::http::StatusCode::OK,
            format!(
                "stale: registry unreadable for {:.0}s ({} failed refreshes); serving the snapshot loaded {:.0}s ago",
                status.failing_for.unwrap_or_default().as_secs_f64(),
                status.consecutive_failures,
                status.age.unwrap_or_default().as_secs_f64()
            ),
        ),
        CacheHealth::Unavailable => {
            tracing::warn!(error = ?status.last_error, "health check: registry unavailable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "registry unavailable".into(),
            )
        }
    }
}

/// A tower layer that records every call.
#[derive(Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for MetricsService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or("").to_string();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await;
            let code = match &resp {
                // Errors answered at once carry grpc-status in the headers; success does in the trailers.
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string(),
                Err(_) => "transport".into(),
            };
            metrics
                .latency
                .with_label_values(&[&method])
                .observe(started.elapsed().as_secs_f64());
            metrics.calls.with_label_values(&[&method, &code]).inc();
            resp
        })
    }
}

/// tonic answers an undecodable request with INTERNAL; it is the client's
/// input that is wrong, so report INVALID_ARGUMENT, as the API promises.
#[derive(Clone, Copy, Default)]
pub struct DecodeErrorsLayer;

impl<S> tower::Layer<S> for DecodeErrorsLayer {
    type Service = DecodeErrors<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors { inner }
    }
}

#[derive(Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for DecodeErrors<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            let h = resp.headers();
            let internal = h.get("grpc-status").is_some_and(|v| v == "13");
            let decode = h
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|m| m.starts_with("failed%20to%20decode") || m.starts_with("failed to decode"));
            if internal && decode {
                resp.headers_mut()
                    .insert("grpc-status", axum::http::HeaderValue::from_static("3"));
            }
            Ok(resp)
        })
    }
}
