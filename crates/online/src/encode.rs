//! Byte-level details Feast's stores rely on: Python's `str()` of values
//! (`value_text`), MurmurHash3 field names (Redis), timestamps.

use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;

/// `value_text` as Feast writes it: Python `str()` of string, int, float,
/// double and bool values; `None` for everything else.
pub fn value_text(v: &Value) -> Option<String> {
    match v.val.as_ref()? {
        Val::StringVal(s) => Some(s.clone()),
        Val::Int32Val(i) => Some(i.to_string()),
        Val::Int64Val(i) => Some(i.to_string()),
        Val::FloatVal(f) => Some(python_float_repr(f64::from(*f))),
        Val::DoubleVal(d) => Some(python_float_repr(*d)),
        Val::BoolVal(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// Python's `repr(float)`: shortest round-trip digits (ties to even, as
/// Python does; ryu agrees), `1.0` for integral values, scientific
/// notation below 1e-4 and from 1e16.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x.abs());
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading_zeros = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    // Value = d.ddd × 10^exp10.
    let exp10 = exp + int_part.len() as i32 - 1 - leading_zeros as i32;
    let sign = if x < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp10) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e_sign = if exp10 < 0 { "-" } else { "+" };
        return format!("{sign}{first}{frac}e{e_sign}{:02}", exp10.abs());
    }
    let point = exp10 + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{sign}{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{sign}{a}.{b}")
    }
}

/// MurmurHash3 x86_32 (seed 0), as Python's `mmh3.hash(..., signed=False)`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k: u32 = 0;
    if tail.len() >= 3 {
        k ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        k ^= u32::from(tail[0]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The Redis hash field of a feature: LE bytes of murmur3("view:feature").
pub fn redis_field(view: &str, feature: &str) -> [u8; 4] {
    murmur3_32(format!("{view}:{feature}").as_bytes(), 0).to_le_bytes()
}

/// Nanoseconds → protobuf Timestamp.
pub fn timestamp_from_nanos(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn nanos_from_timestamp(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(t.nanos))
}

pub fn datetime_from_nanos(ns: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(ns)
}

pub fn nanos_from_datetime(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or_else(|| t.timestamp().saturating_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn python_reprs() {
        assert_eq!(python_float_repr(0.5), "0.5");
        assert_eq!(python_float_repr(1.0), "1.0");
        assert_eq!(python_float_repr(f64::from(0.1f32)), "0.10000000149011612");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1234.5), "1234.5");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(0.00001), "1e-05");
        assert_eq!(python_float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(python_float_repr(123456789012345.0), "123456789012345.0");
        assert_eq!(python_float_repr(1.5e300), "1.5e+300");
        // An exact tie between two shortest decimals: Python rounds to even.
        assert_eq!(
            python_float_repr(f64::from(f32::from_bits(0x3F0B_B280))),
            "0.5456924438476562"
        );
        assert_eq!(python_float_repr(5e-324), "5e-324");
        assert_eq!(python_float_repr(123.0), "123.0");
        assert_eq!(python_float_repr(-0.001), "-0.001");
        let v = |val| Value { val: Some(val) };
        assert_eq!(value_text(&v(Val::BoolVal(true))).as_deref(), Some("True"));
        assert_eq!(value_text(&v(Val::Int64Val(10))).as_deref(), Some("10"));
        assert_eq!(value_text(&v(Val::FloatVal(0.5))).as_deref(), Some("0.5"));
        assert_eq!(value_text(&v(Val::BytesVal(vec![1]))), None);
    }

    /// feast-compat.md §6.3 examples.
    #[test]
    fn redis_field_hashes() {
        assert_eq!(
            redis_field("driver_hourly_stats", "conv_rate"),
            [0x61, 0x60, 0xe3, 0xda]
        );
        assert_eq!(redis_field("driver_hourly_stats", "acc_rate"), [0xfa, 0x5e, 0x58, 0xad]);
        assert_eq!(
            redis_field("driver_hourly_stats", "avg_daily_trips"),
            [0x18, 0xa5, 0xe5, 0xa3]
        );
    }

    #[test]
    fn timestamps() {
        let ns = 1_704_106_800_500_000_000i64;
        let t = timestamp_from_nanos(ns);
        assert_eq!(hex::encode(t.encode_to_vec()), "08b0b6caac061080cab5ee01");
        assert_eq!(nanos_from_timestamp(&t), ns);
        assert_eq!(nanos_from_datetime(&datetime_from_nanos(ns)), ns);
        assert_eq!(timestamp_from_nanos(-1).seconds, -1);
    }
}
