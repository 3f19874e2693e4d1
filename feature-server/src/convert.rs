//! Request JSON → Feast values: entity columns (typed by their join keys)
//! and `df` tables of `/push` and `/write-to-online-store` (typed by the
//! view's schema). Conversion is strict: a float for an int64 key or a
//! string for a number is an error, never a silent truncation.

use base64::Engine as _;
use larder_model::rows::{EntityRow, RowBatch};
use larder_model::types::FeatureType;
use larder_protos::feast::core as fc;
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::*;
use serde_json::Value as Json;

use crate::error::ApiError;

fn type_name(t: i32) -> String {
    FeatureType::from_value_type(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|| format!("type {t}"))
}

fn int(j: &Json) -> Option<i64> {
    j.as_i64()
}

fn float(j: &Json) -> Option<f64> {
    match j {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s == "NaN" => Some(f64::NAN),
        Json::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Nanoseconds since the epoch from an RFC 3339 or naive ISO-8601 date or
/// date-time (naive = UTC) or from epoch seconds (a number); `None` when it
/// is none of these or lies outside the nanosecond range.
pub fn timestamp_nanos(j: &Json) -> Option<i64> {
    match parse_instant(j)? {
        Instant::Nanos(n) => Some(n),
        Instant::At(d) => d.timestamp_nanos_opt(),
    }
}

/// [`timestamp_nanos`], but an instant beyond the nanosecond range
/// (before 1677-09-21 or after 2262-04-11, e.g. year 1 or 9999) is clamped
/// to it instead of refused: right for a window bound, since no event time
/// lies outside.
pub fn timestamp_nanos_clamped(j: &Json) -> Option<i64> {
    match parse_instant(j)? {
        Instant::Nanos(n) => Some(n),
        Instant::At(d) => Some(
            d.timestamp_nanos_opt()
                .unwrap_or(if d.timestamp() < 0 { i64::MIN } else { i64::MAX }),
        ),
    }
}

enum Instant {
    /// Epoch seconds, already in nanoseconds (saturated).
    Nanos(i64),
    At(chrono::DateTime<chrono::Utc>),
}

fn parse_instant(j: &Json) -> Option<Instant> {
    match j {
        Json::Number(n) => n
            .as_i64()
            .map(|s| s.saturating_mul(1_000_000_000))
            .or_else(|| n.as_f64().map(|f| (f * 1e9) as i64))
            .map(Instant::Nanos),
        Json::String(s) => {
            let s = s.trim();
            if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(Instant::At(d.to_utc()));
            }
            for f in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S",
            ] {
                if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
                    return Some(Instant::At(n.and_utc()));
                }
            }
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|n| Instant::At(n.and_utc()))
        }
        _ => None,
    }
}

/// One JSON value as a Feast `Value` of type `t`; `Err` names what was wrong.
pub fn json_to_value(j: &Json, t: i32) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::default());
    }
    let bad = || format!("{j} is not a valid {}", type_name(t));
    let list = |j: &Json| j.as_array().ok_or_else(bad).cloned();
    let val = match t {
        1 => Val::BytesVal(
            base64::engine::general_purpose::STANDARD
                .decode(j.as_str().ok_or_else(bad)?)
                .map_err(|_| bad())?,
        ),
        2 => Val::StringVal(j.as_str().ok_or_else(bad)?.to_string()),
        3 => Val::Int32Val(int(j).and_then(|i| i32::try_from(i).ok()).ok_or_else(bad)?),
        4 => Val::Int64Val(int(j).ok_or_else(bad)?),
        5 => Val::DoubleVal(float(j).ok_or_else(bad)?),
        6 => Val::FloatVal(float(j).ok_or_else(bad)? as f32),
        7 => Val::BoolVal(j.as_bool().ok_or_else(bad)?),
        8 => Val::UnixTimestampVal(timestamp_nanos(j).ok_or_else(bad)?.div_euclid(1_000_000_000)),
        32 => Val::JsonVal(match j {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }),
        36 => Val::UuidVal(j.as_str().ok_or_else(bad)?.to_string()),
        37 => Val::TimeUuidVal(j.as_str().ok_or_else(bad)?.to_string()),
        44 => Val::DecimalVal(match j {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            _ => return Err(bad()),
        }),
        11..=18 | 33 | 38 | 39 | 45 => {
            let elem = match t {
                33 => 32,
                38 => 36,
                39 => 37,
                45 => 44,
                l => l - 10,
            };
            let items = list(j)?;
            let vals: Vec<Value> = items.iter().map(|x| json_to_value(x, elem)).collect::<Result<_, _>>()?;
            let pick = |v: &Value| v.val.clone();
            macro_rules! collect {
                ($variant:ident, $list:ident, $inner:ident) => {
                    Val::$variant($list {
                        val: vals
                            .iter()
                            .map(|v| match pick(v) {
                                Some(Val::$inner(x)) => Ok(x),
                                _ => Err(bad()),
                            })
                            .collect::<Result<_, _>>()?,
                    })
                };
            }
            match t {
                11 => collect!(BytesListVal, BytesList, BytesVal),
                12 => collect!(StringListVal, StringList, StringVal),
                13 => collect!(Int32ListVal, Int32List, Int32Val),
                14 => collect!(Int64ListVal, Int64List, Int64Val),
                15 => collect!(DoubleListVal, DoubleList, DoubleVal),
                16 => collect!(FloatListVal, FloatList, FloatVal),
                17 => collect!(BoolListVal, BoolList, BoolVal),
                18 => collect!(UnixTimestampListVal, Int64List, UnixTimestampVal),
                33 => collect!(JsonListVal, StringList, JsonVal),
                38 => collect!(UuidListVal, StringList, UuidVal),
                39 => collect!(TimeUuidListVal, StringList, TimeUuidVal),
                _ => collect!(DecimalListVal, StringList, DecimalVal),
            }
        }
        _ => return Err(format!("values of {} cannot be sent as JSON yet", type_name(t))),
    };
    Ok(Value { val: Some(val) })
}

/// A `df` table: column name → values, all the same length.
pub type Table = serde_json::Map<String, Json>;

fn column<'a>(df: &'a Table, name: &str) -> Result<Option<&'a Vec<Json>>, ApiError> {
    match df.get(name) {
        None => Ok(None),
        Some(Json::Array(a)) => Ok(Some(a)),
        Some(_) => Err(ApiError::validation(
            "list_type",
            &["df", name],
            "Input should be a valid list",
        )),
    }
}

/// The number of rows of a table of columns sent as the body's `field`
/// (`df`, `entities`): every column a list, all of one length. `columns`
/// names them in the error (`df columns`, `entity columns`).
pub fn table_rows(table: &Table, field: &str, columns: &str) -> Result<usize, ApiError> {
    let mut rows = None;
    for (k, v) in table {
        let Some(a) = v.as_array() else {
            return Err(ApiError::validation(
                "list_type",
                &[field, k],
                "Input should be a valid list",
            ));
        };
        match rows {
            None => rows = Some(a.len()),
            Some(n) if n != a.len() => {
                return Err(ApiError::bad_request(format!(
                    "{columns} must have the same length: {k} has {} values, expected {n}",
                    a.len()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(rows.unwrap_or(0))
}

/// Rows of `view` from a `df`. Join keys and features come from columns of
/// the same names (through the source's field mapping when one renames
/// them); the event time from `ts_columns` (the first present); the
/// created time from `created_columns` when present.
pub fn table_to_batch(
    df: &Table,
    view: &fc::FeatureView,
    ts_columns: &[&str],
    created_columns: &[&str],
) -> Result<RowBatch, ApiError> {
    let spec = view.spec.clone().unwrap_or_default();
    let rows = table_rows(df, "df", "df columns")?;
    let mapping = spec
        .batch_source
        .as_ref()
        .map(|b| b.field_mapping.clone())
        .unwrap_or_default();
    // df columns may use the source's names (mapping keys) or the view's names.
    let find = |name: &str| -> Result<Option<&Vec<Json>>, ApiError> {
        if let Some(c) = column(df, name)? {
            return Ok(Some(c));
        }
        match mapping.iter().find(|(_, to)| *to == name) {
            Some((from, _)) => column(df, from),
            None => Ok(None),
        }
    };
    let missing = |what: &str| ApiError::bad_request(format!("column {what} is missing from df (view {})", spec.name));
    let keys: Vec<(&fc::FeatureSpecV2, &Vec<Json>)> = spec
        .entity_columns
        .iter()
        .map(|c| find(&c.name)?.map(|col| (c, col)).ok_or_else(|| missing(&c.name)))
        .collect::<Result<_, _>>()?;
    let features: Vec<(&fc::FeatureSpecV2, &Vec<Json>)> = spec
        .features
        .iter()
        .map(|c| find(&c.name)?.map(|col| (c, col)).ok_or_else(|| missing(&c.name)))
        .collect::<Result<_, _>>()?;
    let mut ts_col = None;
    for c in ts_columns {
        if let Some(col) = find(c)? {
            ts_col = Some((*c, col));
            break;
        }
    }
    let (ts_name, ts_col) = ts_col.ok_or_else(|| missing(ts_columns.first().copied().unwrap_or("event_timestamp")))?;
    let mut created_col = None;
    for c in created_columns {
        if let Some(col) = find(c)? {
            created_col = Some((*c, col));
            break;
        }
    }
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let mut ek = EntityKey::default();
        for (c, col) in &keys {
            let v = json_to_value(&col[i], c.value_type)
                .map_err(|m| ApiError::bad_request(format!("{}[{i}]: {m}", c.name)))?;
            if v.val.is_none() {
                return Err(ApiError::bad_request(format!(
                    "{}[{i}]: join keys must not be null",
                    c.name
                )));
            }
            ek.join_keys.push(c.name.clone());
            ek.entity_values.push(v);
        }
        let entity_key =
            larder_model::entity_key::serialize_entity_key(&ek).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let event_ts = timestamp_nanos(&ts_col[i])
            .ok_or_else(|| ApiError::bad_request(format!("{ts_name}[{i}]: {} is not a timestamp", ts_col[i])))?;
        // The SDK's remote store posts a null `created` as the string "NaT"
        // (`pd.NaT.isoformat()`); pandas, and so Feast's server, read it as null.
        let created_ts = match created_col {
            Some((n, col)) if !col[i].is_null() && col[i].as_str() != Some("NaT") => Some(
                timestamp_nanos(&col[i])
                    .ok_or_else(|| ApiError::bad_request(format!("{n}[{i}]: {} is not a timestamp", col[i])))?,
            ),
            _ => None,
        };
        let values = features
            .iter()
            .map(|(c, col)| {
                json_to_value(&col[i], c.value_type).map_err(|m| ApiError::bad_request(format!("{}[{i}]: {m}", c.name)))
            })
            .collect::<Result<_, _>>()?;
        out.push(EntityRow {
            entity_key,
            event_ts,
            created_ts,
            values,
        });
    }
    Ok(RowBatch {
        features: spec.features.iter().map(|f| f.name.clone()).collect(),
        rows: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_conversion() {
        assert_eq!(json_to_value(&json!(1001), 4).unwrap().val, Some(Val::Int64Val(1001)));
        assert!(json_to_value(&json!(1001.5), 4).is_err(), "no silent truncation");
        assert!(json_to_value(&json!("1001"), 4).is_err());
        assert!(json_to_value(&json!(1), 2).is_err());
        assert!(json_to_value(&json!(3_000_000_000i64), 3).is_err());
        assert_eq!(json_to_value(&json!(null), 4).unwrap(), Value::default());
        assert_eq!(json_to_value(&json!(0.5), 6).unwrap().val, Some(Val::FloatVal(0.5)));
        assert_eq!(
            json_to_value(&json!([1, 2]), 14).unwrap().val,
            Some(Val::Int64ListVal(Int64List { val: vec![1, 2] }))
        );
        assert!(json_to_value(&json!([1, "x"]), 14).is_err());
        assert_eq!(
            json_to_value(&json!("2024-01-01T11:00:00"), 8).unwrap().val,
            Some(Val::UnixTimestampVal(1_704_106_800))
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp_nanos(&json!("2024-01-01T11:00:00Z")),
            Some(1_704_106_800_000_000_000)
        );
        assert_eq!(
            timestamp_nanos(&json!("2024-01-01 11:00:00")),
            Some(1_704_106_800_000_000_000)
        );
        assert_eq!(
            timestamp_nanos(&json!("2024-01-01T12:00:00+01:00")),
            Some(1_704_106_800_000_000_000)
        );
        assert_eq!(timestamp_nanos(&json!("nope")), None);
    }
}
