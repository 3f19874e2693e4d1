//! The HTTP API's request and response bodies, and the OpenAPI document
//! generated from them and from the handlers' `#[utoipa::path]`
//! annotations (see [`ApiDoc`]).
//!
//! Handlers fill the request types field by field from the JSON body
//! rather than through `Deserialize`: each bad field then gets Feast's
//! (pydantic's) error shape, `{"detail": [{"type", "loc", "msg"}]}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};

/// `POST /get-online-features`. Besides what the schema says: every
/// entity column has the same length, the join keys of the requested views
/// are among them with values of their type (never null), and every
/// referenced view, feature and service exists (else 400 or 404).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GetOnlineFeaturesRequest {
    /// Join key → one value per entity row (columnar, every column the same length).
    #[schema(schema_with = entities_schema)]
    pub entities: Map<String, Json>,
    /// `feature_view:feature` references (`feature_view@vN:feature` pins a
    /// version); ignored when `feature_service` is set.
    #[serde(default)]
    #[schema(schema_with = feature_refs_schema)]
    pub features: Vec<String>,
    /// A feature service whose features are read instead of `features`.
    pub feature_service: Option<String>,
    /// Name columns `view__feature` instead of `feature`.
    #[serde(default)]
    #[schema(value_type = Option<bool>, default = false)]
    pub full_feature_names: bool,
}

/// Join key → values: at least one column, each a non-empty list.
fn entities_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .additional_properties(Some(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
                .min_items(Some(1)),
        ))
        .examples([json!({"driver_id": [1001, 1002]})])
}

/// The grammar of a feature reference the server parses:
/// `<view>[@<version>]:<feature>`, view and feature non-empty.
pub const FEATURE_REF_PATTERN: &str = r"^[^:@][^:]*:[\s\S]+$";

fn feature_refs_schema() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(FEATURE_REF_PATTERN)),
        )
        .default(Some(json!([])))
        .examples([json!(["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"])])
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
    /// Any JSON value (numbers, strings, booleans, lists, objects); `null` when missing.
    #[schema(value_type = Vec<Value>)]
    pub values: Vec<Json>,
    pub statuses: Vec<FieldStatusName>,
    /// RFC 3339 UTC; `1970-01-01T00:00:00Z` when missing.
    #[schema(schema_with = event_timestamps_schema)]
    pub event_timestamps: Vec<String>,
}

fn event_timestamps_schema() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
    )
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

/// Where `POST /push` writes: the online store, the push source's batch
/// source (the offline store), or both (online first, as Feast).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    #[default]
    Online,
    Offline,
    OnlineAndOffline,
}

/// `POST /push`. Besides what the schema says: the push source exists
/// (else 422, Feast's `PushSourceNotFoundException`) and `df` holds every
/// column of the views it feeds, with values of their types (else 400);
/// for the offline store, also the columns of the batch source's files
/// (else 400).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    #[schema(min_length = 1, example = "driver_stats_push")]
    pub push_source_name: String,
    /// Columnar rows: column name → values.
    #[schema(schema_with = df_schema)]
    pub df: Map<String, Json>,
    /// `online` (or null, the default), `offline` (append the rows to the
    /// push source's batch source) or `online_and_offline` (both, the
    /// online store first).
    #[serde(default)]
    #[schema(schema_with = push_to_schema)]
    pub to: PushMode,
    #[serde(default = "yes")]
    #[schema(value_type = Option<bool>, default = true)]
    pub allow_registry_cache: bool,
}

/// Columnar rows: column name → a list of values.
fn df_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(SchemaType::AnyValue)),
        ))
        // A full row of the example's driver_hourly_stats (what its push source feeds).
        .examples([json!({
            "driver_id": [1001],
            "event_timestamp": ["2024-01-08T09:00:00Z"],
            "created": ["2024-01-08T09:05:00Z"],
            "conv_rate": [0.5],
            "acc_rate": [0.75],
            "avg_daily_trips": [11],
            "trips_today": [3],
            "rating": [4.5],
            "earnings_today": [99.5],
            "online_minutes": [45],
            "completed_trips": [1234],
            "city": ["Oslo"],
            "is_premium": [true],
        })])
}

fn push_to_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .enum_values(Some([
            json!("online"),
            json!("offline"),
            json!("online_and_offline"),
            Json::Null,
        ]))
        .description(Some(
            "Where the rows go: `online` (the default) the online store; `offline` appended to the push \
             source's batch source (a new file in a Parquet directory, the rewritten file of a single-file \
             source, or rows of a PostgreSQL table); `online_and_offline` both, the online store first",
        ))
        .default(Some(json!("online")))
}

/// `POST /write-to-online-store`. Besides what the schema says: the view
/// exists (else 404) and `df` holds its columns with values of their types
/// (else 400).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteToOnlineStoreRequest {
    #[schema(min_length = 1, example = "driver_hourly_stats")]
    pub feature_view_name: String,
    /// Columnar rows: column name → values.
    #[schema(schema_with = df_schema)]
    pub df: Map<String, Json>,
    #[serde(default = "yes")]
    #[schema(value_type = Option<bool>, default = true)]
    pub allow_registry_cache: bool,
}

fn yes() -> bool {
    true
}

/// A naive date (midnight) or date-time (`T` or a space, optional
/// fraction), read as UTC; every day of the year but 29 February, which
/// the server also reads in leap years. ASCII digits only (`\d` would
/// also match other scripts' digits in Python's `re`).
pub const NAIVE_TIME_PATTERN: &str = concat!(
    r"^[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?)?$"
);

/// A point in time as the server reads one: an RFC 3339 date-time, a
/// naive date or date-time (UTC), or epoch seconds. Instants beyond the
/// nanosecond range (before 1677 or after 2262) are clamped to it.
fn timestamp_any_of(nullable: bool) -> AnyOfBuilder {
    let mut b = AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NAIVE_TIME_PATTERN)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .description(Some("Epoch seconds")),
        );
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    b.description(Some(
        "RFC 3339 date-time, naive ISO date or date-time (UTC), or epoch seconds",
    ))
}

fn timestamp_schema() -> impl Into<RefOr<Schema>> {
    timestamp_any_of(false).examples([json!("2024-01-03T00:00:00Z")])
}

fn optional_timestamp_schema() -> impl Into<RefOr<Schema>> {
    timestamp_any_of(true)
}

/// View names; `null` or empty: every view that is online.
fn view_names_schema() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String))
        .examples([json!(["driver_hourly_stats"])])
}

/// `POST /materialize`: the window `[start_ts, end_ts)`. Besides what the
/// schema says: `start_ts` and `end_ts` are required unless
/// `disable_event_timestamp`, `start_ts` is before `end_ts` (else 400), and
/// the views exist (else 404).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeRequest {
    #[schema(schema_with = optional_timestamp_schema)]
    pub start_ts: Option<Json>,
    #[schema(schema_with = optional_timestamp_schema)]
    pub end_ts: Option<Json>,
    /// Views to materialize; all when empty or null.
    #[serde(default)]
    #[schema(schema_with = view_names_schema)]
    pub feature_views: Vec<String>,
    /// Materialize everything up to now, whatever its event time.
    #[serde(default)]
    #[schema(value_type = Option<bool>, default = false)]
    pub disable_event_timestamp: bool,
}

/// `POST /materialize-incremental`: from each view's last run (or
/// `end_ts - ttl`) up to `end_ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeIncrementalRequest {
    #[schema(schema_with = timestamp_schema)]
    pub end_ts: Json,
    /// Views to materialize; all when empty or null.
    #[serde(default)]
    #[schema(schema_with = view_names_schema)]
    pub feature_views: Vec<String>,
}

/// A boolean query parameter as FastAPI (pydantic) reads one, case
/// insensitive: true, t, yes, y, on, 1; false, f, no, n, off, 0.
pub const QUERY_BOOL_PATTERN: &str =
    "^(?:[Tt](?:[Rr][Uu][Ee])?|[Ff](?:[Aa][Ll][Ss][Ee])?|[Yy](?:[Ee][Ss])?|[Nn][Oo]?|[Oo](?:[Nn]|[Ff][Ff])|1|0)$";

fn query_bool_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(QUERY_BOOL_PATTERN))
        .default(Some(json!("false")))
}

/// The query parameters of the materialize endpoints (Feast's), read by
/// hand as FastAPI reads them (`materialize_query` in the crate root).
#[derive(Debug, Clone, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaterializeQuery {
    /// Answer 202 at once and run in the background.
    #[param(rename = "async", schema_with = query_bool_schema, example = "true")]
    pub run_async: bool,
    /// Accepted for Feast compatibility; this server never holds a view in
    /// Feast's MATERIALIZING state, so there is nothing to override.
    #[param(schema_with = query_bool_schema, example = "false")]
    pub force: bool,
}

/// The 202 answer of an `?async=true` materialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaterializeAccepted {
    #[schema(example = "accepted")]
    pub status: String,
    /// The views that run: those named, or every online view.
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
    /// Where: `body` or `query`, then the field.
    #[schema(example = json!(["body", "entities"]))]
    pub loc: Vec<String>,
    pub msg: String,
}

/// An error other than a validation failure: a JSON **string**. For
/// Feast's own errors (unknown view or service, push source, permission)
/// the string holds JSON, `{"module": "feast.errors", "class", "message"}`,
/// which Feast's SDK re-raises; otherwise it is the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(
    example = "{\"module\": \"feast.errors\", \"class\": \"FeatureViewNotFoundException\", \"message\": \"Feature view nope does not exist in project demo\"}"
)]
pub struct ErrorMessage(pub String);

/// A 422: a field failed validation (pydantic's shape), or Feast's
/// `PushSourceNotFoundException` (an `ErrorMessage`) from `/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Unprocessable {
    Validation(ValidationErrorBody),
    Feast(ErrorMessage),
}

/// FastAPI's `{"detail": "..."}`: 401 (no or invalid token) and 405.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Detail {
    #[schema(example = "Missing authentication token")]
    pub detail: String,
}

/// The body `null` (what Feast's handlers that return nothing answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonNull;

impl PartialSchema for JsonNull {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for JsonNull {}

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

/// Every route, generated from the handlers' annotations and the types
/// above; [`crate::docs::openapi`] adds what depends on the running server
/// (limits, auth) and the responses every protected route shares.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Larder feature server",
        description = "Feast 0.67-compatible online serving API. Every response body is JSON except `/metrics`. \
                       Errors other than validation failures are a JSON string; Feast's own errors (unknown \
                       view or service, push source, permission) are that string holding \
                       `{\"module\", \"class\", \"message\"}`. Validation failures (422) are FastAPI's \
                       `{\"detail\": [{\"type\", \"loc\", \"msg\"}]}`."
    ),
    paths(
        crate::http::online::get_online_features,
        crate::http::write::push,
        crate::http::write::write_to_online_store,
        crate::http::materialize::materialize,
        crate::http::materialize::materialize_incremental,
        crate::http::ops::health,
        crate::http::ops::metrics_text
    ),
    components(schemas(
        ValidationErrorBody,
        ValidationIssue,
        HealthStatus,
        ErrorMessage,
        Unprocessable,
        Detail
    ))
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
            crate::request::online_request(body(online.clone())).unwrap(),
            serde_json::from_value::<GetOnlineFeaturesRequest>(online).unwrap()
        );
        let push = serde_json::json!({"push_source_name": "p", "df": {"x": [1]}, "to": "online_and_offline"});
        let parsed = crate::request::push_request(body(push.clone())).unwrap();
        assert_eq!(parsed.to, PushMode::OnlineAndOffline);
        assert_eq!(parsed, serde_json::from_value::<PushRequest>(push).unwrap());
        let write = serde_json::json!({"feature_view_name": "v", "df": {"x": [1]}, "allow_registry_cache": false});
        assert_eq!(
            crate::request::write_request(body(write.clone())).unwrap(),
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
