//! Request bodies and query strings, parsed field by field as Feast's
//! FastAPI models validate them: each bad field gets its own error in
//! FastAPI's shape. Pure.

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use serde_json::Value as Json;

use crate::api::{self, MaterializeQuery};
use crate::convert;
use crate::error::ApiError;

pub(crate) fn body_json(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<serde_json::Map<String, Json>, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Message {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("request body is larger than the limit of {limit} bytes"),
            }
        } else {
            ApiError::bad_request(r.body_text())
        }
    })?;
    let v: Json = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation("json_invalid", &[], format!("JSON decode error: {e}")))?;
    match v {
        Json::Object(m) => Ok(m),
        _ => Err(ApiError::validation(
            "model_attributes_type",
            &[],
            "Input should be a valid dictionary",
        )),
    }
}

pub(crate) fn opt_str(m: &serde_json::Map<String, Json>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(
            "string_type",
            &[key],
            "Input should be a valid string",
        )),
    }
}

pub(crate) fn opt_bool(m: &serde_json::Map<String, Json>, key: &str, default: bool) -> Result<bool, ApiError> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(default),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::validation(
            "bool_type",
            &[key],
            "Input should be a valid boolean",
        )),
    }
}

pub(crate) fn str_list(m: &serde_json::Map<String, Json>, key: &str) -> Result<Vec<String>, ApiError> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| ApiError::validation("string_type", &[key], "Input should be a valid string"))
            })
            .collect(),
        Some(_) => Err(ApiError::validation(
            "list_type",
            &[key],
            "Input should be a valid list",
        )),
    }
}

/// The JSON object under `key`, moved out of the body.
pub(crate) fn take_table(
    m: &mut serde_json::Map<String, Json>,
    key: &str,
) -> Result<serde_json::Map<String, Json>, ApiError> {
    match m.remove(key) {
        None => Err(ApiError::validation("missing", &[key], "Field required")),
        Some(Json::Object(t)) => Ok(t),
        Some(_) => Err(ApiError::validation(
            "dict_type",
            &[key],
            "Input should be a valid dictionary",
        )),
    }
}

/// The request, field by field, each bad field with its own error.
pub(crate) fn online_request(mut m: serde_json::Map<String, Json>) -> Result<api::GetOnlineFeaturesRequest, ApiError> {
    Ok(api::GetOnlineFeaturesRequest {
        entities: take_table(&mut m, "entities")?,
        features: str_list(&m, "features")?,
        feature_service: opt_str(&m, "feature_service")?,
        full_feature_names: opt_bool(&m, "full_feature_names", false)?,
    })
}

pub(crate) fn push_request(mut m: serde_json::Map<String, Json>) -> Result<api::PushRequest, ApiError> {
    let push_source_name = opt_str(&m, "push_source_name")?
        .ok_or_else(|| ApiError::validation("missing", &["push_source_name"], "Field required"))?;
    let df = take_table(&mut m, "df")?;
    let to = match opt_str(&m, "to")?.as_deref() {
        None | Some("online") => api::PushMode::Online,
        Some("offline") => api::PushMode::Offline,
        Some("online_and_offline") => api::PushMode::OnlineAndOffline,
        Some(other) => {
            return Err(ApiError::validation(
                "enum",
                &["to"],
                format!("Input should be 'online', 'offline' or 'online_and_offline', got {other:?}"),
            ));
        }
    };
    Ok(api::PushRequest {
        push_source_name,
        df,
        to,
        allow_registry_cache: opt_bool(&m, "allow_registry_cache", true)?,
    })
}

pub(crate) fn write_request(mut m: serde_json::Map<String, Json>) -> Result<api::WriteToOnlineStoreRequest, ApiError> {
    let feature_view_name = opt_str(&m, "feature_view_name")?
        .ok_or_else(|| ApiError::validation("missing", &["feature_view_name"], "Field required"))?;
    Ok(api::WriteToOnlineStoreRequest {
        feature_view_name,
        df: take_table(&mut m, "df")?,
        allow_registry_cache: opt_bool(&m, "allow_registry_cache", true)?,
    })
}

/// A window bound: `None` when absent or null. Instants beyond the
/// nanosecond range are clamped to it (no event time lies outside).
pub(crate) fn time_field(value: Option<&Json>, key: &str) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(j) => convert::timestamp_nanos_clamped(j)
            .map(Some)
            .ok_or_else(|| ApiError::validation("datetime_parsing", &[key], format!("{j} is not a timestamp"))),
    }
}

/// A boolean query parameter as FastAPI (pydantic) reads one
/// ([`api::QUERY_BOOL_PATTERN`]).
pub(crate) fn query_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// `?async=` and `?force=` as Feast's FastAPI reads them: the last value of
/// each counts, anything else in the query is ignored, and a value that is
/// no boolean is a 422 in FastAPI's shape (`loc: ["query", name]`).
pub(crate) fn materialize_query(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<MaterializeQuery, ApiError> {
    let Query(pairs) = query.map_err(|r| ApiError::Validation {
        kind: "query_parsing",
        loc: vec!["query".into()],
        message: r.body_text(),
    })?;
    let mut q = MaterializeQuery::default();
    for (name, slot) in [("async", &mut q.run_async), ("force", &mut q.force)] {
        if let Some((_, v)) = pairs.iter().rev().find(|(k, _)| k == name) {
            *slot = query_bool(v).ok_or_else(|| ApiError::Validation {
                kind: "bool_parsing",
                loc: vec!["query".into(), name.into()],
                message: "Input should be a valid boolean, unable to interpret input".into(),
            })?;
        }
    }
    Ok(q)
}
