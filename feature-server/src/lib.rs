//! Larder's feature server: Feast 0.67's HTTP serving API
//! (feast-compat.md §7) over the Larder registry (read through the TTL
//! cache) and any online store.
//!
//! Feature references are resolved once per registry version (a plan
//! cache), every view of a request is read with one batched call and views
//! are read concurrently, and the response is written straight to bytes.

pub mod api;
pub mod authz;
pub mod convert;
pub mod docs;
pub mod encode;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod run;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use larder_auth::{Action, Resource, ResourceType, User};
use larder_materialize::{Materializer, Quiet};
use larder_model::feast::{FeastKind, FeastObject};
use larder_online::{OnlineStore, ViewSchema};
use larder_protos::feast::core as fc;
use larder_protos::feast::types::Value;
use larder_registry::Registry;
use larder_registry::cache::{CacheHealth, CachedRegistry};
use larder_serving::Plan;
use serde_json::{Value as Json, json};

use crate::error::ApiError;

/// Request limits; every one is configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_entities: usize,
    pub max_features: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_entities: 10_000,
            max_features: 1_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct AppState {
    pub registry: Arc<CachedRegistry>,
    pub online: Arc<dyn OnlineStore>,
    /// Label for metrics (`sqlite`, `redis`, …).
    pub store_kind: String,
    pub project: String,
    pub limits: Limits,
    pub postgres_url: Option<String>,
    pub metrics: metrics::Metrics,
    /// Who may call (`no_auth` unless configured).
    pub auth: Arc<larder_auth::Auth>,
    permissions: larder_auth::ProjectPermissions,
    plans: PlanCache,
}

/// Most resolved plans kept: enough for every feature list a fleet of
/// clients normally sends, small enough that clients sending ever new
/// lists cannot grow the server (least recently used plans go first).
pub const PLAN_CACHE_CAPACITY: usize = 512;

/// Longer keys (huge feature lists) are resolved per request, not cached,
/// so the cache's memory stays bounded too.
const MAX_PLAN_KEY_BYTES: usize = 16 * 1024;

/// Resolved plans for one registry snapshot, keyed by
/// [`larder_serving::plan_key`]. The snapshot's generation, never its
/// address, says whether a plan is still valid: a freed snapshot's memory
/// can be reused by the next one.
struct PlanCache {
    inner: std::sync::RwLock<PlanMap>,
    /// Logical clock for least-recently-used eviction; hits only read-lock the map.
    clock: AtomicU64,
}

#[derive(Default)]
struct PlanMap {
    generation: u64,
    plans: HashMap<String, CachedPlan>,
}

struct CachedPlan {
    plan: Arc<Plan>,
    used: AtomicU64,
}

impl PlanCache {
    fn new() -> Self {
        Self {
            inner: std::sync::RwLock::new(PlanMap::default()),
            clock: AtomicU64::new(0),
        }
    }

    fn get(&self, generation: u64, key: &str) -> Option<Arc<Plan>> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if map.generation != generation {
            return None;
        }
        let p = map.plans.get(key)?;
        p.used
            .store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(p.plan.clone())
    }

    fn insert(&self, generation: u64, key: String, plan: Arc<Plan>) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if generation < map.generation {
            // Built from a snapshot that has since been replaced.
            return;
        }
        if generation > map.generation {
            map.generation = generation;
            map.plans.clear();
        }
        if map.plans.len() >= PLAN_CACHE_CAPACITY
            && !map.plans.contains_key(&key)
            && let Some(oldest) = map
                .plans
                .iter()
                .min_by_key(|(_, p)| p.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
        {
            map.plans.remove(&oldest);
        }
        let used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed));
        map.plans.insert(key, CachedPlan { plan, used });
    }

    fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).plans.len()
    }
}

impl AppState {
    pub fn new(
        registry: Arc<CachedRegistry>,
        online: Arc<dyn OnlineStore>,
        store_kind: impl Into<String>,
        project: impl Into<String>,
        limits: Limits,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            registry,
            online,
            store_kind: store_kind.into(),
            project: project.into(),
            limits,
            postgres_url: None,
            metrics: metrics::Metrics::new()?,
            auth: Arc::new(larder_auth::Auth::disabled()),
            permissions: larder_auth::ProjectPermissions::default(),
            plans: PlanCache::new(),
        })
    }

    /// The plan for these features, resolved once per registry snapshot and
    /// always against the snapshot it is served with.
    #[tracing::instrument(name = "registry.plan", skip_all, fields(features = features.len(), service = service.unwrap_or_default()))]
    pub async fn plan(&self, features: &[String], service: Option<&str>) -> Result<Arc<Plan>, ApiError> {
        let snap = self.registry.snapshot_cached().await.map_err(ApiError::from)?;
        let generation = snap.generation();
        let key = larder_serving::plan_key(features, service).filter(|k| k.len() <= MAX_PLAN_KEY_BYTES);
        if let Some(k) = &key
            && let Some(p) = self.plans.get(generation, k)
        {
            return Ok(p);
        }
        let plan = Arc::new(larder_serving::plan_in(&snap, &self.project, features, service)?);
        if let Some(k) = key {
            self.plans.insert(generation, k, plan.clone());
        }
        Ok(plan)
    }

    /// READ_ONLINE on the feature service when one is asked for, else on
    /// every view the plan reads (Feast's `_get_features`).
    pub async fn authorize_plan(&self, user: &User, plan: &Plan, service: Option<&str>) -> Result<(), ApiError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let resources: Vec<Resource<'_>> = match service {
            Some(s) => vec![Resource::new(ResourceType::FeatureService, s)],
            None => plan
                .views
                .iter()
                .map(|v| Resource::new(ResourceType::FeatureView, view_name(&v.view)))
                .collect(),
        };
        self.authorize(user, &resources, &[Action::ReadOnline]).await
    }

    fn materializer(&self) -> Materializer {
        let registry: Arc<dyn Registry> = self.registry.clone();
        let mut m = Materializer::new(registry, self.online.clone(), self.project.clone());
        m.postgres_url = self.postgres_url.clone();
        m.recorder = Some(self.metrics.materialize.clone());
        m
    }
}

/// All routes, with limits, timeouts and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    // The document depends on this server's limits and auth only: built once.
    let doc = Arc::new(docs::openapi(&state.limits, state.auth.is_enabled()));
    Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/write-to-online-store", post(write_to_online_store))
        .route("/materialize", post(materialize))
        .route("/materialize-incremental", post(materialize_incremental))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
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
    resp
}

fn body_json(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<serde_json::Map<String, Json>, ApiError> {
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

fn opt_str(m: &serde_json::Map<String, Json>, key: &str) -> Result<Option<String>, ApiError> {
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

fn opt_bool(m: &serde_json::Map<String, Json>, key: &str, default: bool) -> Result<bool, ApiError> {
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

fn str_list(m: &serde_json::Map<String, Json>, key: &str) -> Result<Vec<String>, ApiError> {
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
fn take_table(m: &mut serde_json::Map<String, Json>, key: &str) -> Result<serde_json::Map<String, Json>, ApiError> {
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
fn online_request(mut m: serde_json::Map<String, Json>) -> Result<api::GetOnlineFeaturesRequest, ApiError> {
    Ok(api::GetOnlineFeaturesRequest {
        entities: take_table(&mut m, "entities")?,
        features: str_list(&m, "features")?,
        feature_service: opt_str(&m, "feature_service")?,
        full_feature_names: opt_bool(&m, "full_feature_names", false)?,
    })
}

fn push_request(mut m: serde_json::Map<String, Json>) -> Result<api::PushRequest, ApiError> {
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
                format!(
                    "Input should be 'online' (Feast's 'offline' and 'online_and_offline' need \
                     offline-store writes, which this server does not have), got {other:?}"
                ),
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

fn write_request(mut m: serde_json::Map<String, Json>) -> Result<api::WriteToOnlineStoreRequest, ApiError> {
    let feature_view_name = opt_str(&m, "feature_view_name")?
        .ok_or_else(|| ApiError::validation("missing", &["feature_view_name"], "Field required"))?;
    Ok(api::WriteToOnlineStoreRequest {
        feature_view_name,
        df: take_table(&mut m, "df")?,
        allow_registry_cache: opt_bool(&m, "allow_registry_cache", true)?,
    })
}

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
async fn get_online_features(
    State(state): State<Arc<AppState>>,
    Extension(authz::Caller(user)): Extension<authz::Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match online_features(&state, &user, body).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn online_features(
    state: &AppState,
    user: &User,
    body: Result<Bytes, BytesRejection>,
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
    let mut rows = None;
    for (k, v) in &entities {
        let a = v
            .as_array()
            .ok_or_else(|| ApiError::validation("list_type", &["entities", k], "Input should be a valid list"))?;
        match rows {
            None => rows = Some(a.len()),
            Some(n) if n != a.len() => {
                return Err(ApiError::bad_request(format!(
                    "entity columns must have the same length: {k} has {} values, expected {n}",
                    a.len()
                )));
            }
            _ => {}
        }
    }
    let rows = rows.unwrap_or(0);
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
    metrics::note_features(feature_count, plan.views.len());
    state.metrics.online_request(rows);
    let mut cols = Vec::with_capacity(entities.len());
    for (k, v) in &entities {
        let vals = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let converted: Vec<Value> = match plan.key_type(k) {
            Some(t) => vals
                .iter()
                .enumerate()
                .map(|(i, j)| match convert::json_to_value(j, t) {
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

fn view_name(v: &fc::FeatureView) -> &str {
    v.spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default()
}

async fn views(state: &AppState, allow_cache: bool) -> Result<Vec<fc::FeatureView>, ApiError> {
    let objs = if allow_cache {
        state.registry.list(&state.project, FeastKind::FeatureView).await
    } else {
        state
            .registry
            .uncached()
            .list(&state.project, FeastKind::FeatureView)
            .await
    }
    .map_err(ApiError::from)?;
    Ok(objs
        .into_iter()
        .filter_map(|o| match o {
            FeastObject::FeatureView(v) => Some(v),
            _ => None,
        })
        .collect())
}

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
async fn push(
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
    let targets: Vec<fc::FeatureView> = views(&state, allow_cache)
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
        let ts_cols: Vec<&str> = [ts.as_str(), "event_timestamp"]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let created_cols: Vec<&str> = [created.as_str()].into_iter().filter(|c| !c.is_empty()).collect();
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
async fn write_to_online_store(
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
        let view = views(&state, allow_cache)
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
        let ts_cols: Vec<&str> = ["event_timestamp", batch_src.timestamp_field.as_str()]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let created_cols: Vec<&str> = ["created", batch_src.created_timestamp_column.as_str()]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let batch = convert::table_to_batch(&df, &view, &ts_cols, &created_cols)?;
        write_rows(&state, &view, &batch).await
    };
    match run.await {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], "null").into_response(),
        Err(e) => e.into_response(),
    }
}

use api::MaterializeQuery;

/// A window bound: `None` when absent or null. Instants beyond the
/// nanosecond range are clamped to it (no event time lies outside).
fn time_field(value: Option<&Json>, key: &str) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(j) => convert::timestamp_nanos_clamped(j)
            .map(Some)
            .ok_or_else(|| ApiError::validation("datetime_parsing", &[key], format!("{j} is not a timestamp"))),
    }
}

/// A boolean query parameter as FastAPI (pydantic) reads one
/// ([`api::QUERY_BOOL_PATTERN`]).
fn query_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// `?async=` and `?force=` as Feast's FastAPI reads them: the last value of
/// each counts, anything else in the query is ignored, and a value that is
/// no boolean is a 422 in FastAPI's shape (`loc: ["query", name]`).
fn materialize_query(
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

/// The views a materialization runs (Feast's
/// `_get_feature_views_to_materialize`): those named, each of which must
/// exist (404) and be online (400), or every online view when none is.
async fn materialize_targets(state: &AppState, names: &[String]) -> Result<Vec<String>, ApiError> {
    let all = views(state, true).await?;
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
    Ok(([(header::CONTENT_TYPE, "application/json")], "null").into_response())
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
async fn materialize(
    State(state): State<Arc<AppState>>,
    Extension(authz::Caller(user)): Extension<authz::Caller>,
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
    run_materialize(state, &user, q, req.feature_views, Some((start, end)), end).await
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
async fn materialize_incremental(
    State(state): State<Arc<AppState>>,
    Extension(authz::Caller(user)): Extension<authz::Caller>,
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
    run_materialize(state, &user, q, req.feature_views, None, end).await
}

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
async fn health(State(state): State<Arc<AppState>>) -> Response {
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
async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
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
