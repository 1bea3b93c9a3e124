//! Client-side limits per mailbox, so that a fleet of probes never meets
//! Graph's throttling (PROTOCOLS.md §7.4): per application and mailbox at
//! most 4 concurrent requests and 10,000 requests in any 10 minutes, and
//! nothing at all to a mailbox while Graph's `Retry-After` runs.
//!
//! Time is core's [`Clock`]: the window and the back-off never wait. A
//! request over a limit is refused at once with the time it may go
//! ([`GraphError::Throttled`]), which the probe reports to the monitor as
//! throttling, so the next round starts after it. Only the concurrency cap
//! waits, for a request in flight to finish.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{Clock, duration::serde_duration};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{GraphError, ThrottleReason};

/// Graph's concurrent requests per application and mailbox.
pub const GRAPH_MAILBOX_CONCURRENCY: usize = 4;
/// Graph's requests per application and mailbox in [`GRAPH_MAILBOX_WINDOW`].
pub const GRAPH_MAILBOX_REQUESTS: u32 = 10_000;
/// The window of [`GRAPH_MAILBOX_REQUESTS`].
pub const GRAPH_MAILBOX_WINDOW: Duration = Duration::from_secs(600);

/// Mailboxes kept without activity before the table is swept.
const SWEEP_ABOVE: usize = 1024;

/// The limits a [`Limiter`] keeps. In configuration every field is optional,
/// with the defaults below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxLimits {
    /// Concurrent requests per mailbox (default 4, Graph's limit).
    pub concurrent_per_mailbox: usize,
    /// Concurrent requests of the application across all its mailboxes
    /// (default 4: one version of Graph's limits page says "up to 4
    /// concurrent requests per app ID across mailboxes"; design for the stricter).
    pub concurrent_per_app: usize,
    /// Requests per mailbox within `window` (default 10,000).
    pub requests_per_window: u32,
    /// The sliding window (default 10 minutes).
    #[serde(with = "serde_duration")]
    pub window: Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        MailboxLimits {
            concurrent_per_mailbox: GRAPH_MAILBOX_CONCURRENCY,
            concurrent_per_app: GRAPH_MAILBOX_CONCURRENCY,
            requests_per_window: GRAPH_MAILBOX_REQUESTS,
            window: GRAPH_MAILBOX_WINDOW,
        }
    }
}

impl MailboxLimits {
    fn validate(&self) -> Result<TimeDelta, GraphError> {
        let bad = |field, reason: &str| GraphError::InvalidConfig {
            field,
            reason: reason.into(),
        };
        if self.concurrent_per_mailbox == 0 || self.concurrent_per_mailbox > Semaphore::MAX_PERMITS
        {
            return Err(bad("limits.concurrent_per_mailbox", "must be at least 1"));
        }
        if self.concurrent_per_app == 0 || self.concurrent_per_app > Semaphore::MAX_PERMITS {
            return Err(bad("limits.concurrent_per_app", "must be at least 1"));
        }
        if self.requests_per_window == 0 {
            return Err(bad("limits.requests_per_window", "must be at least 1"));
        }
        TimeDelta::from_std(self.window)
            .ok()
            .filter(|w| *w >= TimeDelta::seconds(1) && *w <= TimeDelta::days(1))
            .ok_or_else(|| bad("limits.window", "must be 1 s to 1 day"))
    }
}

/// Keeps one application's requests within Graph's mailbox limits. Share
/// one among all [`GraphClient`](crate::GraphClient)s of the same
/// application (clones of a client share theirs).
#[derive(Debug)]
pub struct Limiter {
    limits: MailboxLimits,
    window: TimeDelta,
    clock: Arc<dyn Clock>,
    app: Arc<Semaphore>,
    mailboxes: Mutex<HashMap<Box<str>, Arc<Mailbox>>>,
}

#[derive(Debug)]
struct Mailbox {
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When each request of the current window was let through, oldest first.
    sent: VecDeque<DateTime<Utc>>,
    /// No request before this time (Graph's `Retry-After`).
    not_before: Option<DateTime<Utc>>,
}

/// A request let through: holds its concurrency slots until dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    _mailbox: OwnedSemaphorePermit,
    _app: OwnedSemaphorePermit,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn to_std(d: TimeDelta) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

impl Limiter {
    /// A limiter keeping `limits`, its windows on `clock`.
    pub fn new(limits: MailboxLimits, clock: Arc<dyn Clock>) -> Result<Arc<Self>, GraphError> {
        let window = limits.validate()?;
        Ok(Arc::new(Limiter {
            app: Arc::new(Semaphore::new(limits.concurrent_per_app)),
            limits,
            window,
            clock,
            mailboxes: Mutex::new(HashMap::new()),
        }))
    }

    /// The limits.
    pub fn limits(&self) -> MailboxLimits {
        self.limits
    }

    /// The clock the windows run on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How long from now until `mailbox` may be sent another request
    /// (zero: at once, concurrency permitting).
    pub fn wait_for(&self, mailbox: &str) -> Duration {
        let mb = self.mailbox(mailbox);
        let mut state = lock(&mb.state);
        match self.refusal(&mut state, self.clock.now()) {
            Some((_, wait)) => to_std(wait),
            None => Duration::ZERO,
        }
    }

    /// Requests let through to `mailbox` within the current window.
    pub fn in_window(&self, mailbox: &str) -> usize {
        let mb = self.mailbox(mailbox);
        let mut state = lock(&mb.state);
        self.prune(&mut state, self.clock.now());
        state.sent.len()
    }

    /// Holds `mailbox` back until `wait` from now (Graph's `Retry-After`);
    /// a later time already set stays.
    pub fn back_off(&self, mailbox: &str, wait: Duration) {
        let until = self
            .clock
            .now()
            .checked_add_signed(TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mb = self.mailbox(mailbox);
        let mut state = lock(&mb.state);
        if state.not_before.is_none_or(|t| t < until) {
            state.not_before = Some(until);
        }
    }

    /// Lets one request to `mailbox` through, or says how long it must wait.
    /// Waits only for a concurrency slot.
    pub(crate) async fn admit(&self, mailbox: &str) -> Result<Admission, GraphError> {
        let mb = self.mailbox(mailbox);
        // Refuse before queueing for a slot: a refused request must not hold one.
        self.take_turn(&mb, mailbox, false)?;
        let closed = |_| GraphError::InvalidConfig {
            field: "limiter",
            reason: "closed".into(),
        };
        // Always the mailbox's slot first, then the application's: no request
        // holds an application slot while it waits for a busy mailbox.
        let mailbox_slot = mb.permits.clone().acquire_owned().await.map_err(closed)?;
        let app_slot = self.app.clone().acquire_owned().await.map_err(closed)?;
        self.take_turn(&mb, mailbox, true)?;
        Ok(Admission {
            _mailbox: mailbox_slot,
            _app: app_slot,
        })
    }

    fn take_turn(&self, mb: &Mailbox, mailbox: &str, record: bool) -> Result<(), GraphError> {
        let now = self.clock.now();
        let mut state = lock(&mb.state);
        if let Some((reason, wait)) = self.refusal(&mut state, now) {
            return Err(GraphError::Throttled {
                mailbox: mailbox.to_owned(),
                reason,
                retry_after: to_std(wait),
            });
        }
        if record {
            state.sent.push_back(now);
        }
        Ok(())
    }

    fn prune(&self, state: &mut State, now: DateTime<Utc>) {
        // The window is (now - window, now]: a request exactly one window ago has left it.
        let start = now - self.window;
        while state.sent.front().is_some_and(|t| *t <= start) {
            state.sent.pop_front();
        }
        if state.not_before.is_some_and(|t| t <= now) {
            state.not_before = None;
        }
    }

    fn refusal(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Option<(ThrottleReason, TimeDelta)> {
        self.prune(state, now);
        if let Some(t) = state.not_before {
            return Some((ThrottleReason::RetryAfter, t - now));
        }
        if state.sent.len() >= self.limits.requests_per_window as usize {
            // The oldest request leaves the window one window after it went.
            let oldest = *state.sent.front()?;
            return Some((
                ThrottleReason::Window {
                    limit: self.limits.requests_per_window,
                    window: self.limits.window,
                },
                (oldest + self.window - now).max(TimeDelta::zero()),
            ));
        }
        None
    }

    fn mailbox(&self, mailbox: &str) -> Arc<Mailbox> {
        let key = mailbox.trim().to_ascii_lowercase();
        let mut map = lock(&self.mailboxes);
        if let Some(mb) = map.get(key.as_str()) {
            return mb.clone();
        }
        if map.len() >= SWEEP_ABOVE {
            let now = self.clock.now();
            map.retain(|_, mb| {
                let mut state = lock(&mb.state);
                self.prune(&mut state, now);
                Arc::strong_count(mb) > 1 || !state.sent.is_empty() || state.not_before.is_some()
            });
        }
        let mb = Arc::new(Mailbox {
            permits: Arc::new(Semaphore::new(self.limits.concurrent_per_mailbox)),
            state: Mutex::new(State::default()),
        });
        map.insert(key.into_boxed_str(), mb.clone());
        mb
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use continuity_core::ManualClock;

    fn limiter(limits: MailboxLimits) -> (ManualClock, Arc<Limiter>) {
        let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap());
        let l = Limiter::new(limits, Arc::new(clock.clone())).unwrap();
        (clock, l)
    }

    fn small() -> MailboxLimits {
        MailboxLimits {
            concurrent_per_mailbox: 2,
            concurrent_per_app: 3,
            requests_per_window: 5,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn the_window_slides_and_says_when() {
        let (clock, l) = limiter(small());
        for _ in 0..5 {
            drop(l.admit("a@x").await.unwrap());
            clock.advance(TimeDelta::seconds(10));
        }
        // t0+50 s: five requests at 0, 10, 20, 30, 40 s.
        let e = l.admit("A@X").await.unwrap_err();
        match e {
            GraphError::Throttled {
                reason: ThrottleReason::Window { limit: 5, .. },
                retry_after,
                ..
            } => assert_eq!(retry_after, Duration::from_secs(10)),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.wait_for("a@x"), Duration::from_secs(10));
        assert_eq!(l.in_window("a@x"), 5);
        // Another mailbox has its own window.
        drop(l.admit("b@x").await.unwrap());
        // At t0+60 s the first has left: exactly one more fits.
        clock.advance(TimeDelta::seconds(10));
        drop(l.admit("a@x").await.unwrap());
        assert!(l.admit("a@x").await.is_err());
        assert_eq!(l.in_window("a@x"), 5, "refusals are not counted");
    }

    #[tokio::test]
    async fn retry_after_holds_the_mailbox_back() {
        let (clock, l) = limiter(small());
        l.back_off("a@x", Duration::from_secs(30));
        l.back_off("a@x", Duration::from_secs(5));
        match l.admit("a@x").await.unwrap_err() {
            GraphError::Throttled {
                reason: ThrottleReason::RetryAfter,
                retry_after,
                ..
            } => assert_eq!(retry_after, Duration::from_secs(30), "the later time stays"),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.in_window("a@x"), 0);
        drop(l.admit("b@x").await.unwrap());
        clock.advance(TimeDelta::seconds(30));
        assert_eq!(l.wait_for("a@x"), Duration::ZERO);
        drop(l.admit("a@x").await.unwrap());
    }

    #[tokio::test]
    async fn concurrency_is_capped_per_mailbox_and_per_app() {
        let (_clock, l) = limiter(MailboxLimits {
            requests_per_window: 100,
            ..small()
        });
        let a1 = l.admit("a@x").await.unwrap();
        let a2 = l.admit("a@x").await.unwrap();
        // A third to the same mailbox waits for a slot, not for time.
        let waiting = {
            let l = l.clone();
            tokio::spawn(async move { l.admit("a@x").await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let b1 = l.admit("b@x").await.unwrap();
        // The app has 3 slots, all taken: c waits as well.
        let c = {
            let l = l.clone();
            tokio::spawn(async move { l.admit("c@x").await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        assert!(!c.is_finished());
        drop(b1);
        c.await.unwrap().unwrap();
        drop(a1);
        waiting.await.unwrap().unwrap();
        drop(a2);
    }

    #[test]
    fn limits_are_validated() {
        let clock: Arc<dyn Clock> =
            Arc::new(ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap()));
        for bad in [
            MailboxLimits {
                concurrent_per_mailbox: 0,
                ..MailboxLimits::default()
            },
            MailboxLimits {
                concurrent_per_app: 0,
                ..MailboxLimits::default()
            },
            MailboxLimits {
                requests_per_window: 0,
                ..MailboxLimits::default()
            },
            MailboxLimits {
                window: Duration::from_millis(10),
                ..MailboxLimits::default()
            },
        ] {
            assert!(matches!(
                Limiter::new(bad, clock.clone()),
                Err(GraphError::InvalidConfig { .. })
            ));
        }
        assert_eq!(
            MailboxLimits::default(),
            MailboxLimits {
                concurrent_per_mailbox: 4,
                concurrent_per_app: 4,
                requests_per_window: 10_000,
                window: Duration::from_secs(600)
            }
        );
    }
}
