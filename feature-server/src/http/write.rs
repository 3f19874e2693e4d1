//! Writes to the online store: `/push` and `/write-to-online-store`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use larder_auth::{Action, Resource, ResourceType};
use larder_online::ViewSchema;
use larder_protos::feast::core as fc;

use crate::error::ApiError;
use crate::request::{body_json, push_request, write_request};
use crate::state::view_name;
use crate::{AppState, api, authz, convert};

async fn write_rows(
    state: &AppState,
    view: &fc::FeatureView,
    batch: &larder_model::rows::RowBatch,
) -> Result<(), ApiError> {
    let schema = ViewSchema::from_proto(view);
    state
        .online
        .update(&state.project, std::slice::from_ref(&schema), &[])
        .await
        .map_err(ApiError::from)?;
    state
        .online
        .online_write_batch(&state.project, &schema, batch)
        .await
        .map_err(ApiError::from)?;
    Ok(())
}

/// The candidate column names that are set, in order of preference.
fn named<'a>(candidates: &[&'a str]) -> Vec<&'a str> {
    candidates.iter().copied().filter(|c| !c.is_empty()).collect()
}

/// Write rows through a push source to every view it feeds.
#[utoipa::path(
    post,
    path = "/push",
    request_body = api::PushRequest,
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "`df` does not fit the views the source feeds: a column is missing, has the wrong type or length", body = api::ErrorMessage),
        (status = 422, description = "Unknown push source (Feast's `PushSourceNotFoundException`, a JSON string), or a field failed validation (`to` other than `online` included)", body = api::Unprocessable),
    )
)]
pub async fn push(
    State(state): State<Arc<AppState>>,
    Extension(authz::Caller(user)): Extension<authz::Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let api::PushRequest {
        push_source_name: name,
        df,
        to,
        allow_registry_cache: allow_cache,
    } = push_request(body_json(body, state.limits.max_body_bytes)?)?;
    let targets: Vec<fc::FeatureView> = state
        .feature_views(allow_cache)
        .await?
        .into_iter()
        .filter(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.stream_source.as_ref())
                .is_some_and(|s| s.name == name)
        })
        .collect();
    // Feast's check: the write actions `to` asks for, on every view fed.
    let actions: &[Action] = match to {
        api::PushMode::Online => &[Action::WriteOnline],
        api::PushMode::Offline => &[Action::WriteOffline],
        api::PushMode::OnlineAndOffline => &[Action::WriteOffline, Action::WriteOnline],
    };
    let resources: Vec<Resource<'_>> = targets
        .iter()
        .map(|v| Resource::new(ResourceType::FeatureView, view_name(v)))
        .collect();
    state.authorize(&user, &resources, actions).await?;
    if to != api::PushMode::Online {
        // Documented as `online` only: this server has no offline-store
        // writes. Refused after the permission check, as Feast checks first.
        let to = if to == api::PushMode::Offline {
            "offline"
        } else {
            "online_and_offline"
        };
        return Err(ApiError::validation(
            "enum",
            &["to"],
            format!("Input should be 'online': this server has no offline-store writes (got '{to}')"),
        ));
    }
    if targets.is_empty() {
        return Err(ApiError::Feast {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            class: "PushSourceNotFoundException",
            message: format!("Unable to find push source '{name}'."),
        });
    }
    // Convert every view's rows first: a bad column fails the push before anything is written.
    let mut batches = Vec::with_capacity(targets.len());
    for v in &targets {
        let src = v.spec.as_ref().and_then(|s| s.stream_source.as_ref());
        let ts = src.map(|s| s.timestamp_field.clone()).unwrap_or_default();
        let created = src.map(|s| s.created_timestamp_column.clone()).unwrap_or_default();
        let ts_cols = named(&[ts.as_str(), "event_timestamp"]);
        let created_cols = named(&[created.as_str()]);
        batches.push(convert::table_to_batch(&df, v, &ts_cols, &created_cols)?);
    }
    for (v, b) in targets.iter().zip(&batches) {
        write_rows(&state, v, b).await?;
    }
    state.metrics.push(&name, "online");
    Ok(StatusCode::OK)
}

/// Write rows of one feature view (what the SDK's remote online store sends).
#[utoipa::path(
    post,
    path = "/write-to-online-store",
    request_body = api::WriteToOnlineStoreRequest,
    responses(
        (status = 200, description = "Written (body `null`)", body = api::JsonNull),
        (status = 400, description = "`df` does not fit the view: a column is missing, has the wrong type or length", body = api::ErrorMessage),
        (status = 404, description = "Unknown feature view (Feast's `FeatureViewNotFoundException`)", body = api::ErrorMessage),
        (status = 422, description = "A field failed validation", body = api::ValidationErrorBody),
    )
)]
pub async fn write_to_online_store(
    State(state): State<Arc<AppState>>,
    Extension(authz::Caller(user)): Extension<authz::Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let api::WriteToOnlineStoreRequest {
            feature_view_name: name,
            df,
            allow_registry_cache: allow_cache,
        } = write_request(body_json(body, state.limits.max_body_bytes)?)?;
        let view = state
            .feature_views(allow_cache)
            .await?
            .into_iter()
            .find(|v| v.spec.as_ref().is_some_and(|s| s.name == name))
            .ok_or_else(|| ApiError::Feast {
                status: StatusCode::NOT_FOUND,
                class: "FeatureViewNotFoundException",
                message: format!("Feature view {name} does not exist in project {}", state.project),
            })?;
        state
            .authorize(
                &user,
                &[Resource::new(ResourceType::FeatureView, &name)],
                &[Action::WriteOnline],
            )
            .await?;
        let batch_src = view
            .spec
            .as_ref()
            .and_then(|s| s.batch_source.clone())
            .unwrap_or_default();
        // The SDK's remote store sends `event_timestamp` and `created` whatever the source calls them.
        let ts_cols = named(&["event_timestamp", batch_src.timestamp_field.as_str()]);
        let created_cols = named(&["created", batch_src.created_timestamp_column.as_str()]);
        let batch = convert::table_to_batch(&df, &view, &ts_cols, &created_cols)?;
        write_rows(&state, &view, &batch).await
    };
    match run.await {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], "null").into_response(),
        Err(e) => e.into_response(),
    }
}
