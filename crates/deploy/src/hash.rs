//! A stable 64-bit hash (FNV-1a) for names and annotations that must not
//! change between operator builds or restarts, unlike std's hashers.

/// FNV-1a over the bytes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The first `len` hex digits of [`fnv1a`] (at most 16).
pub fn short_hex(bytes: &[u8], len: usize) -> String {
    let mut s = format!("{:016x}", fnv1a(bytes));
    s.truncate(len.min(16));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
        assert_eq!(short_hex(b"a", 8), "af63dc4c");
    }
}
