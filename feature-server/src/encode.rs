//! Writes the get-online-features response straight into a byte buffer:
//! no `serde_json::Value` tree for the common scalar values.

use std::io::Write;

use larder_model::json::{timestamp_to_json, value_to_json};
use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;
use larder_serving::OnlineResponse;

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(x).as_bytes());
    } else if x.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if x > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match &v.val {
        None | Some(Val::NullVal(_)) => out.extend_from_slice(b"null"),
        Some(Val::Int64Val(i)) | Some(Val::UnixTimestampVal(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Val::Int32Val(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Val::DoubleVal(d)) => write_f64(out, *d),
        Some(Val::FloatVal(f)) => write_f64(out, f64::from(*f)),
        Some(Val::BoolVal(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Val::StringVal(s)) => write_str(out, s),
        _ => {
            let _ = serde_json::to_writer(&mut *out, &value_to_json(v));
        }
    }
}

/// Feast's response JSON as bytes.
pub fn response_json(resp: &OnlineResponse) -> Vec<u8> {
    let rows = resp.columns.first().map(|c| c.values.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(64 + resp.columns.len() * (48 + rows * 48));
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    for (i, c) in resp.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, &c.name);
    }
    out.extend_from_slice(b"]},\"results\":[");
    for (i, c) in resp.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":[");
        for (j, v) in c.values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_value(&mut out, v);
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for (j, s) in c.statuses.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(s.as_str().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        // Rows of one view usually share their event time: format each distinct time once.
        let mut last: Option<(i64, String)> = None;
        for (j, t) in c.event_ts.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            if *t == 0 {
                out.extend_from_slice(b"\"1970-01-01T00:00:00Z\"");
                continue;
            }
            if last.as_ref().is_none_or(|(lt, _)| lt != t) {
                last = Some((*t, timestamp_to_json(*t)));
            }
            out.push(b'"');
            if let Some((_, text)) = &last {
                out.extend_from_slice(text.as_bytes());
            }
            out.push(b'"');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::*;
    use larder_serving::{Column, FieldStatus};

    /// The hand-written encoder agrees with the generic one.
    #[test]
    fn same_as_serde() {
        let v = |val| Value { val: Some(val) };
        let resp = OnlineResponse {
            columns: vec![
                Column {
                    name: "driver_id".into(),
                    values: vec![v(Val::Int64Val(1001)), v(Val::Int64Val(9))],
                    statuses: vec![FieldStatus::Present; 2],
                    event_ts: vec![0, 0],
                },
                Column {
                    name: "x\"y".into(),
                    values: vec![v(Val::FloatVal(0.1)), Value::default()],
                    statuses: vec![FieldStatus::Present, FieldStatus::NotFound],
                    event_ts: vec![1_704_106_800_500_000_000, 0],
                },
                Column {
                    name: "l".into(),
                    values: vec![
                        v(Val::StringListVal(StringList { val: vec!["a".into()] })),
                        v(Val::DoubleVal(f64::NAN)),
                    ],
                    statuses: vec![FieldStatus::Present; 2],
                    event_ts: vec![1, 2],
                },
            ],
        };
        let ours: serde_json::Value = serde_json::from_slice(&response_json(&resp)).unwrap();
        assert_eq!(ours, resp.to_json());
    }
}
