//! The flow policy: mail judged against its own history. [`FlowPolicy`]
//! learns each direction's baseline (how many samples normally fail, how
//! latencies are normally spread) and raises when the recent minutes are
//! improbable under it; [`FlowThreshold`] is its configuration.
//!
//! The detector is documented on [`FlowPolicy`], where readers of the
//! public API find it; `evidence.rs` holds the math.

mod baseline;
mod evidence;
mod recent;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Reading, ThresholdPolicy, Verdict, field, next_multiple};
use crate::{
    domain::Outcome,
    duration::serde_duration,
    error::{Error, Result},
    window::SlidingWindow,
};
use baseline::{Baseline, Excluded, class_floor, class_of};
use evidence::{Finding, Test, rate_lower_bound};
use recent::{MINUTES, Recent};

/// What a flow verdict found (see [`Reading::Flow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowFinding {
    /// Failures and latency as usual.
    Normal,
    /// Failures far above the baseline's rate.
    UnusualFailures,
    /// Far more deliveries slower than usual than the baseline has.
    UnusualLatency,
    /// Too few samples to rule out a small rise, but enough to rule out an
    /// outage: mail goes through. Shown as flowing; it does not clear a
    /// raised condition (its health is unknown), as after a restart the
    /// trouble it would clear is not known.
    Flowing,
    /// Too few samples to tell either way.
    Undecided,
    /// No samples in the span.
    NoData,
}

const MINUTE_MS: i64 = 60_000;

/// A new tenant's failure rate until its own history outweighs it.
const PRIOR_FAILURE_RATE: f64 = 0.02;
/// How many samples that prior weighs.
const PRIOR_SAMPLES: f64 = 100.0;
/// Deliveries the baseline holds before latency is judged.
const LATENCY_BASELINE: f64 = 200.0;
/// "Slower than usual": slower than all but this share of the baseline.
const SLOW_SHARE: f64 = 0.1;
/// No baseline rate is taken below this.
const RATE_FLOOR: f64 = 0.001;
/// How long after the flow was last unusual the rate then seen still
/// counts as the trouble to weigh a recovery against.
const TROUBLE_MEMORY_MINUTES: i64 = 60;
/// Recovering from a slowdown, the good samples of the newest minutes do
/// not count toward normal: slow deliveries of those minutes may still be
/// on their way. At ten times the usual latency nearly all have arrived
/// after two minutes.
const SETTLE_MINUTES: u32 = 2;
/// Deliveries the far test ([`FlowPolicy::overdue_far`]) adds to the
/// baseline at any latency it asks about: three, as in the rule of three
/// (no such latency among `n` deliveries still allows a share of `3/n`).
const FAR_PSEUDO_DELIVERIES: f64 = 3.0;
/// While the flow is unusual, observations are learned at this share.
const UNUSUAL_SHARE: f64 = 1.0 / 16.0;

fn default_span() -> Duration {
    FlowThreshold::DEFAULT_SPAN
}
fn default_significance() -> f64 {
    FlowThreshold::DEFAULT_SIGNIFICANCE
}
fn default_half_life() -> Duration {
    FlowThreshold::DEFAULT_HALF_LIFE
}
fn default_min_count() -> u32 {
    FlowThreshold::DEFAULT_MIN_COUNT
}
fn default_slow_floor() -> Duration {
    FlowThreshold::DEFAULT_SLOW_FLOOR
}

/// Configuration of a [`FlowPolicy`]; every field has a default, so `{}`
/// (in TOML `flow = {}`) is the default detector:
///
/// ```json
/// { "span": "30m", "significance": 1e-7, "half_life": "3d", "min_count": 3, "slow_floor": "10s" }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowThreshold {
    /// The longest span of recent minutes tested for unusual (default 30
    /// min; whole minutes from 2 to 32). A longer span sees trouble in
    /// sparser traffic, with more tests for chance to pass.
    #[serde(default = "default_span", with = "serde_duration")]
    pub span: Duration,
    /// The most a span of healthy traffic may be improbable and still count
    /// as chance (default 10⁻⁷; above 0, at most 0.01).
    #[serde(default = "default_significance")]
    pub significance: f64,
    /// How fast the baseline forgets (default 3 days; 1 hour to 90 days).
    #[serde(default = "default_half_life", with = "serde_duration")]
    pub half_life: Duration,
    /// Fewest failures, or slow deliveries, that can make the flow unusual
    /// (default 3; at least 1).
    #[serde(default = "default_min_count")]
    pub min_count: u32,
    /// No delivery faster than this is slow, whatever the baseline (default 10 s).
    #[serde(default = "default_slow_floor", with = "serde_duration")]
    pub slow_floor: Duration,
}

impl Default for FlowThreshold {
    fn default() -> Self {
        FlowThreshold {
            span: Self::DEFAULT_SPAN,
            significance: Self::DEFAULT_SIGNIFICANCE,
            half_life: Self::DEFAULT_HALF_LIFE,
            min_count: Self::DEFAULT_MIN_COUNT,
            slow_floor: Self::DEFAULT_SLOW_FLOOR,
        }
    }
}

impl FlowThreshold {
    /// Default of [`FlowThreshold::span`].
    pub const DEFAULT_SPAN: Duration = Duration::from_secs(30 * 60);
    /// Default of [`FlowThreshold::significance`].
    pub const DEFAULT_SIGNIFICANCE: f64 = 1e-7;
    /// Default of [`FlowThreshold::half_life`].
    pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(3 * 86_400);
    /// Default of [`FlowThreshold::min_count`].
    pub const DEFAULT_MIN_COUNT: u32 = 3;
    /// Default of [`FlowThreshold::slow_floor`].
    pub const DEFAULT_SLOW_FLOOR: Duration = Duration::from_secs(10);

    /// Checks the values; errors name the field under `field_prefix`
    /// (e.g. `inbound.flow.span`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        let secs = self.span.as_secs();
        if self.span.subsec_nanos() != 0
            || !secs.is_multiple_of(60)
            || !(2..=MINUTES as u64).contains(&(secs / 60))
        {
            return Err(Error::config(
                field(field_prefix, "span"),
                format!("must be whole minutes from 2 to {MINUTES}"),
            ));
        }
        if !(self.significance > 0.0 && self.significance <= 0.01) {
            return Err(Error::config(
                field(field_prefix, "significance"),
                format!(
                    "must be greater than 0 and at most 0.01 (1e-7 is the default), got {}",
                    self.significance
                ),
            ));
        }
        if self.half_life < Duration::from_secs(3600)
            || self.half_life > Duration::from_secs(90 * 86_400)
        {
            return Err(Error::config(
                field(field_prefix, "half_life"),
                "must be between 1 hour and 90 days",
            ));
        }
        if self.min_count == 0 {
            return Err(Error::config(
                field(field_prefix, "min_count"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Judges a direction's recent minutes against its learned baseline. Fed
/// by [`ThresholdPolicy::record`]; reads the window only for probes still
/// pending.
///
/// # What it looks at
///
/// - **Failures**: the share of samples (deliveries plus failures) that
///   failed, against the baseline's share.
/// - **Latency**: the share of deliveries *slower than usual*, slower than
///   the baseline's 90th percentile (to the half-octave class, and never
///   below `slow_floor`), against the share of the baseline that is. A probe
///   still pending past that is counted as a slow delivery already (a
///   censored latency), so a slowdown shows while the slow probes are on
///   their way.
/// - **Probes pending far longer than usual**: against heavy-tailed
///   traffic a tenth of the deliveries are slow, so the four pending
///   probes a window keeps are no evidence by that share. The `j` that
///   have waited longest (`min_count` or more) are then tested against the
///   baseline's share of deliveries as slow as the shortest of their waits
///   (as last seen pending), among the samples since the oldest was sent:
///   four probes pending for two minutes where one delivery in a hundred
///   takes that long are an outage that shows as silence. Mail delivered
///   on time meanwhile rules it out: then the probes alone are held up.
///
/// Each is tested over every span of the newest 1, 2, … `span` minutes
/// (see `evidence.rs` for the math), newest first: the first span whose
/// bad samples are improbable under the baseline (a binomial tail below
/// `significance`, with at least `min_count` of them) makes the flow
/// *unusual*; the first whose samples are a hundred times likelier under
/// the baseline than under trouble makes it *normal* (for that test only,
/// spans reach back over the 32 minutes kept, so that sparse traffic can
/// show a recovery). Unusual failures or latency breach the condition, and
/// it stays breached until the flow is normal again (undecided spans do not
/// end it); normal is healthy; anything else (too few samples, silence) is
/// unknown, which neither raises nor clears. Being latched, the verdicts
/// need no ticks of hysteresis ([`ThresholdPolicy::debounced`]): the
/// direction's `raise_after` and `clear_after` do not apply. Once normal,
/// the minutes of the episode just ended are judged: no span reaching back
/// into them makes the flow unusual again.
///
/// A slow delivery counts in the minute it would have arrived by if it were
/// not slow (sent, plus the slow threshold), where a probe still pending
/// counts while it is: so each counts once, and mail held up by a slowdown
/// that lands after it ended does not hide the recovery. The other side of
/// it: while deliveries are slow, the newest minutes hold the fast ones
/// without the slow ones still on their way, so after a slowdown the good
/// samples of the newest two minutes do not count toward normal.
///
/// # The baseline
///
/// Every observation is learned with an exponential decay of `half_life`
/// (default 3 days; see `baseline.rs`), while the flow is unusual at a
/// sixteenth of its weight, so that an outage barely moves what is normal
/// but a lasting change becomes normal within a few half-lives. The
/// minutes under test are left out of the baseline they are judged
/// against. A new tenant starts from a prior of 2 % failures weighing as
/// much as 100 samples; its latency is judged once the baseline holds 200
/// deliveries (until then only the failures, and the absolute thresholds,
/// apply). No rate is taken below 0.1 %: a history without failures does
/// not make one failure an incident.
///
/// # False alarms
///
/// A span of healthy traffic is unusual with probability at most
/// `significance` (10⁻⁷). What passes at 2 messages a minute is a run such
/// as 4 failures in 4 samples at a 1 % baseline, or 6 slow deliveries in 6
/// at 5 %: about 10⁻⁴ such runs a day per direction, one false alert in
/// some 30 years per direction. Measured on 300 direction-days of
/// heavy-tailed traffic with 1 % failures: none (`DETECTION.md`).
#[derive(Clone, Debug)]
// `repr(C)`: what recording an observation reads comes first, then the
// baseline (its figures first), the ring, and what only evaluating reads.
#[repr(C)]
pub struct FlowPolicy {
    // Only what evaluating needs, not the threshold it came from: this is
    // kept for every direction of every tenant (the memory budget).
    /// Deliveries in a class above this are slow (`None`: latency not
    /// judged yet).
    slow_class: Option<u8>,
    /// The latest verdict breached: learn at a reduced share.
    unusual: bool,
    /// Probes are pending past the slow floor: their ages grow into the
    /// evidence without a new observation, so the verdict holds a minute only.
    unsettled: bool,
    /// The latest evaluation counted a probe as slow that the one before
    /// had not, and found nothing unusual yet: a fresh probe now tells
    /// sooner than the next round whether it was chance.
    probe_soon: bool,
    /// Overdue probes the latest evaluation counted as slow.
    overdue_counted: u8,
    /// Deliveries on time recorded since the latest evaluation (saturating).
    on_time: u8,
    /// The first minute (since the Unix epoch) of the span that last ended
    /// an unusual flow: older minutes were judged with the trouble they
    /// belong to, and raise nothing again.
    judged_before: i32,
    span_minutes: u8,
    /// No class below this is slow.
    floor_class: u8,
    /// The flow was found unusual (failures or latency) and has not been
    /// normal since: undecided spans leave it unusual.
    latched: Option<FlowFinding>,
    min_count: u32,
    baseline: Baseline,
    recent: Recent,
    /// `ln(1 / significance)`.
    log_odds: f64,
    /// The trouble seen while the flow was last unusual, for an hour after.
    episode: Option<Episode>,
}

impl FlowPolicy {
    /// A policy for `threshold`, with an empty baseline. Out-of-range values
    /// are brought into range (span 2 to 32 minutes, significance in (0, 0.01]).
    pub fn new(threshold: FlowThreshold) -> Self {
        let span_minutes = u8::try_from(threshold.span.as_secs() / 60)
            .unwrap_or(u8::MAX)
            .clamp(2, MINUTES as u8);
        let significance = if threshold.significance > 0.0 {
            threshold.significance.min(0.01)
        } else {
            FlowThreshold::DEFAULT_SIGNIFICANCE
        };
        FlowPolicy {
            log_odds: (1.0 / significance).ln(),
            min_count: threshold.min_count,
            span_minutes,
            floor_class: class_of(threshold.slow_floor),
            slow_class: None,
            unusual: false,
            unsettled: false,
            probe_soon: false,
            overdue_counted: 0,
            on_time: 0,
            judged_before: i32::MIN,
            latched: None,
            episode: None,
            recent: Recent::new(),
            baseline: Baseline::new(threshold.half_life),
        }
    }

    /// Deliveries slower than this are slow (`None`: latency not judged yet).
    fn slow_above(&self) -> Option<Duration> {
        self.slow_class.map(|class| match class.checked_add(1) {
            Some(next) if usize::from(next) < baseline::CLASSES => class_floor(next),
            _ => Duration::MAX,
        })
    }

    /// The failure rate the baseline calls normal at `now` (the recent
    /// minutes under test left out).
    pub fn normal_failure_rate(&self, now: DateTime<Utc>) -> f64 {
        // Reading the baseline moves its decay origin: work on a copy.
        let mut p = self.clone();
        let excluded = p.excluded();
        p.baseline
            .failure_rate(minute_of(now), PRIOR_FAILURE_RATE, PRIOR_SAMPLES, &excluded)
            .max(RATE_FLOOR)
    }

    /// What the baseline learned from the minutes the ring holds (at the
    /// share it learned them).
    fn excluded(&mut self) -> Excluded {
        let mut ex = Excluded::default();
        // Minutes are consecutive, newest first: each weighs the one
        // before times 2^(−1/half-life), without an exp2 per minute.
        let mut weight: Option<f64> = None;
        let step = self.baseline.minute_step();
        for (m, c, reduced) in self.recent.held() {
            let w = match weight {
                None => self.baseline.weight_of(m),
                Some(w) => w * step,
            };
            weight = Some(w);
            if c.deliveries == 0 && c.failures == 0 {
                continue;
            }
            let w = if reduced { w * UNUSUAL_SHARE } else { w };
            let (d, f) = (f64::from(c.deliveries), f64::from(c.failures));
            ex.samples += (d + f) * w;
            ex.failures += f * w;
            ex.deliveries += d * w;
            ex.slow += f64::from(c.slow) * w;
        }
        ex
    }
}

impl FlowPolicy {
    /// A delivery on time came since the latest evaluation, in traffic too
    /// sparse to show a recovery soon by itself: fewer samples than minutes
    /// in the ring (slow deliveries count where they were due, so the
    /// newest minutes alone would look sparse after a slowdown). A fresh
    /// probe then shows sooner whether the slowdown is over; each on-time
    /// delivery asks once.
    fn recovering_sparsely(&self, minute: i64) -> bool {
        self.on_time > 0 && {
            let samples: usize = (0..MINUTES as i64)
                .map(|back| {
                    let m = self.recent.get(minute - back);
                    usize::from(m.deliveries) + usize::from(m.failures)
                })
                .sum();
            samples < MINUTES
        }
    }

    /// The overdue probes' own test, for an outage that shows as silence
    /// against heavy-tailed traffic: there, a tenth of the deliveries are
    /// slower than usual, so the few probes a window keeps pending are no
    /// evidence by that measure, yet several probes pending longer than
    /// nearly every delivery ever took are. For the `j` longest-waiting
    /// probes (from `min_count` up), with `c` the shortest wait among them
    /// (as last seen pending), the test asks how improbable `j` samples at
    /// `c` or slower are among those since the oldest was sent (the
    /// samples in the ring plus the `j`), at the baseline's share of
    /// deliveries at `c`'s class or slower (with
    /// [`FAR_PSEUDO_DELIVERIES`]) plus its failure rate (a probe that will
    /// be lost is pending too), never below the rate floor: the same
    /// binomial tail at the same significance as the other tests. Probes
    /// sent before the minutes an ended episode was judged with are left
    /// out, as are probes sent before the ring reaches back (the samples
    /// since are not all known). The share is the whole baseline's: the
    /// recent minutes are not left out of it, being few against days of
    /// history. Mail delivered meanwhile that rules out an outage
    /// ([`Test::flowing`] at the baseline's share of slow deliveries,
    /// `slow_share`) means the probes alone are held up: no verdict.
    /// Returns the test that found the flow unusual, if one did, and the
    /// latency it judged (the floor of `c`'s class).
    fn overdue_far(
        &self,
        overdue: &[Option<(Duration, Duration)>],
        slow_share: f64,
        failure_rate: f64,
        minute: i64,
        now: DateTime<Utc>,
    ) -> Option<(Test, Duration)> {
        let mut seen = [Duration::ZERO; crate::window::OVERDUE_CAPACITY];
        let (mut k, mut back) = (0usize, 0i64);
        for &(age, at_least) in overdue.iter().flatten() {
            let sent = chrono::TimeDelta::from_std(age)
                .ok()
                .and_then(|a| now.checked_sub_signed(a))
                .map_or(i64::MIN, minute_of);
            // Sent before the ring reaches back, the samples since are not
            // all known (they would be undercounted): it has said its part.
            if sent < i64::from(self.judged_before)
                || minute.saturating_sub(sent) >= MINUTES as i64
                || k == seen.len()
            {
                continue;
            }
            seen[k] = at_least;
            k += 1;
            back = back.max(minute.saturating_sub(sent));
        }
        if (k as u64) < u64::from(self.min_count) {
            return None;
        }
        seen[..k].sort_unstable_by(|a, b| b.cmp(a));
        let back = back.max(0);
        let (mut samples, mut bad) = (0u64, 0u64);
        for b in 0..=back {
            let m = self.recent.get(minute - b);
            samples += u64::from(m.deliveries) + u64::from(m.failures);
            bad += u64::from(m.slow) + u64::from(m.failures);
        }
        // Mail delivered on time meanwhile rules out an outage: then the
        // probes alone are held up, which is no news of the flow.
        let mut meanwhile = Test::new(slow_share, f64::NAN, self.log_odds, self.min_count);
        meanwhile.extend(samples, bad, false);
        if meanwhile.flowing() {
            return None;
        }
        (self.min_count.max(1) as usize..=k).rev().find_map(|j| {
            let class = class_of(seen[j - 1]);
            // A probe that will be lost is pending too: under the baseline,
            // a sample is still out after `c` when it is that slow or fails.
            let share = (self
                .baseline
                .share_from(class, FAR_PSEUDO_DELIVERIES, minute)?
                + failure_rate)
                .clamp(RATE_FLOOR, 1.0);
            let mut test = Test::new(share, f64::NAN, self.log_odds, self.min_count);
            test.extend(samples.saturating_add(j as u64), j as u64, true);
            test.minutes = u32::try_from(back + 1).unwrap_or(u32::MAX);
            (test.finding == Finding::Unusual).then_some((test, class_floor(class)))
        })
    }

    /// Keeps the highest rate of trouble the tests found over a whole
    /// span (`unusual`; not merely latched, so that the minutes of a
    /// recovery do not water it down). While the verdict stays `breached`
    /// and for an hour after, the normal test weighs a recovery against it.
    fn remember_trouble(
        &mut self,
        unusual: Option<FlowFinding>,
        breached: bool,
        failures: Tally,
        slow: Tally,
        minute: i64,
    ) {
        let until =
            i32::try_from(minute.saturating_add(TROUBLE_MEMORY_MINUTES)).unwrap_or(i32::MAX);
        let Some(kind) = unusual else {
            if let Some(e) = self.episode.as_mut().filter(|_| breached) {
                e.until = until;
            }
            return;
        };
        let bound = |t: Tally| rate_lower_bound(t.bad, t.samples) as f32;
        let (f, s) = (bound(failures), bound(slow));
        let (failing, slow) = match self.episode {
            Some(e) => (e.failing.max(f), e.slow.max(s)),
            None => (f, s),
        };
        self.episode = Some(Episode {
            kind,
            failing,
            slow,
            until,
        });
    }
}

/// The trouble seen while the flow was unusual (see
/// [`FlowPolicy::remember_trouble`]).
#[derive(Clone, Copy, Debug)]
struct Episode {
    /// What was unusual last.
    kind: FlowFinding,
    /// Lower bounds of the failure and slow rates (single precision: kept
    /// for every direction, and a rate needs no more).
    failing: f32,
    slow: f32,
    /// Forgotten after this minute (since the Unix epoch; an `i32` reaches
    /// past the year 6000).
    until: i32,
}

/// Samples and bad samples over a span.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    samples: u64,
    bad: u64,
}

impl Tally {
    fn add(&mut self, samples: u64, bad: u64) {
        self.samples = self.samples.saturating_add(samples);
        self.bad = self.bad.saturating_add(bad.min(samples));
    }
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(MINUTE_MS)
}

fn minutes(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 60)
}

impl ThresholdPolicy for FlowPolicy {
    fn condition(&self) -> &str {
        "flow"
    }

    fn records(&self) -> bool {
        true
    }

    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let minute = minute_of(at);
        let latency = match outcome {
            Outcome::Delivered { latency } => Some(*latency),
            Outcome::Failed { .. } => None,
        };
        let slow = latency.is_some_and(|l| self.slow_class.is_some_and(|c| class_of(l) > c));
        // A slow delivery tells of the flow when it should have arrived
        // (sent, plus what is not slow yet), not when it did: so it counts
        // where an overdue probe does, once, and mail held up by a past
        // slowdown does not hide the recovery that follows.
        let counted_at = match (slow, latency, self.slow_above()) {
            (true, Some(l), Some(above)) => {
                let late_by = chrono::TimeDelta::from_std(l.saturating_sub(above))
                    .unwrap_or(chrono::TimeDelta::MAX);
                at.checked_sub_signed(late_by).map_or(i64::MIN, minute_of)
            }
            _ => minute,
        };
        if latency.is_some() && !slow {
            self.on_time = self.on_time.saturating_add(1);
        }
        self.recent
            .count(counted_at, latency.is_none(), slow, self.unusual);
        let share = if self.unusual { UNUSUAL_SHARE } else { 1.0 };
        self.baseline.learn(minute, latency, share);
    }

    /// Every probe pending past the slow floor (to its class) is marked; the policy
    /// counts those pending past what its baseline calls slow.
    fn overdue_after(&self) -> Option<Duration> {
        Some(class_floor(self.floor_class))
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let minute = minute_of(now);
        let excluded = self.excluded();
        let failure_rate = self
            .baseline
            .failure_rate(minute, PRIOR_FAILURE_RATE, PRIOR_SAMPLES, &excluded)
            .max(RATE_FLOOR);
        if self.episode.is_some_and(|e| minute > i64::from(e.until)) {
            self.episode = None;
        }
        let (seen_failing, seen_slow) = self.episode.map_or((f64::NAN, f64::NAN), |e| {
            (f64::from(e.failing), f64::from(e.slow))
        });
        let mut failures = Test::new(failure_rate, seen_failing, self.log_odds, self.min_count);
        let slow = (self.baseline.effective_deliveries(minute, &excluded) >= LATENCY_BASELINE)
            .then(|| {
                self.baseline
                    .slow_class(SLOW_SHARE, self.floor_class, &excluded)
            })
            .flatten();
        self.slow_class = slow.map(|(class, _)| class);
        let slow_above = self.slow_above();
        // Recovering from a slowdown, the newest minutes are not yet
        // evidence of normal: their slow deliveries may still be on the way.
        let settle =
            if self.latched.or(self.episode.map(|e| e.kind)) == Some(FlowFinding::UnusualLatency) {
                SETTLE_MINUTES
            } else {
                0
            };
        let mut latency = slow.map(|(_, share)| {
            Test::new(
                share.max(RATE_FLOOR),
                seen_slow,
                self.log_odds,
                self.min_count,
            )
            .settling(settle)
        });
        let stats = window.stats(now);
        // A probe overdue counts as a slow delivery in the minute it would
        // have arrived by if it were not slow: it tells of the flow when it
        // was sent, and probes sent since come before it in the scan.
        let mut late = [0u64; MINUTES];
        let mut overdue = 0u64;
        if let Some(above) = slow_above {
            for age in stats.overdue_over(above).into_iter().flatten() {
                let due = now
                    .checked_sub_signed(
                        chrono::TimeDelta::from_std(age).unwrap_or(chrono::TimeDelta::MAX),
                    )
                    .and_then(|sent| {
                        sent.checked_add_signed(chrono::TimeDelta::from_std(above).ok()?)
                    })
                    .map_or(minute, minute_of);
                // Overdue longer than the ring reaches back, it has said
                // what it had to say.
                let back = minute.saturating_sub(due).max(0);
                if let Some(place) = usize::try_from(back).ok().and_then(|b| late.get_mut(b)) {
                    *place += 1;
                    overdue += 1;
                }
            }
        }
        // A pending probe ages into "slow" without a new observation.
        self.unsettled = stats.overdue_over(Duration::ZERO)[0].is_some();
        // The whole span's figures, for the trouble rate remembered.
        let (mut all_failures, mut all_slow) = (Tally::default(), Tally::default());
        let judged = minute.saturating_sub(i64::from(self.judged_before));
        for back in 0..MINUTES as u32 {
            let within = back < u32::from(self.span_minutes) && i64::from(back) <= judged;
            let decided = failures.finding != Finding::Undecided
                && latency.is_none_or(|t| t.finding != Finding::Undecided);
            if decided && !within {
                break;
            }
            let m = self.recent.get(minute - i64::from(back));
            let (d, f, s) = (
                u64::from(m.deliveries),
                u64::from(m.failures),
                u64::from(m.slow),
            );
            failures.extend(d + f, f, within);
            let extra = late[back as usize];
            if let Some(t) = &mut latency {
                t.extend(d + extra, s + extra, within);
            }
            if within {
                all_failures.add(d + f, f);
                all_slow.add(d + extra, s + extra);
            }
        }
        // Probes pending far longer than deliveries take, where the share of
        // slow ones says nothing yet (a silent outage). Only to find trouble:
        // once it is latched, probes lost in it stay pending until their
        // deadline and must not hold off the normal the newer samples show.
        let mut shown_above = slow_above;
        if self.latched.is_none()
            && failures.finding != Finding::Unusual
            && latency.is_some_and(|t| t.finding != Finding::Unusual)
            && overdue >= u64::from(self.min_count)
            && let (Some(above), Some(share)) = (slow_above, latency.map(|t| t.p))
            && let Some((far, far_above)) = self.overdue_far(
                &stats.overdue_seen_over(above),
                share,
                failure_rate,
                minute,
                now,
            )
        {
            latency = Some(far);
            shown_above = Some(far_above);
        }
        let latency_finding = latency.map(|t| t.finding);
        let found_unusual =
            failures.finding == Finding::Unusual || latency_finding == Some(Finding::Unusual);
        // What the flow is recovering from: the finding latched, or for as
        // long as the trouble is remembered, the one last latched.
        let recovering = self.latched.or(self.episode.map(|e| e.kind));
        let (finding, test) = match (failures.finding, latency_finding) {
            (Finding::Unusual, _) => (FlowFinding::UnusualFailures, failures),
            (_, Some(Finding::Unusual)) => {
                (FlowFinding::UnusualLatency, latency.unwrap_or(failures))
            }
            // Normal: both tests, or, after an unusual finding, the test
            // that found it (the other merely not unusual: a stray failure
            // does not hold up the end of a slowdown).
            (Finding::Normal, None | Some(Finding::Normal)) => (FlowFinding::Normal, failures),
            (Finding::Normal, Some(Finding::Undecided))
                if recovering == Some(FlowFinding::UnusualFailures) =>
            {
                (FlowFinding::Normal, failures)
            }
            (Finding::Undecided, Some(Finding::Normal))
                if recovering == Some(FlowFinding::UnusualLatency) =>
            {
                (FlowFinding::Normal, latency.unwrap_or(failures))
            }
            _ if failures.n == 0 && overdue == 0 => (FlowFinding::NoData, failures),
            // Unusual stays unusual until the evidence is normal: a span that
            // was improbable does not stop being evidence because a minute on
            // the spans are undecided.
            _ => match self.latched {
                Some(FlowFinding::UnusualLatency) => {
                    (FlowFinding::UnusualLatency, latency.unwrap_or(failures))
                }
                Some(_) => (FlowFinding::UnusualFailures, failures),
                None => (FlowFinding::Undecided, failures),
            },
        };
        // Undecided over the whole ring, with nothing to recover from: too
        // few samples to rule out a small rise, but if they rule out an
        // outage the flow goes on (a direction watched by probes alone
        // would otherwise never read as flowing).
        let finding = if finding == FlowFinding::Undecided
            && recovering.is_none()
            && failures.flowing()
            && latency.is_none_or(|t| t.flowing())
        {
            FlowFinding::Flowing
        } else {
            finding
        };
        match finding {
            FlowFinding::UnusualFailures | FlowFinding::UnusualLatency => {
                self.latched = Some(finding);
            }
            FlowFinding::Normal => {
                if self.latched.is_some() {
                    let first = minute - i64::from(test.minutes.max(1)) + 1;
                    self.judged_before =
                        i32::try_from(first).unwrap_or(if first < 0 { i32::MIN } else { i32::MAX });
                }
                self.latched = None;
            }
            FlowFinding::Flowing | FlowFinding::Undecided | FlowFinding::NoData => {}
        }
        let breached = matches!(
            finding,
            FlowFinding::UnusualFailures | FlowFinding::UnusualLatency
        );
        self.unusual = breached;
        let counted = u8::try_from(overdue).unwrap_or(u8::MAX);
        self.probe_soon = (counted > self.overdue_counted && !breached)
            || (finding == FlowFinding::UnusualLatency && self.recovering_sparsely(minute));
        self.overdue_counted = counted;
        self.on_time = 0;
        self.remember_trouble(
            found_unusual.then_some(finding),
            breached,
            all_failures,
            all_slow,
            minute,
        );
        Verdict {
            breached,
            reading: Reading::Flow {
                finding,
                bad: test.x,
                samples: test.n,
                normal: test.p,
                span: if finding == FlowFinding::NoData {
                    minutes(u32::from(self.span_minutes))
                } else {
                    minutes(test.minutes.max(1))
                },
                slow_above: shown_above,
            },
        }
    }

    /// Without a new observation the spans a minute later are the spans of
    /// now less the longest (the newest minute is empty): nothing unusual
    /// or normal appears by waiting, so a verdict that is not breached holds
    /// until something is recorded, unless a pending probe is growing
    /// older. A breached one is looked at every minute, as its evidence ages.
    fn valid_until(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let _ = window;
        if verdict.breached || self.unsettled {
            next_multiple(now, Duration::from_secs(60))
        } else {
            DateTime::<Utc>::MAX_UTC
        }
    }

    /// While the flow is not unusual, a delivery faster than "slow" adds a
    /// good sample: it makes no span unusual (the tail of the same bad
    /// samples among more only grows), and can only make normal what was
    /// undecided.
    fn absorbs_below(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let _ = (window, now);
        match verdict.reading {
            Reading::Flow { slow_above, .. } if !verdict.breached && !self.unsettled => {
                Some(slow_above.unwrap_or(Duration::MAX))
            }
            _ => None,
        }
    }

    /// After a probe is newly counted as slow, while nothing is unusual
    /// yet: each slow probe brings one more, so a slowdown seen by probes
    /// alone is confirmed within minutes instead of probe rounds. And while
    /// a slowdown is latched in sparse traffic, after each delivery on
    /// time: its end is confirmed as fast.
    fn probe_soon(&self, verdict: &Verdict) -> bool {
        let _ = verdict;
        self.probe_soon
    }

    /// Breached as the verdict says; healthy only when the evidence says
    /// normal. Flowing (too few samples to rule out a small rise) clears
    /// nothing: after a restart or a take-over the latch and the trouble
    /// seen are gone, and a few good samples must not end an outage the
    /// stored state still holds raised.
    fn health(&self, verdict: &Verdict, watched_in_full: bool) -> crate::machine::Health {
        let _ = watched_in_full;
        match verdict.reading {
            _ if verdict.breached => crate::machine::Health::Breached,
            Reading::Flow {
                finding: FlowFinding::Normal,
                ..
            } => crate::machine::Health::Healthy,
            _ => crate::machine::Health::Unknown,
        }
    }

    /// A span is unusual at a significance of 10⁻⁷, not on one unlucky
    /// minute, and the breach is latched until the evidence for normal is
    /// a hundred to one: ticks of hysteresis on top would only delay.
    fn debounced(&self) -> bool {
        true
    }

    fn peek(&self, window: &SlidingWindow, now: DateTime<Utc>) -> Option<Verdict> {
        Some(self.clone().evaluate(window, now))
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<Baseline>() + self.baseline.memory_bytes()
    }

    /// The learned baseline, 217 bytes (the layout is in `baseline.rs`);
    /// `None` until something was learned.
    fn snapshot(&self) -> Option<Vec<u8>> {
        self.baseline.snapshot()
    }

    /// Takes a baseline learned with the same half-life; the latch, the
    /// trouble remembered and the recent minutes stay, and what is slow
    /// follows at the next evaluation.
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        let taken = self.baseline.restore(snapshot);
        if taken {
            // The recent minutes were learned by the baseline replaced.
            self.recent.unlearn();
        }
        taken
    }
}

#[cfg(test)]
mod tests;
