//! A small map whose entries expire: authenticated tokens and RBAC
//! decisions are reused briefly, so a hot client costs a hash and a lookup,
//! not a round trip to the authority.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                // Still full of live entries: start over rather than grow.
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let c = TtlCache::new(Duration::from_millis(50), 3);
        c.insert(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&1), None);
        for i in 0..10 {
            c.insert(i, "x");
        }
        assert!(c.map.lock().unwrap().len() <= 3);
        let off = TtlCache::new(Duration::ZERO, 3);
        off.insert(1, "a");
        assert_eq!(off.get(&1), None);
    }
}
