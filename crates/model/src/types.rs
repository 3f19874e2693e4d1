//! Feature types: Feast's Python type names (`Float32`, `Array(Int64)`)
//! and `ValueType` enum names (`FLOAT`, `INT64_LIST`), mapped to the
//! `feast.types.ValueType.Enum` number stored in protobufs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// (enum number, `ValueType` enum name, Feast Python type name or "" if none).
const TABLE: &[(i32, &str, &str)] = &[
    (1, "BYTES", "Bytes"),
    (2, "STRING", "String"),
    (3, "INT32", "Int32"),
    (4, "INT64", "Int64"),
    (5, "DOUBLE", "Float64"),
    (6, "FLOAT", "Float32"),
    (7, "BOOL", "Bool"),
    (8, "UNIX_TIMESTAMP", "UnixTimestamp"),
    (11, "BYTES_LIST", "Array(Bytes)"),
    (12, "STRING_LIST", "Array(String)"),
    (13, "INT32_LIST", "Array(Int32)"),
    (14, "INT64_LIST", "Array(Int64)"),
    (15, "DOUBLE_LIST", "Array(Float64)"),
    (16, "FLOAT_LIST", "Array(Float32)"),
    (17, "BOOL_LIST", "Array(Bool)"),
    (18, "UNIX_TIMESTAMP_LIST", "Array(UnixTimestamp)"),
    (20, "MAP", "Map"),
    (21, "MAP_LIST", "Array(Map)"),
    (22, "BYTES_SET", "Set(Bytes)"),
    (23, "STRING_SET", "Set(String)"),
    (24, "INT32_SET", "Set(Int32)"),
    (25, "INT64_SET", "Set(Int64)"),
    (26, "DOUBLE_SET", "Set(Float64)"),
    (27, "FLOAT_SET", "Set(Float32)"),
    (28, "BOOL_SET", "Set(Bool)"),
    (29, "UNIX_TIMESTAMP_SET", "Set(UnixTimestamp)"),
    (32, "JSON", "Json"),
    (33, "JSON_LIST", "Array(Json)"),
    (34, "STRUCT", "Struct"),
    (35, "STRUCT_LIST", "Array(Struct)"),
    (36, "UUID", "Uuid"),
    (37, "TIME_UUID", "TimeUuid"),
    (38, "UUID_LIST", "Array(Uuid)"),
    (39, "TIME_UUID_LIST", "Array(TimeUuid)"),
    (40, "UUID_SET", "Set(Uuid)"),
    (41, "TIME_UUID_SET", "Set(TimeUuid)"),
    (44, "DECIMAL", "Decimal"),
    (45, "DECIMAL_LIST", "Array(Decimal)"),
    (46, "DECIMAL_SET", "Set(Decimal)"),
];

/// A feature's value type, held as the `ValueType.Enum` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeatureType(i32);

impl FeatureType {
    pub const BYTES: FeatureType = FeatureType(1);
    pub const STRING: FeatureType = FeatureType(2);
    pub const INT32: FeatureType = FeatureType(3);
    pub const INT64: FeatureType = FeatureType(4);
    pub const DOUBLE: FeatureType = FeatureType(5);
    pub const FLOAT: FeatureType = FeatureType(6);
    pub const BOOL: FeatureType = FeatureType(7);
    pub const UNIX_TIMESTAMP: FeatureType = FeatureType(8);

    /// The `feast.types.ValueType.Enum` number.
    pub fn value_type(self) -> i32 {
        self.0
    }

    /// From a stored `ValueType` number; `None` for INVALID, NULL and unknown numbers.
    pub fn from_value_type(n: i32) -> Option<Self> {
        TABLE.iter().any(|(v, _, _)| *v == n).then_some(Self(n))
    }

    /// The type a stored proto declares, kept as it is even when the number
    /// is INVALID (0) or unknown to Larder, so it round-trips unchanged
    /// ([`FeatureType::from_value_type`] refuses those).
    pub fn from_proto(n: i32) -> Self {
        Self(n)
    }

    /// The Feast Python type name (`Float32`), the canonical spelling in manifests.
    pub fn python_name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(v, _, _)| *v == self.0)
            .map(|(_, _, p)| *p)
            .unwrap_or("Invalid")
    }

    /// The `ValueType` enum name (`FLOAT`).
    pub fn enum_name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(v, _, _)| *v == self.0)
            .map(|(_, e, _)| *e)
            .unwrap_or("INVALID")
    }

    /// Types an entity join key may have (those entity-key serialization supports).
    pub fn is_entity_key_type(self) -> bool {
        matches!(
            self,
            Self::BYTES | Self::STRING | Self::INT32 | Self::INT64 | Self::UNIX_TIMESTAMP
        )
    }

    /// Every accepted spelling without spaces: Python names (`Array(Int64)`) and ValueType names (`INT64_LIST`).
    pub fn spellings() -> impl Iterator<Item = &'static str> {
        TABLE.iter().flat_map(|(_, e, p)| [*p, *e])
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        TABLE
            .iter()
            .find(|(_, e, p)| *p == compact || *e == compact)
            .map(|(v, _, _)| Self(*v))
            .ok_or_else(|| {
                format!(
                    "unknown feature type {s:?}; expected one of Bool, Bytes, String, Int32, Int64, Float32, Float64, UnixTimestamp, Json, Uuid, TimeUuid, Decimal, Map, Struct, Array(T), Set(T), or a Feast ValueType name such as FLOAT or INT64_LIST"
                )
            })
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.python_name())
    }
}

impl TryFrom<String> for FeatureType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<FeatureType> for String {
    fn from(t: FeatureType) -> String {
        t.python_name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_enum_names_agree() {
        assert_eq!(FeatureType::parse("Float32").unwrap().value_type(), 6);
        assert_eq!(FeatureType::parse("FLOAT").unwrap().value_type(), 6);
        assert_eq!(FeatureType::parse("Float64").unwrap().value_type(), 5);
        assert_eq!(FeatureType::parse("Array(Int64)").unwrap().value_type(), 14);
        assert_eq!(FeatureType::parse("Array( String )").unwrap().value_type(), 12);
        assert_eq!(FeatureType::parse("Set(Bool)").unwrap().python_name(), "Set(Bool)");
        assert_eq!(FeatureType::parse("Json").unwrap().value_type(), 32);
        assert!(FeatureType::parse("Floaty").is_err());
        assert!(FeatureType::parse("INVALID").is_err());
        assert!(FeatureType::parse("NULL").is_err());
    }

    #[test]
    fn every_entry_round_trips() {
        for (n, e, p) in TABLE {
            let t = FeatureType::from_value_type(*n).unwrap();
            assert_eq!(t.enum_name(), *e);
            assert_eq!(FeatureType::parse(p).unwrap(), t);
            assert_eq!(FeatureType::parse(e).unwrap(), t);
        }
        assert!(FeatureType::from_value_type(0).is_none());
        assert!(FeatureType::from_value_type(19).is_none());
    }
}
