//! What an evaluation returns: the [`Verdict`] and the [`Reading`] behind it,
//! rendered as an administrator reads it.
//!
//! Shared by every policy, including those outside the crate, so it lives
//! in none of theirs.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use super::{FailureLimit, FlowFinding, LatencyStatistic};
use crate::duration::human;
/// The result of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the condition is breached at this evaluation.
    pub breached: bool,
    /// The figures behind the verdict.
    pub reading: Reading,
}
/// The figures behind a verdict. Cheap to build (no allocation); `Display`
/// renders what an administrator reads, e.g. `p95 latency 42 min, threshold
/// 30 min, 18 samples in the last 1 h`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reading {
    /// A latency statistic against its limit.
    Latency {
        /// The statistic.
        statistic: LatencyStatistic,
        /// Its value; `None` when there were fewer than the minimum samples.
        #[serde(with = "crate::duration::serde_opt_duration")]
        value: Option<Duration>,
        /// The limit.
        #[serde(with = "crate::duration::serde_duration")]
        limit: Duration,
        /// Deliveries in the window.
        samples: u64,
        /// Minimum deliveries for a verdict.
        min_samples: u32,
        /// The window length.
        #[serde(with = "crate::duration::serde_duration")]
        window: Duration,
    },
    /// Failures against their limit.
    Failures {
        /// Failures in the window.
        failures: u64,
        /// Samples in the window.
        samples: u64,
        /// The limit.
        limit: FailureLimit,
        /// Minimum samples for a rate verdict.
        min_samples: u32,
        /// The window length.
        #[serde(with = "crate::duration::serde_duration")]
        window: Duration,
    },
    /// The leaky counter against its threshold.
    Leaky {
        /// The counter's value.
        counter: u32,
        /// The threshold at which the condition raises.
        threshold: u32,
        /// The evaluation period.
        #[serde(with = "crate::duration::serde_duration")]
        period: Duration,
    },
    /// The recent flow against its learned baseline ([`FlowPolicy`](super::FlowPolicy)).
    Flow {
        /// What the tests found.
        finding: FlowFinding,
        /// Bad samples in the span: failures, or (for
        /// [`FlowFinding::UnusualLatency`]) deliveries slower than
        /// `slow_above`, overdue probes included.
        bad: u64,
        /// The samples they are among.
        samples: u64,
        /// The baseline's share of bad samples.
        normal: f64,
        /// The span of recent minutes the finding rests on.
        #[serde(with = "crate::duration::serde_duration")]
        span: Duration,
        /// Deliveries slower than this are slow; `None` while the baseline
        /// holds too few deliveries to judge latency.
        #[serde(with = "crate::duration::serde_opt_duration")]
        slow_above: Option<Duration>,
    },
    /// A reading from a policy outside this crate.
    Custom {
        /// What to show.
        summary: String,
    },
}

impl Reading {
    /// Whether the figures are too few for a verdict either way: no
    /// deliveries, or fewer samples than the policy's `min_samples` (a
    /// failure count already reached is evidence enough whatever the
    /// samples). An unknown reading neither raises nor clears a condition,
    /// and the portal shows it as "no data", not as healthy.
    pub fn is_unknown(&self) -> bool {
        match self {
            Reading::Latency { value, .. } => value.is_none(),
            Reading::Failures {
                failures,
                samples,
                limit,
                min_samples,
                ..
            } => {
                let reached = match limit {
                    FailureLimit::Count(count) => *failures >= u64::from((*count).max(1)),
                    FailureLimit::Rate(_) => false,
                };
                !reached && *samples < u64::from((*min_samples).max(1))
            }
            Reading::Flow { finding, .. } => {
                matches!(finding, FlowFinding::Undecided | FlowFinding::NoData)
            }
            Reading::Leaky { .. } | Reading::Custom { .. } => false,
        }
    }
}

/// What a reading without any delivery says, whatever the policy: silence
/// is neither good nor bad news, so no figure is shown against a threshold.
struct Silence(Duration);

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no deliveries seen in the last {}", human(self.0))
    }
}

/// `n` followed by the singular or plural noun.
struct Counted(u64, &'static str, &'static str);

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.0 == 1 { self.1 } else { self.2 };
        write!(f, "{} {noun}", self.0)
    }
}

fn samples(n: u64) -> Counted {
    Counted(n, "sample", "samples")
}

/// A fraction as a percentage: `25%`, `12.5%`, `33.3%`, `0.05%`.
pub(super) struct Percent(pub(super) f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0 * 100.0;
        if !p.is_finite() {
            return write!(f, "{p}%");
        }
        // Tenths are enough above 1%; below, hundredths keep a small rate from
        // reading as 0%.
        let scale: u64 = if p.abs() < 1.0 { 100 } else { 10 };
        // `as` saturates for absurd values; rates shown here are at most 100%.
        let scaled = (p.abs() * scale as f64).round() as u64;
        let sign = if p < 0.0 && scaled > 0 { "-" } else { "" };
        let (whole, fraction) = (scaled / scale, scaled % scale);
        match (scale, fraction) {
            (_, 0) => write!(f, "{sign}{whole}%"),
            (10, tenths) => write!(f, "{sign}{whole}.{tenths}%"),
            (_, hundredths) if hundredths % 10 == 0 => {
                write!(f, "{sign}{whole}.{}%", hundredths / 10)
            }
            (_, hundredths) => write!(f, "{sign}{whole}.{hundredths:02}%"),
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Latency {
                statistic,
                value,
                limit,
                samples: n,
                min_samples,
                window,
            } => {
                let needed = u64::from((*min_samples).max(1));
                match value {
                    None if *n == 0 => write!(f, "{}", Silence(*window)),
                    Some(value) => write!(
                        f,
                        "{statistic} latency {}, threshold {}, {} in the last {}",
                        human(*value),
                        human(*limit),
                        samples(*n),
                        human(*window)
                    ),
                    None if *n < needed => write!(
                        f,
                        "{statistic} latency: {} in the last {}, at least {needed} needed",
                        samples(*n),
                        human(*window)
                    ),
                    None => write!(
                        f,
                        "{statistic} latency unavailable, threshold {}, {} in the last {}",
                        human(*limit),
                        samples(*n),
                        human(*window)
                    ),
                }
            }
            Reading::Failures {
                failures,
                samples: n,
                limit,
                min_samples,
                window,
            } => match limit {
                _ if *n == 0 => write!(f, "{}", Silence(*window)),
                FailureLimit::Count(count) => {
                    write!(
                        f,
                        "{} of {} in the last {}, threshold {count}",
                        Counted(*failures, "failure", "failures"),
                        Counted(*n, "delivery", "deliveries"),
                        human(*window)
                    )?;
                    if self.is_unknown() {
                        write!(f, ", at least {} needed", (*min_samples).max(1))?;
                    }
                    Ok(())
                }
                FailureLimit::Rate(rate) => {
                    let needed = u64::from((*min_samples).max(1));
                    if *n < needed {
                        write!(
                            f,
                            "failure rate: {} in the last {}, at least {needed} needed",
                            samples(*n),
                            human(*window)
                        )
                    } else {
                        write!(
                            f,
                            "failure rate {} ({failures} of {n}) in the last {}, threshold {}",
                            Percent(*failures as f64 / *n as f64),
                            human(*window),
                            Percent(*rate)
                        )
                    }
                }
            },
            Reading::Leaky {
                counter,
                threshold,
                period,
            } => write!(
                f,
                "leaky counter {counter}, threshold {threshold} ({} periods)",
                human(*period)
            ),
            Reading::Flow {
                finding,
                bad,
                samples: n,
                normal,
                span,
                slow_above,
            } => {
                let rate = *bad as f64 / (*n).max(1) as f64;
                match finding {
                    FlowFinding::NoData => write!(f, "{}", Silence(*span)),
                    FlowFinding::UnusualLatency => write!(
                        f,
                        "{bad} of {} slower than {} in the last {}, normally {}",
                        Counted(*n, "delivery", "deliveries"),
                        human(slow_above.unwrap_or(Duration::MAX)),
                        human(*span),
                        Percent(*normal)
                    ),
                    FlowFinding::UnusualFailures => write!(
                        f,
                        "failure rate {} ({bad} of {n}) in the last {}, normally {}",
                        Percent(rate),
                        human(*span),
                        Percent(*normal)
                    ),
                    FlowFinding::Normal => write!(
                        f,
                        "flowing as usual: failure rate {} ({bad} of {n}) in the last {}, normally {}",
                        Percent(rate),
                        human(*span),
                        Percent(*normal)
                    ),
                    FlowFinding::Flowing => write!(
                        f,
                        "flowing: failure rate {} ({bad} of {n}) in the last {}, normally {}",
                        Percent(rate),
                        human(*span),
                        Percent(*normal)
                    ),
                    FlowFinding::Undecided => write!(
                        f,
                        "failure rate {} ({bad} of {n}) in the last {}, normally {}: too few samples to judge",
                        Percent(rate),
                        human(*span),
                        Percent(*normal)
                    ),
                }
            }
            Reading::Custom { summary } => f.write_str(summary),
        }
    }
}
