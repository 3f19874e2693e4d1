//! Latest row per entity key with bounded memory.

use std::collections::HashMap;
use std::sync::Arc;

use larder_model::rows::{EntityRow, RowBatch};
use larder_protos::feast::types::Value;

/// Where finished batches go; returns `false` when nobody listens any more
/// (the reader then stops early).
pub type Emit<'a> = &'a mut dyn FnMut(RowBatch) -> bool;

struct Slot {
    event_ts: i64,
    created_ts: Option<i64>,
    values: Vec<Value>,
}

/// A map entity key → newest row seen, holding at most `capacity` keys.
///
/// When a new key arrives and the map is full, its contents are emitted and
/// it is cleared. With more distinct keys than `capacity` a key can thus be
/// emitted more than once, and an older row may follow a newer one; the
/// online store's newer-wins write keeps the right row. With at most
/// `capacity` keys each key is emitted once, with its newest row.
pub(crate) struct Latest {
    map: HashMap<Box<[u8]>, Slot>,
    capacity: usize,
    batch_rows: usize,
    features: Arc<[String]>,
    pub(crate) rows_emitted: u64,
    pub(crate) batches_emitted: u64,
    pub(crate) flushes: u64,
    /// Set once `emit` returned false.
    pub(crate) cancelled: bool,
}

/// Whether (ts, created) beats the stored row: a later event time, or the
/// same event time and a later created time (a missing created time is the
/// oldest). Full ties keep the row seen first.
fn newer(ts: i64, created: Option<i64>, slot: &Slot) -> bool {
    (ts, created.unwrap_or(i64::MIN)) > (slot.event_ts, slot.created_ts.unwrap_or(i64::MIN))
}

impl Latest {
    pub(crate) fn new(features: Arc<[String]>, capacity: usize, batch_rows: usize) -> Self {
        let capacity = capacity.max(1);
        Latest {
            // Grows on demand up to `capacity` keys; never beyond.
            map: HashMap::with_capacity(capacity.min(1 << 16)),
            capacity,
            batch_rows: batch_rows.max(1),
            features,
            rows_emitted: 0,
            batches_emitted: 0,
            flushes: 0,
            cancelled: false,
        }
    }

    /// Offer one row. `fill` pushes the row's feature values into the
    /// (cleared) vector; it is only called when the row wins, so losing rows
    /// cost no conversion.
    pub(crate) fn offer<E>(
        &mut self,
        key: &[u8],
        event_ts: i64,
        created_ts: Option<i64>,
        emit: Emit<'_>,
        fill: impl FnOnce(&mut Vec<Value>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(slot) = self.map.get_mut(key) {
            if newer(event_ts, created_ts, slot) {
                slot.values.clear();
                fill(&mut slot.values)?;
                slot.event_ts = event_ts;
                slot.created_ts = created_ts;
            }
            return Ok(());
        }
        if self.map.len() >= self.capacity {
            self.flushes += 1;
            self.flush(emit);
        }
        let mut values = Vec::with_capacity(self.features.len());
        fill(&mut values)?;
        self.map.insert(
            key.into(),
            Slot {
                event_ts,
                created_ts,
                values,
            },
        );
        Ok(())
    }

    /// Emit everything held, in batches of at most `batch_rows` rows, and
    /// clear the map (its allocation is kept for reuse).
    pub(crate) fn flush(&mut self, emit: Emit<'_>) {
        if self.map.is_empty() {
            return;
        }
        let mut rows = Vec::with_capacity(self.batch_rows.min(self.map.len()));
        let mut drain = self.map.drain();
        loop {
            let next = drain.next();
            let done = next.is_none();
            if let Some((key, slot)) = next {
                rows.push(EntityRow {
                    entity_key: key.into_vec(),
                    event_ts: slot.event_ts,
                    created_ts: slot.created_ts,
                    values: slot.values,
                });
            }
            if (rows.len() >= self.batch_rows || done) && !rows.is_empty() {
                let n = rows.len();
                let batch = RowBatch {
                    features: self.features.clone(),
                    rows: std::mem::replace(&mut rows, Vec::with_capacity(self.batch_rows)),
                };
                if !self.cancelled && emit(batch) {
                    self.rows_emitted += n as u64;
                    self.batches_emitted += 1;
                } else {
                    self.cancelled = true;
                }
            }
            if done {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::value::Val;

    fn v(i: i64) -> Value {
        Value {
            val: Some(Val::Int64Val(i)),
        }
    }

    #[test]
    fn keeps_newest_and_breaks_ties_by_created() {
        let mut l = Latest::new(Arc::from(vec!["f".to_string()]), 10, 2);
        let mut out: Vec<RowBatch> = Vec::new();
        let mut emit = |b: RowBatch| {
            out.push(b);
            true
        };
        let rows: &[(&[u8], i64, Option<i64>, i64)] = &[
            (b"a", 5, None, 1),
            (b"a", 4, Some(100), 2), // older event: loses
            (b"a", 5, Some(1), 3),   // same event, created beats None
            (b"a", 5, Some(1), 4),   // full tie: first kept
            (b"b", 1, None, 5),
            (b"c", 1, None, 6),
        ];
        for (k, ts, c, val) in rows {
            l.offer::<()>(k, *ts, *c, &mut emit, |vals| {
                vals.push(v(*val));
                Ok(())
            })
            .unwrap();
        }
        l.flush(&mut emit);
        assert_eq!(out.len(), 2, "3 rows in batches of 2");
        let mut got: Vec<(Vec<u8>, i64)> = out
            .iter()
            .flat_map(|b| b.rows.iter())
            .map(|r| {
                (
                    r.entity_key.clone(),
                    match r.values[0].val {
                        Some(Val::Int64Val(i)) => i,
                        _ => -1,
                    },
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![(b"a".to_vec(), 3), (b"b".to_vec(), 5), (b"c".to_vec(), 6)]);
        assert_eq!(l.rows_emitted, 3);
    }

    #[test]
    fn flushes_when_full() {
        let mut l = Latest::new(Arc::from(vec!["f".to_string()]), 2, 100);
        let mut out: Vec<RowBatch> = Vec::new();
        let mut emit = |b: RowBatch| {
            out.push(b);
            true
        };
        for k in [b"a", b"b", b"c", b"a"] {
            l.offer::<()>(k, 1, None, &mut emit, |vals| {
                vals.push(v(0));
                Ok(())
            })
            .unwrap();
        }
        l.flush(&mut emit);
        let n: usize = out.iter().map(|b| b.rows.len()).sum();
        assert_eq!(n, 4, "a appears twice after the map overflowed");
        assert_eq!(l.flushes, 1);
    }
}
