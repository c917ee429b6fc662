//! Regression verdicts: did a candidate run get worse than its baseline?
//!
//! The input is one figure (p95, p99, error rate or throughput) per interval of each run.
//! Comparing two bare numbers ("p95 went up 4 %") cannot tell a change from noise: the
//! same service, tested twice, never gives the same p95. So the verdict rests on a test of
//! the two runs' interval samples, and a change has to be both *real* (significant) and
//! *large enough to matter* (at least the minimum effect) before it is reported.
//!
//! ## Method
//! - **Cleaning**: non-finite values (NaN, ±∞: intervals without requests) are dropped.
//!   Fewer than [`Settings::min_samples`] values left in either run: `Inconclusive`.
//! - **Test**: the Mann–Whitney U (Wilcoxon rank-sum) test, two-sided. It assumes no shape
//!   (latencies are skewed, error rates pile up at zero) and is not swayed by a few extreme
//!   intervals. Tied values get their mid-rank and the variance its tie correction; the
//!   p-value is the normal approximation with a continuity correction (per-interval samples
//!   are in the tens to thousands, where it is accurate). When every value of both runs is
//!   the same, the variance is zero and there is no evidence of a change: p = 1.
//! - **Size of the change**: the Hodges–Lehmann shift, the median of the n·m differences
//!   `candidate − baseline` over all pairs, with its distribution-free confidence interval:
//!   the differences of rank `C` and `n·m + 1 − C`, `C = round(n·m/2 − z·σ_U)` (Hollander &
//!   Wolfe, *Nonparametric Statistical Methods*, §4.3, large-sample form, with the same
//!   tie-corrected σ_U as the test). A 2-hour run at 1 s intervals has 7,200 samples, so
//!   52 M differences: they are never listed. Both runs are sorted once; the differences at
//!   most `t` are then counted in O(n + m), and a bisection over the ordered bit patterns of
//!   `f64` finds the k-th smallest exactly in at most 64 counts. The result is exact and
//!   deterministic, with no resampling and no seed.
//! - **Effect**: the shift and its interval relative to the baseline median
//!   ([`Scale::Relative`]: 0.2 is +20 %). A zero baseline median (an error rate that was
//!   0) has no relative change, so the effect is then the shift itself in the metric's unit
//!   ([`Scale::Absolute`]), compared with [`Settings::min_absolute_effect`].
//!
//! ## Verdict rules (α = 1 − confidence; τ = the minimum effect on the effect's scale)
//! 1. Invalid settings, or too few samples in either run → `Inconclusive`.
//! 2. p ≥ α → `Unchanged`: no evidence of any change.
//! 3. p < α but the effect is 0 or |effect| < τ → `Unchanged`: a change too small to
//!    matter. τ is the smallest change the team acts on; with thousands of intervals, even
//!    a 1 % drift is significant, and flagging it would teach people to ignore verdicts.
//! 4. p < α and |effect| ≥ τ → `Regressed` when the effect points the worse way for the
//!    metric's [`Direction`], `Improved` otherwise.
//!
//! The interval is reported, not used by the rules: it tells how sure the effect is. Under
//! rule 2 alone, a run compared with a run of the same distribution is `Unchanged` with
//! probability 1 − α; rule 3 only adds to that.

use std::f64::consts::{FRAC_2_SQRT_PI, PI, SQRT_2};

/// The test behind every [`Comparison`] (the interval is its Hodges–Lehmann companion).
pub const METHOD: &str = "mann-whitney-u";

/// What the comparison concludes about the candidate run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A significant change of at least the minimum effect, the better way.
    Improved,
    /// No significant change, or one smaller than the minimum effect.
    Unchanged,
    /// A significant change of at least the minimum effect, the worse way.
    Regressed,
    /// No verdict could be reached; [`Comparison::reason`] says why.
    Inconclusive,
}

impl From<Verdict> for crate::domain::regression::RegressionVerdict {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Improved => Self::Improved,
            Verdict::Unchanged => Self::Unchanged,
            Verdict::Regressed => Self::Regressed,
            Verdict::Inconclusive => Self::Inconclusive,
        }
    }
}

/// Which way a metric gets worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Latency percentiles, error rate.
    HigherIsWorse,
    /// Throughput.
    LowerIsWorse,
}

/// How demanding a comparison is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Confidence level of the test and of the interval, strictly between 0 and 1.
    pub confidence: f64,
    /// The smallest relative change that counts (0.05 = 5 % of the baseline median).
    pub min_effect: f64,
    /// The smallest change that counts when the baseline median is zero, in the metric's
    /// own unit (e.g. 0.01 for an error rate given as a fraction). 0 counts any change.
    pub min_absolute_effect: f64,
    /// The fewest finite interval samples each run needs (at least 1 is always required).
    pub min_samples: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { confidence: 0.95, min_effect: 0.05, min_absolute_effect: 0.0, min_samples: 20 }
    }
}

impl Settings {
    /// Whether [`compare`] can use these settings; otherwise its verdict is `Inconclusive`.
    pub fn is_valid(&self) -> bool {
        let threshold = |value: f64| value.is_finite() && value >= 0.0;
        self.confidence > 0.0
            && self.confidence < 1.0
            && threshold(self.min_effect)
            && threshold(self.min_absolute_effect)
    }
}

/// What [`Comparison::effect`] and [`Comparison::interval`] are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// A fraction of the baseline median: 0.2 is +20 %.
    Relative,
    /// The metric's own unit, used when the baseline median is zero.
    Absolute,
}

/// Why the verdict is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// [`Settings::is_valid`] is false.
    InvalidSettings,
    /// A run has fewer finite samples than [`Settings::min_samples`].
    TooFewSamples,
    /// p ≥ 1 − confidence.
    NotSignificant,
    /// Significant, but the effect is smaller than the minimum effect.
    BelowMinEffect,
    /// Significant and at least the minimum effect.
    SignificantChange,
}

/// The outcome of [`compare`].
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// What the comparison concludes.
    pub verdict: Verdict,
    /// Which rule of the module documentation gave the verdict.
    pub reason: Reason,
    /// Always [`METHOD`].
    pub method: &'static str,
    /// Finite samples of the baseline run.
    pub baseline_n: usize,
    /// Finite samples of the candidate run.
    pub candidate_n: usize,
    /// The baseline's median; None when it has no finite sample.
    pub baseline_median: Option<f64>,
    /// The candidate's median; None when it has no finite sample.
    pub candidate_median: Option<f64>,
    /// What [`Self::effect`] and [`Self::interval`] are measured in.
    pub scale: Scale,
    /// The Hodges–Lehmann shift `candidate − baseline` on [`Self::scale`]; None when no
    /// test was made (invalid settings, too few samples).
    pub effect: Option<f64>,
    /// The interval `(low, high)` of the effect at the set confidence.
    pub interval: Option<(f64, f64)>,
    /// The two-sided p-value of the Mann–Whitney U test.
    pub p_value: Option<f64>,
}

/// Compares the per-interval samples of a candidate run with those of its baseline.
/// See the module documentation for the method and the verdict rules.
pub fn compare(baseline: &[f64], candidate: &[f64], direction: Direction, settings: &Settings) -> Comparison {
    let baseline = SortedSample::new(baseline);
    let candidate = SortedSample::new(candidate);
    let mut comparison = Comparison {
        verdict: Verdict::Inconclusive,
        reason: Reason::InvalidSettings,
        method: METHOD,
        baseline_n: baseline.len(),
        candidate_n: candidate.len(),
        baseline_median: baseline.median(),
        candidate_median: candidate.median(),
        scale: Scale::Relative,
        effect: None,
        interval: None,
        p_value: None,
    };
    if !settings.is_valid() {
        return comparison;
    }
    let min_samples = settings.min_samples.max(1);
    if baseline.len() < min_samples || candidate.len() < min_samples {
        comparison.reason = Reason::TooFewSamples;
        return comparison;
    }

    let alpha = 1.0 - settings.confidence;
    let ranks = RankSum::new(&baseline.0, &candidate.0);
    let differences = PairwiseDifferences { baseline: &baseline.0, candidate: &candidate.0 };
    let (low, high) = differences.confidence_interval(&ranks, alpha);
    let baseline_median = baseline.median().unwrap_or_default();
    let (scale, unit, min_effect) = if baseline_median == 0.0 {
        (Scale::Absolute, 1.0, settings.min_absolute_effect)
    } else {
        (Scale::Relative, baseline_median.abs(), settings.min_effect)
    };
    let effect = differences.median() / unit;
    let p_value = ranks.two_sided_p_value();
    (comparison.verdict, comparison.reason) = decide(effect, p_value < alpha, min_effect, direction);
    comparison.scale = scale;
    comparison.effect = Some(effect);
    comparison.interval = Some((low / unit, high / unit));
    comparison.p_value = Some(p_value);
    comparison
}

/// Rules 2 to 4 of the module documentation.
fn decide(effect: f64, significant: bool, min_effect: f64, direction: Direction) -> (Verdict, Reason) {
    if !significant {
        return (Verdict::Unchanged, Reason::NotSignificant);
    }
    if effect == 0.0 || effect.abs() < min_effect {
        return (Verdict::Unchanged, Reason::BelowMinEffect);
    }
    let worse = match direction {
        Direction::HigherIsWorse => effect > 0.0,
        Direction::LowerIsWorse => effect < 0.0,
    };
    let verdict = if worse { Verdict::Regressed } else { Verdict::Improved };
    (verdict, Reason::SignificantChange)
}

/// The finite values of one run, ascending, with −0.0 read as 0.0 (so that sorting and
/// `==` agree on ties).
struct SortedSample(Vec<f64>);

impl SortedSample {
    fn new(values: &[f64]) -> Self {
        let mut finite: Vec<f64> = values.iter().filter(|v| v.is_finite()).map(|v| v + 0.0).collect();
        finite.sort_unstable_by(f64::total_cmp);
        SortedSample(finite)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The middle value, or the mean of the two middle values for an even count.
    fn median(&self) -> Option<f64> {
        let values = &self.0;
        let middle = values.len() / 2;
        match values.len() {
            0 => None,
            n if n % 2 == 1 => Some(values[middle]),
            _ => Some((values[middle - 1] + values[middle]) / 2.0),
        }
    }
}

/// The candidate's Mann–Whitney U (pairs where the candidate is larger, a tie counting
/// half) with its mean and tie-corrected variance when both runs share one distribution.
struct RankSum {
    u: f64,
    mean: f64,
    variance: f64,
}

impl RankSum {
    /// Ranks both sorted runs in one merge: each group of equal values gets its mid-rank.
    fn new(baseline: &[f64], candidate: &[f64]) -> Self {
        let (mut i, mut j) = (0, 0);
        let mut candidate_rank_sum = 0.0;
        let mut tie_term = 0.0; // Σ (t³ − t) over groups of t equal values
        loop {
            let value = match (baseline.get(i), candidate.get(j)) {
                (Some(b), Some(c)) => b.min(*c),
                (Some(v), None) | (None, Some(v)) => *v,
                (None, None) => break,
            };
            let in_baseline = baseline[i..].iter().take_while(|&&v| v == value).count();
            let in_candidate = candidate[j..].iter().take_while(|&&v| v == value).count();
            let tied = (in_baseline + in_candidate) as f64;
            let mid_rank = (i + j + 1) as f64 + (tied - 1.0) / 2.0;
            candidate_rank_sum += in_candidate as f64 * mid_rank;
            tie_term += tied * tied * tied - tied;
            (i, j) = (i + in_baseline, j + in_candidate);
        }
        let (n, m) = (baseline.len() as f64, candidate.len() as f64);
        let total = n + m;
        RankSum {
            u: candidate_rank_sum - m * (m + 1.0) / 2.0,
            mean: n * m / 2.0,
            variance: n * m / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0))),
        }
    }

    /// Normal approximation with continuity correction; 1 when every value is tied.
    fn two_sided_p_value(&self) -> f64 {
        if self.variance <= 0.0 {
            return 1.0;
        }
        let distance = ((self.u - self.mean).abs() - 0.5).max(0.0);
        let z = distance / self.variance.sqrt();
        erfc(z / SQRT_2).min(1.0)
    }
}

/// The n·m differences `candidate − baseline` of two sorted runs, never materialised.
struct PairwiseDifferences<'a> {
    baseline: &'a [f64],
    candidate: &'a [f64],
}

impl PairwiseDifferences<'_> {
    fn len(&self) -> u64 {
        self.baseline.len() as u64 * self.candidate.len() as u64
    }

    /// How many differences are ≤ `t`, in O(n + m): for a larger candidate value, the
    /// first baseline value within `t` of it can only be further right.
    fn count_at_most(&self, t: f64) -> u64 {
        let mut first = 0;
        let mut count = 0;
        for &c in self.candidate {
            while first < self.baseline.len() && c - self.baseline[first] > t {
                first += 1;
            }
            count += (self.baseline.len() - first) as u64;
        }
        count
    }

    /// The k-th smallest difference (1-based, 1 ≤ k ≤ n·m), exactly: the smallest `f64`
    /// with at least k differences at or below it, found by bisection over the ordered
    /// bit patterns between the smallest and the largest difference.
    fn kth_smallest(&self, k: u64) -> f64 {
        let (b, c) = (self.baseline, self.candidate);
        let mut low = order_key(c[0] - b[b.len() - 1]);
        let mut high = order_key(c[c.len() - 1] - b[0]);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.count_at_most(from_order_key(middle)) >= k {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        from_order_key(low)
    }

    /// The Hodges–Lehmann shift.
    fn median(&self) -> f64 {
        let total = self.len();
        (self.kth_smallest(total.div_ceil(2)) + self.kth_smallest(total / 2 + 1)) / 2.0
    }

    /// The distribution-free interval of the shift at level 1 − α; with too few samples
    /// to reach that level it widens to the full range of differences.
    fn confidence_interval(&self, ranks: &RankSum, alpha: f64) -> (f64, f64) {
        let total = self.len();
        let z = upper_normal_quantile(alpha / 2.0);
        let depth = (total as f64 / 2.0 - z * ranks.variance.max(0.0).sqrt()).round().max(1.0) as u64;
        (self.kth_smallest(depth), self.kth_smallest(total + 1 - depth))
    }
}

/// Maps an `f64` to a `u64` whose order is the numeric order (−∞ < … < −0 < +0 < … < +∞).
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// The complementary error function: 1 − erf(x) from a series of positive terms below 2,
/// Laplace's continued fraction from 2 up (where 1 − erf would cancel away the digits);
/// about 1e-13 relative either way.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < 2.0 {
        1.0 - erf_series(x)
    } else {
        erfc_continued_fraction(x)
    }
}

/// erf(x) = 2/√π · e^(−x²) · Σₖ 2ᵏ x²ᵏ⁺¹ / (1·3·…·(2k + 1)) (Abramowitz & Stegun 7.1.6).
fn erf_series(x: f64) -> f64 {
    let mut sum = 0.0;
    let mut term = x;
    for k in 0..200 {
        sum += term;
        if term <= f64::EPSILON * 1e-2 * sum {
            break;
        }
        term *= 2.0 * x * x / (2 * k + 3) as f64;
    }
    FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) (A&S 7.1.14), from
/// depth 60 up: enough for x ≥ 2.
fn erfc_continued_fraction(x: f64) -> f64 {
    let mut fraction = x;
    for k in (1..=60).rev() {
        fraction = x + (k as f64 / 2.0) / fraction;
    }
    (-x * x).exp() / (PI.sqrt() * fraction)
}

/// The z with P(Z > z) = `tail` for a standard normal Z (0 < tail ≤ 0.5), by bisection
/// on [`erfc`]: at most 100 halvings of [0, 40], a few microseconds per comparison.
fn upper_normal_quantile(tail: f64) -> f64 {
    let upper_tail = |z: f64| erfc(z / SQRT_2) / 2.0;
    let (mut low, mut high) = (0.0_f64, 40.0_f64);
    for _ in 0..100 {
        let middle = (low + high) / 2.0;
        if upper_tail(middle) > tail {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low + high) / 2.0
}

#[cfg(test)]
mod tests;
