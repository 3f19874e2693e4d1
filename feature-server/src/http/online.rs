//! `/get-online-features`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use larder_auth::User;
use larder_protos::feast::types::Value;
use serde_json::Value as Json;

use crate::error::ApiError;
use crate::request::{body_json, online_request};
use crate::{AppState, api, authz, convert, encode, metrics};

/// A request column that is not a join key of any requested view: keep it
/// with the natural Feast type of its JSON values.
fn loose_value(j: &Json) -> Value {
    use larder_protos::feast::types::value::Val;
    let val = match j {
        Json::Bool(b) => Some(Val::BoolVal(*b)),
        Json::Number(n) => n.as_i64().map(Val::Int64Val).or_else(|| n.as_f64().map(Val::DoubleVal)),
        Json::String(s) => Some(Val::StringVal(s.clone())),
        _ => None,
    };
    Value { val }
}

/// Feast's `get_online_features` over HTTP.
#[utoipa::path(
    post,
    path = "/get-online-features",
    request_body = api::GetOnlineFeaturesRequest,
    responses(
        (status = 200, description = "Values, statuses and event times per requested column", body = api::OnlineFeaturesResponse),
        (status = 400, description = "The request does not fit the registry: an unknown feature of a known view, a join key of the requested views missing from `entities`, a key value of the wrong type or null, entity columns of different lengths", body = api::ErrorMessage),
        (status = 404, description = "Unknown feature view or service (Feast's `FeatureViewNotFoundException`, `FeatureServiceNotFoundException`)", body = api::ErrorMessage),
        (status = 422, description = "The body is not a JSON object, or a field is missing or has the wrong JSON type", body = api::ValidationErrorBody),
    )
)]
pub async fn get_online_features(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<authz::Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut labels = None;
    let mut resp = match online_features(&state, caller.user(), body, &mut labels).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(l) = labels {
        resp.extensions_mut().insert(l);
    }
    resp
}

/// The answer's JSON; `labels` is set once the features are resolved and
/// allowed (Feast's latency labels, also for a read that fails later).
async fn online_features(
    state: &AppState,
    user: &User,
    body: Result<Bytes, BytesRejection>,
    labels: &mut Option<metrics::FeatureLabels>,
) -> Result<Vec<u8>, ApiError> {
    let api::GetOnlineFeaturesRequest {
        entities,
        features,
        feature_service: service,
        full_feature_names: full,
    } = online_request(body_json(body, state.limits.max_body_bytes)?)?;
    if features.len() > state.limits.max_features {
        return Err(ApiError::bad_request(format!(
            "{} features requested; the limit is {}",
            features.len(),
            state.limits.max_features
        )));
    }
    if entities.is_empty() {
        return Err(ApiError::bad_request("entities must hold at least one join key column"));
    }
    let rows = convert::table_rows(&entities, "entities", "entity columns")?;
    if rows == 0 {
        return Err(ApiError::bad_request(
            "the entity columns are empty; send at least one entity row",
        ));
    }
    if rows > state.limits.max_entities {
        return Err(ApiError::bad_request(format!(
            "{rows} entity rows requested; the limit is {}",
            state.limits.max_entities
        )));
    }
    if features.is_empty() && service.is_none() {
        return Err(ApiError::bad_request("request features or a feature_service"));
    }
    let plan = state.plan(&features, service.as_deref()).await?;
    state.authorize_plan(user, &plan, service.as_deref()).await?;
    // Resolved and allowed: Feast's feature counts and entity rows.
    let feature_count = match service {
        Some(_) => plan.views.iter().map(|v| v.features.len()).sum(),
        None => features.len(),
    };
    *labels = Some(metrics::FeatureLabels {
        features: feature_count,
        views: plan.views.len(),
    });
    state.metrics.online_request(rows);
    let mut cols = Vec::with_capacity(entities.len());
    for (k, v) in &entities {
        let vals = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let converted: Vec<Value> = match plan.key_type(k) {
            Some(t) => vals
                .iter()
                .enumerate()
                .map(|(i, j)| match convert::json_to_value(j, t.value_type()) {
                    Ok(v) if v.val.is_some() => Ok(v),
                    Ok(_) => Err(ApiError::bad_request(format!(
                        "entities.{k}[{i}]: join keys must not be null"
                    ))),
                    Err(m) => Err(ApiError::bad_request(format!("entities.{k}[{i}]: {m}"))),
                })
                .collect::<Result<_, _>>()?,
            None => vals.iter().map(loose_value).collect(),
        };
        cols.push((k.clone(), converted));
    }
    let started = Instant::now();
    let resp = larder_serving::execute(&plan, state.online.as_ref(), &state.project, &cols, full).await?;
    state
        .metrics
        .online_read(&state.store_kind, started.elapsed(), &plan, &resp, cols.len());
    Ok(encode::response_json(&resp))
}
