//! Splitting one view's materialization into N independent runs (the
//! operator's indexed Jobs): each run keeps only the entity keys that hash
//! to its shard, so N runs write every key exactly once between them.
//!
//! The hash must give the same shard in every process, on every machine and
//! with every Rust release, so it is spelled out here (std's hashers are
//! seeded per process and may change): FNV-1a 64 over the serialized entity
//! key (v3, the bytes the online stores key on), then MurmurHash3's 64-bit
//! finalizer, then `% N`. The finalizer matters: the low bits of plain
//! FNV-1a depend only on the low bits of each input byte, so with N = 4 the
//! keys of ids 0, 4, 8, … would all land in one shard.

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (0-based, as Kubernetes indexed Jobs number
/// their pods). Always `index < count` and `count >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("invalid shard {0:?}: expected I/N, e.g. 0/4 (shard I of N, 0 <= I < N)")]
    Syntax(String),
    #[error("invalid shard {0:?}: the shard count N must be at least 1")]
    NoShards(String),
    #[error("invalid shard {0:?}: the shard index I must be below the count N (shards are numbered 0 to N-1)")]
    IndexOutOfRange(String),
}

impl Shard {
    /// Shard `index` of `count`; `0 <= index < count` is required.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards(format!("{index}/{count}")));
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange(format!("{index}/{count}")));
        }
        Ok(Self { index, count })
    }

    /// This shard's number, `0..count`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the keys are split into.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard (of `count`) that an entity key belongs to; `count` 0 is taken as 1.
    pub fn of(entity_key: &[u8], count: u32) -> u32 {
        (entity_key_hash(entity_key) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard writes the row of `entity_key` (serialized v3 bytes).
    pub fn contains(&self, entity_key: &[u8]) -> bool {
        self.count == 1 || Self::of(entity_key, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// `I/N`, e.g. `0/4`; spaces around the numbers are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index: u32 = i.trim().parse().map_err(|_| syntax())?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 {
            return Err(ShardError::NoShards(s.to_string()));
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange(s.to_string()));
        }
        Ok(Self { index, count })
    }
}

/// The stable 64-bit hash shards are chosen by: FNV-1a 64 of `bytes`, then
/// MurmurHash3's `fmix64` so every bit of the result depends on every input bit.
pub fn entity_key_hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

/// MurmurHash3's 64-bit finalizer (a bijection).
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_model::entity_key::serialize_entity_key;
    use larder_protos::feast::types::value::Val;
    use larder_protos::feast::types::{EntityKey, Value};

    fn int_key(id: i64) -> Vec<u8> {
        serialize_entity_key(&EntityKey {
            join_keys: vec!["driver_id".into()],
            entity_values: vec![Value {
                val: Some(Val::Int64Val(id)),
            }],
        })
        .unwrap()
    }

    #[test]
    fn parses_and_prints_i_of_n() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index(), s.count()), (2, 4));
        assert_eq!(s.to_string(), "2/4");
        assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap(), Shard::new(0, 1).unwrap());
        assert_eq!("3/4".parse::<Shard>().unwrap(), Shard::new(3, 4).unwrap());
    }

    #[test]
    fn rejects_bad_shards_naming_the_rule() {
        let err = |s: &str| s.parse::<Shard>().unwrap_err().to_string();
        for bad in ["x", "", "1", "1/", "/4", "a/4", "1/b", "-1/4", "1/4/2", "1.5/4"] {
            assert!(err(bad).contains("expected I/N"), "{bad}: {}", err(bad));
        }
        assert!(err("1/0").contains("count N must be at least 1"), "{}", err("1/0"));
        assert!(err("0/0").contains("count N must be at least 1"));
        assert!(
            err("4/4").contains("index I must be below the count N"),
            "{}",
            err("4/4")
        );
        assert!(err("9/4").contains("numbered 0 to N-1"));
        assert!(err("4/4").contains("\"4/4\""), "names the input");
        assert_eq!(Shard::new(4, 4), Err(ShardError::IndexOutOfRange("4/4".into())));
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards("0/0".into())));
    }

    #[test]
    fn hash_is_pinned() {
        // FNV-1a 64 reference values, through the finalizer (fmix64(0) = 0).
        assert_eq!(fmix64(0), 0);
        assert_eq!(entity_key_hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(entity_key_hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        assert_eq!(entity_key_hash(b"foobar"), fmix64(0x8594_4171_f739_67e8));
        // Computed independently (Python) from the definition.
        assert_eq!(entity_key_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(entity_key_hash(b"larder"), 0x0b35_048d_de28_c8c7);
        // Shards of real entity keys must never change: other processes
        // (other Jobs, other versions of Larder) split the same keys.
        let shards: Vec<u32> = (1001..1017).map(|id| Shard::of(&int_key(id), 4)).collect();
        assert_eq!(shards, PINNED_1001_TO_1016_OF_4);
    }

    const PINNED_1001_TO_1016_OF_4: [u32; 16] = [2, 1, 0, 2, 3, 3, 2, 1, 3, 3, 2, 2, 0, 0, 0, 1];

    #[test]
    fn every_key_is_in_exactly_one_shard_and_shards_are_even() {
        for n in 1..=8u32 {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::new(i, n).unwrap()).collect();
            let mut sizes = vec![0usize; n as usize];
            for id in 0..4_000i64 {
                let k = int_key(id * 4);
                let owners: Vec<&Shard> = shards.iter().filter(|s| s.contains(&k)).collect();
                assert_eq!(owners.len(), 1, "key {id} of {n}");
                assert_eq!(owners[0].index(), Shard::of(&k, n));
                sizes[owners[0].index() as usize] += 1;
            }
            // Ids that are all multiples of 4 (plain FNV-1a would put them in
            // one shard of 4): 4,000 keys, each shard within 15% of an even split.
            let even = 4_000 / n as usize;
            for s in &sizes {
                assert!(s.abs_diff(even) * 100 <= even * 15, "{n} shards: {sizes:?}");
            }
        }
    }

    #[test]
    fn one_shard_holds_everything() {
        let all = Shard::new(0, 1).unwrap();
        assert!(all.contains(b""));
        assert!(all.contains(&int_key(7)));
        assert_eq!(Shard::of(b"anything", 0), 0);
    }
}
