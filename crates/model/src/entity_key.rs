//! Feast entity-key serialization, version 3 (feast-compat.md §5): the
//! bytes that key every online-store row.

use larder_protos::feast::types::value::Val;
use larder_protos::feast::types::{EntityKey, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityKeyError {
    #[error("entity key has {keys} join keys but {values} values")]
    LengthMismatch { keys: usize, values: usize },
    #[error("join key {0:?} has a value type that cannot be part of an entity key")]
    UnsupportedValue(String),
    #[error("entity key bytes are truncated or malformed")]
    Malformed,
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Serialize an entity key (v3): `u32 n`, then n × (`u32 2`, `u32 len`, key),
/// then n × (`u32 type`, `u32 len`, value bytes); keys sorted when n > 1.
pub fn serialize_entity_key(key: &EntityKey) -> Result<Vec<u8>, EntityKeyError> {
    let pairs = sorted_pairs(key)?;
    let mut out = Vec::with_capacity(16 + pairs.iter().map(|(k, _)| k.len() + 16).sum::<usize>());
    put_u32(&mut out, pairs.len());
    for (k, _) in &pairs {
        put_u32(&mut out, 2);
        put_u32(&mut out, k.len());
        out.extend_from_slice(k.as_bytes());
    }
    for (k, v) in &pairs {
        let (tag, bytes): (u32, Vec<u8>) = match &v.val {
            Some(Val::StringVal(s)) => (2, s.as_bytes().to_vec()),
            Some(Val::BytesVal(b)) => (1, b.clone()),
            Some(Val::Int32Val(i)) => (3, i.to_le_bytes().to_vec()),
            Some(Val::Int64Val(i)) => (4, i.to_le_bytes().to_vec()),
            Some(Val::UnixTimestampVal(i)) => (8, i.to_le_bytes().to_vec()),
            _ => return Err(EntityKeyError::UnsupportedValue(k.to_string())),
        };
        out.extend_from_slice(&tag.to_le_bytes());
        put_u32(&mut out, bytes.len());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The key part only, used as a scan prefix.
pub fn serialize_entity_key_prefix(join_keys: &[&str]) -> Vec<u8> {
    let mut keys: Vec<&str> = join_keys.to_vec();
    if keys.len() > 1 {
        keys.sort_unstable();
    }
    let mut out = Vec::new();
    put_u32(&mut out, keys.len());
    for k in keys {
        put_u32(&mut out, 2);
        put_u32(&mut out, k.len());
        out.extend_from_slice(k.as_bytes());
    }
    out
}

fn sorted_pairs(key: &EntityKey) -> Result<Vec<(&str, &Value)>, EntityKeyError> {
    if key.join_keys.len() != key.entity_values.len() {
        return Err(EntityKeyError::LengthMismatch {
            keys: key.join_keys.len(),
            values: key.entity_values.len(),
        });
    }
    let mut pairs: Vec<(&str, &Value)> = key
        .join_keys
        .iter()
        .map(String::as_str)
        .zip(key.entity_values.iter())
        .collect();
    if pairs.len() > 1 {
        pairs.sort_by(|a, b| a.0.cmp(b.0));
    }
    Ok(pairs)
}

/// Parse v3 bytes back into an `EntityKey`.
pub fn deserialize_entity_key(bytes: &[u8]) -> Result<EntityKey, EntityKeyError> {
    let mut pos = 0usize;
    let u32_at = |pos: &mut usize| -> Result<u32, EntityKeyError> {
        let b = bytes.get(*pos..*pos + 4).ok_or(EntityKeyError::Malformed)?;
        *pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n = u32_at(&mut pos)? as usize;
    if n > bytes.len() {
        return Err(EntityKeyError::Malformed);
    }
    let mut key = EntityKey::default();
    for _ in 0..n {
        let _tag = u32_at(&mut pos)?;
        let len = u32_at(&mut pos)? as usize;
        let s = bytes.get(pos..pos + len).ok_or(EntityKeyError::Malformed)?;
        pos += len;
        key.join_keys
            .push(String::from_utf8(s.to_vec()).map_err(|_| EntityKeyError::Malformed)?);
    }
    for _ in 0..n {
        let tag = u32_at(&mut pos)?;
        let len = u32_at(&mut pos)? as usize;
        let b = bytes.get(pos..pos + len).ok_or(EntityKeyError::Malformed)?;
        pos += len;
        let val = match (tag, len) {
            (2, _) => Val::StringVal(String::from_utf8(b.to_vec()).map_err(|_| EntityKeyError::Malformed)?),
            (1, _) => Val::BytesVal(b.to_vec()),
            (3, 4) => Val::Int32Val(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            (4, 8) => Val::Int64Val(i64::from_le_bytes(b.try_into().map_err(|_| EntityKeyError::Malformed)?)),
            (8, 8) => Val::UnixTimestampVal(i64::from_le_bytes(b.try_into().map_err(|_| EntityKeyError::Malformed)?)),
            _ => return Err(EntityKeyError::Malformed),
        };
        key.entity_values.push(Value { val: Some(val) });
    }
    if pos != bytes.len() {
        return Err(EntityKeyError::Malformed);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, Val)]) -> EntityKey {
        EntityKey {
            join_keys: pairs.iter().map(|(k, _)| k.to_string()).collect(),
            entity_values: pairs.iter().map(|(_, v)| Value { val: Some(v.clone()) }).collect(),
        }
    }

    fn hex_of(k: &EntityKey) -> String {
        hex::encode(serialize_entity_key(k).unwrap())
    }

    fn unspaced(s: &str) -> String {
        s.replace(' ', "")
    }

    /// The worked examples of feast-compat.md §5, copied with their spacing.
    #[test]
    fn reference_encodings() {
        let int64 = key(&[("driver_id", Val::Int64Val(1001))]);
        assert_eq!(
            hex_of(&int64),
            unspaced("01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000")
        );
        let string = key(&[("customer_id", Val::StringVal("abc".into()))]);
        assert_eq!(
            hex_of(&string),
            unspaced("01000000 02000000 0b000000 637573746f6d65725f6964 02000000 03000000 616263")
        );
        let int32 = key(&[("k", Val::Int32Val(7))]);
        assert_eq!(
            hex_of(&int32),
            unspaced("01000000 02000000 01000000 6b 03000000 04000000 07000000")
        );
        let negative = key(&[("x", Val::Int64Val(-1))]);
        assert_eq!(
            hex_of(&negative),
            unspaced("01000000 02000000 01000000 78 04000000 08000000 ffffffffffffffff")
        );
        let two = key(&[
            ("driver_id", Val::Int64Val(1001)),
            ("customer_id", Val::StringVal("abc".into())),
        ]);
        assert_eq!(
            hex_of(&two),
            unspaced(
                "02000000 02000000 0b000000 637573746f6d65725f6964 02000000 09000000 6472697665725f6964 02000000 03000000 616263 04000000 08000000 e903000000000000"
            )
        );
        assert_eq!(
            hex::encode(serialize_entity_key_prefix(&["driver_id"])),
            unspaced("01000000 02000000 09000000 6472697665725f6964")
        );
    }

    #[test]
    fn round_trip_and_malformed() {
        let k = key(&[("b", Val::StringVal("x".into())), ("a", Val::UnixTimestampVal(5))]);
        let bytes = serialize_entity_key(&k).unwrap();
        let back = deserialize_entity_key(&bytes).unwrap();
        assert_eq!(back.join_keys, vec!["a", "b"]);
        assert_eq!(serialize_entity_key(&back).unwrap(), bytes);
        assert_eq!(
            deserialize_entity_key(&bytes[..bytes.len() - 1]),
            Err(EntityKeyError::Malformed)
        );
        let bad = key(&[("f", Val::DoubleVal(1.0))]);
        assert!(matches!(
            serialize_entity_key(&bad),
            Err(EntityKeyError::UnsupportedValue(_))
        ));
    }
}
