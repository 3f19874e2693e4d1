//! The HTTP router: routes, the middleware around them (tracing, timeout
//! and metrics, authentication) and the serve loops.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::ApiError;
use crate::http::{materialize, online, ops, write};
use crate::metrics::EndpointMetrics;
use crate::{AppState, authz, docs, metrics, tls};

/// Every route's path: the `endpoint` label of the request metrics and the
/// span's route (`other` for paths no route matches).
const ROUTES: [&str; 9] = [
    "/get-online-features",
    "/push",
    "/write-to-online-store",
    "/materialize",
    "/materialize-incremental",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
];

/// The route a request matched, as its index in [`ROUTES`]
/// (`ROUTES.len()`: none).
fn route_index(req: &Request) -> usize {
    let matched = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    ROUTES.iter().position(|r| Some(*r) == matched).unwrap_or(ROUTES.len())
}

/// All routes, with limits, timeouts and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    // The document depends on this server's limits and auth only: built once.
    let doc = Arc::new(docs::openapi(&state.limits, state.auth.is_enabled()));
    Router::new()
        .route(ROUTES[0], post(online::get_online_features))
        .route(ROUTES[1], post(write::push))
        .route(ROUTES[2], post(write::write_to_online_store))
        .route(ROUTES[3], post(materialize::materialize))
        .route(ROUTES[4], post(materialize::materialize_incremental))
        .route(ROUTES[5], get(ops::health))
        .route(ROUTES[6], get(ops::metrics_text))
        .route(ROUTES[7], get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .route(ROUTES[8], get(|| async { axum::response::Html(docs::DOCS_HTML) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({"detail": "Method Not Allowed"})),
            )
        })
        .layer(EdgeLayer::new(state.clone()))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The one middleware around every route, outermost first: a server span
/// while OpenTelemetry traces are on (a child of the caller's trace when the
/// request carries a W3C `traceparent`), the request timeout, metrics and
/// the outcome's log line, then authentication of all but the open paths.
/// One layer, not one per concern: each `from_fn` layer costs a clone of the
/// route, two boxes and a larger future to move on every request.
#[derive(Clone)]
struct EdgeLayer(Arc<EdgeShared>);

/// What every request's middleware reads (one reference count per request).
struct EdgeShared {
    state: Arc<AppState>,
    /// Per route of [`ROUTES`], then for unmatched paths (`other`).
    endpoints: Vec<EndpointMetrics>,
}

impl EdgeLayer {
    fn new(state: Arc<AppState>) -> Self {
        let endpoints = ROUTES.into_iter().chain(["other"]).map(EndpointMetrics::new).collect();
        Self(Arc::new(EdgeShared { state, endpoints }))
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> <Self as Service<Request>>::Future {
        // Tower's rule: the service polled ready is the one called; a clone stays for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let shared = self.layer.0.clone();
        let route = route_index(&req);
        if !larder_runtime::telemetry::tracing_enabled() {
            return Box::pin(async move { Ok(observe(shared, route, ready, req).await) });
        }
        let span = request_span(&req, shared.endpoints[route].endpoint());
        Box::pin(async move {
            let resp = observe(shared, route, ready, req).instrument(span.clone()).await;
            span.record("http.response.status_code", resp.status().as_u16());
            if resp.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
            Ok(resp)
        })
    }
}

/// The server span of one request (method, route; status recorded at the end).
fn request_span(req: &Request, route: &str) -> tracing::Span {
    let method = req.method();
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    larder_runtime::telemetry::continue_trace(&span, header("traceparent"), header("tracestate"));
    span
}

/// Per-request timeout (authentication included) and metrics.
async fn observe<S>(shared: Arc<EdgeShared>, route: usize, handler: S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let state = &shared.state;
    let started = Instant::now();
    let resp = match tokio::time::timeout(state.limits.request_timeout, authenticated(state, handler, req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Message {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("request took longer than {:?}", state.limits.request_timeout),
        }
        .into_response(),
    };
    let elapsed = started.elapsed();
    let status = resp.status();
    // The handler notes the features it resolved, for Feast's latency labels.
    let labels = resp.extensions().get::<metrics::FeatureLabels>().copied();
    let endpoint = &shared.endpoints[route];
    state.metrics.observe_request(endpoint, status, elapsed, labels);
    // Inside the request span: with traces on, JSON lines carry its trace id.
    let millis = elapsed.as_secs_f64() * 1e3;
    let endpoint = endpoint.endpoint();
    if status.is_server_error() {
        tracing::warn!(%endpoint, status = status.as_u16(), millis, "request failed");
    } else {
        tracing::debug!(%endpoint, status = status.as_u16(), millis, "request");
    }
    resp
}

/// The route, called with the authenticated [`authz::Caller`] in the
/// request's extensions; refused (and counted by reason) without one.
async fn authenticated<S>(state: &AppState, mut route: S, mut req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match authz::caller(state, req.uri().path(), authz::header_value(req.headers())).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            match route.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
        Err(e) => {
            tracing::info!(reason = %e, path = %req.uri().path(), "request refused");
            ApiError::from(e).into_response()
        }
    }
}

/// Serve until `shutdown` resolves, then drain in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serve over TLS until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, tls)?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
