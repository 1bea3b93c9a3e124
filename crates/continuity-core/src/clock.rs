//! The source of time. The engine never reads the system clock itself, so
//! tests and simulations can run a day of alerts in milliseconds.
#![allow(clippy::disallowed_methods)] // the one place allowed to read the system clock

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in milliseconds since the Unix epoch: the same
    /// reading as [`now`](Clock::now), for hot paths (a token cache hit)
    /// where building a calendar date on every call is most of the cost.
    fn unix_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn unix_millis(&self) -> i64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |m| -m),
        }
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use continuity_core::{Clock, ManualClock};
/// use chrono::TimeDelta;
///
/// let clock = ManualClock::new("2026-01-05T08:00:00Z".parse().unwrap());
/// clock.advance(TimeDelta::hours(1));
/// assert_eq!(clock.now().to_rfc3339(), "2026-01-05T09:00:00+00:00");
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Sets the time (it may go backwards; the `Monitor` refuses that).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    /// Moves the time by `by` and returns the new time (saturating at the
    /// ends of representable time).
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut now = self.lock();
        *now = now
            .checked_add_signed(by)
            .unwrap_or(if by < TimeDelta::zero() {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A poisoned lock still holds a valid time.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn unix_millis(&self) -> i64 {
        (**self).unix_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_is_the_same_reading() {
        let c = ManualClock::new("2026-03-02T08:00:00.250Z".parse().unwrap());
        assert_eq!(c.unix_millis(), 1_772_438_400_250);
        let shared: Arc<dyn Clock> = Arc::new(c);
        assert_eq!(shared.unix_millis(), 1_772_438_400_250);
        let (a, b, c) = (
            SystemClock.now(),
            SystemClock.unix_millis(),
            SystemClock.now(),
        );
        assert!(a.timestamp_millis() <= b && b <= c.timestamp_millis());
    }

    #[test]
    fn advance_saturates() {
        let c = ManualClock::new(DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1));
        assert_eq!(c.advance(TimeDelta::days(1)), DateTime::<Utc>::MAX_UTC);
        let c = ManualClock::new(DateTime::<Utc>::MIN_UTC);
        assert_eq!(c.advance(TimeDelta::days(-1)), DateTime::<Utc>::MIN_UTC);
    }
}
