//! The as-of join's core, pure: entity rows grouped into points, the best
//! feature row offered to each point, and each point's answer.

/// Where a feature row lives: its file and row within the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RowLoc {
    pub file: u32,
    pub row: u64,
}

/// A feature row offered to a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub event_ns: i64,
    /// `i64::MIN` when the source has no created timestamp or it is null.
    pub created_ns: i64,
    pub loc: RowLoc,
}

impl Candidate {
    /// Newer event time wins, then newer created time; a full tie keeps
    /// the row offered first.
    fn beats(&self, other: &Candidate) -> bool {
        (self.event_ns, self.created_ns) > (other.event_ns, other.created_ns)
    }
}

/// The entity rows of one view grouped by key and timestamp: the distinct
/// timestamps of each key, sorted ("points").
#[derive(Debug)]
pub(crate) struct Points {
    /// Per key id: the range of its points in `ts`.
    key_ranges: Vec<(u32, u32)>,
    /// Point timestamps, ascending within each key's range.
    ts: Vec<i64>,
    /// Per entity row: its point; `None` for rows without a key (a null
    /// join key value).
    row_point: Vec<Option<u32>>,
}

impl Points {
    /// `row_keys[i]`: the key id of entity row `i` (below `distinct`), or
    /// `None`; `row_ts[i]`: its timestamp in ns.
    pub(crate) fn new(row_keys: &[Option<u32>], row_ts: &[i64], distinct: usize) -> Self {
        let mut order: Vec<(u32, i64, u32)> = row_keys
            .iter()
            .zip(row_ts)
            .enumerate()
            .filter_map(|(i, (k, t))| k.map(|k| (k, *t, i as u32)))
            .collect();
        order.sort_unstable();
        let mut key_ranges = vec![(0u32, 0u32); distinct];
        let mut ts = Vec::with_capacity(order.len());
        let mut row_point = vec![None; row_keys.len()];
        let mut prev: Option<(u32, i64)> = None;
        for (k, t, row) in order {
            if prev != Some((k, t)) {
                if prev.map(|(pk, _)| pk) != Some(k) {
                    key_ranges[k as usize] = (ts.len() as u32, 0);
                }
                ts.push(t);
                key_ranges[k as usize].1 += 1;
                prev = Some((k, t));
            }
            row_point[row as usize] = Some((ts.len() - 1) as u32);
        }
        Points {
            key_ranges,
            ts,
            row_point,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// The smallest and largest point timestamps; `None` without points.
    pub(crate) fn ts_range(&self) -> Option<(i64, i64)> {
        let min = self.ts.iter().min()?;
        let max = self.ts.iter().max()?;
        Some((*min, *max))
    }

    /// The point whose interval holds `event_ns` for key `key`: its first
    /// point at or after the event. `None` when every point of the key is
    /// before the event, or when the event is older than `ttl_ns` (when
    /// set) for that point, and so for every later one.
    #[inline]
    pub(crate) fn point_for(&self, key: u32, event_ns: i64, ttl_ns: i64) -> Option<u32> {
        let (start, len) = self.key_ranges[key as usize];
        let range = &self.ts[start as usize..(start + len) as usize];
        let i = range.partition_point(|t| *t < event_ns);
        let t = *range.get(i)?;
        if ttl_ns > 0 && event_ns < t.saturating_sub(ttl_ns) {
            return None;
        }
        Some(start + i as u32)
    }

    /// Each entity row's point.
    pub(crate) fn row_points(&self) -> &[Option<u32>] {
        &self.row_point
    }
}

/// The best feature row offered to each point so far.
pub(crate) struct Slots {
    best: Vec<Option<Candidate>>,
}

impl Slots {
    pub(crate) fn new(points: &Points) -> Self {
        Slots {
            best: vec![None; points.len()],
        }
    }

    #[inline]
    pub(crate) fn offer(&mut self, point: u32, c: Candidate) {
        let slot = &mut self.best[point as usize];
        match slot {
            Some(b) if !c.beats(b) => {}
            _ => *slot = Some(c),
        }
    }

    /// Each point's answer: the newest feature row at or before it, when it
    /// is within the ttl (`ttl_ns > 0`).
    pub(crate) fn resolve(&self, points: &Points, ttl_ns: i64) -> Vec<Option<Candidate>> {
        let mut out = vec![None; points.len()];
        for &(start, len) in &points.key_ranges {
            let mut newest: Option<Candidate> = None;
            let range = start as usize..(start + len) as usize;
            for ((answer, best), t) in out[range.clone()]
                .iter_mut()
                .zip(&self.best[range.clone()])
                .zip(&points.ts[range])
            {
                if best.is_some() {
                    newest = *best;
                }
                *answer = newest.filter(|c| ttl_ns <= 0 || c.event_ns >= t.saturating_sub(ttl_ns));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(event_ns: i64, created_ns: i64, row: u64) -> Candidate {
        Candidate {
            event_ns,
            created_ns,
            loc: RowLoc { file: 0, row },
        }
    }

    #[test]
    fn points_group_rows_by_key_and_timestamp() {
        // Rows: key 0 at 10, key 1 at 5, key 0 at 10 (same point), key 0 at 3, no key.
        let p = Points::new(&[Some(0), Some(1), Some(0), Some(0), None], &[10, 5, 10, 3, 7], 2);
        assert_eq!(p.len(), 3);
        assert_eq!(p.row_points()[0], p.row_points()[2]);
        assert_eq!(p.row_points()[4], None);
        assert_eq!(p.point_for(0, 3, 0), p.row_points()[3]);
        assert_eq!(p.point_for(0, 4, 0), p.row_points()[0]);
        assert_eq!(p.point_for(0, 11, 0), None);
        assert_eq!(p.point_for(1, -100, 0), p.row_points()[1]);
        // ttl 5: an event at 4 is older than 10 − 5 for the point at 10 (and so for any later one).
        assert_eq!(p.point_for(0, 4, 5), None);
        assert_eq!(p.point_for(0, 5, 5), p.row_points()[0]);
        assert_eq!(p.ts_range(), Some((3, 10)));
    }

    #[test]
    fn answers_carry_forward_and_respect_the_ttl() {
        let p = Points::new(&[Some(0), Some(0), Some(0)], &[10, 20, 30], 1);
        let mut s = Slots::new(&p);
        let at = |t| p.point_for(0, t, 0).unwrap();
        s.offer(at(9), cand(9, 0, 1));
        s.offer(at(8), cand(8, 5, 2)); // older: loses
        s.offer(at(25), cand(25, 0, 3));
        let r = s.resolve(&p, 0);
        assert_eq!(r[0].map(|c| c.loc.row), Some(1));
        assert_eq!(r[1].map(|c| c.loc.row), Some(1), "carried forward from the point at 10");
        assert_eq!(r[2].map(|c| c.loc.row), Some(3));
        // ttl 11: 20 - 11 = 9 keeps the row at 9 (boundary included); ttl 10 drops it.
        assert_eq!(s.resolve(&p, 11)[1].map(|c| c.loc.row), Some(1));
        assert_eq!(s.resolve(&p, 10)[1], None);
    }

    #[test]
    fn ties_go_to_the_created_timestamp_then_the_first_row() {
        let p = Points::new(&[Some(0)], &[10], 1);
        let mut s = Slots::new(&p);
        s.offer(0, cand(5, 1, 1));
        s.offer(0, cand(5, 2, 2));
        s.offer(0, cand(5, 2, 3));
        s.offer(0, cand(5, i64::MIN, 4));
        assert_eq!(s.resolve(&p, 0)[0].map(|c| c.loc.row), Some(2));
    }
}
