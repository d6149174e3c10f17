//! The median, as R's `stats::median` gives it: the middle value, or the mean of the two
//! middle values.

/// The median of `values` (not empty, every value finite).
pub(super) fn of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let half = sorted.len() / 2;
    match (sorted.len() % 2, sorted.get(half), half.checked_sub(1)) {
        (1, Some(&mid), _) => mid,
        (_, Some(&hi), Some(lo)) => {
            let lo = sorted[lo];
            // R takes `mean(sorted[half + 0:1])` in long double, so the sum cannot
            // overflow; halving first keeps huge values finite here too.
            let sum = lo + hi;
            if sum.is_finite() {
                sum / 2.0
            } else {
                lo / 2.0 + hi / 2.0
            }
        }
        // Unreachable for a non-empty slice; NaN rather than a panic.
        _ => f64::NAN,
    }
}
