//! Making Data Count SPC (XmR charts), computed exactly as the R package
//! NHSRplotthedots (nhs-r-community/NHSRplotthedots, `main`) computes it.
//!
//! A pure engine: no I/O, no allocation per point beyond the output. Give it a series of values
//! in time order and [`SpcOptions`]; [`compute`] returns every point's mean, process limits, 2σ
//! bounds, moving range, the special-cause rules that fired and its point type, plus the series'
//! variation and assurance icons.
//!
//! The port follows these package sources line by line (see each function's comments):
//! - `R/ptd_spc.R` (`ptd_spc.data.frame`): the pipeline and the improvement-direction codes;
//! - `R/ptd_spc_standard.R`: mean, moving ranges, outlier screening, limits, `fix_after_n_points`;
//! - `R/ptd_calculate_point_type.R`: the shift / trend / two-in-three rules, the special-cause
//!   label and the point type;
//! - `R/ptd_add_short_group_warnings.R`: trial limits;
//! - `R/ptd_calculate_assurance_type.R` and `R/geom_ptd_icon.R` (`ptd_get_icons`): the icons;
//! - `R/ptd_spc_options.R`: option validation; `R/ptd_add_rebase_column.R`: rebasing;
//! - `R/ptd_spc_colours.R`: the colours.
//!
//! Where `shared/domain.md` and the package differ, the package wins; each difference is noted
//! in a comment starting `domain.md differs:`.

pub mod gaps;
mod options;
mod output;
mod rmath;
mod rules;
pub mod runchart;
pub mod series;
#[cfg(test)]
mod tests;

pub use options::{ImprovementDirection, RuleParameters, SpcError, SpcOptions};
pub use output::{
    AssuranceIcon, DataSufficiency, Limits, MeanSide, PointType, SpcChart, SpcGroup, SpcPoint,
    SpecialCause, SpecialCauseRules, VariationIcon,
};

/// Colour of a common-cause point, the value line and the process limit lines (MDC grey).
pub const COLOUR_COMMON_CAUSE: &str = "#a6a6a6";
/// Colour of a special-cause improvement point (MDC blue).
pub const COLOUR_IMPROVEMENT: &str = "#00b0f0";
/// Colour of a special-cause concern point (MDC orange).
pub const COLOUR_CONCERN: &str = "#e46c0a";
/// Colour of a special-cause point when no direction is an improvement (MDC purple).
pub const COLOUR_NEUTRAL: &str = "#490092";
/// Colour of the target line (MDC red).
pub const COLOUR_TARGET: &str = "#de1b1b";
/// Colour of the line joining the points (`ptd_spc_colours(value_line)`).
pub const COLOUR_VALUE_LINE: &str = "#a6a6a6";
/// Colour of the mean line (`ptd_spc_colours(mean_line)`).
pub const COLOUR_MEAN_LINE: &str = "#000000";
/// Colour of the lower and upper process limit lines (`ptd_spc_colours(lpl, upl)`).
pub const COLOUR_PROCESS_LIMIT: &str = "#a6a6a6";
/// Colour of a trajectory line (`ptd_spc_colours(trajectory)`).
pub const COLOUR_TRAJECTORY: &str = "#490092";

/// Process limits are `mean ± LIMIT_MULTIPLIER × mean moving range` (`limit <- 2.66`).
pub const LIMIT_MULTIPLIER: f64 = 2.66;
/// The 2σ ("near limit") bounds are `mean ± NEAR_LIMIT_MULTIPLIER × mean moving range`,
/// computed as the package does: `limitclose <- 2 * (limit / 3)` (1.77333…; domain.md's
/// 1.7733 is this, rounded).
pub const NEAR_LIMIT_MULTIPLIER: f64 = 2.0 * (LIMIT_MULTIPLIER / 3.0);
/// Outlier screening drops moving ranges not below `OUTLIER_MULTIPLIER × mean moving range`.
pub const OUTLIER_MULTIPLIER: f64 = 3.267;
/// The smallest `fix_after_n_points` the package accepts (`ptd_spc_options`:
/// "fix_after_n_points must be a single numeric that is greater than or equal to 12.").
pub const MIN_FIX_AFTER_N_POINTS: usize = 12;
/// A group with fewer points than this has trial limits: the package's
/// `getOption("ptd_spc.warning_threshold", 13)` in `ptd_add_short_group_warnings`.
///
/// domain.md differs: it says "under 12 points in a group, the limits are trial". The package
/// source defaults the threshold to 13 (`n() < 13`, so a group of 12 points is still trial),
/// although that function's own roxygen text and warning message still say 12; we follow the
/// code. [`SpcOptions::trial_limit_threshold`] can set 12.
pub const DEFAULT_TRIAL_LIMIT_THRESHOLD: usize = 13;

/// Computes the XmR chart of `values` (in time order) as `ptd_spc` does.
///
/// O(n): each group is read a fixed number of times; the only allocations are the output and
/// a few scratch vectors sized once per call.
///
/// # Errors
/// [`SpcError`] for an empty series, a NaN or infinite value, or bad options; never panics.
pub fn compute(values: &[f64], options: &SpcOptions) -> Result<SpcChart, SpcError> {
    if values.is_empty() {
        return Err(SpcError::Empty);
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(SpcError::NonFiniteValue { index, value });
    }
    options.validate(values.len())?;
    let n = values.len();

    // ptd_add_rebase_column + `rebase_group = cumsum(rebase)`: a rebase flag on each position
    // listed (duplicates collapse, as `%in%` does); a flag on the first point starts no new
    // group but counts in the numbering.
    let mut starts = options.rebase_positions.clone();
    starts.sort_unstable();
    starts.dedup();
    let first_group_number = usize::from(starts.first() == Some(&0));
    starts.retain(|&p| p > 0);

    let mut points = Vec::with_capacity(n);
    let mut groups = Vec::with_capacity(starts.len() + 1);
    let mut scratch = rules::Scratch::with_len(n);

    let bounds = std::iter::once(0).chain(starts.iter().copied());
    let ends = starts.iter().copied().chain(std::iter::once(n));
    for (group_index, (start, end)) in bounds.zip(ends).enumerate() {
        let group = compute_group(
            &values[start..end],
            start,
            group_index,
            first_group_number + group_index,
            options,
            &mut scratch,
            &mut points,
        );
        groups.push(group);
    }

    // Both icons come from the last point (`x == max(x)`, `slice_tail(n = 1)`).
    let (variation, last_limits, sufficiency) = match (points.last(), groups.last()) {
        (Some(point), Some(group)) => (
            VariationIcon::new(point.point_type, options.improvement_direction),
            point.limits,
            if group.limits.is_none() {
                DataSufficiency::NotEnoughData
            } else if group.trial_limits {
                DataSufficiency::TrialLimits
            } else {
                DataSufficiency::Sufficient
            },
        ),
        // Unreachable: the series is not empty, so there is a group and a point.
        (None, _) | (_, None) => return Err(SpcError::Empty),
    };
    let assurance = AssuranceIcon::new(options.improvement_direction, options.target, last_limits);

    Ok(SpcChart {
        points,
        groups,
        variation,
        assurance,
        sufficiency,
    })
}

/// One rebase group: `ptd_spc_standard`'s grouped `mutate`, then `ptd_calculate_point_type`
/// and `ptd_add_short_group_warnings`. Pushes the group's points onto `points`.
fn compute_group(
    ys: &[f64],
    start: usize,
    group_index: usize,
    rebase_group: usize,
    options: &SpcOptions,
    scratch: &mut rules::Scratch,
    points: &mut Vec<SpcPoint>,
) -> SpcGroup {
    let len = ys.len();
    // `fix_y = ifelse(row_number() <= (fix_after_n_points %||% Inf), y, NA)`.
    let baseline_len = options.fix_after_n_points.map_or(len, |fix| fix.min(len));
    let base = &ys[..baseline_len];

    // `mean_col = mean(fix_y, na.rm = TRUE)`, R's two-pass long-double mean.
    let mean = rmath::r_mean(base.iter().copied());
    // `mr = c(NA, abs(diff(fix_y)))`: NA for the first point and after the baseline.
    let moving_range = |i: usize| (base[i] - base[i - 1]).abs();
    // `amr = mean(mr, na.rm = TRUE)`, then screening: keep `mr < 3.267 * amr` (an `mr` equal
    // to the threshold is dropped, as is every `mr` when `amr` is 0 or NaN).
    let screen = options.screen_outliers;
    let threshold = if screen {
        rmath::screening_threshold((1..baseline_len).map(moving_range), OUTLIER_MULTIPLIER)
    } else {
        f64::NAN // unused
    };
    let kept = |mr: f64| !screen || mr < threshold;
    let amr = rmath::r_mean((1..baseline_len).map(moving_range).filter(|&mr| kept(mr)));

    // domain.md differs (an edge it does not cover): its screening, drop `MR_i >= 3.267 × MR̄`,
    // is the package's test, but when every moving range is zero (all values equal) the test
    // drops them all, so the package's mean moving range is NaN and its limits undefined (here
    // `None`, and the chart "not enough data"). With screening off the limits sit on the mean.
    let limits = (!amr.is_nan()).then_some(Limits {
        lower: mean - (LIMIT_MULTIPLIER * amr),
        upper: mean + (LIMIT_MULTIPLIER * amr),
        lower_two_sigma: mean - (NEAR_LIMIT_MULTIPLIER * amr),
        upper_two_sigma: mean + (NEAR_LIMIT_MULTIPLIER * amr),
    });

    let sides = &mut scratch.sides[..len];
    let near = &mut scratch.near[..len];
    let outside = &mut scratch.outside[..len];
    for (i, &y) in ys.iter().enumerate() {
        // `relative_to_mean = sign(y - mean_col)`.
        sides[i] = rmath::sign(y - mean);
        match limits {
            Some(l) => {
                // `outside_limits = (y > upl | y < lpl)`;
                // `close_to_limits = !outside_limits & (y < nlpl | y > nupl)`.
                outside[i] = y > l.upper || y < l.lower;
                near[i] = !outside[i] && (y < l.lower_two_sigma || y > l.upper_two_sigma);
            }
            None => {
                // NaN limits: both NA in the package, and NA never fires a rule, so only the
                // shift and trend rules can flag a point (domain.md does not cover this).
                outside[i] = false;
                near[i] = false;
            }
        }
    }

    let shift = &mut scratch.shift[..len];
    let trend = &mut scratch.trend[..len];
    let two_in_three = &mut scratch.two_in_three[..len];
    rules::shift(sides, options.rules.shift_points, shift);
    rules::trend(ys, options.rules.trend_points, trend);
    rules::two_in_three(near, sides, two_in_three);

    // `short_group_warning = n() < warning_threshold`.
    let trial_limits = len < options.trial_limit_threshold;
    for (i, &value) in ys.iter().enumerate() {
        let fired = SpecialCauseRules {
            outside_limits: outside[i],
            shift: shift[i],
            trend: trend[i],
            two_in_three: two_in_three[i],
        };
        let special_cause = rules::special_cause(fired, sides[i], rules::trend_sign(ys, trend, i));
        let mr = (1..baseline_len).contains(&i).then(|| moving_range(i));
        points.push(SpcPoint {
            value,
            group: group_index,
            rebase_group,
            mean,
            limits,
            moving_range: mr,
            moving_range_screened_out: mr.is_some_and(|m| !kept(m)),
            side: match sides[i] {
                1 => MeanSide::Above,
                -1 => MeanSide::Below,
                _ => MeanSide::On,
            },
            near_limit: near[i],
            rules: fired,
            special_cause,
            point_type: PointType::new(special_cause, options.improvement_direction),
            trial_limits,
        });
    }

    SpcGroup {
        rebase_group,
        start,
        len,
        baseline_len,
        mean,
        mean_moving_range: (!amr.is_nan()).then_some(amr),
        limits,
        trial_limits,
    }
}
