//! Feature rows on their way from an offline source to an online store.

use std::sync::Arc;

use larder_protos::feast::types::Value;

/// One entity's feature values at one event time.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    /// Entity key bytes, serialized v3 ([`crate::entity_key`]).
    pub entity_key: Vec<u8>,
    /// Event time, nanoseconds since the Unix epoch (UTC).
    pub event_ts: i64,
    /// Created time, nanoseconds since the epoch, when the source has one.
    pub created_ts: Option<i64>,
    /// One value per feature, in the order of [`RowBatch::features`]; an
    /// unset `Value` (no `val`) is a null.
    pub values: Vec<Value>,
}

impl EntityRow {
    /// True when `self` should replace `other` for the same key: a newer
    /// event time, or the same event time and a newer created time.
    pub fn is_newer_than(&self, other: &EntityRow) -> bool {
        (self.event_ts, self.created_ts.unwrap_or(i64::MIN)) > (other.event_ts, other.created_ts.unwrap_or(i64::MIN))
    }
}

/// Rows of one feature view that share a feature list.
#[derive(Debug, Clone, PartialEq)]
pub struct RowBatch {
    /// Plain feature names (not `view__feature`).
    pub features: Arc<[String]>,
    pub rows: Vec<EntityRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: i64, created: Option<i64>) -> EntityRow {
        EntityRow {
            entity_key: vec![1],
            event_ts: ts,
            created_ts: created,
            values: vec![],
        }
    }

    #[test]
    fn newer_breaks_ties_by_created() {
        assert!(row(2, None).is_newer_than(&row(1, Some(5))));
        assert!(row(1, Some(6)).is_newer_than(&row(1, Some(5))));
        assert!(!row(1, Some(5)).is_newer_than(&row(1, Some(5))));
        assert!(row(1, Some(0)).is_newer_than(&row(1, None)));
    }
}
