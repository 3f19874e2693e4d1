//! Operations endpoints: `/health` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use larder_registry::cache::CacheHealth;

use crate::{AppState, api};

/// Readiness and liveness, answered from the registry cache's state (no
/// database round trip, so at once even while the registry hangs):
///
/// - 200, empty body (as Feast): serving, the registry snapshot is current;
/// - 200, JSON `{"status": "stale", ...}`: the registry cannot be read and
///   requests are served from the last good snapshot. Still 200 on purpose:
///   every replica shares the registry, so failing readiness would take the
///   whole service down for an outage it rides out; alert on
///   `larder_registry_snapshot_age_seconds` instead;
/// - 503: no snapshot has ever been loaded, so nothing can be served.
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "Serving. No body (and no content type) while the registry snapshot is current, as Feast answers; while the registry cannot be read and the last good snapshot is served, a JSON `HealthStatus` with `status: stale`. OpenAPI cannot say \"no body, or this JSON\", so no content is declared here"),
        (status = 503, description = "No registry snapshot could be loaded", body = api::HealthStatus),
    )
)]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mut status = state.registry.status();
    if status.health() == CacheHealth::Unavailable {
        // Not loaded yet (the binary loads at start): try, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(1), state.registry.snapshot_cached()).await;
        status = state.registry.status();
    }
    let (code, label) = match status.health() {
        CacheHealth::Fresh => return StatusCode::OK.into_response(),
        CacheHealth::Stale => (StatusCode::OK, "stale"),
        CacheHealth::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = api::HealthStatus {
        status: label.into(),
        registry_snapshot_age_seconds: status.age.map(|a| a.as_secs_f64()),
        registry_unreadable_for_seconds: status.failing_for.map(|a| a.as_secs_f64()),
        registry_failed_refreshes: status.consecutive_failures,
    };
    (code, axum::Json(body)).into_response()
}

/// Prometheus metrics: requests and latency per endpoint, online-store read latency, registry snapshot age and
/// refresh failures, cached plans.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let status = state.registry.status();
    state.metrics.registry_cache.observe(&status);
    state.metrics.plan_cache_entries.set(state.plans.len() as i64);
    // Freshness from the loaded snapshot only: a scrape never waits for the registry.
    let snap = match status.generation {
        Some(_) => tokio::time::timeout(Duration::from_millis(500), state.registry.snapshot_cached())
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    state.metrics.observe_scrape(&state.project, snap.as_deref());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
