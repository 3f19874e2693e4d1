//! `/materialize` and `/materialize-incremental`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use larder_auth::{Action, Resource, ResourceType, User};
use larder_materialize::Quiet;
use larder_protos::feast::core as fc;
use serde_json::{Value as Json, json};

use crate::api::{self, MaterializeQuery};
use crate::error::ApiError;
use crate::request::{body_json, materialize_query, opt_bool, str_list, time_field};
use crate::state::view_name;
use crate::{AppState, authz};

/// The views a materialization runs (Feast's
/// `_get_feature_views_to_materialize`): those named, each of which must
/// exist (404) and be online (400), or every online view when none is.
async fn materialize_targets(state: &AppState, names: &[String]) -> Result<Vec<String>, ApiError> {
    let all = state.feature_views(true).await?;
    let online = |v: &fc::FeatureView| v.spec.as_ref().is_some_and(|s| s.online);
    if names.is_empty() {
        return Ok(all
            .iter()
            .filter(|v| online(v))
            .map(|v| view_name(v).to_string())
            .collect());
    }
    names
        .iter()
        .map(|n| match all.iter().find(|v| view_name(v) == n) {
            None => Err(ApiError::Feast {
                status: StatusCode::NOT_FOUND,
                class: "FeatureViewNotFoundException",
                message: format!("Feature view {n} does not exist in project {}", state.project),
            }),
            Some(v) if !online(v) => Err(ApiError::bad_request(format!(
                "feature view {n} is not online: nothing to materialize"
            ))),
            Some(_) => Ok(n.clone()),
        })
        .collect()
}

async fn run_materialize(
    state: Arc<AppState>,
    user: &User,
    q: MaterializeQuery,
    views: Vec<String>,
    window: Option<(i64, i64)>,
    end: i64,
) -> Result<Response, ApiError> {
    // Resolved before anything runs, as Feast does (so `?async=true` answers
    // 404 for an unknown view too, and its 202 names what will run).
    let targets = materialize_targets(&state, &views).await?;
    // WRITE_ONLINE on each view that will run.
    let resources: Vec<Resource<'_>> = targets
        .iter()
        .map(|n| Resource::new(ResourceType::FeatureView, n))
        .collect();
    state.authorize(user, &resources, &[Action::WriteOnline]).await?;
    let m = state.materializer();
    let names = Json::from(targets);
    let job = async move {
        match window {
            Some((s, e)) => m.materialize(&views, s, e, Arc::new(Quiet)).await,
            None => m.materialize_incremental(&views, end, Arc::new(Quiet)).await,
        }
    };
    if q.run_async {
        tokio::spawn(async move {
            match job.await {
                Ok(reports) => {
                    for r in reports.iter().filter(|r| r.error.is_some()) {
                        tracing::error!(view = %r.view, error = ?r.error, "async materialization failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "async materialization failed"),
            }
        });
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "accepted", "feature_views": names})),
        )
            .into_response());
    }
    let reports = job.await.map_err(|e| match e {
        larder_materialize::MaterializeError::UnknownView(n, p) => ApiError::Feast {
            status: StatusCode::NOT_FOUND,
            class: "FeatureViewNotFoundException",
            message: format!("Feature view {n} does not exist in project {p}"),
        },
        other => ApiError::bad_request(other.to_string()),
    })?;
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.view)))
        .collect();
    if !failed.is_empty() {
        return Err(ApiError::internal(format!(
            "materialization failed for {}",
            failed.join("; ")
        )));
    }
    Ok(super::json_null())
}

/// Materialize `[start_ts, end_ts)` from the offline sources into the online store.
#[utoipa::path(
    post,
    path = "/materialize",
    params(api::MaterializeQuery),
    request_body = api::MaterializeRequest,
    responses(
        (status = 200, description = "Done (body `null`)", body = api::JsonNull),
        (status = 202, description = "Accepted; runs in the background (`?async=true`)", body = api::MaterializeAccepted),
        (status = 400, description = "`start_ts` is not before `end_ts`, or a named view is not online", body = api::ErrorMessage),
        (status = 404, description = "Unknown feature view (Feast's `FeatureViewNotFoundException`)", body = api::ErrorMessage),
        (status = 422, description = "A body field or query parameter failed validation (`start_ts`/`end_ts` missing without `disable_event_timestamp`, not a timestamp, `?async=null`)", body = api::ValidationErrorBody),
        (status = 500, description = "A view failed; its interval is not recorded", body = api::ErrorMessage),
    )
)]
pub async fn materialize(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<authz::Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = materialize_query(query)?;
    let mut m = body_json(body, state.limits.max_body_bytes)?;
    let req = api::MaterializeRequest {
        feature_views: str_list(&m, "feature_views")?,
        disable_event_timestamp: opt_bool(&m, "disable_event_timestamp", false)?,
        start_ts: m.remove("start_ts"),
        end_ts: m.remove("end_ts"),
    };
    // Both bounds are validated even when `disable_event_timestamp` ignores them (pydantic does).
    let start = time_field(req.start_ts.as_ref(), "start_ts")?;
    let end = time_field(req.end_ts.as_ref(), "end_ts")?;
    let (start, end) = if req.disable_event_timestamp {
        (0, chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    } else {
        let s = start.ok_or_else(|| ApiError::validation("missing", &["start_ts"], "Field required"))?;
        let e = end.ok_or_else(|| ApiError::validation("missing", &["end_ts"], "Field required"))?;
        (s, e)
    };
    if start >= end {
        return Err(ApiError::bad_request("start_ts must be before end_ts"));
    }
    run_materialize(state, caller.user(), q, req.feature_views, Some((start, end)), end).await
}

/// Materialize each view from the end of its last materialization up to `end_ts`.
#[utoipa::path(
    post,
    path = "/materialize-incremental",
    params(api::MaterializeQuery),
    request_body = api::MaterializeIncrementalRequest,
    responses(
        (status = 200, description = "Done (body `null`)", body = api::JsonNull),
        (status = 202, description = "Accepted; runs in the background (`?async=true`)", body = api::MaterializeAccepted),
        (status = 400, description = "A named view is not online", body = api::ErrorMessage),
        (status = 404, description = "Unknown feature view (Feast's `FeatureViewNotFoundException`)", body = api::ErrorMessage),
        (status = 422, description = "A body field or query parameter failed validation (`end_ts` missing or not a timestamp, `?async=null`)", body = api::ValidationErrorBody),
        (status = 500, description = "A view failed; its interval is not recorded", body = api::ErrorMessage),
    )
)]
pub async fn materialize_incremental(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<authz::Caller>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = materialize_query(query)?;
    let mut m = body_json(body, state.limits.max_body_bytes)?;
    let feature_views = str_list(&m, "feature_views")?;
    let end_ts = m
        .remove("end_ts")
        .ok_or_else(|| ApiError::validation("missing", &["end_ts"], "Field required"))?;
    let req = api::MaterializeIncrementalRequest { end_ts, feature_views };
    let end = time_field(Some(&req.end_ts), "end_ts")?
        .ok_or_else(|| ApiError::validation("missing", &["end_ts"], "Field required"))?;
    run_materialize(state, caller.user(), q, req.feature_views, None, end).await
}
