//! The HTTP router: routes, middleware (tracing, timeout and metrics,
//! authentication) and the serve loops.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::error::ApiError;
use crate::http::{materialize, online, ops, write};
use crate::{AppState, authz, docs, metrics, tls};

/// All routes, with limits, timeouts and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    // The document depends on this server's limits and auth only: built once.
    let doc = Arc::new(docs::openapi(&state.limits, state.auth.is_enabled()));
    Router::new()
        .route("/get-online-features", post(online::get_online_features))
        .route("/push", post(write::push))
        .route("/write-to-online-store", post(write::write_to_online_store))
        .route("/materialize", post(materialize::materialize))
        .route("/materialize-incremental", post(materialize::materialize_incremental))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics_text))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .route("/docs", get(|| async { axum::response::Html(docs::DOCS_HTML) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({"detail": "Method Not Allowed"})),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authz::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// While OpenTelemetry traces are on: one server span per request (method,
/// route, status), a child of the caller's trace when the request carries a
/// W3C `traceparent`. Off: nothing.
async fn trace_request(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    if !larder_runtime::telemetry::tracing_enabled() {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().clone();
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
    {
        // Scoped: a borrow of the request must not live across the await.
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        larder_runtime::telemetry::continue_trace(&span, header("traceparent"), header("tracestate"));
    }
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    resp
}

/// Per-request timeout and metrics.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let run = async {
        match tokio::time::timeout(state.limits.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Message {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!("request took longer than {:?}", state.limits.request_timeout),
            }
            .into_response(),
        }
    };
    // The handler notes the features it resolved, for Feast's latency labels.
    let (resp, labels) = metrics::with_feature_labels(run).await;
    let elapsed = started.elapsed();
    state
        .metrics
        .latency
        .with_label_values(&[&endpoint])
        .observe(elapsed.as_secs_f64());
    state
        .metrics
        .requests
        .with_label_values(&[&endpoint, resp.status().as_str()])
        .inc();
    state
        .metrics
        .observe_feast_request(&endpoint, resp.status(), elapsed, labels);
    // Inside the request span: with traces on, JSON lines carry its trace id.
    let status = resp.status().as_u16();
    let millis = elapsed.as_secs_f64() * 1e3;
    if resp.status().is_server_error() {
        tracing::warn!(%endpoint, status, millis, "request failed");
    } else {
        tracing::debug!(%endpoint, status, millis, "request");
    }
    resp
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
