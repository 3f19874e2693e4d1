//! Declared feature types as conversion targets, and the Feast `Value`s
//! built from them.

use larder_model::types::FeatureType;
use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{BoolList, BytesList, DoubleList, FloatList, Int32List, Int64List, StringList};

/// The scalar kind of a declared feature type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bytes,
    String,
    Int32,
    Int64,
    Double,
    Float,
    Bool,
    UnixTimestamp,
    Json,
    Uuid,
    TimeUuid,
    Decimal,
}

impl Scalar {
    /// True for the kinds whose values are text (`*_val` holding a string).
    pub(crate) fn is_text(self) -> bool {
        matches!(
            self,
            Scalar::String | Scalar::Json | Scalar::Uuid | Scalar::TimeUuid | Scalar::Decimal
        )
    }

    /// The entity-key type tag (feast-compat.md §5), for join key types.
    pub(crate) fn key_tag(self) -> Option<u32> {
        match self {
            Scalar::Bytes => Some(1),
            Scalar::String => Some(2),
            Scalar::Int32 => Some(3),
            Scalar::Int64 => Some(4),
            Scalar::UnixTimestamp => Some(8),
            _ => None,
        }
    }
}

/// What a feature's values become: a scalar or a list of scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Scalar(Scalar),
    List(Scalar),
}

impl Target {
    /// The conversion target of a declared type; `None` for types Larder
    /// cannot materialize from a column (maps, sets, structs).
    pub(crate) fn from_feature_type(t: FeatureType) -> Option<Target> {
        use Scalar::*;
        Some(match t.value_type() {
            1 => Target::Scalar(Bytes),
            2 => Target::Scalar(String),
            3 => Target::Scalar(Int32),
            4 => Target::Scalar(Int64),
            5 => Target::Scalar(Double),
            6 => Target::Scalar(Float),
            7 => Target::Scalar(Bool),
            8 => Target::Scalar(UnixTimestamp),
            11 => Target::List(Bytes),
            12 => Target::List(String),
            13 => Target::List(Int32),
            14 => Target::List(Int64),
            15 => Target::List(Double),
            16 => Target::List(Float),
            17 => Target::List(Bool),
            18 => Target::List(UnixTimestamp),
            32 => Target::Scalar(Json),
            33 => Target::List(Json),
            36 => Target::Scalar(Uuid),
            37 => Target::Scalar(TimeUuid),
            38 => Target::List(Uuid),
            39 => Target::List(TimeUuid),
            44 => Target::Scalar(Decimal),
            45 => Target::List(Decimal),
            _ => return None,
        })
    }
}

/// A text value of the given kind.
pub(crate) fn text_val(kind: Scalar, s: String) -> Val {
    match kind {
        Scalar::Json => Val::JsonVal(s),
        Scalar::Uuid => Val::UuidVal(s),
        Scalar::TimeUuid => Val::TimeUuidVal(s),
        Scalar::Decimal => Val::DecimalVal(s),
        _ => Val::StringVal(s),
    }
}

/// A list of text values of the given kind.
pub(crate) fn text_list_val(kind: Scalar, v: Vec<String>) -> Val {
    let l = StringList { val: v };
    match kind {
        Scalar::Json => Val::JsonListVal(l),
        Scalar::Uuid => Val::UuidListVal(l),
        Scalar::TimeUuid => Val::TimeUuidListVal(l),
        Scalar::Decimal => Val::DecimalListVal(l),
        _ => Val::StringListVal(l),
    }
}

pub(crate) fn int64_list_val(kind: Scalar, v: Vec<i64>) -> Val {
    if kind == Scalar::UnixTimestamp {
        Val::UnixTimestampListVal(Int64List { val: v })
    } else {
        Val::Int64ListVal(Int64List { val: v })
    }
}

pub(crate) fn int32_list_val(v: Vec<i32>) -> Val {
    Val::Int32ListVal(Int32List { val: v })
}

pub(crate) fn float_list_val(v: Vec<f32>) -> Val {
    Val::FloatListVal(FloatList { val: v })
}

pub(crate) fn double_list_val(v: Vec<f64>) -> Val {
    Val::DoubleListVal(DoubleList { val: v })
}

pub(crate) fn bool_list_val(v: Vec<bool>) -> Val {
    Val::BoolListVal(BoolList { val: v })
}

pub(crate) fn bytes_list_val(v: Vec<Vec<u8>>) -> Val {
    Val::BytesListVal(BytesList { val: v })
}

/// Append one entity-key value (tag, length, bytes) to `out`.
pub(crate) fn put_key_value(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The constant head of every entity key of a view: `u32 n`, then
/// n × (`u32 2`, `u32 len`, name), for join key names already in key order.
pub(crate) fn key_prefix<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for n in names {
        put_key_value(&mut out, 2, n.as_bytes());
    }
    out
}
