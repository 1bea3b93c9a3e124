//! Client-side throttling, so that the monitor never measures its own
//! throttling as mail-flow latency (PROTOCOLS.md §5):
//!
//! - a cap on concurrent requests per service account (Exchange allows 27
//!   per user; the default stays well below),
//! - one shared "back off until" time per account, set by `ErrorServerBusy`,
//! - a minimum interval between two sends from the same mailbox (Exchange
//!   Online's MessageRateLimit is 30 a minute; excess sends are *delayed*),
//! - jittered exponential back-off for retries.
//!
//! These wait in real time (tokio timers): they pace network traffic, not
//! the monitor's logic, which runs on core's `Clock`.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, sleep_until};

/// Exchange's EWSMaxConcurrency for 2013 and later (per user).
pub const EXCHANGE_MAX_CONCURRENCY: usize = 27;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared back-off of one account: after `ErrorServerBusy` every request
/// with the account waits until the time the server named.
#[derive(Debug, Default)]
pub(crate) struct BackOff {
    until: Mutex<Option<Instant>>,
}

impl BackOff {
    /// Extends the back-off to at least `now + wait`.
    pub(crate) fn set(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut g = lock(&self.until);
        if g.is_none_or(|u| u < until) {
            *g = Some(until);
        }
    }

    /// How long from now requests must still wait.
    pub(crate) fn remaining(&self) -> Duration {
        lock(&self.until).map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }
}

/// Spaces sends from each mailbox at least `interval` apart.
#[derive(Debug)]
pub(crate) struct SendPacer {
    interval: Duration,
    next: Mutex<HashMap<Box<str>, Instant>>,
}

impl SendPacer {
    pub(crate) fn new(interval: Duration) -> Self {
        SendPacer {
            interval,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `mailbox`'s next send slot and claims it.
    pub(crate) async fn wait_turn(&self, mailbox: &str) {
        if self.interval.is_zero() {
            return;
        }
        let key = mailbox.to_ascii_lowercase();
        let now = Instant::now();
        let at = {
            let mut next = lock(&self.next);
            // Forget mailboxes whose slot has long passed, so the map stays small.
            if next.len() > 4096 {
                next.retain(|_, t| *t > now);
            }
            let slot = next
                .get(key.as_str())
                .copied()
                .filter(|t| *t > now)
                .unwrap_or(now);
            next.insert(key.into_boxed_str(), slot + self.interval);
            slot
        };
        sleep_until(at).await;
    }
}

/// Jittered exponential back-off ("full jitter" over an exponential cap).
#[derive(Debug)]
pub(crate) struct Jitter {
    state: AtomicU64,
}

impl Default for Jitter {
    fn default() -> Self {
        // RandomState is seeded randomly per process: enough for jitter.
        Jitter {
            state: AtomicU64::new(RandomState::new().hash_one(0x5eed_u64) | 1),
        }
    }
}

impl Jitter {
    /// A random version-4 GUID, for `client-request-id`.
    pub(crate) fn guid(&self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let a = (a & !0xF000) | 0x4000; // version 4
        let b = (b & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    fn next_u64(&self) -> u64 {
        // splitmix64 over an atomic counter.
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay for retry number `attempt` (1 = first retry): uniform in
    /// `[cap/2, cap]` with `cap = min(max, base · 2^(attempt-1))`.
    pub(crate) fn delay(&self, attempt: u32, base: Duration, max: Duration) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let cap = base.saturating_mul(factor).min(max);
        let half = cap / 2;
        let span = (cap - half).as_nanos() as u64;
        let extra = if span == 0 {
            0
        } else {
            self.next_u64() % (span + 1)
        };
        half + Duration::from_nanos(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds_and_grows() {
        let j = Jitter::default();
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..40 {
            let cap = (base * 2u32.saturating_pow(attempt - 1).min(1 << 20)).min(max);
            for _ in 0..50 {
                let d = j.delay(attempt, base, max);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempt}: {d:?} vs cap {cap:?}"
                );
            }
        }
        // Not constant.
        let a: Vec<_> = (0..20).map(|_| j.delay(5, base, max)).collect();
        assert!(a.iter().any(|d| *d != a[0]));
    }

    #[test]
    fn guids_are_version_4() {
        let j = Jitter::default();
        let (a, b) = (j.guid(), j.guid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_sends_per_mailbox() {
        let p = SendPacer::new(Duration::from_secs(6));
        let t0 = Instant::now();
        p.wait_turn("a@example.org").await;
        p.wait_turn("B@example.org").await;
        assert_eq!(
            t0.elapsed(),
            Duration::ZERO,
            "different mailboxes do not wait for each other"
        );
        p.wait_turn("A@Example.org").await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(6),
            "same mailbox, any case: one interval later"
        );
        p.wait_turn("a@example.org").await;
        assert_eq!(t0.elapsed(), Duration::from_secs(12));
        tokio::time::advance(Duration::from_secs(60)).await;
        let t1 = Instant::now();
        p.wait_turn("a@example.org").await;
        assert_eq!(
            t1.elapsed(),
            Duration::ZERO,
            "an idle mailbox sends at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn back_off_only_extends() {
        let b = BackOff::default();
        assert_eq!(b.remaining(), Duration::ZERO);
        b.set(Duration::from_secs(5));
        b.set(Duration::from_secs(1));
        assert_eq!(b.remaining(), Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.remaining(), Duration::ZERO);
    }
}
