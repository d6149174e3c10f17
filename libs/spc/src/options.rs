//! The options of a computation and the errors that refuse it (`R/ptd_spc_options.R`).

use std::fmt;

use super::{DEFAULT_TRIAL_LIMIT_THRESHOLD, MIN_FIX_AFTER_N_POINTS};

/// Which way is better for the measure (`improvement_direction` in `ptd_spc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ImprovementDirection {
    /// Higher is better (`"increase"`, code 1). The package's default.
    #[default]
    Increase,
    /// Lower is better (`"decrease"`, code -1).
    Decrease,
    /// Neither direction is better (`"neutral"`, code 0): special causes are neutral high/low
    /// and there is no assurance icon.
    Neither,
}

impl ImprovementDirection {
    /// The integer code `ptd_spc.data.frame` passes to `ptd_calculate_point_type`.
    #[must_use]
    pub fn code(self) -> i8 {
        match self {
            Self::Increase => 1,
            Self::Decrease => -1,
            Self::Neither => 0,
        }
    }
}

/// Run lengths of the shift and trend rules.
///
/// The package hard-codes 7 for both (the `ptd_seven_point_*` functions); MDC is the default
/// here and the lengths generalise the package's windows (a run of at least N points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleParameters {
    /// Points in a row on the same side of the mean that make a shift.
    pub shift_points: usize,
    /// Points in a row each strictly above (or each strictly below) the one before that make a
    /// trend.
    pub trend_points: usize,
}

impl RuleParameters {
    /// Making Data Count (and NHSRplotthedots): shift 7, trend 7.
    pub const MDC: Self = Self {
        shift_points: 7,
        trend_points: 7,
    };
    /// Life QI's rule set as domain.md gives it: shift 8, trend 6.
    pub const LIFE_QI: Self = Self {
        shift_points: 8,
        trend_points: 6,
    };
    /// The shortest run either rule accepts.
    pub const MIN_POINTS: usize = 2;
}

impl Default for RuleParameters {
    fn default() -> Self {
        Self::MDC
    }
}

/// Options of one SPC computation: `ptd_spc`'s arguments for a single series.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcOptions {
    /// Which way is better.
    pub improvement_direction: ImprovementDirection,
    /// The target, if any (needed for the assurance icon). Must be finite: the package takes a
    /// NaN target (`is.numeric(NaN)`) and reads it as hit and miss, but issue 5 calls NaN and
    /// infinite inputs errors, so we refuse them ([`SpcError::NonFiniteTarget`]).
    pub target: Option<f64>,
    /// Positions (0-based indices into the values) where a new group starts. Order and
    /// duplicates do not matter; a position of 0 starts no new group (as a rebase on the first
    /// date does in the package) but does number the groups from 1.
    pub rebase_positions: Vec<usize>,
    /// Compute each group's mean and limits from its first N points only; at least
    /// [`MIN_FIX_AFTER_N_POINTS`].
    pub fix_after_n_points: Option<usize>,
    /// Screen moving-range outliers before the limits are computed (the package's default).
    /// Off matches NHS England's Excel tools.
    pub screen_outliers: bool,
    /// Run lengths of the shift and trend rules.
    pub rules: RuleParameters,
    /// Groups with fewer points than this have trial limits; see
    /// [`DEFAULT_TRIAL_LIMIT_THRESHOLD`].
    pub trial_limit_threshold: usize,
}

impl Default for SpcOptions {
    fn default() -> Self {
        Self {
            improvement_direction: ImprovementDirection::default(),
            target: None,
            rebase_positions: Vec::new(),
            fix_after_n_points: None,
            screen_outliers: true,
            rules: RuleParameters::MDC,
            trial_limit_threshold: DEFAULT_TRIAL_LIMIT_THRESHOLD,
        }
    }
}

/// Why a computation was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpcError {
    /// There are no values.
    Empty,
    /// A value is NaN or infinite.
    NonFiniteValue {
        /// Its position in the values.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A rebase position is not a position in the values.
    RebasePositionOutOfRange {
        /// The position given.
        position: usize,
        /// The number of values.
        len: usize,
    },
    /// `fix_after_n_points` is below [`MIN_FIX_AFTER_N_POINTS`] (0 included).
    FixAfterNPointsTooSmall {
        /// The value given.
        given: usize,
        /// The smallest accepted.
        minimum: usize,
    },
    /// The target is NaN or infinite.
    NonFiniteTarget {
        /// The target given.
        target: f64,
    },
    /// The shift rule's run length is below [`RuleParameters::MIN_POINTS`].
    ShiftPointsTooSmall {
        /// The length given.
        given: usize,
    },
    /// The trend rule's run length is below [`RuleParameters::MIN_POINTS`].
    TrendPointsTooSmall {
        /// The length given.
        given: usize,
    },
}

impl fmt::Display for SpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("there are no values to chart"),
            Self::NonFiniteValue { index, value } => {
                write!(
                    f,
                    "value at position {index} is not a finite number ({value})"
                )
            }
            Self::RebasePositionOutOfRange { position, len } => write!(
                f,
                "rebase position {position} is outside the series (positions 0 to {})",
                len.saturating_sub(1)
            ),
            Self::FixAfterNPointsTooSmall { given, minimum } => write!(
                f,
                "fix_after_n_points must be at least {minimum} (got {given})"
            ),
            Self::NonFiniteTarget { target } => {
                write!(f, "target is not a finite number ({target})")
            }
            Self::ShiftPointsTooSmall { given } => write!(
                f,
                "the shift rule needs at least {} points (got {given})",
                RuleParameters::MIN_POINTS
            ),
            Self::TrendPointsTooSmall { given } => write!(
                f,
                "the trend rule needs at least {} points (got {given})",
                RuleParameters::MIN_POINTS
            ),
        }
    }
}

impl std::error::Error for SpcError {}

impl SpcOptions {
    /// Checks the options against a series of `len` values (`ptd_spc_options` and our own
    /// input checks).
    ///
    /// # Errors
    /// The first bad option found.
    pub fn validate(&self, len: usize) -> Result<(), SpcError> {
        if let Some(target) = self.target
            && !target.is_finite()
        {
            return Err(SpcError::NonFiniteTarget { target });
        }
        // domain.md differs: it sets no lower bound; the package refuses fewer than 12
        // (`fix_after_n_points >= 12` in ptd_spc_options), so 0 to 11 are errors here.
        if let Some(given) = self.fix_after_n_points
            && given < MIN_FIX_AFTER_N_POINTS
        {
            return Err(SpcError::FixAfterNPointsTooSmall {
                given,
                minimum: MIN_FIX_AFTER_N_POINTS,
            });
        }
        if self.rules.shift_points < RuleParameters::MIN_POINTS {
            return Err(SpcError::ShiftPointsTooSmall {
                given: self.rules.shift_points,
            });
        }
        if self.rules.trend_points < RuleParameters::MIN_POINTS {
            return Err(SpcError::TrendPointsTooSmall {
                given: self.rules.trend_points,
            });
        }
        if let Some(&position) = self.rebase_positions.iter().find(|&&p| p >= len) {
            return Err(SpcError::RebasePositionOutOfRange { position, len });
        }
        Ok(())
    }
}
