//! Several instances sharing one store: tenants are spread over
//! [`SHARDS`] shards, and each shard is owned by one instance at a time.
//!
//! A [`Monitor`](crate::Monitor) built with
//! [`cluster`](crate::MonitorBuilder::cluster) syncs its ownership with the
//! store at every tick ([`EventStore::sync_shards`](crate::store::EventStore::sync_shards)):
//! it renews the leases of its shards, gives up those above its fair share
//! (the shards divided by the live instances) and takes free or expired ones
//! up to it. It then evaluates and probes only the tenants of its shards, so
//! hysteresis counts each tick once and each probe is sent once, whatever
//! the number of instances. When an instance dies, its leases run out and
//! the others take its shards over. The outbox is worked by every instance
//! (its items are leased one by one), and portal actions can go to any.
//!
//! The lease must outlast the time between two ticks
//! ([`MonitorSettings::lease`](crate::monitor::MonitorSettings::lease)), or
//! an instance's shards fall free between its ticks. Leases are stamped
//! with each instance's clock, so the instances' clocks must agree to well
//! within the lease (NTP does).
//!
//! An instance that cannot reach the store keeps the shards it knew (a
//! store that is down for everyone must not silence the alerts), and keeps
//! alerting for them from memory. If only that instance is cut off, the
//! others take its shards over once its lease ran out, and both alert for
//! those tenants until it reaches the store again: at least once is
//! preferred to silence.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::TenantId;

/// The number of shards. Every instance and store of a deployment must
/// agree on it, so it is fixed.
pub const SHARDS: u16 = 256;

/// The shard of `tenant`: FNV-1a of its id, so every process and store
/// computes the same.
pub fn shard_of(tenant: &TenantId) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in tenant.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(SHARDS)) as u16
}

/// A set of shards.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardSet([u64; 4]);

impl ShardSet {
    /// No shard.
    pub const EMPTY: ShardSet = ShardSet([0; 4]);
    /// Every shard (what a single instance owns).
    pub const ALL: ShardSet = ShardSet([u64::MAX; 4]);

    /// Whether `shard` is in the set (shards from [`SHARDS`] on never are).
    pub fn contains(&self, shard: u16) -> bool {
        shard < SHARDS && self.0[usize::from(shard / 64)] & (1 << (shard % 64)) != 0
    }

    /// Whether the set holds `tenant`'s shard.
    pub fn holds(&self, tenant: &TenantId) -> bool {
        self.is_all() || self.contains(shard_of(tenant))
    }

    /// Adds `shard` (ignored from [`SHARDS`] on).
    pub fn insert(&mut self, shard: u16) {
        if shard < SHARDS {
            self.0[usize::from(shard / 64)] |= 1 << (shard % 64);
        }
    }

    /// Removes `shard`.
    pub fn remove(&mut self, shard: u16) {
        if shard < SHARDS {
            self.0[usize::from(shard / 64)] &= !(1 << (shard % 64));
        }
    }

    /// Whether every shard is in the set.
    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    /// Whether no shard is.
    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }

    /// How many shards are in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The shards, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..SHARDS).filter(|s| self.contains(*s))
    }

    /// The shards in `self` but not in `other`.
    pub fn difference(&self, other: &ShardSet) -> ShardSet {
        ShardSet(std::array::from_fn(|i| self.0[i] & !other.0[i]))
    }
}

impl FromIterator<u16> for ShardSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = ShardSet::EMPTY;
        for shard in iter {
            s.insert(shard);
        }
        s
    }
}

impl fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("ShardSet(all)");
        }
        write!(f, "ShardSet({} shards: ", self.len())?;
        f.debug_list().entries(self.iter()).finish()?;
        f.write_str(")")
    }
}

/// How many shards one of `live` instances should own: the shards divided
/// evenly, rounded up (the last instance to claim may get fewer).
pub fn fair_share(live: usize) -> usize {
    usize::from(SHARDS).div_ceil(live.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_tenants_and_sets_behave() {
        let mut counts = vec![0u32; usize::from(SHARDS)];
        for i in 0..25_600 {
            let t = TenantId::new(format!("tenant-{i}")).unwrap();
            counts[usize::from(shard_of(&t))] += 1;
        }
        assert!(
            counts.iter().all(|&c| (40..=160).contains(&c)),
            "{counts:?}"
        );
        let t = TenantId::new("acme").unwrap();
        assert_eq!(shard_of(&t), shard_of(&TenantId::new("acme").unwrap()));

        let mut s: ShardSet = [0, 63, 64, 255, 256, 9999].into_iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 255]);
        assert_eq!(s.len(), 4);
        s.remove(63);
        assert!(!s.contains(63) && s.contains(64) && !s.contains(256));
        assert!(ShardSet::ALL.holds(&t) && !ShardSet::EMPTY.holds(&t));
        assert_eq!(ShardSet::ALL.len(), usize::from(SHARDS));
        assert_eq!(ShardSet::ALL.difference(&ShardSet::ALL), ShardSet::EMPTY);
        assert_eq!(s.difference(&ShardSet::EMPTY), s);
        assert_eq!(fair_share(3), 86);
        assert_eq!(fair_share(0), 256);
    }
}
