//! The few distributions the traces draw from, over core's seeded
//! generator (SplitMix64): a published trace must be the same for a seed
//! forever, and `rand` does not promise that its seeded generators keep
//! their output across versions.

/// SplitMix64 (Steele, Lea and Flood, 2014; the generator is core's
/// [`continuity_core::testing::SplitMix64`]), with the distributions the
/// traces draw from.
#[derive(Clone, Debug)]
pub struct SplitMix64(continuity_core::testing::SplitMix64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(continuity_core::testing::SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`, 53 bits of precision.
    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    /// Uniform in `(0, 1]`: safe to take the logarithm of.
    fn open_uniform(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Whether an event of probability `p` happens.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// An index in `0..n` (`n > 0`; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // The modulo bias is below 2^-50 for the small n used here.
        (self.next_u64() % n as u64) as usize
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_uniform().ln()
    }

    /// Standard normal (Box–Muller; the second value is dropped to keep
    /// the stream simple).
    pub fn normal(&mut self) -> f64 {
        let r = (-2.0 * self.open_uniform().ln()).sqrt();
        r * (std::f64::consts::TAU * self.uniform()).cos()
    }

    /// Lognormal with the given median and log-scale standard deviation.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Pareto with scale `min` and shape `alpha` (values from `min` up).
    pub fn pareto(&mut self, min: f64, alpha: f64) -> f64 {
        min * self.open_uniform().powf(-1.0 / alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_seeds_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = SplitMix64::new(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(SplitMix64::new(7).next_u64(), SplitMix64::new(8).next_u64());
        // The reference value of SplitMix64 for seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn distributions_have_their_means() {
        let mut r = SplitMix64::new(1);
        let n = 200_000;
        let u = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.01, "{u}");
        let e = (0..n).map(|_| r.exponential(30.0)).sum::<f64>() / n as f64;
        assert!((e - 30.0).abs() < 0.5, "{e}");
        let z = (0..n).map(|_| r.normal()).collect::<Vec<_>>();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        assert!((0..1000).all(|_| r.pareto(60.0, 1.5) >= 60.0));
    }
}
