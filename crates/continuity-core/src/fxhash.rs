//! A small, fast, non-cryptographic hasher for the engine's internal maps.
//!
//! The keys (tenant ids, probe ids) come from the embedder's configuration
//! and the engine itself, not from the network, so collision attacks on the
//! default SipHash are not a concern here, and hashing is on the hot path of
//! every tick. This is the multiply-rotate scheme of rustc's `FxHasher`.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `BuildHasher` for `HashMap::with_hasher(FxBuild::default())`.
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// A `HashMap` with the fast hasher.
pub(crate) type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_different_keys_spread() {
        let b = FxBuild::default();
        let h = |s: &str| b.hash_one(s);
        assert_eq!(h("tenant-000001"), h("tenant-000001"));
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            seen.insert(h(&format!("tenant-{i:06}")));
        }
        assert_eq!(seen.len(), 10_000);
    }
}
