//! Jittered exponential back-off, bounded in count and total time, and the
//! sleeps it waits with.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use chrono::TimeDelta;
use continuity_core::{ManualClock, duration::serde_duration};
use serde::{Deserialize, Serialize};

/// How a channel retries a failed delivery within one call.
///
/// Attempt `n` (from 1) that fails with a retryable error waits a random
/// time between half and all of `base · 2^(n-1)` (at most `max_delay`), or
/// what the provider asked for if that is longer, then tries again, at most
/// `max_attempts` times in all and never past `max_total` from the first
/// attempt. What is still failing then goes back to the Monitor's outbox,
/// which tries again on a later tick with its own, longer back-off.
///
/// In configuration every field is optional, with the defaults below;
/// durations are written `"1s"`, `"20s"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (default 3; 1 turns retries off).
    pub max_attempts: u32,
    /// Delay before the first retry, before jitter (default 1 s).
    #[serde(with = "serde_duration")]
    pub base: Duration,
    /// Longest single delay (default 8 s).
    #[serde(with = "serde_duration")]
    pub max_delay: Duration,
    /// Longest time from the first attempt to the start of the last (default 20 s).
    #[serde(with = "serde_duration")]
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_total: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// No retries within a call: one attempt, failures go straight back to the outbox.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay after failed attempt `attempt` (from 1), with `jitter` in
    /// `[0, 1)` choosing where in the upper half of the exponential step it
    /// falls, and the provider's `retry_after` as a floor.
    pub fn delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let step = self.base.saturating_mul(1u32 << exp).min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        let jittered = step / 2 + step.mul_f64(jitter / 2.0);
        retry_after.map_or(jittered, |r| r.max(jittered))
    }
}

/// Waits between retries. The default, [`TokioSleep`], uses Tokio's timer;
/// tests use [`AdvanceClock`] so that back-off takes no real time.
#[async_trait]
pub trait Sleep: Send + Sync + fmt::Debug {
    /// Returns after `duration`.
    async fn sleep(&self, duration: Duration);
}

/// Sleeps on Tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSleep;

#[async_trait]
impl Sleep for TokioSleep {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// "Sleeps" by moving a [`ManualClock`] forward at once: back-off and
/// circuit-breaker timing run at full logic in no real time.
#[derive(Clone, Debug)]
pub struct AdvanceClock(pub ManualClock);

#[async_trait]
impl Sleep for AdvanceClock {
    async fn sleep(&self, duration: Duration) {
        self.0
            .advance(TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_jittered_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.0, None), Duration::from_millis(500));
        assert_eq!(p.delay(1, 0.999_999, None).as_millis(), 999);
        assert_eq!(p.delay(2, 0.0, None), Duration::from_secs(1));
        assert_eq!(p.delay(3, 0.0, None), Duration::from_secs(2));
        assert_eq!(p.delay(9, 0.0, None), Duration::from_secs(4));
        assert_eq!(p.delay(99, 1.0, None), Duration::from_secs(8));
        assert_eq!(
            p.delay(1, 0.5, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.delay(4, 0.5, Some(Duration::from_millis(1))),
            Duration::from_secs(6)
        );
    }
}
