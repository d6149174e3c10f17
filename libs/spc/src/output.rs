//! What a computation returns: per point, per group and for the series.

use super::{
    COLOUR_COMMON_CAUSE, COLOUR_CONCERN, COLOUR_IMPROVEMENT, COLOUR_NEUTRAL, ImprovementDirection,
};

/// A group's process limits and 2σ bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Lower process limit, `mean - 2.66 × MR̄` (`lpl`).
    pub lower: f64,
    /// Upper process limit, `mean + 2.66 × MR̄` (`upl`).
    pub upper: f64,
    /// Lower 2σ bound, `mean - 2 × (2.66 / 3) × MR̄` (`nlpl`).
    pub lower_two_sigma: f64,
    /// Upper 2σ bound, `mean + 2 × (2.66 / 3) × MR̄` (`nupl`).
    pub upper_two_sigma: f64,
}

/// Where a point lies against its group's mean (`relative_to_mean = sign(y - mean)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeanSide {
    /// Above the mean.
    Above,
    /// Exactly on the mean (breaks a shift).
    On,
    /// Below the mean.
    Below,
}

impl MeanSide {
    /// 1, 0 or -1, as the package's `relative_to_mean`.
    #[must_use]
    pub fn sign(self) -> i8 {
        match self {
            Self::Above => 1,
            Self::On => 0,
            Self::Below => -1,
        }
    }
}

/// The special-cause rules a point is part of. More than one can hold; the point's
/// [`SpecialCause`] names the one that wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpecialCauseRules {
    /// Above the upper or below the lower process limit (`outside_limits`).
    pub outside_limits: bool,
    /// Part of a run of [`RuleParameters::shift_points`](super::RuleParameters::shift_points) or more on one side of the mean.
    pub shift: bool,
    /// Part of a run of [`RuleParameters::trend_points`](super::RuleParameters::trend_points) or more each strictly higher (or each
    /// strictly lower) than the one before.
    pub trend: bool,
    /// Beyond a 2σ bound (inside the limits) in three points in a row, all on one side of the
    /// mean, of which at least two are beyond the 2σ bound on that side.
    pub two_in_three: bool,
}

impl SpecialCauseRules {
    /// Whether any rule holds.
    #[must_use]
    pub fn any(self) -> bool {
        self.outside_limits || self.shift || self.trend || self.two_in_three
    }
}

/// The rule that decides a point's reading: the package's `special_cause_type`. The rules are
/// tried in the package's order: outside the limits, trend, two in three, shift.
///
/// domain.md differs: it reads a flag as high when "a rule firing above the mean (or an
/// increasing trend)" and does not say which rule wins when several hold. The package takes
/// the first rule in the order above, so a point above the mean that is part of a decreasing
/// trend reads low; a trend point takes the direction of the step to the next point when that
/// point is also in a trend (else of the step from the previous one), so a peak shared by a
/// rising and a falling trend reads "Decreasing", and a flat step reads "Decreasing" too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialCause {
    /// No rule holds (`"Common Cause"`).
    CommonCause,
    /// Above the upper process limit (`"Above UCL"`).
    AboveUpperLimit,
    /// Below the lower process limit (`"Below LCL"`).
    BelowLowerLimit,
    /// Part of an increasing trend (`"7 Point Trend (Increasing)"`).
    TrendIncreasing,
    /// Part of a decreasing trend (`"7 Point Trend (Decreasing)"`).
    TrendDecreasing,
    /// Two in three beyond the upper 2σ bound (`"2 in 3 Above CL"`).
    TwoInThreeAbove,
    /// Two in three beyond the lower 2σ bound (`"2 in 3 Below CL"`).
    TwoInThreeBelow,
    /// Part of a shift above the mean (`"7 Points Above CL"`).
    ShiftAbove,
    /// Part of a shift below the mean (`"7 Points Below CL"`).
    ShiftBelow,
}

impl SpecialCause {
    /// The package's label, word for word (it names the default run length, 7).
    #[must_use]
    pub fn ptd_label(self) -> &'static str {
        match self {
            Self::CommonCause => "Common Cause",
            Self::AboveUpperLimit => "Above UCL",
            Self::BelowLowerLimit => "Below LCL",
            Self::TrendIncreasing => "7 Point Trend (Increasing)",
            Self::TrendDecreasing => "7 Point Trend (Decreasing)",
            Self::TwoInThreeAbove => "2 in 3 Above CL",
            Self::TwoInThreeBelow => "2 in 3 Below CL",
            Self::ShiftAbove => "7 Points Above CL",
            Self::ShiftBelow => "7 Points Below CL",
        }
    }

    /// `ptd_point_type`'s `v`: 1 for "Above|Increasing", -1 for "Below|Decreasing", else 0.
    #[must_use]
    pub fn high_low(self) -> i8 {
        match self {
            Self::CommonCause => 0,
            Self::AboveUpperLimit
            | Self::TrendIncreasing
            | Self::TwoInThreeAbove
            | Self::ShiftAbove => 1,
            Self::BelowLowerLimit
            | Self::TrendDecreasing
            | Self::TwoInThreeBelow
            | Self::ShiftBelow => -1,
        }
    }
}

/// A point read against the improvement direction: the package's `point_type`, with the side
/// (high or low) kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointType {
    /// Common cause variation.
    CommonCause,
    /// Special cause improvement, high (direction increase).
    ImprovementHigh,
    /// Special cause improvement, low (direction decrease).
    ImprovementLow,
    /// Special cause concern, high (direction decrease).
    ConcernHigh,
    /// Special cause concern, low (direction increase).
    ConcernLow,
    /// Special cause, high, with no improvement direction.
    NeutralHigh,
    /// Special cause, low, with no improvement direction.
    NeutralLow,
}

impl PointType {
    /// `ptd_point_type`: `v` from the special cause, oriented by the direction.
    #[must_use]
    pub fn new(cause: SpecialCause, direction: ImprovementDirection) -> Self {
        let v = cause.high_low();
        match direction {
            ImprovementDirection::Neither => match v.signum() {
                1 => Self::NeutralHigh,
                -1 => Self::NeutralLow,
                _ => Self::CommonCause,
            },
            ImprovementDirection::Increase | ImprovementDirection::Decrease => {
                match (v * direction.code()).signum() {
                    1 if v > 0 => Self::ImprovementHigh,
                    1 => Self::ImprovementLow,
                    -1 if v > 0 => Self::ConcernHigh,
                    -1 => Self::ConcernLow,
                    _ => Self::CommonCause,
                }
            }
        }
    }

    /// The package's `point_type` string (without the side for improvement and concern).
    #[must_use]
    pub fn ptd_name(self) -> &'static str {
        match self {
            Self::CommonCause => "common_cause",
            Self::ImprovementHigh | Self::ImprovementLow => "special_cause_improvement",
            Self::ConcernHigh | Self::ConcernLow => "special_cause_concern",
            Self::NeutralHigh => "special_cause_neutral_high",
            Self::NeutralLow => "special_cause_neutral_low",
        }
    }

    /// Whether the point is special cause (`special_cause_flag`).
    #[must_use]
    pub fn is_special_cause(self) -> bool {
        !matches!(self, Self::CommonCause)
    }

    /// The point's MDC colour.
    #[must_use]
    pub fn colour(self) -> &'static str {
        match self {
            Self::CommonCause => COLOUR_COMMON_CAUSE,
            Self::ImprovementHigh | Self::ImprovementLow => COLOUR_IMPROVEMENT,
            Self::ConcernHigh | Self::ConcernLow => COLOUR_CONCERN,
            Self::NeutralHigh | Self::NeutralLow => COLOUR_NEUTRAL,
        }
    }
}

/// The MDC variation icon, read from the last point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariationIcon {
    /// Common cause variation.
    CommonCause,
    /// Special cause improvement, high.
    ImprovementHigh,
    /// Special cause improvement, low.
    ImprovementLow,
    /// Special cause concern, high.
    ConcernHigh,
    /// Special cause concern, low.
    ConcernLow,
    /// Special cause with no improvement direction, high.
    NeutralHigh,
    /// Special cause with no improvement direction, low.
    NeutralLow,
}

impl VariationIcon {
    /// `ptd_get_icons`' `variation_icon_file`: the side of an improvement or concern icon comes
    /// from the direction ("improvement_high" when the direction is increase, else
    /// "improvement_low"; "concern_low" when increase, else "concern_high").
    #[must_use]
    pub fn new(last: PointType, direction: ImprovementDirection) -> Self {
        let increase = matches!(direction, ImprovementDirection::Increase);
        match last {
            PointType::CommonCause => Self::CommonCause,
            PointType::NeutralHigh => Self::NeutralHigh,
            PointType::NeutralLow => Self::NeutralLow,
            PointType::ConcernHigh | PointType::ConcernLow => {
                if increase {
                    Self::ConcernLow
                } else {
                    Self::ConcernHigh
                }
            }
            PointType::ImprovementHigh | PointType::ImprovementLow => {
                if increase {
                    Self::ImprovementHigh
                } else {
                    Self::ImprovementLow
                }
            }
        }
    }

    /// The package's icon name (its SVG file stem under `icons/variation`).
    #[must_use]
    pub fn ptd_name(self) -> &'static str {
        match self {
            Self::CommonCause => "common_cause",
            Self::ImprovementHigh => "improvement_high",
            Self::ImprovementLow => "improvement_low",
            Self::ConcernHigh => "concern_high",
            Self::ConcernLow => "concern_low",
            Self::NeutralHigh => "neutral_high",
            Self::NeutralLow => "neutral_low",
        }
    }
}

/// The MDC assurance icon: can the process be relied on to meet the target?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssuranceIcon {
    /// The whole process range is on the good side of the target (`"consistent_pass"`).
    ConsistentPass,
    /// The whole process range is on the bad side of the target (`"consistent_fail"`).
    ConsistentFail,
    /// The target lies between the limits, or on one, or the limits are undefined
    /// (`"inconsistent"`: hit and miss).
    Inconsistent,
}

impl AssuranceIcon {
    /// `ptd_calculate_assurance_type` for the last point's limits. `None` without a target or
    /// with no improvement direction.
    ///
    /// domain.md differs: it says a target "beyond the limit on the good side" is a consistent
    /// pass, which read literally is the wrong way round. The package: with direction
    /// increase, `target > upl` is a consistent fail and `target < lpl` a consistent pass (the
    /// whole process is above the target); with decrease, the reverse. It compares strictly,
    /// `target > upl` first, and a target equal to a limit, or undefined limits (NA
    /// comparisons fall through `case_when`), give [`AssuranceIcon::Inconsistent`].
    #[must_use]
    pub fn new(
        direction: ImprovementDirection,
        target: Option<f64>,
        limits: Option<Limits>,
    ) -> Option<Self> {
        let target = target?;
        let increasing = match direction {
            ImprovementDirection::Neither => return None,
            ImprovementDirection::Increase => true,
            ImprovementDirection::Decrease => false,
        };
        let Some(limits) = limits else {
            return Some(Self::Inconsistent);
        };
        Some(if target > limits.upper {
            if increasing {
                Self::ConsistentFail
            } else {
                Self::ConsistentPass
            }
        } else if target < limits.lower {
            if increasing {
                Self::ConsistentPass
            } else {
                Self::ConsistentFail
            }
        } else {
            Self::Inconsistent
        })
    }

    /// The package's `assurance_type` string.
    #[must_use]
    pub fn ptd_name(self) -> &'static str {
        match self {
            Self::ConsistentPass => "consistent_pass",
            Self::ConsistentFail => "consistent_fail",
            Self::Inconsistent => "inconsistent",
        }
    }
}

/// Whether the series holds enough data for a reading (judged on its last group, which the
/// icons are read from).
///
/// The package sets no minimum: it computes whatever it can and warns about short groups. So
/// do we, and this says how far to trust the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSufficiency {
    /// The last group has limits and at least the trial-limit threshold of points.
    Sufficient,
    /// The last group's limits are trial limits (too few points): they will move as points
    /// arrive.
    TrialLimits,
    /// Not enough data: the last group has no process limits, because it has a single point or
    /// no usable moving range (every moving range zero and screened out). The icons are still
    /// given as the package gives them (its NA limits read as common cause and
    /// "inconsistent"); a chart should say "not enough data" instead.
    NotEnoughData,
}

/// One rebase group's summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpcGroup {
    /// The package's `rebase_group` (the count of rebase positions at or before the group's
    /// start).
    pub rebase_group: usize,
    /// Position of the group's first point.
    pub start: usize,
    /// Number of points in the group.
    pub len: usize,
    /// Number of points the mean and limits are computed from (`fix_after_n_points`, or all).
    pub baseline_len: usize,
    /// The group's mean (the centre line).
    pub mean: f64,
    /// The mean moving range after screening; `None` when no moving range is usable.
    pub mean_moving_range: Option<f64>,
    /// The process limits; `None` when there is no mean moving range (the package's NaN).
    pub limits: Option<Limits>,
    /// Whether the limits are trial limits (`short_group_warning`).
    pub trial_limits: bool,
}

/// One point of the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpcPoint {
    /// The value.
    pub value: f64,
    /// Index of the point's group in [`SpcChart::groups`].
    pub group: usize,
    /// The package's `rebase_group`.
    pub rebase_group: usize,
    /// The group's mean.
    pub mean: f64,
    /// The group's process limits and 2σ bounds; `None` when undefined.
    pub limits: Option<Limits>,
    /// `|x_i - x_{i-1}|` within the group's baseline; `None` for a group's first point and for
    /// points after `fix_after_n_points`.
    pub moving_range: Option<f64>,
    /// Whether outlier screening left this moving range out of the mean moving range.
    pub moving_range_screened_out: bool,
    /// Where the point lies against the mean.
    pub side: MeanSide,
    /// Beyond a 2σ bound but inside the limits (`close_to_limits`). False when the limits are
    /// undefined (the package's NA).
    pub near_limit: bool,
    /// The special-cause rules the point is part of. `outside_limits` is false when the limits
    /// are undefined (the package's NA, which its `case_when` reads as false).
    pub rules: SpecialCauseRules,
    /// The rule that decides the point's reading.
    pub special_cause: SpecialCause,
    /// The point read against the improvement direction.
    pub point_type: PointType,
    /// Whether the group's limits are trial limits.
    pub trial_limits: bool,
}

/// The computed chart.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcChart {
    /// One entry per value, in order.
    pub points: Vec<SpcPoint>,
    /// The rebase groups, in order.
    pub groups: Vec<SpcGroup>,
    /// The variation icon, from the last point.
    pub variation: VariationIcon,
    /// The assurance icon, from the last point's (so the last group's) limits; `None` without a
    /// target or with no improvement direction.
    pub assurance: Option<AssuranceIcon>,
    /// Whether the last group holds enough data for a reading.
    pub sufficiency: DataSufficiency,
}
