//! The tests behind a flow verdict: how improbable a count of bad samples
//! (failures, or slow deliveries) is under the baseline's rate, and whether
//! the samples speak for the baseline rather than for trouble.
//!
//! # Unusual: the binomial tail
//!
//! A span is *unusual* when at least `min_count` of its `n` samples are bad
//! and `x` bad samples or more are improbable under the baseline's
//! probability `p`: `P(X ≥ x) ≤ α` for `X ~ Binomial(n, p)`, the policy's
//! significance. So the chance that healthy traffic makes one span
//! unusual is at most `α`.
//!
//! The tail is first bounded without a sum (Chernoff–Hoeffding):
//!
//! ```text
//! P(X ≥ x) ≤ exp(−n · KL(x/n ‖ p))   for x/n > p,
//! KL(a ‖ p) = a · ln(a/p) + (1 − a) · ln((1 − a)/(1 − p))
//! ```
//!
//! If that bound is below `α` the span is unusual; if it is far above, it
//! is not; in between the exact tail is summed. Nothing is computed while
//! fewer than `min_count` samples are bad, which is nearly always.
//!
//! # Normal: a likelihood ratio against trouble
//!
//! Trouble is a rate of `p₁ = min(max(10p, p + 0.2), (1 + p)/2)`: ten times
//! the baseline, at least 20 points above it, never past half-way to 1. A
//! span is *normal* when its samples are at least `100` times likelier
//! under `p` than under `p₁`:
//!
//! ```text
//! x · ln(p₁/p) + (n − x) · ln((1 − p₁)/(1 − p)) ≤ −ln 100
//! ```
//!
//! At a 1 % baseline that is 21 samples without a failure (35 with one).
//! A span that is neither is *undecided*: it neither raises nor clears.
//!
//! While the flow stays unusual and for an hour after, trouble is at least
//! the highest rate the tests found over a whole span (the lower end of its
//! Wilson interval at one standard error, so a fluke of a few samples does
//! not count as a total outage), if that is at least half the samples:
//! after an outage where nearly every sample failed, a handful of
//! deliveries in a row are already a hundred times likelier under the
//! baseline than under the outage going on, and the condition clears
//! minutes after the flow recovers, even with sparse traffic. While 30 % of
//! deliveries fail, the same handful is no evidence at all.

/// How strongly a span must favour the baseline over trouble to be normal.
pub(super) const NORMAL_ODDS: f64 = 100.0;

/// Below `ln(1/α)` by more than this, the Chernoff bound cannot hide a
/// tail small enough: the exact tail is at least the bound divided by
/// about `√(2πn)`, and `e⁶` covers that up to a few thousand samples per span.
const EXACT_MARGIN: f64 = 6.0;

/// `KL(a ‖ p)` for Bernoulli distributions; `a` in [0, 1], `p` in (0, 1).
pub(super) fn kl(a: f64, p: f64) -> f64 {
    let high = if a > 0.0 { a * (a / p).ln() } else { 0.0 };
    let low = if a < 1.0 {
        (1.0 - a) * ((1.0 - a) / (1.0 - p)).ln()
    } else {
        0.0
    };
    high + low
}

/// `ln P(X ≥ x)` for `X ~ Binomial(n, p)`, summed term by term from `x`
/// up (each term from the last by `(n − k)/(k + 1) · p/(1 − p)`) until the
/// terms no longer matter. `x ≤ n`, `p` in (0, 1).
pub(super) fn binomial_tail_ln(x: u64, n: u64, p: f64) -> f64 {
    if x == 0 {
        return 0.0;
    }
    let q = 1.0 - p;
    // ln C(n, x), as a sum: no log-gamma in std.
    let mut ln_choose = 0.0;
    for i in 0..x {
        ln_choose += ((n - i) as f64 / (i + 1) as f64).ln();
    }
    let first = ln_choose + x as f64 * p.ln() + (n - x) as f64 * q.ln();
    // The rest relative to the first term.
    let ratio = p / q;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in x..n {
        term *= (n - k) as f64 / (k + 1) as f64 * ratio;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    first + sum.ln()
}

/// The rate of trouble the normal test weighs the baseline `p` against:
/// the default one, or `seen` (a lower bound of the rate while the flow
/// was last unusual) if that is higher.
pub(super) fn trouble_rate(p: f64, seen: f64) -> f64 {
    let default = (10.0 * p).max(p + 0.2).min((1.0 + p) / 2.0);
    if seen.is_nan() || seen < SEEN_AT_LEAST {
        return default;
    }
    default.max(seen.min(0.999))
}

/// The outage a flow with too few samples for the normal test is still
/// told apart from (see [`Test::flowing`]): three quarters of the samples
/// bad, which four good ones rule out at a hundred to one, so a direction
/// watched by probes alone (six or seven in the ring) reads as flowing.
const FLOWING_AGAINST: f64 = 0.75;

/// A trouble rate seen counts only from here: below, the default trouble
/// rate is about as high, and leaning on a rough estimate near the rate a
/// partial failure really has would let a lucky run of deliveries during
/// it pass for a recovery.
const SEEN_AT_LEAST: f64 = 0.5;

/// A lower bound of the rate behind `x` bad samples out of `n`: the Wilson
/// score interval's lower end at one standard error (z = 1, 84 % one-sided).
pub(super) fn rate_lower_bound(x: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    const Z: f64 = 1.0;
    let n = n as f64;
    let a = (x as f64 / n).min(1.0);
    let z2 = Z * Z;
    let centre = a + z2 / (2.0 * n);
    let spread = Z * (a * (1.0 - a) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// What one stream of samples (failures among samples, or slow among
/// deliveries) says over a span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Finding {
    /// Improbable under the baseline.
    Unusual,
    /// Much likelier under the baseline than under trouble.
    Normal,
    /// Neither, over every span looked at.
    Undecided,
}

/// One stream's test, set up once per evaluation for its baseline rate and
/// then fed one more (older) minute at a time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Test {
    /// The baseline's rate of bad samples.
    pub(super) p: f64,
    /// `ln(p₁/p)` and `ln((1 − p₁)/(1 − p))`: the normal test is linear.
    bad_weight: f64,
    good_weight: f64,
    /// `ln(1/α)`.
    threshold: f64,
    min_count: u64,
    /// The samples and bad samples so far, newest minutes first.
    pub(super) n: u64,
    pub(super) x: u64,
    /// The finding, once a span decided it.
    pub(super) finding: Finding,
    /// Minutes in the span that decided (or all, while undecided).
    pub(super) minutes: u32,
    /// The newest minutes whose good samples do not count toward normal
    /// (see [`settling`](Self::settling)), and those good samples.
    settle: u32,
    unsettled_good: u64,
}

impl Test {
    /// A test of bad samples at baseline rate `p` (clamped to (0, 1)) at
    /// significance `ln(1/α) = threshold`; `seen` is the trouble rate last
    /// seen (NaN: none), which a normal span must also be unlikely under.
    pub(super) fn new(p: f64, seen: f64, threshold: f64, min_count: u32) -> Self {
        let p = if p.is_nan() {
            0.5
        } else {
            p.clamp(1e-9, 1.0 - 1e-9)
        };
        let p1 = trouble_rate(p, seen);
        Test {
            p,
            bad_weight: (p1 / p).ln(),
            good_weight: ((1.0 - p1) / (1.0 - p)).ln(),
            threshold,
            min_count: u64::from(min_count.max(1)),
            n: 0,
            x: 0,
            finding: Finding::Undecided,
            minutes: 0,
            settle: 0,
            unsettled_good: 0,
        }
    }

    /// The good samples of the newest `minutes` do not count toward normal.
    /// A slow delivery counts in the minute it was due, once it arrives, so
    /// while deliveries are slow the newest minutes hold the fast ones
    /// without the slow ones still on their way: they look better than
    /// they are.
    pub(super) fn settling(mut self, minutes: u32) -> Self {
        self.settle = minutes;
        self
    }

    /// Adds the next older minute (`n` samples, `x` of them bad) and tests
    /// the span so far, unless an earlier span already decided. Past the
    /// policy's span (`within_span` false) only normal is looked for: a
    /// sparse stream needs longer to show it is back to normal.
    pub(super) fn extend(&mut self, n: u64, x: u64, within_span: bool) {
        if self.finding != Finding::Undecided {
            return;
        }
        self.n = self.n.saturating_add(n);
        self.x = self.x.saturating_add(x.min(n));
        self.minutes += 1;
        if self.minutes <= self.settle {
            self.unsettled_good = self.unsettled_good.saturating_add(n - x.min(n));
        }
        if self.n == 0 {
            return;
        }
        let good = (self.n - self.x).saturating_sub(self.unsettled_good);
        if within_span && self.x >= self.min_count && self.unusual() {
            self.finding = Finding::Unusual;
        } else if self.x as f64 * self.bad_weight + good as f64 * self.good_weight
            <= -NORMAL_ODDS.ln()
        {
            self.finding = Finding::Normal;
        }
    }

    /// Whether all the samples added are a hundred times likelier under the
    /// baseline than under an outage of most of them: too few to rule out
    /// a small rise (the normal test), enough to say the flow goes on.
    pub(super) fn flowing(&self) -> bool {
        // The likelihood ratio by powers, not logarithms: this runs at
        // every evaluation of a sparse, healthy direction.
        let (p, p1) = (self.p, FLOWING_AGAINST);
        let power = |base: f64, n: u64| base.powi(i32::try_from(n).unwrap_or(i32::MAX));
        self.n > 0
            && self.x <= self.n
            && power(p / p1, self.x) * power((1.0 - p) / (1.0 - p1), self.n - self.x) >= NORMAL_ODDS
    }

    fn unusual(&self) -> bool {
        let a = self.x as f64 / self.n as f64;
        if a <= self.p {
            return false;
        }
        let bound = self.n as f64 * kl(a, self.p);
        bound >= self.threshold
            || (bound >= self.threshold - EXACT_MARGIN
                && binomial_tail_ln(self.x, self.n, self.p) <= -self.threshold)
    }
}
