//! Sorted runs on disk, merged back in entity-key order, for stores that
//! write much faster in key order (SQLite: random keys made every commit
//! rewrite most of the table's index pages; 1 M entities wrote 19.7 GiB,
//! in key order 3.8 GiB). Memory stays at one batch plus one row per run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use larder_model::rows::{EntityRow, RowBatch};
use larder_protos::feast::types::Value;
use prost::Message;

/// Batches written to disk, each sorted by entity key.
pub(crate) struct Runs {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    features: Option<Arc<[String]>>,
}

impl Runs {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("larder-materialize-").tempdir()?,
            files: Vec::new(),
            features: None,
        })
    }

    /// Sort one batch by key and write it as a run.
    pub(crate) fn push(&mut self, mut batch: RowBatch) -> std::io::Result<()> {
        // Stable: rows of one key keep their order, so full ties keep the first.
        batch.rows.sort_by(|a, b| a.entity_key.cmp(&b.entity_key));
        let path = self.dir.path().join(format!("run-{}", self.files.len()));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut buf = Vec::with_capacity(256);
        for row in &batch.rows {
            encode_row(row, &mut buf);
            out.write_all(&buf)?;
        }
        out.flush()?;
        self.files.push(path);
        self.features.get_or_insert(batch.features);
        Ok(())
    }

    /// Merge all runs into batches of up to `batch_rows` rows, keys ascending,
    /// one row per key (the newest; on a full tie the earliest run's).
    pub(crate) fn merge(self, batch_rows: usize) -> std::io::Result<Merge> {
        let mut readers = Vec::with_capacity(self.files.len());
        let mut heap = BinaryHeap::with_capacity(self.files.len());
        for (run, path) in self.files.iter().enumerate() {
            let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
            if let Some(row) = decode_row(&mut r)? {
                heap.push(Head { row, run });
            }
            readers.push(r);
        }
        Ok(Merge {
            _dir: self.dir,
            readers,
            heap,
            features: self.features.unwrap_or_else(|| Arc::from(Vec::new())),
            batch_rows: batch_rows.max(1),
        })
    }
}

/// The merge in progress.
pub(crate) struct Merge {
    _dir: tempfile::TempDir,
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Head>,
    features: Arc<[String]>,
    batch_rows: usize,
}

impl Merge {
    /// The next batch in key order; `None` when all runs are used up.
    pub(crate) fn next_batch(&mut self) -> std::io::Result<Option<RowBatch>> {
        let mut rows: Vec<EntityRow> = Vec::with_capacity(self.batch_rows.min(1 << 16));
        while rows.len() < self.batch_rows {
            let Some(mut best) = self.pop()? else { break };
            while self.heap.peek().is_some_and(|h| h.row.entity_key == best.entity_key) {
                if let Some(other) = self.pop()?
                    && other.is_newer_than(&best)
                {
                    best = other;
                }
            }
            rows.push(best);
        }
        Ok((!rows.is_empty()).then(|| RowBatch {
            features: self.features.clone(),
            rows,
        }))
    }

    /// The smallest row, refilling the heap from its run.
    fn pop(&mut self) -> std::io::Result<Option<EntityRow>> {
        let Some(Head { row, run }) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = decode_row(&mut self.readers[run])? {
            self.heap.push(Head { row: next, run });
        }
        Ok(Some(row))
    }
}

/// A run's current row; the heap yields the smallest key, then the earliest run.
struct Head {
    row: EntityRow,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        (&other.row.entity_key, other.run).cmp(&(&self.row.entity_key, self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// `key_len u32 | key | event_ts i64 | has_created u8 | created i64 | n u32 | (len u32 | Value)*`, little-endian.
fn encode_row(row: &EntityRow, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&(row.entity_key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&row.entity_key);
    buf.extend_from_slice(&row.event_ts.to_le_bytes());
    buf.push(u8::from(row.created_ts.is_some()));
    buf.extend_from_slice(&row.created_ts.unwrap_or(0).to_le_bytes());
    buf.extend_from_slice(&(row.values.len() as u32).to_le_bytes());
    for v in &row.values {
        buf.extend_from_slice(&(v.encoded_len() as u32).to_le_bytes());
        // Encoding into a Vec cannot fail (it grows as needed).
        let _ = v.encode(buf);
    }
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_i64(r: &mut impl Read) -> std::io::Result<i64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(i64::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, n: u32) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; n as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// The next row of a run, `None` at its end.
fn decode_row(r: &mut impl Read) -> std::io::Result<Option<EntityRow>> {
    let mut first = [0u8; 4];
    match r.read_exact(&mut first) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let entity_key = read_bytes(r, u32::from_le_bytes(first))?;
    let event_ts = read_i64(r)?;
    let mut flag = [0u8; 1];
    r.read_exact(&mut flag)?;
    let created = read_i64(r)?;
    let n = read_u32(r)?;
    let mut values = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = read_u32(r)?;
        let bytes = read_bytes(r, len)?;
        values.push(Value::decode(bytes.as_slice()).map_err(std::io::Error::other)?);
    }
    Ok(Some(EntityRow {
        entity_key,
        event_ts,
        created_ts: (flag[0] == 1).then_some(created),
        values,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::value::Val;

    fn row(key: u8, ts: i64, created: Option<i64>, tag: &str) -> EntityRow {
        EntityRow {
            entity_key: vec![key, 0, key],
            event_ts: ts,
            created_ts: created,
            values: vec![
                Value {
                    val: Some(Val::StringVal(tag.to_string())),
                },
                Value::default(),
            ],
        }
    }

    fn batch(rows: Vec<EntityRow>) -> RowBatch {
        RowBatch {
            features: Arc::from(vec!["tag".to_string(), "empty".to_string()]),
            rows,
        }
    }

    #[test]
    fn merges_runs_in_key_order_keeping_the_newest_row() {
        let mut runs = Runs::new().unwrap();
        runs.push(batch(vec![
            row(9, 1, None, "9-old"),
            row(3, 5, Some(1), "3-a"),
            row(7, 2, None, "7"),
        ]))
        .unwrap();
        runs.push(batch(vec![
            row(9, 4, None, "9-new"),
            row(1, 1, None, "1"),
            row(3, 5, Some(1), "3-tie"),
        ]))
        .unwrap();
        runs.push(batch(vec![
            row(3, 5, Some(2), "3-created-later"),
            row(5, -3, None, "5"),
        ]))
        .unwrap();
        runs.push(batch(vec![])).unwrap();
        let mut merge = runs.merge(2).unwrap();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = merge.next_batch().unwrap() {
            assert_eq!(&*b.features, ["tag", "empty"]);
            sizes.push(b.rows.len());
            seen.extend(b.rows);
        }
        assert_eq!(sizes, [2, 2, 1]);
        let tags: Vec<String> = seen
            .iter()
            .map(|r| match &r.values[0].val {
                Some(Val::StringVal(s)) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags, ["1", "3-created-later", "5", "7", "9-new"]);
        // Everything else survives the trip through disk.
        assert_eq!(seen[1], row(3, 5, Some(2), "3-created-later"));
        assert_eq!(seen[2], row(5, -3, None, "5"));
    }

    #[test]
    fn full_ties_keep_the_earliest_run() {
        let mut runs = Runs::new().unwrap();
        runs.push(batch(vec![row(2, 5, None, "first")])).unwrap();
        runs.push(batch(vec![row(2, 5, None, "second")])).unwrap();
        let mut merge = runs.merge(10).unwrap();
        let b = merge.next_batch().unwrap().unwrap();
        assert_eq!(b.rows, vec![row(2, 5, None, "first")]);
        assert!(merge.next_batch().unwrap().is_none());
    }

    #[test]
    fn a_truncated_run_is_an_error() {
        let mut runs = Runs::new().unwrap();
        runs.push(batch(vec![row(1, 1, None, "a"), row(2, 1, None, "b")]))
            .unwrap();
        let path = runs.files[0].clone();
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let mut merge = runs.merge(10).unwrap();
        assert!(merge.next_batch().is_err());
    }
}
