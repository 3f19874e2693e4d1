//! Feast's JSON forms of values and timestamps (feast-compat.md §7), shared
//! by the CLI and the feature server.

use base64::Engine as _;
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{RepeatedValue, Value};
use serde_json::{Map, Number, Value as Json};

use crate::types::FeatureType;

fn float(x: f64) -> Json {
    if x.is_nan() {
        Json::String("NaN".into())
    } else if x.is_infinite() {
        Json::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(x).map(Json::Number).unwrap_or(Json::Null)
    }
}

fn b64(b: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(b))
}

fn repeated(r: &RepeatedValue) -> Json {
    Json::Array(r.val.iter().map(value_to_json).collect())
}

/// A `Value` as Feast's HTTP server writes it: numbers for ints, floats
/// widened to f64, base64 bytes, arrays for lists and sets, null when unset.
pub fn value_to_json(v: &Value) -> Json {
    let Some(val) = &v.val else { return Json::Null };
    match val {
        Val::BytesVal(b) => b64(b),
        Val::StringVal(s) | Val::JsonVal(s) | Val::UuidVal(s) | Val::TimeUuidVal(s) | Val::DecimalVal(s) => {
            Json::String(s.clone())
        }
        Val::Int32Val(i) => Json::from(*i),
        Val::Int64Val(i) | Val::UnixTimestampVal(i) => Json::from(*i),
        Val::DoubleVal(d) => float(*d),
        Val::FloatVal(f) => float(f64::from(*f)),
        Val::BoolVal(b) => Json::Bool(*b),
        Val::NullVal(_) => Json::Null,
        Val::BytesListVal(l) => Json::Array(l.val.iter().map(|b| b64(b)).collect()),
        Val::BytesSetVal(l) => Json::Array(l.val.iter().map(|b| b64(b)).collect()),
        Val::StringListVal(l)
        | Val::JsonListVal(l)
        | Val::UuidListVal(l)
        | Val::TimeUuidListVal(l)
        | Val::DecimalListVal(l) => Json::Array(l.val.iter().cloned().map(Json::String).collect()),
        Val::StringSetVal(l) | Val::UuidSetVal(l) | Val::TimeUuidSetVal(l) | Val::DecimalSetVal(l) => {
            Json::Array(l.val.iter().cloned().map(Json::String).collect())
        }
        Val::Int32ListVal(l) => Json::Array(l.val.iter().map(|i| Json::from(*i)).collect()),
        Val::Int32SetVal(l) => Json::Array(l.val.iter().map(|i| Json::from(*i)).collect()),
        Val::Int64ListVal(l) | Val::UnixTimestampListVal(l) => {
            Json::Array(l.val.iter().map(|i| Json::from(*i)).collect())
        }
        Val::Int64SetVal(l) | Val::UnixTimestampSetVal(l) => {
            Json::Array(l.val.iter().map(|i| Json::from(*i)).collect())
        }
        Val::DoubleListVal(l) => Json::Array(l.val.iter().map(|d| float(*d)).collect()),
        Val::DoubleSetVal(l) => Json::Array(l.val.iter().map(|d| float(*d)).collect()),
        Val::FloatListVal(l) => Json::Array(l.val.iter().map(|f| float(f64::from(*f))).collect()),
        Val::FloatSetVal(l) => Json::Array(l.val.iter().map(|f| float(f64::from(*f))).collect()),
        Val::BoolListVal(l) => Json::Array(l.val.iter().map(|b| Json::Bool(*b)).collect()),
        Val::BoolSetVal(l) => Json::Array(l.val.iter().map(|b| Json::Bool(*b)).collect()),
        Val::MapVal(m) | Val::StructVal(m) => Json::Object(
            m.val
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Val::MapListVal(l) | Val::StructListVal(l) => Json::Array(
            l.val
                .iter()
                .map(|m| Json::Object(m.val.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect()))
                .collect(),
        ),
        Val::ListVal(r) | Val::SetVal(r) => repeated(r),
        Val::ZonedTimestampVal(z) => Json::from(z.unix_timestamp),
        Val::ScalarMapVal(_) => Json::Null,
    }
}

/// RFC 3339 UTC with `Z`: no fraction when whole seconds, else 3, 6 or 9 digits.
pub fn timestamp_to_json(ns: i64) -> String {
    let mut out = String::with_capacity(30);
    write_timestamp(&mut out, ns);
    out
}

/// [`timestamp_to_json`] into a buffer. Every response carries one per
/// value, so this avoids chrono's format-string interpretation.
pub fn write_timestamp(out: &mut String, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return out.push_str("1970-01-01T00:00:00Z");
    }
    push_digits(out, y as u32, 4);
    out.push('-');
    push_digits(out, m, 2);
    out.push('-');
    push_digits(out, d, 2);
    out.push('T');
    push_digits(out, sod / 3600, 2);
    out.push(':');
    push_digits(out, sod / 60 % 60, 2);
    out.push(':');
    push_digits(out, sod % 60, 2);
    let (fraction, width) = if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if nanos != 0 {
        out.push('.');
        push_digits(out, fraction, width);
    }
    out.push('Z');
}

/// `n` as exactly `width` decimal digits (zero-padded; `width` ≤ 10).
fn push_digits(out: &mut String, n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut n = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(buf[..width].iter().map(|&b| char::from(b)));
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An entity-key value from text (CLI `--entity driver_id=1001`), typed by the join key.
pub fn parse_key_value(s: &str, t: FeatureType) -> Result<Value, String> {
    let val = match t.value_type() {
        2 => Val::StringVal(s.to_string()),
        3 => Val::Int32Val(s.trim().parse().map_err(|_| format!("{s:?} is not an Int32"))?),
        4 => Val::Int64Val(s.trim().parse().map_err(|_| format!("{s:?} is not an Int64"))?),
        8 => Val::UnixTimestampVal(s.trim().parse().map_err(|_| format!("{s:?} is not a Unix timestamp"))?),
        1 => Val::BytesVal(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| format!("{s:?} is not base64"))?,
        ),
        _ => return Err(format!("{t} cannot be a join key type")),
    };
    Ok(Value { val: Some(val) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::*;

    /// The hand-written formatter agrees with chrono over the whole i64
    /// nanosecond range (years 1677..2262).
    #[test]
    fn timestamps_match_chrono() {
        let chrono_fmt = |ns: i64| {
            let t = chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
                .unwrap();
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let n = t.timestamp_subsec_nanos();
            match n {
                0 => format!("{base}Z"),
                n if n % 1_000_000 == 0 => format!("{base}.{:03}Z", n / 1_000_000),
                n if n % 1_000 == 0 => format!("{base}.{:06}Z", n / 1_000),
                n => format!("{base}.{n:09}Z"),
            }
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut samples = vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MAX,
            951_782_400_000_000_000, // 2000-02-29
            1_704_106_800_500_000_000,
            1_704_106_800_000_001_000,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut ns = x as i64;
            // Also whole seconds and milliseconds, the common cases.
            match x % 3 {
                0 => ns = ns.div_euclid(1_000_000_000) * 1_000_000_000,
                1 => ns = ns.div_euclid(1_000_000) * 1_000_000,
                _ => {}
            }
            samples.push(ns);
        }
        for ns in samples {
            assert_eq!(timestamp_to_json(ns), chrono_fmt(ns), "{ns}");
        }
    }

    fn v(val: Val) -> Value {
        Value { val: Some(val) }
    }

    #[test]
    fn values() {
        assert_eq!(value_to_json(&v(Val::Int64Val(1001))), serde_json::json!(1001));
        assert_eq!(
            value_to_json(&v(Val::FloatVal(0.1))),
            serde_json::json!(0.10000000149011612)
        );
        assert_eq!(value_to_json(&v(Val::DoubleVal(f64::NAN))), serde_json::json!("NaN"));
        assert_eq!(
            value_to_json(&v(Val::BytesVal(b"hi".to_vec()))),
            serde_json::json!("aGk=")
        );
        assert_eq!(
            value_to_json(&v(Val::BoolListVal(BoolList { val: vec![true] }))),
            serde_json::json!([true])
        );
        assert_eq!(value_to_json(&Value { val: None }), Json::Null);
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_to_json(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp_to_json(1_704_106_800_000_000_000), "2024-01-01T11:00:00Z");
        assert_eq!(timestamp_to_json(1_704_106_800_500_000_000), "2024-01-01T11:00:00.500Z");
        assert_eq!(
            timestamp_to_json(1_704_106_800_000_001_000),
            "2024-01-01T11:00:00.000001Z"
        );
        assert_eq!(
            timestamp_to_json(1_704_106_800_000_000_001),
            "2024-01-01T11:00:00.000000001Z"
        );
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("1001", FeatureType::INT64).unwrap(),
            v(Val::Int64Val(1001))
        );
        assert!(parse_key_value("1.5", FeatureType::INT64).is_err());
        assert!(parse_key_value("x", FeatureType::INT32).is_err());
        assert_eq!(
            parse_key_value("abc", FeatureType::STRING).unwrap(),
            v(Val::StringVal("abc".into()))
        );
    }
}
