//! [`Runner`]: the tick loop on tokio, which never dies on a tick's error
//! and stops cleanly.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use continuity_core::{Monitor, duration::serde_duration};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, error, info, warn};

use super::error::ServiceError;

/// The counter of ticks that went wrong, labelled `kind`: `failed` (the
/// tick did not run: [`Monitor::tick`] returned an error, e.g. the clock
/// stepped back) or `partial` (it ran, but reported problems in
/// [`TickReport::errors`](continuity_core::TickReport::errors): a store
/// or a channel that did not answer).
pub const TICK_ERRORS_METRIC: &str = "continuity_runner_tick_errors_total";

/// Default time between two ticks: 1 minute.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(60);

/// Default longest wait after failed ticks: 10 minutes.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(600);

/// At most this many of a tick's problems are logged one by one.
const LOGGED_PROBLEMS: usize = 10;

/// The tick loop as configured (`[runner]`; every field optional):
///
/// ```toml
/// interval = "1m"       # between the starts of two ticks (default 1 min, at least 1 s)
/// max_backoff = "10m"   # longest wait after failed ticks (default 10 min, at least the interval)
/// ```
///
/// The interval must stay below the monitor's lease
/// ([`MonitorSettings::lease`](continuity_core::monitor::MonitorSettings::lease),
/// 2 minutes by default), or probes and shards held by this instance lapse
/// between two ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerSettings {
    /// Time between the starts of two ticks (default [`DEFAULT_TICK_INTERVAL`]).
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Longest wait after consecutive failed ticks (default [`DEFAULT_MAX_BACKOFF`]).
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            interval: DEFAULT_TICK_INTERVAL,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl RunnerSettings {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Config`] for `runner.interval` below 1 s, or
    /// `runner.max_backoff` below the interval.
    pub fn validate(&self) -> Result<(), ServiceError> {
        if self.interval < Duration::from_secs(1) {
            return Err(ServiceError::config(
                "runner.interval",
                "must be at least 1s",
            ));
        }
        if self.max_backoff < self.interval {
            return Err(ServiceError::config(
                "runner.max_backoff",
                "must be at least the interval",
            ));
        }
        Ok(())
    }

    /// The wait before the next tick after `failures` consecutive failed
    /// ticks: the interval, doubled per failure after the first, at most
    /// `max_backoff`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.interval
            .saturating_mul(1 << doublings)
            .min(self.max_backoff.max(self.interval))
    }
}

/// What a [`Runner`] did, when it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Ticks that ran (with or without problems).
    pub ticks: u64,
    /// Of those, ticks that reported problems.
    pub ticks_with_problems: u64,
    /// Ticks that did not run ([`Monitor::tick`] returned an error).
    pub failed_ticks: u64,
}

/// Runs a [`Monitor`]'s ticks on tokio: one at once, then one every
/// [`interval`](RunnerSettings::interval) (a tick that takes longer is
/// followed by the next at once, never by two).
///
/// It never stops on a tick's error. A tick that does not run
/// ([`Monitor::tick`] returns an error, e.g. the clock stepped back) is
/// logged and counted (counter [`TICK_ERRORS_METRIC`], `kind = "failed"`),
/// and the loop backs off: after `n` consecutive failures the next tick
/// comes `interval × 2^(n-1)` later, at most
/// [`max_backoff`](RunnerSettings::max_backoff); the first tick that runs
/// brings the interval back. A tick that runs but reports problems (a
/// store or a channel not answering) is logged and counted
/// (`kind = "partial"`) without backing off: the engine retries those
/// itself, and while the store is down it keeps alerting from memory,
/// which needs its ticks on time.
///
/// It stops on the future given to [`run_until`](Self::run_until), or on
/// SIGTERM or ctrl-c with [`run`](Self::run): a running tick is finished
/// first, then [`Monitor::shut_down`] hands what the instance holds back
/// to the store (in a cluster, its shards).
#[derive(Debug)]
pub struct Runner {
    monitor: Arc<Monitor>,
    settings: RunnerSettings,
}

impl Runner {
    /// A runner for `monitor`.
    ///
    /// # Errors
    ///
    /// Those of [`RunnerSettings::validate`].
    pub fn new(monitor: Arc<Monitor>, settings: RunnerSettings) -> Result<Self, ServiceError> {
        settings.validate()?;
        Ok(Runner { monitor, settings })
    }

    /// A runner with settings already checked.
    pub(crate) fn from_parts(monitor: Arc<Monitor>, settings: RunnerSettings) -> Self {
        Runner { monitor, settings }
    }

    /// Runs until SIGTERM or ctrl-c (see [`shutdown_signal`]).
    ///
    /// # Errors
    ///
    /// Those of [`Monitor::shut_down`] (the loop itself never fails).
    pub async fn run(self) -> continuity_core::Result<RunSummary> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes: a tick running then is finished,
    /// then [`Monitor::shut_down`] is called.
    ///
    /// # Errors
    ///
    /// Those of [`Monitor::shut_down`] (the loop itself never fails); the
    /// summary is logged either way.
    pub async fn run_until<F: Future<Output = ()>>(
        self,
        shutdown: F,
    ) -> continuity_core::Result<RunSummary> {
        let mut shutdown = pin!(shutdown);
        let mut summary = RunSummary::default();
        let mut failures: u32 = 0;
        metrics::describe_counter!(
            TICK_ERRORS_METRIC,
            "Ticks that went wrong: kind=failed (the tick did not run), kind=partial (it ran and reported problems)"
        );
        info!(interval = ?self.settings.interval, "tick loop started");
        loop {
            let started = Instant::now();
            let mut tick = pin!(self.monitor.tick_now());
            let mut stopping = false;
            let outcome = loop {
                tokio::select! {
                    biased;
                    outcome = &mut tick => break outcome,
                    () = &mut shutdown, if !stopping => {
                        info!("shutdown asked for; finishing the running tick");
                        stopping = true;
                    }
                }
            };
            match outcome {
                Ok(report) => {
                    failures = 0;
                    summary.ticks += 1;
                    if report.errors.is_empty() {
                        debug!(?report, "tick done");
                    } else {
                        summary.ticks_with_problems += 1;
                        metrics::counter!(TICK_ERRORS_METRIC, "kind" => "partial").increment(1);
                        for problem in report.errors.iter().take(LOGGED_PROBLEMS) {
                            warn!(problem = %problem, "tick problem");
                        }
                        if report.errors.len() > LOGGED_PROBLEMS {
                            warn!(
                                more = report.errors.len() - LOGGED_PROBLEMS,
                                "further tick problems not logged one by one"
                            );
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    summary.failed_ticks += 1;
                    metrics::counter!(TICK_ERRORS_METRIC, "kind" => "failed").increment(1);
                    error!(
                        error = %e,
                        consecutive = failures,
                        next_in = ?self.settings.delay(failures),
                        "tick failed; the loop goes on"
                    );
                }
            }
            if stopping {
                break;
            }
            let next = started + self.settings.delay(failures);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = sleep_until(next) => {}
            }
        }
        info!(
            ticks = summary.ticks,
            with_problems = summary.ticks_with_problems,
            failed = summary.failed_ticks,
            "tick loop stopped; handing back what this instance holds"
        );
        match self.monitor.shut_down().await {
            Ok(()) => Ok(summary),
            Err(e) => {
                error!(error = %e, "shutting the monitor down failed; what it held waits out its lease");
                Err(e)
            }
        }
    }
}

/// Completes on SIGTERM (Unix) or ctrl-c (SIGINT). A signal that cannot
/// be listened to is logged and left out; if neither can, this never
/// completes (stop the runner with [`Runner::run_until`] then).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => info!("ctrl-c received"),
            Err(e) => {
                warn!(error = %e, "cannot listen for ctrl-c");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                info!("SIGTERM received");
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
