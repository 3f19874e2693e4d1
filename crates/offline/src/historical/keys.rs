//! Entity keys of join-key columns, encoded to bytes so that the entity
//! frame and the source compare by value whatever their Arrow types (an
//! Int32 id in the frame matches an Int64 id in the source).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Int64Type};
use larder_model::types::FeatureType;

/// A fast, non-cryptographic hasher for key bytes (FxHash's mixing step).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ (rest.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Distinct entity keys of the frame, numbered `0..len`.
pub(crate) type KeyIndex = HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>>;

/// The Arrow type join-key values of `t` are compared as; `None` for types
/// that cannot be join keys.
pub(crate) fn key_type(t: FeatureType) -> Option<DataType> {
    match t {
        FeatureType::INT64 | FeatureType::INT32 => Some(DataType::Int64),
        FeatureType::STRING => Some(DataType::Utf8),
        FeatureType::BYTES => Some(DataType::Binary),
        FeatureType::UNIX_TIMESTAMP => Some(DataType::Int64),
        _ => None,
    }
}

/// Whether a column of type `dt` holds values of join-key type `t`
/// (integers for integer keys, text for string keys, ...).
pub(crate) fn key_compatible(t: FeatureType, dt: &DataType) -> bool {
    use DataType as D;
    let dt = match dt {
        D::Dictionary(_, v) => v.as_ref(),
        other => other,
    };
    match t {
        FeatureType::INT64 | FeatureType::INT32 => matches!(
            dt,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64
        ),
        FeatureType::STRING => matches!(dt, D::Utf8 | D::LargeUtf8 | D::Utf8View),
        FeatureType::BYTES => matches!(dt, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)),
        FeatureType::UNIX_TIMESTAMP => matches!(dt, D::Timestamp(..) | D::Date32 | D::Date64),
        _ => false,
    }
}

/// Join-key columns cast to their comparison types, read row by row into
/// key bytes.
pub(crate) struct KeyColumns {
    columns: Vec<KeyColumn>,
}

enum KeyColumn {
    Int(ArrayRef),
    Text(ArrayRef),
    Bytes(ArrayRef),
    /// The implicit `__dummy_id` key of entityless views: always `""`.
    Empty,
}

impl KeyColumns {
    /// `columns[i]`: the values of key `i` with its declared type, or
    /// `None` for the implicit empty key. Errors are cast failures.
    pub(crate) fn new(columns: &[(Option<&ArrayRef>, FeatureType)]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(columns.len());
        for (array, t) in columns {
            let Some(array) = array else {
                out.push(KeyColumn::Empty);
                continue;
            };
            let target = key_type(*t).ok_or_else(|| format!("type {t} cannot be a join key"))?;
            if *t == FeatureType::UNIX_TIMESTAMP {
                // Instants compare in ns, whatever the columns' units.
                let ns: ArrayRef = Arc::new(Int64Array::from(super::time::nanos(array)?));
                out.push(KeyColumn::Int(ns));
                continue;
            }
            let array = crate::arrow_col::undictionary(array)?;
            let cast = arrow::compute::cast(&array, &target).map_err(|e| e.to_string())?;
            out.push(match *t {
                FeatureType::STRING => KeyColumn::Text(cast),
                FeatureType::BYTES => KeyColumn::Bytes(cast),
                _ => KeyColumn::Int(cast),
            });
        }
        Ok(KeyColumns { columns: out })
    }

    /// Row `i`'s key values in PostgreSQL's COPY text format, each
    /// preceded by a tab; `false` when a key value is null.
    pub(crate) fn copy_text(&self, i: usize, out: &mut String) -> bool {
        use std::fmt::Write;
        for c in &self.columns {
            match c {
                KeyColumn::Int(a) | KeyColumn::Text(a) | KeyColumn::Bytes(a) if a.is_null(i) => return false,
                KeyColumn::Int(a) => {
                    let _ = write!(out, "\t{}", a.as_primitive::<Int64Type>().value(i));
                }
                KeyColumn::Text(a) => {
                    out.push('\t');
                    copy_escape(a.as_string::<i32>().value(i), out);
                }
                KeyColumn::Bytes(a) => {
                    out.push_str("\t\\\\x");
                    for b in a.as_binary::<i32>().value(i) {
                        let _ = write!(out, "{b:02x}");
                    }
                }
                KeyColumn::Empty => {}
            }
        }
        true
    }

    /// Row `i`'s key bytes, written into `buf` (cleared first); `false`
    /// when a key value is null.
    #[inline]
    pub(crate) fn encode(&self, i: usize, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        for c in &self.columns {
            match c {
                KeyColumn::Int(a) => {
                    if a.is_null(i) {
                        return false;
                    }
                    buf.extend_from_slice(&a.as_primitive::<Int64Type>().value(i).to_le_bytes());
                }
                KeyColumn::Text(a) => {
                    if a.is_null(i) {
                        return false;
                    }
                    let v = a.as_string::<i32>().value(i).as_bytes();
                    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    buf.extend_from_slice(v);
                }
                KeyColumn::Bytes(a) => {
                    if a.is_null(i) {
                        return false;
                    }
                    let v = a.as_binary::<i32>().value(i);
                    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    buf.extend_from_slice(v);
                }
                KeyColumn::Empty => buf.extend_from_slice(&0u32.to_le_bytes()),
            }
        }
        true
    }
}

/// Text in PostgreSQL's COPY text format: backslash, tab, newline and
/// carriage return escaped.
pub(crate) fn copy_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, LargeStringArray, StringArray};

    use super::*;

    fn keys(cols: &[(Option<&ArrayRef>, FeatureType)], rows: usize) -> Vec<Option<Vec<u8>>> {
        let k = KeyColumns::new(cols).unwrap();
        let mut buf = Vec::new();
        (0..rows).map(|i| k.encode(i, &mut buf).then(|| buf.clone())).collect()
    }

    #[test]
    fn values_compare_across_arrow_types() {
        let i32s: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        let i64s: ArrayRef = Arc::new(Int64Array::from(vec![7, 8]));
        assert_eq!(
            keys(&[(Some(&i32s), FeatureType::INT64)], 2),
            vec![keys(&[(Some(&i64s), FeatureType::INT64)], 1)[0].clone(), None]
        );
        let small: ArrayRef = Arc::new(StringArray::from(vec!["a", "bc"]));
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["a", "bc"]));
        assert_eq!(
            keys(&[(Some(&small), FeatureType::STRING)], 2),
            keys(&[(Some(&large), FeatureType::STRING)], 2)
        );
    }

    #[test]
    fn composite_keys_cannot_collide_by_concatenation() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["ab", "a"]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["c", "bc"]));
        let k = keys(&[(Some(&a), FeatureType::STRING), (Some(&b), FeatureType::STRING)], 2);
        assert_ne!(k[0], k[1]);
    }

    #[test]
    fn key_types_are_checked() {
        assert!(key_compatible(FeatureType::INT64, &DataType::Int32));
        assert!(!key_compatible(FeatureType::INT64, &DataType::Utf8));
        assert!(!key_compatible(FeatureType::STRING, &DataType::Int64));
        assert!(key_type(FeatureType::FLOAT).is_none());
    }
}
