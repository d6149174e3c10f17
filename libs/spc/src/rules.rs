//! The special-cause rules of `R/ptd_calculate_point_type.R`, each in one O(n) pass over a
//! rebase group.
//!
//! The package finds a rule's runs with sliding windows (`ptd_seven_point_one_side_mean`,
//! `ptd_seven_point_trend`, `ptd_two_in_three`) and then marks every point covered by a
//! window that fired (`ptd_part_of_seven_trend`, `ptd_part_of_two_in_three`). A window of N
//! points fires exactly when it lies inside a maximal run of N or more, so marking each maximal
//! run of N or more points is the same set of points, found in a single pass.

use super::rmath::sign;
use super::{SpecialCause, SpecialCauseRules};

/// Per-call working space, sized once for the whole series and sliced per group.
pub(super) struct Scratch {
    /// `relative_to_mean` of each point.
    pub(super) sides: Vec<i8>,
    /// `close_to_limits` of each point.
    pub(super) near: Vec<bool>,
    /// `outside_limits` of each point.
    pub(super) outside: Vec<bool>,
    /// Part of a shift.
    pub(super) shift: Vec<bool>,
    /// Part of a trend.
    pub(super) trend: Vec<bool>,
    /// Part of a two-in-three.
    pub(super) two_in_three: Vec<bool>,
}

impl Scratch {
    pub(super) fn with_len(n: usize) -> Self {
        Self {
            sides: vec![0; n],
            near: vec![false; n],
            outside: vec![false; n],
            shift: vec![false; n],
            trend: vec![false; n],
            two_in_three: vec![false; n],
        }
    }
}

/// Shift: `ptd_part_of_seven_trend(ptd_seven_point_one_side_mean(relative_to_mean))`.
///
/// A window fires at point i when `relative_to_mean[i]` is not 0 and equals the previous
/// `min_points - 1` values in the group; a point on the mean (0) breaks the run.
pub(super) fn shift(sides: &[i8], min_points: usize, out: &mut [bool]) {
    out.fill(false);
    let mut run_start = 0;
    for i in 1..=sides.len() {
        if i < sides.len() && sides[i] == sides[run_start] {
            continue;
        }
        if sides[run_start] != 0 && i - run_start >= min_points {
            out[run_start..i].fill(true);
        }
        run_start = i;
    }
}

/// Trend: `ptd_part_of_seven_trend(ptd_seven_point_trend(y))`.
///
/// A window of `min_points` fires when every `sign(diff(y))` in it is 1, or every one is -1;
/// an equal value (sign 0) breaks the run. A peak or trough is part of the runs on both sides.
pub(super) fn trend(ys: &[f64], min_points: usize, out: &mut [bool]) {
    out.fill(false);
    let m = ys.len();
    if m < 2 {
        return;
    }
    // A run of equal non-zero diffs `run_start..j` (diff k is `ys[k] - ys[k - 1]`) covers the
    // points `run_start - 1..j`.
    let mut run_start = 1;
    let mut run_sign = sign(ys[1] - ys[0]);
    for j in 2..=m {
        let d = if j < m { sign(ys[j] - ys[j - 1]) } else { 0 };
        if j < m && d == run_sign {
            continue;
        }
        if run_sign != 0 && j - run_start + 1 >= min_points {
            out[run_start - 1..j].fill(true);
        }
        run_start = j;
        run_sign = d;
    }
}

/// Two in three: `ptd_part_of_two_in_three(ptd_two_in_three(close_to_limits, relative_to_mean),
/// close_to_limits)`.
///
/// A window of three consecutive points of the group fires when at least two are near a limit
/// and all three are on the same side of the mean (`abs(sum(rtm)) == 3`, the fix for the
/// package's issue #143); only the near-limit points of a firing window are marked.
pub(super) fn two_in_three(near: &[bool], sides: &[i8], out: &mut [bool]) {
    out.fill(false);
    for w in 0..near.len().saturating_sub(2) {
        let side = sides[w];
        if side == 0 || sides[w + 1] != side || sides[w + 2] != side {
            continue;
        }
        let window = w..w + 3;
        if near[window.clone()].iter().filter(|&&b| b).count() >= 2 {
            for k in window {
                out[k] |= near[k];
            }
        }
    }
}

/// The trend direction `ptd_special_cause_type` labels point i with (`sdy`): if the next point
/// is also part of a trend, the sign of the step to it; otherwise the sign of the step from
/// the previous point (0 for the group's first point). Anything but 1 reads "Decreasing".
pub(super) fn trend_sign(ys: &[f64], in_trend: &[bool], i: usize) -> i8 {
    if in_trend[i] && i + 1 < ys.len() && in_trend[i + 1] {
        sign(ys[i + 1] - ys[i])
    } else if i > 0 {
        sign(ys[i] - ys[i - 1])
    } else {
        0
    }
}

/// `ptd_special_cause_type`'s `case_when`: outside the limits, then trend, then two in three,
/// then shift. "Above" needs `relative_to_mean == 1` beyond a limit and `> 0` otherwise.
pub(super) fn special_cause(fired: SpecialCauseRules, side: i8, trend_sign: i8) -> SpecialCause {
    if fired.outside_limits {
        if side == 1 {
            SpecialCause::AboveUpperLimit
        } else {
            SpecialCause::BelowLowerLimit
        }
    } else if fired.trend {
        if trend_sign == 1 {
            SpecialCause::TrendIncreasing
        } else {
            SpecialCause::TrendDecreasing
        }
    } else if fired.two_in_three {
        if side > 0 {
            SpecialCause::TwoInThreeAbove
        } else {
            SpecialCause::TwoInThreeBelow
        }
    } else if fired.shift {
        if side > 0 {
            SpecialCause::ShiftAbove
        } else {
            SpecialCause::ShiftBelow
        }
    } else {
        SpecialCause::CommonCause
    }
}
