//! Arrow arrays → Feast values and entity-key bytes.
//!
//! Type compatibility is checked once per file ([`compatible`]); the per-row
//! accessors then only fail on values (out of range, null list elements).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    Decimal256Array, FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeBinaryArray, LargeStringArray, StringArray, StringViewArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use larder_protos::feast::types::Value;
use larder_protos::feast::types::value::Val;

use crate::target::{self, Scalar, Target};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Whether a column of type `dt` can be read as `target`.
pub(crate) fn compatible(target: Target, dt: &DataType) -> bool {
    match (target, dt) {
        (_, DataType::Null) => true,
        (_, DataType::Dictionary(_, v)) => compatible(target, v),
        (Target::Scalar(s), dt) => scalar_compatible(s, dt),
        (Target::List(s), DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)) => {
            matches!(f.data_type(), DataType::Null) || scalar_compatible(s, f.data_type())
        }
        _ => false,
    }
}

fn scalar_compatible(s: Scalar, dt: &DataType) -> bool {
    use DataType as D;
    let int = matches!(
        dt,
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64
    );
    let text = matches!(dt, D::Utf8 | D::LargeUtf8 | D::Utf8View);
    match s {
        Scalar::Float | Scalar::Double => matches!(dt, D::Float32 | D::Float64),
        Scalar::Int32 | Scalar::Int64 => int,
        Scalar::Bool => matches!(dt, D::Boolean),
        Scalar::String | Scalar::Json => text,
        Scalar::Uuid | Scalar::TimeUuid => text || matches!(dt, D::FixedSizeBinary(16)),
        Scalar::Decimal => text || matches!(dt, D::Decimal128(..) | D::Decimal256(..)),
        Scalar::Bytes => matches!(dt, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)),
        Scalar::UnixTimestamp => {
            matches!(dt, D::Timestamp(..) | D::Date32 | D::Date64 | D::Int64 | D::Int32)
        }
    }
}

/// Whether a column of type `dt` can be the event or created timestamp.
pub(crate) fn timestamp_compatible(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, v) => timestamp_compatible(v),
        _ => matches!(dt, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64),
    }
}

/// Dictionary-encoded columns are decoded to their value type first.
pub(crate) fn undictionary(a: &ArrayRef) -> Result<ArrayRef, String> {
    match a.data_type() {
        DataType::Dictionary(_, v) => arrow::compute::cast(a, v).map_err(|e| e.to_string()),
        _ => Ok(a.clone()),
    }
}

/// Units of a timestamp type per second.
fn per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// A typed view of one arrow array.
enum Src<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Bin(&'a BinaryArray),
    LargeBin(&'a LargeBinaryArray),
    BinView(&'a BinaryViewArray),
    FixedBin(&'a FixedSizeBinaryArray),
    /// Timestamp values (any unit) and the number of units per second.
    Ts(&'a [i64], i64),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
    Dec128(&'a Decimal128Array),
    Dec256(&'a Decimal256Array),
    List(&'a [i32], Box<Col<'a>>),
    LargeList(&'a [i64], Box<Col<'a>>),
    FixedList(usize, Box<Col<'a>>),
}

/// An arrow array ready for row-wise reading.
pub(crate) struct Col<'a> {
    src: Src<'a>,
    nulls: Option<NullBuffer>,
}

fn internal(dt: &DataType) -> String {
    format!("internal error: unexpected arrow type {dt}")
}

impl<'a> Col<'a> {
    /// Wrap an array (not dictionary-encoded: see [`undictionary`]).
    pub(crate) fn new(a: &'a dyn Array) -> Result<Self, String> {
        let dt = a.data_type();
        let bad = || internal(dt);
        let src = match dt {
            DataType::Null => Src::Null,
            DataType::Boolean => Src::Bool(a.as_boolean_opt().ok_or_else(bad)?),
            DataType::Int8 => Src::I8(a.as_primitive_opt::<Int8Type>().ok_or_else(bad)?),
            DataType::Int16 => Src::I16(a.as_primitive_opt::<Int16Type>().ok_or_else(bad)?),
            DataType::Int32 => Src::I32(a.as_primitive_opt::<Int32Type>().ok_or_else(bad)?),
            DataType::Int64 => Src::I64(a.as_primitive_opt::<Int64Type>().ok_or_else(bad)?),
            DataType::UInt8 => Src::U8(a.as_primitive_opt::<UInt8Type>().ok_or_else(bad)?),
            DataType::UInt16 => Src::U16(a.as_primitive_opt::<UInt16Type>().ok_or_else(bad)?),
            DataType::UInt32 => Src::U32(a.as_primitive_opt::<UInt32Type>().ok_or_else(bad)?),
            DataType::UInt64 => Src::U64(a.as_primitive_opt::<UInt64Type>().ok_or_else(bad)?),
            DataType::Float32 => Src::F32(a.as_primitive_opt::<Float32Type>().ok_or_else(bad)?),
            DataType::Float64 => Src::F64(a.as_primitive_opt::<Float64Type>().ok_or_else(bad)?),
            DataType::Utf8 => Src::Utf8(a.as_string_opt::<i32>().ok_or_else(bad)?),
            DataType::LargeUtf8 => Src::LargeUtf8(a.as_string_opt::<i64>().ok_or_else(bad)?),
            DataType::Utf8View => Src::Utf8View(a.as_string_view_opt().ok_or_else(bad)?),
            DataType::Binary => Src::Bin(a.as_binary_opt::<i32>().ok_or_else(bad)?),
            DataType::LargeBinary => Src::LargeBin(a.as_binary_opt::<i64>().ok_or_else(bad)?),
            DataType::BinaryView => Src::BinView(a.as_binary_view_opt().ok_or_else(bad)?),
            DataType::FixedSizeBinary(_) => Src::FixedBin(a.as_fixed_size_binary_opt().ok_or_else(bad)?),
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => a.as_primitive_opt::<TimestampSecondType>().ok_or_else(bad)?.values(),
                    TimeUnit::Millisecond => a
                        .as_primitive_opt::<TimestampMillisecondType>()
                        .ok_or_else(bad)?
                        .values(),
                    TimeUnit::Microsecond => a
                        .as_primitive_opt::<TimestampMicrosecondType>()
                        .ok_or_else(bad)?
                        .values(),
                    TimeUnit::Nanosecond => a
                        .as_primitive_opt::<TimestampNanosecondType>()
                        .ok_or_else(bad)?
                        .values(),
                };
                Src::Ts(values, per_second(unit))
            }
            DataType::Date32 => Src::Date32(a.as_primitive_opt::<Date32Type>().ok_or_else(bad)?),
            DataType::Date64 => Src::Date64(a.as_primitive_opt::<Date64Type>().ok_or_else(bad)?),
            DataType::Decimal128(..) => Src::Dec128(a.as_primitive_opt::<Decimal128Type>().ok_or_else(bad)?),
            DataType::Decimal256(..) => Src::Dec256(a.as_primitive_opt::<Decimal256Type>().ok_or_else(bad)?),
            DataType::List(_) => {
                let l = a.as_list_opt::<i32>().ok_or_else(bad)?;
                Src::List(l.value_offsets(), Box::new(Col::new(l.values().as_ref())?))
            }
            DataType::LargeList(_) => {
                let l = a.as_list_opt::<i64>().ok_or_else(bad)?;
                Src::LargeList(l.value_offsets(), Box::new(Col::new(l.values().as_ref())?))
            }
            DataType::FixedSizeList(_, n) => {
                let l = a.as_fixed_size_list_opt().ok_or_else(bad)?;
                let n = usize::try_from(*n).map_err(|_| bad())?;
                Src::FixedList(n, Box::new(Col::new(l.values().as_ref())?))
            }
            _ => return Err(format!("arrow type {dt} is not supported")),
        };
        Ok(Col {
            src,
            nulls: a.logical_nulls(),
        })
    }

    #[inline]
    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }

    fn unexpected(&self, what: &str) -> String {
        format!("internal error: column cannot be read as {what}")
    }

    fn f64_at(&self, i: usize) -> Result<f64, String> {
        match &self.src {
            Src::F64(a) => Ok(a.value(i)),
            Src::F32(a) => Ok(f64::from(a.value(i))),
            _ => Err(self.unexpected("a float")),
        }
    }

    fn f32_at(&self, i: usize) -> Result<f32, String> {
        match &self.src {
            Src::F32(a) => Ok(a.value(i)),
            Src::F64(a) => Ok(a.value(i) as f32),
            _ => Err(self.unexpected("a float")),
        }
    }

    fn i64_at(&self, i: usize) -> Result<i64, String> {
        Ok(match &self.src {
            Src::I64(a) => a.value(i),
            Src::I32(a) => i64::from(a.value(i)),
            Src::I16(a) => i64::from(a.value(i)),
            Src::I8(a) => i64::from(a.value(i)),
            Src::U8(a) => i64::from(a.value(i)),
            Src::U16(a) => i64::from(a.value(i)),
            Src::U32(a) => i64::from(a.value(i)),
            Src::U64(a) => {
                let v = a.value(i);
                i64::try_from(v).map_err(|_| format!("value {v} does not fit in Int64"))?
            }
            _ => return Err(self.unexpected("an integer")),
        })
    }

    fn i32_at(&self, i: usize) -> Result<i32, String> {
        match &self.src {
            Src::I32(a) => Ok(a.value(i)),
            Src::I16(a) => Ok(i32::from(a.value(i))),
            Src::I8(a) => Ok(i32::from(a.value(i))),
            Src::U8(a) => Ok(i32::from(a.value(i))),
            Src::U16(a) => Ok(i32::from(a.value(i))),
            _ => {
                let v = self.i64_at(i)?;
                i32::try_from(v).map_err(|_| format!("value {v} does not fit in Int32"))
            }
        }
    }

    fn bool_at(&self, i: usize) -> Result<bool, String> {
        match &self.src {
            Src::Bool(a) => Ok(a.value(i)),
            _ => Err(self.unexpected("a bool")),
        }
    }

    /// Borrowed UTF-8 text, for the string-typed arrays.
    fn str_at(&self, i: usize) -> Option<&'a str> {
        match &self.src {
            Src::Utf8(a) => Some(a.value(i)),
            Src::LargeUtf8(a) => Some(a.value(i)),
            Src::Utf8View(a) => Some(a.value(i)),
            _ => None,
        }
    }

    fn text_at(&self, i: usize) -> Result<String, String> {
        if let Some(s) = self.str_at(i) {
            return Ok(s.to_owned());
        }
        match &self.src {
            Src::Dec128(a) => Ok(a.value_as_string(i)),
            Src::Dec256(a) => Ok(a.value_as_string(i)),
            Src::FixedBin(a) => Ok(uuid_text(a.value(i))),
            _ => Err(self.unexpected("text")),
        }
    }

    fn bytes_at(&self, i: usize) -> Result<&'a [u8], String> {
        match &self.src {
            Src::Bin(a) => Ok(a.value(i)),
            Src::LargeBin(a) => Ok(a.value(i)),
            Src::BinView(a) => Ok(a.value(i)),
            Src::FixedBin(a) => Ok(a.value(i)),
            _ => Err(self.unexpected("bytes")),
        }
    }

    /// Epoch seconds (timestamps floored; integers taken as seconds).
    fn unix_secs_at(&self, i: usize) -> Result<i64, String> {
        match &self.src {
            Src::Ts(v, per_sec) => Ok(v[i].div_euclid(*per_sec)),
            Src::Date32(a) => Ok(i64::from(a.value(i)) * 86_400),
            Src::Date64(a) => Ok(a.value(i).div_euclid(1_000)),
            Src::I64(_) | Src::I32(_) => self.i64_at(i),
            _ => Err(self.unexpected("a timestamp")),
        }
    }

    /// Nanoseconds since the epoch for a timestamp/date column; `None` when
    /// the value lies outside what i64 nanoseconds can hold (years before
    /// 1677 or after 2262), which is outside every window too.
    #[inline]
    pub(crate) fn ts_ns_at(&self, i: usize) -> Option<i64> {
        match &self.src {
            Src::Ts(v, per_sec) => v[i].checked_mul(1_000_000_000 / per_sec),
            Src::Date32(a) => i64::from(a.value(i)).checked_mul(NS_PER_DAY),
            Src::Date64(a) => a.value(i).checked_mul(1_000_000),
            _ => None,
        }
    }

    /// Like [`Col::ts_ns_at`] but saturating (for ordering created times).
    #[inline]
    pub(crate) fn ts_ns_saturating_at(&self, i: usize) -> i64 {
        match &self.src {
            Src::Ts(v, per_sec) => v[i].saturating_mul(1_000_000_000 / per_sec),
            Src::Date32(a) => i64::from(a.value(i)).saturating_mul(NS_PER_DAY),
            Src::Date64(a) => a.value(i).saturating_mul(1_000_000),
            _ => i64::MIN,
        }
    }

    /// The Feast value of row `i` (an unset value for a null).
    pub(crate) fn value_at(&self, target: Target, i: usize) -> Result<Value, String> {
        if self.is_null(i) {
            return Ok(Value::default());
        }
        let val = match target {
            Target::Scalar(s) => self.scalar_at(s, i)?,
            Target::List(s) => self.list_at(s, i)?,
        };
        Ok(Value { val: Some(val) })
    }

    fn scalar_at(&self, s: Scalar, i: usize) -> Result<Val, String> {
        Ok(match s {
            Scalar::Float => Val::FloatVal(self.f32_at(i)?),
            Scalar::Double => Val::DoubleVal(self.f64_at(i)?),
            Scalar::Int32 => Val::Int32Val(self.i32_at(i)?),
            Scalar::Int64 => Val::Int64Val(self.i64_at(i)?),
            Scalar::Bool => Val::BoolVal(self.bool_at(i)?),
            Scalar::Bytes => Val::BytesVal(self.bytes_at(i)?.to_vec()),
            Scalar::UnixTimestamp => Val::UnixTimestampVal(self.unix_secs_at(i)?),
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => {
                target::text_val(s, self.text_at(i)?)
            }
        })
    }

    fn list_at(&self, s: Scalar, i: usize) -> Result<Val, String> {
        let bad_offsets = || "internal error: list offsets out of range".to_string();
        let (child, range) = match &self.src {
            Src::List(off, child) => {
                let (a, b) = (
                    off.get(i).ok_or_else(bad_offsets)?,
                    off.get(i + 1).ok_or_else(bad_offsets)?,
                );
                let (a, b) = (
                    usize::try_from(*a).map_err(|_| bad_offsets())?,
                    usize::try_from(*b).map_err(|_| bad_offsets())?,
                );
                (child.as_ref(), a..b)
            }
            Src::LargeList(off, child) => {
                let (a, b) = (
                    off.get(i).ok_or_else(bad_offsets)?,
                    off.get(i + 1).ok_or_else(bad_offsets)?,
                );
                let (a, b) = (
                    usize::try_from(*a).map_err(|_| bad_offsets())?,
                    usize::try_from(*b).map_err(|_| bad_offsets())?,
                );
                (child.as_ref(), a..b)
            }
            Src::FixedList(n, child) => (child.as_ref(), i * n..(i + 1) * n),
            Src::Null => return Ok(empty_list(s)),
            _ => return Err(self.unexpected("a list")),
        };
        child.list_values(s, range)
    }

    fn list_values(&self, s: Scalar, range: std::ops::Range<usize>) -> Result<Val, String> {
        for j in range.clone() {
            if self.is_null(j) {
                return Err(format!(
                    "list element {} is null; Feast lists cannot hold nulls",
                    j - range.start
                ));
            }
        }
        Ok(match s {
            Scalar::Float => target::float_list_val(range.map(|j| self.f32_at(j)).collect::<Result<_, _>>()?),
            Scalar::Double => target::double_list_val(range.map(|j| self.f64_at(j)).collect::<Result<_, _>>()?),
            Scalar::Int32 => target::int32_list_val(range.map(|j| self.i32_at(j)).collect::<Result<_, _>>()?),
            Scalar::Int64 => target::int64_list_val(s, range.map(|j| self.i64_at(j)).collect::<Result<_, _>>()?),
            Scalar::UnixTimestamp => {
                target::int64_list_val(s, range.map(|j| self.unix_secs_at(j)).collect::<Result<_, _>>()?)
            }
            Scalar::Bool => target::bool_list_val(range.map(|j| self.bool_at(j)).collect::<Result<_, _>>()?),
            Scalar::Bytes => target::bytes_list_val(
                range
                    .map(|j| self.bytes_at(j).map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()?,
            ),
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal => {
                target::text_list_val(s, range.map(|j| self.text_at(j)).collect::<Result<_, _>>()?)
            }
        })
    }

    /// Append this row's entity-key value (type tag, length, bytes).
    #[inline]
    pub(crate) fn put_key(&self, key_type: Scalar, i: usize, out: &mut Vec<u8>) -> Result<(), String> {
        match key_type {
            Scalar::Int64 => target::put_key_value(out, 4, &self.i64_at(i)?.to_le_bytes()),
            Scalar::Int32 => target::put_key_value(out, 3, &self.i32_at(i)?.to_le_bytes()),
            Scalar::UnixTimestamp => target::put_key_value(out, 8, &self.unix_secs_at(i)?.to_le_bytes()),
            Scalar::Bytes => target::put_key_value(out, 1, self.bytes_at(i)?),
            Scalar::String => match self.str_at(i) {
                Some(s) => target::put_key_value(out, 2, s.as_bytes()),
                None => return Err(self.unexpected("a string key")),
            },
            _ => return Err(self.unexpected("an entity key")),
        }
        Ok(())
    }
}

fn empty_list(s: Scalar) -> Val {
    match s {
        Scalar::Float => target::float_list_val(vec![]),
        Scalar::Double => target::double_list_val(vec![]),
        Scalar::Int32 => target::int32_list_val(vec![]),
        Scalar::Int64 | Scalar::UnixTimestamp => target::int64_list_val(s, vec![]),
        Scalar::Bool => target::bool_list_val(vec![]),
        Scalar::Bytes => target::bytes_list_val(vec![]),
        _ => target::text_list_val(s, vec![]),
    }
}

/// 16 bytes as a hyphenated lowercase UUID; other lengths as plain hex.
fn uuid_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (n, byte) in b.iter().enumerate() {
        if b.len() == 16 && matches!(n, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_formatting() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_text(&b), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }

    #[test]
    fn compatibility_table() {
        let f = Target::Scalar(Scalar::Float);
        assert!(compatible(f, &DataType::Float64));
        assert!(!compatible(f, &DataType::Int64));
        assert!(compatible(Target::Scalar(Scalar::Int32), &DataType::Int64));
        assert!(!compatible(Target::Scalar(Scalar::String), &DataType::Int64));
        assert!(compatible(
            Target::Scalar(Scalar::UnixTimestamp),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        ));
        let list = DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
            "item",
            DataType::Int64,
            true,
        )));
        assert!(compatible(Target::List(Scalar::Int64), &list));
        assert!(!compatible(Target::List(Scalar::String), &list));
        assert!(!compatible(Target::Scalar(Scalar::Int64), &list));
    }

    #[test]
    fn int32_range_is_checked() {
        let a = Int64Array::from(vec![Some(1), Some(i64::from(i32::MAX) + 1), None]);
        let c = Col::new(&a).unwrap();
        assert_eq!(
            c.value_at(Target::Scalar(Scalar::Int32), 0).unwrap().val,
            Some(Val::Int32Val(1))
        );
        let err = c.value_at(Target::Scalar(Scalar::Int32), 1).unwrap_err();
        assert!(err.contains("2147483648"), "{err}");
        assert_eq!(c.value_at(Target::Scalar(Scalar::Int32), 2).unwrap().val, None);
    }
}
