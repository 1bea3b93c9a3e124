//! A circuit breaker per channel: after repeated channel failures it stops
//! calling the provider for a while, then lets one trial request through.

use std::{sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::duration::{after, serde_duration};
use serde::{Deserialize, Serialize};

/// When a breaker opens and for how long. In configuration both fields are
/// optional, with the defaults below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerPolicy {
    /// Consecutive retryable failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// How long it stays open before a trial request (default 60 s).
    #[serde(with = "serde_duration")]
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
        }
    }
}

/// The state a breaker is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through; this many consecutive failures so far.
    Closed(u32),
    /// No requests until then.
    Open(DateTime<Utc>),
    /// One trial request is under way since then; others wait. A trial
    /// that never reports back (its caller was cancelled) is replaced by a
    /// new one after `open_for`.
    HalfOpen(DateTime<Utc>),
}

#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<BreakerState>,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: Mutex::new(BreakerState::Closed(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// `Ok` if a request may go out now; otherwise how long until one may.
    pub(crate) fn admit(&self, now: DateTime<Utc>) -> Result<(), Duration> {
        let mut s = self.lock();
        match *s {
            BreakerState::Closed(_) => Ok(()),
            BreakerState::Open(until) if now >= until => {
                *s = BreakerState::HalfOpen(now);
                Ok(())
            }
            BreakerState::HalfOpen(since) if now >= after(since, self.policy.open_for) => {
                *s = BreakerState::HalfOpen(now);
                Ok(())
            }
            BreakerState::Open(until) => Err((until - now).to_std().unwrap_or(Duration::ZERO)),
            BreakerState::HalfOpen(since) => Err((after(since, self.policy.open_for) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)),
        }
    }

    pub(crate) fn success(&self) {
        *self.lock() = BreakerState::Closed(0);
    }

    /// A request that was admitted ended without a channel failure (the
    /// provider answered, refusing only this message).
    pub(crate) fn neutral(&self) {
        let mut s = self.lock();
        if matches!(*s, BreakerState::HalfOpen(_)) {
            *s = BreakerState::Closed(0);
        }
    }

    pub(crate) fn failure(&self, now: DateTime<Utc>) {
        let mut s = self.lock();
        *s = match *s {
            BreakerState::Closed(n) if n + 1 < self.policy.failure_threshold => {
                BreakerState::Closed(n + 1)
            }
            _ => BreakerState::Open(after(now, self.policy.open_for)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_pause() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let b = Breaker::new(BreakerPolicy {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
        });
        b.failure(t0);
        assert_eq!(b.admit(t0), Ok(()));
        b.failure(t0);
        assert_eq!(b.admit(t0), Err(Duration::from_secs(60)));
        let t1 = after(t0, Duration::from_secs(60));
        assert_eq!(b.admit(t1), Ok(()));
        assert_eq!(b.state(), BreakerState::HalfOpen(t1));
        assert!(b.admit(t1).is_err(), "only one trial at a time");
        // A trial that never reports back is replaced after the pause.
        let t1 = after(t1, Duration::from_secs(60));
        assert_eq!(b.admit(t1), Ok(()));
        b.failure(t1);
        assert!(matches!(b.state(), BreakerState::Open(_)));
        let t2 = after(t1, Duration::from_secs(61));
        assert_eq!(b.admit(t2), Ok(()));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed(0));
    }
}
