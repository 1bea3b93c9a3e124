//! The source of time. The engine never reads the system clock itself, so
//! tests and simulations can run a day of alerts in milliseconds.
#![allow(clippy::disallowed_methods)] // the one place allowed to read the system clock

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_saturates() {
        let c = ManualClock::new(DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1));
        assert_eq!(c.advance(TimeDelta::days(1)), DateTime::<Utc>::MAX_UTC);
        let c = ManualClock::new(DateTime::<Utc>::MIN_UTC);
        assert_eq!(c.advance(TimeDelta::days(-1)), DateTime::<Utc>::MIN_UTC);
    }
}
