//! The Anhøj rules as qicharts2 computes them (`runs.analysis` and `crsignal`, method
//! "anhoej"): with n useful observations, a run longer than `round(log2(n)) + 3` or fewer
//! crossings than `qbinom(0.05, n − 1, 0.5)` is a runs signal. No trend rule.

use super::{Run, RunPoint, RunsTest, Signal};

/// qicharts2's limit on the longest run: `round(log2(n)) + 3` (Schilling 2012). `log2(n)`
/// is never exactly half-way between integers for a whole `n`, so R's round-half-even and
/// Rust's round-half-away agree.
pub fn longest_run_limit(useful: usize) -> usize {
    // `useful` is at most a chart's 20,000 points: exact in f64.
    let log = (useful.max(1) as f64).log2().round();
    log as usize + 3
}

/// qicharts2's least number of crossings: `qbinom(0.05, n − 1, 0.5)` (Chen 2010).
pub fn min_crossings(useful: usize) -> usize {
    qbinom_half(0.05, useful.saturating_sub(1))
}

/// `qbinom(p, size, 0.5)`: the smallest k with P(X ≤ k) ≥ p for X ~ Binomial(size, ½).
///
/// The probabilities are summed in log space (2^−size underflows past 1,074 trials), each
/// term from the last by `C(m, k) = C(m, k − 1) · (m − k + 1) / k`. P(X ≤ k) is a multiple
/// of 2^−size and 0.05 is not, so a tie needing R's fuzz never arises.
pub fn qbinom_half(p: f64, size: usize) -> usize {
    if p <= 0.0 {
        return 0;
    }
    let m = size as f64;
    let mut log_term = -m * std::f64::consts::LN_2; // ln P(X = 0)
    let mut cdf = log_term.exp();
    let mut k = 0;
    while cdf < p && k < size {
        k += 1;
        log_term += ((m - k as f64 + 1.0) / k as f64).ln();
        cdf += log_term.exp();
    }
    k
}

/// Reads the runs by the Anhøj rules: marks the points of each too-long run, pushes the
/// signals.
pub(super) fn read(
    points: &mut [RunPoint],
    runs: &[Run],
    useful: usize,
    crossings: usize,
    signals: &mut Vec<Signal>,
) -> RunsTest {
    // qicharts2 tests nothing without a useful observation (`if (n.useful)`).
    if useful == 0 {
        return RunsTest::AnhoejNotApplied;
    }
    let longest_run_limit = longest_run_limit(useful);
    let min_crossings = min_crossings(useful);
    for run in runs.iter().filter(|r| r.len > longest_run_limit) {
        for p in &mut points[run.start..=run.end] {
            p.long_run = p.side != super::Side::On;
        }
        signals.push(Signal::LongRun {
            start: run.start,
            end: run.end,
            len: run.len,
            side: run.side,
        });
    }
    if crossings < min_crossings {
        signals.push(Signal::FewCrossings);
    }
    RunsTest::Anhoej {
        longest_run_limit,
        min_crossings,
    }
}
