//! The HTTP API's request and response bodies, and the OpenAPI document
//! generated from them and from the handlers' `#[utoipa::path]`
//! annotations (see [`ApiDoc`]).
//!
//! Handlers fill the request types field by field from the JSON body
//! rather than through `Deserialize`: each bad field then gets Feast's
//! (pydantic's) error shape, `{"detail": [{"type", "loc", "msg"}]}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// `POST /get-online-features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GetOnlineFeaturesRequest {
    /// Join key → one value per entity row (columnar, every column the same length).
    #[schema(value_type = Object, example = json!({"driver_id": [1001, 1002]}))]
    pub entities: Map<String, Json>,
    /// `feature_view:feature` references; ignored when `feature_service` is set.
    #[serde(default)]
    #[schema(example = json!(["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"]))]
    pub features: Vec<String>,
    /// A feature service whose features are read instead of `features`.
    pub feature_service: Option<String>,
    /// Name columns `view__feature` instead of `feature`.
    #[serde(default)]
    pub full_feature_names: bool,
}

/// The response: one column per entity key and per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeaturesResponse {
    pub metadata: OnlineFeaturesMetadata,
    /// In the order of `metadata.feature_names`.
    pub results: Vec<FeatureColumn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeaturesMetadata {
    pub feature_names: Vec<String>,
}

/// One column: a value, a status and an event time per entity row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureColumn {
    /// JSON scalars or lists; `null` when missing.
    #[schema(value_type = Vec<Object>)]
    pub values: Vec<Json>,
    pub statuses: Vec<FieldStatusName>,
    /// RFC 3339 UTC; `1970-01-01T00:00:00Z` when missing.
    #[schema(value_type = Vec<String>, format = DateTime)]
    pub event_timestamps: Vec<String>,
}

/// `feast.serving.FieldStatus` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldStatusName {
    Present,
    NotFound,
    NullValue,
    OutsideMaxAge,
    Invalid,
}

/// Where `POST /push` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    #[default]
    Online,
    Offline,
    OnlineAndOffline,
}

/// `POST /push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    pub push_source_name: String,
    /// Columnar rows: column name → values.
    #[schema(value_type = Object, example = json!({"driver_id": [1001], "conv_rate": [0.5], "event_timestamp": ["2024-01-01T00:00:00Z"]}))]
    pub df: Map<String, Json>,
    #[serde(default)]
    pub to: PushMode,
    #[serde(default = "yes")]
    pub allow_registry_cache: bool,
}

/// `POST /write-to-online-store`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteToOnlineStoreRequest {
    pub feature_view_name: String,
    /// Columnar rows: column name → values.
    #[schema(value_type = Object)]
    pub df: Map<String, Json>,
    #[serde(default = "yes")]
    pub allow_registry_cache: bool,
}

fn yes() -> bool {
    true
}

/// `POST /materialize`: the window `[start_ts, end_ts)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeRequest {
    /// RFC 3339 or epoch seconds; required unless `disable_event_timestamp`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_ts: Option<Json>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_ts: Option<Json>,
    /// Views to materialize; all when empty.
    #[serde(default)]
    pub feature_views: Vec<String>,
    /// Materialize everything up to now, whatever its event time.
    #[serde(default)]
    pub disable_event_timestamp: bool,
}

/// `POST /materialize-incremental`: from each view's last run up to `end_ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeIncrementalRequest {
    #[schema(value_type = String, format = DateTime)]
    pub end_ts: Json,
    #[serde(default)]
    pub feature_views: Vec<String>,
}

/// `?async=true` on the materialize endpoints.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaterializeQuery {
    /// Answer 202 at once and run in the background.
    #[serde(default, rename = "async")]
    #[param(rename = "async")]
    pub run_async: bool,
}

/// The 202 answer of an `?async=true` materialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeAccepted {
    #[schema(example = "accepted")]
    pub status: String,
    pub feature_views: Vec<String>,
}

/// A 422 body (pydantic's shape, as Feast's server answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationIssue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationIssue {
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: String,
    #[schema(example = json!(["body", "entities"]))]
    pub loc: Vec<String>,
    pub msg: String,
}

/// `GET /health` when not simply healthy (a healthy server answers 200
/// with an empty body, as Feast does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `stale` (200: serving from the last good registry snapshot) or
    /// `unavailable` (503: no snapshot loaded).
    #[schema(example = "stale")]
    pub status: String,
    /// Age of the snapshot being served.
    pub registry_snapshot_age_seconds: Option<f64>,
    /// How long the registry has been unreadable.
    pub registry_unreadable_for_seconds: Option<f64>,
    /// Snapshot loads that failed since the last successful one.
    pub registry_failed_refreshes: u64,
}

/// Every route, generated from the handlers' annotations and the types above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Larder feature server",
        description = "Feast 0.67-compatible online serving API. Errors other than 422 are a JSON string; \
                       Feast's own errors (unknown view, service, push source) are that string holding \
                       `{\"module\", \"class\", \"message\"}`."
    ),
    paths(
        crate::get_online_features,
        crate::push,
        crate::write_to_online_store,
        crate::materialize,
        crate::materialize_incremental,
        crate::health,
        crate::metrics_text
    ),
    components(schemas(ValidationErrorBody, ValidationIssue, HealthStatus))
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    /// The document lists every route with its request body type.
    #[test]
    fn document_covers_the_routes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method, body) in [
            ("/get-online-features", "post", Some("GetOnlineFeaturesRequest")),
            ("/push", "post", Some("PushRequest")),
            ("/write-to-online-store", "post", Some("WriteToOnlineStoreRequest")),
            ("/materialize", "post", Some("MaterializeRequest")),
            (
                "/materialize-incremental",
                "post",
                Some("MaterializeIncrementalRequest"),
            ),
            ("/health", "get", None),
            ("/metrics", "get", None),
        ] {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} missing");
            if let Some(b) = body {
                let r = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str();
                assert_eq!(r, Some(format!("#/components/schemas/{b}").as_str()), "{path}");
                assert!(doc["components"]["schemas"][b].is_object(), "{b} schema");
            }
        }
        let req = &doc["components"]["schemas"]["GetOnlineFeaturesRequest"];
        assert_eq!(req["required"], serde_json::json!(["entities"]));
        let params = paths["/materialize"]["post"]["parameters"].as_array().unwrap();
        assert_eq!(params[0]["name"], "async");
        assert_eq!(params[0]["in"], "query");
    }

    /// The handlers' field-by-field parsing yields what serde would from the
    /// same body, so the documented types are the ones the handlers accept.
    #[test]
    fn handlers_parse_into_the_documented_types() {
        let body = |v: serde_json::Value| v.as_object().unwrap().clone();
        let online = serde_json::json!({"entities": {"driver_id": [1001, 1002]}, "features": ["v:a"], "full_feature_names": true});
        assert_eq!(
            crate::online_request(body(online.clone())).unwrap(),
            serde_json::from_value::<GetOnlineFeaturesRequest>(online).unwrap()
        );
        let push = serde_json::json!({"push_source_name": "p", "df": {"x": [1]}, "to": "online_and_offline"});
        let parsed = crate::push_request(body(push.clone())).unwrap();
        assert_eq!(parsed.to, PushMode::OnlineAndOffline);
        assert_eq!(parsed, serde_json::from_value::<PushRequest>(push).unwrap());
        let write = serde_json::json!({"feature_view_name": "v", "df": {"x": [1]}, "allow_registry_cache": false});
        assert_eq!(
            crate::write_request(body(write.clone())).unwrap(),
            serde_json::from_value::<WriteToOnlineStoreRequest>(write).unwrap()
        );
    }

    /// The response encoder writes what [`OnlineFeaturesResponse`] describes.
    #[test]
    fn encoder_output_matches_the_response_type() {
        use larder_protos::feast::types::{Value, value::Val};
        use larder_serving::{Column, FieldStatus, OnlineResponse};
        let resp = OnlineResponse {
            columns: vec![
                Column {
                    name: "driver_id".into(),
                    values: vec![Value {
                        val: Some(Val::Int64Val(1001)),
                    }],
                    statuses: vec![FieldStatus::Present],
                    event_ts: vec![0],
                },
                Column {
                    name: "conv_rate".into(),
                    values: vec![Value::default()],
                    statuses: vec![FieldStatus::NotFound],
                    event_ts: vec![0],
                },
            ],
        };
        let parsed: OnlineFeaturesResponse = serde_json::from_slice(&crate::encode::response_json(&resp)).unwrap();
        assert_eq!(parsed.metadata.feature_names, ["driver_id", "conv_rate"]);
        assert_eq!(parsed.results[1].statuses, [FieldStatusName::NotFound]);
        assert_eq!(parsed.results[0].event_timestamps, ["1970-01-01T00:00:00Z"]);
    }
}
