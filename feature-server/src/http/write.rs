//! Writes: `/push` (online store, offline store or both) and
//! `/write-to-online-store`.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use larder_auth::{Action, Resource, ResourceType};
use larder_model::types::FeatureType;
use larder_offline::SourceSpec;
use larder_online::ViewSchema;
use larder_protos::feast::core as fc;
use serde_json::Value as Json;

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

/// Write rows through a push source to every view it feeds: to the online
/// store, the push source's batch source (the offline store), or both.
#[utoipa::path(
    post,
    path = "/push",
    request_body = api::PushRequest,
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "`df` does not fit the views the source feeds or, for the offline store, the batch source's columns: a column is missing, extra, has the wrong type or length, or a value does not fit; nothing was written", body = api::ErrorMessage),
        (status = 422, description = "Unknown push source (Feast's `PushSourceNotFoundException`, a JSON string), or a field failed validation", body = api::Unprocessable),
    )
)]
pub async fn push(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<authz::Caller>,
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
    state.authorize(caller.user(), &resources, actions).await?;
    if targets.is_empty() {
        return Err(ApiError::Feast {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            class: "PushSourceNotFoundException",
            message: format!("Unable to find push source '{name}'."),
        });
    }
    let online = to != api::PushMode::Offline;
    let offline = to != api::PushMode::Online;
    // Convert (and check) every write first: bad rows fail the push before
    // anything is written anywhere.
    let mut batches = Vec::with_capacity(targets.len());
    if online {
        for v in &targets {
            let src = v.spec.as_ref().and_then(|s| s.stream_source.as_ref());
            let ts = src.map(|s| s.timestamp_field.clone()).unwrap_or_default();
            let created = src.map(|s| s.created_timestamp_column.clone()).unwrap_or_default();
            let ts_cols = named(&[ts.as_str(), "event_timestamp"]);
            let created_cols = named(&[created.as_str()]);
            batches.push(convert::table_to_batch(&df, v, &ts_cols, &created_cols)?);
        }
    }
    let offline_writes = if offline {
        let writes = offline_batches(&df, &targets, state.postgres_url.as_deref())?;
        for (source, batch) in &writes {
            let (source, batch) = (source.clone(), batch.clone());
            tokio::task::spawn_blocking(move || larder_offline::check_batch(&source, &batch))
                .await
                .map_err(|e| ApiError::internal(format!("offline check stopped: {e}")))?
                .map_err(offline_error)?;
        }
        writes
    } else {
        Vec::new()
    };
    // Feast's order: the online store, then the offline store.
    for (v, b) in targets.iter().zip(&batches) {
        write_rows(&state, v, b).await?;
    }
    for (source, batch) in offline_writes {
        let out = larder_offline::write_batch(&source, batch)
            .await
            .map_err(offline_error)?;
        tracing::debug!(source = %source.name, rows = out.rows, path = ?out.path, "pushed to the offline store");
    }
    let mode = match to {
        api::PushMode::Online => "online",
        api::PushMode::Offline => "offline",
        api::PushMode::OnlineAndOffline => "online_and_offline",
    };
    state.metrics.push(&name, mode);
    Ok(StatusCode::OK)
}

/// Rows that do not fit the source are the caller's (400, nothing was
/// written); an unreachable database is a 503; anything else (a source
/// that cannot be written, a failed file write) a 500.
fn offline_error(e: larder_offline::OfflineError) -> ApiError {
    use larder_offline::OfflineError as E;
    let message = format!("push to the offline store: {e}");
    match e {
        E::MissingColumn { .. } | E::WrongType { .. } | E::BadValue { .. } => ApiError::bad_request(message),
        E::Postgres { message: ref m, .. } if m.starts_with("cannot connect") => ApiError::unavailable(message),
        _ => ApiError::internal(message),
    }
}

/// What a column of the offline rows holds.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Key(FeatureType),
    Feature(FeatureType),
    EventTime,
    Created,
}

/// The rows a push appends to the offline store: per distinct batch source
/// of the views fed (normally one, the push source's), one Arrow batch
/// with columns named as in Feast: the views' join keys and features (typed
/// by their declarations), the event timestamp (the source's
/// `timestamp_field`, or `event_timestamp` in `df`), the created
/// timestamp when the source has one and `df` holds it, and every other
/// `df` column as sent (the source's files decide whether it belongs).
/// Feast writes the rows once per view; Larder once per batch source, so
/// a push source feeding two views does not get each row twice.
fn offline_batches(
    df: &convert::Table,
    targets: &[fc::FeatureView],
    postgres_url: Option<&str>,
) -> Result<Vec<(SourceSpec, RecordBatch)>, ApiError> {
    let rows = convert::table_rows(df, "df", "df columns")?;
    let mut groups: Vec<(SourceSpec, Vec<(String, Role)>)> = Vec::new();
    for v in targets {
        let spec = v.spec.clone().unwrap_or_default();
        let Some(src) = spec.stream_source.as_ref() else {
            continue;
        };
        let source = SourceSpec::from_feast(src, postgres_url)
            .map_err(|e| ApiError::internal(format!("push to the offline store: view {}: {e}", spec.name)))?;
        let i = match groups.iter().position(|(s, _)| *s == source) {
            Some(i) => i,
            None => {
                let mut cols = vec![(source.timestamp_field.clone(), Role::EventTime)];
                if let Some(c) = &source.created_timestamp_column {
                    cols.push((c.clone(), Role::Created));
                }
                groups.push((source, cols));
                groups.len() - 1
            }
        };
        let cols = &mut groups[i].1;
        let declared = spec
            .entity_columns
            .iter()
            .map(|c| (c, true))
            .chain(spec.features.iter().map(|c| (c, false)));
        for (c, key) in declared {
            let t = FeatureType::from_proto(c.value_type);
            let role = if key { Role::Key(t) } else { Role::Feature(t) };
            match cols.iter().find(|(n, _)| *n == c.name) {
                None => cols.push((c.name.clone(), role)),
                Some((_, r)) if matches!((r, role), (Role::Key(a) | Role::Feature(a), Role::Key(b) | Role::Feature(b)) if *a == b) =>
                    {}
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "column {} has different types or roles in the views push source {} feeds",
                        c.name, src.name
                    )));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (source, cols) in groups {
        let mut used: Vec<&str> = Vec::new();
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, role) in &cols {
            // df may use the view's name or the source's column name.
            let mut candidates = vec![name.as_str(), source.source_column(name)];
            if *role == Role::EventTime {
                candidates.push("event_timestamp");
            }
            let found = candidates.iter().find_map(|c| {
                df.get_key_value(*c)
                    .and_then(|(k, v)| v.as_array().map(|a| (k.as_str(), a)))
            });
            let Some((col_name, values)) = found else {
                if *role == Role::Created {
                    // Left out: the source's files decide whether it must be there.
                    continue;
                }
                return Err(ApiError::bad_request(format!(
                    "column {name} is missing from df (data source {})",
                    source.name
                )));
            };
            used.push(col_name);
            let bad = |i: usize, m: String| ApiError::bad_request(format!("{col_name}[{i}]: {m}"));
            let array = match role {
                Role::Key(t) | Role::Feature(t) => {
                    let mut vals = Vec::with_capacity(rows);
                    for (i, j) in values.iter().enumerate() {
                        let v = convert::json_to_value(j, t.value_type()).map_err(|m| bad(i, m))?;
                        if matches!(role, Role::Key(_)) && v.val.is_none() {
                            return Err(bad(i, "join keys must not be null".into()));
                        }
                        vals.push(v);
                    }
                    larder_offline::write::values_to_array(*t, &vals).map_err(|m| bad(0, m))?
                }
                Role::EventTime | Role::Created => {
                    let mut ns = Vec::with_capacity(rows);
                    for (i, j) in values.iter().enumerate() {
                        let null = j.is_null() || j.as_str() == Some("NaT");
                        if null && *role == Role::Created {
                            ns.push(None);
                            continue;
                        }
                        ns.push(Some(
                            convert::timestamp_nanos(j).ok_or_else(|| bad(i, format!("{j} is not a timestamp")))?,
                        ));
                    }
                    larder_offline::write::timestamps_to_array(&ns)
                }
            };
            fields.push(Field::new(name.as_str(), array.data_type().clone(), true));
            arrays.push(array);
        }
        // The rest of df, as sent.
        for (k, v) in df {
            if used.contains(&k.as_str()) || fields.iter().any(|f| f.name() == k) {
                continue;
            }
            let values = v.as_array().map(Vec::as_slice).unwrap_or_default();
            let array = infer_array(k, values)?;
            fields.push(Field::new(k.as_str(), array.data_type().clone(), true));
            arrays.push(array);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| ApiError::bad_request(format!("df: {e}")))?;
        out.push((source, batch));
    }
    Ok(out)
}

/// A `df` column no view declares, typed by its values: all null, all
/// booleans, all integers, all numbers or all strings.
fn infer_array(name: &str, values: &[Json]) -> Result<ArrayRef, ApiError> {
    use arrow::array::{BooleanArray, Float64Array, Int64Array, NullArray, StringArray};
    let present: Vec<&Json> = values.iter().filter(|v| !v.is_null()).collect();
    let all = |f: fn(&Json) -> bool| present.iter().all(|v| f(v));
    let array: ArrayRef = if present.is_empty() {
        Arc::new(NullArray::new(values.len()))
    } else if all(Json::is_boolean) {
        Arc::new(values.iter().map(Json::as_bool).collect::<BooleanArray>())
    } else if all(|v| v.as_i64().is_some()) {
        Arc::new(values.iter().map(Json::as_i64).collect::<Int64Array>())
    } else if all(Json::is_number) {
        Arc::new(values.iter().map(Json::as_f64).collect::<Float64Array>())
    } else if all(Json::is_string) {
        Arc::new(values.iter().map(Json::as_str).collect::<StringArray>())
    } else {
        return Err(ApiError::bad_request(format!(
            "column {name} is not a column of the views the push source feeds, and its values are not all of one \
             type (booleans, integers, numbers or strings)"
        )));
    };
    Ok(array)
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
    Extension(caller): Extension<authz::Caller>,
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
                caller.user(),
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
        Ok(()) => super::json_null(),
        Err(e) => e.into_response(),
    }
}
