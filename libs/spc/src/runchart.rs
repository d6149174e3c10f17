//! Run charts: the values in time order against their median, read by the IHI rules
//! (Perla, Provost & Murray, "The run chart", BMJ Quality & Safety 2011;20:46–51) or by the
//! Anhøj rules as the R package qicharts2 computes them (`runs.analysis` and `crsignal` in
//! `R/helper.functions.R`; Anhøj & Olesen, PLoS ONE 2014;9:e113825).
//!
//! A pure engine: no I/O. Points exactly on the median are "not useful": they neither make
//! nor break a run and are left out of every count (shared/domain.md, "Run charts").
//! The two rule sets are kept apart on purpose: they disagree by design.

mod anhoej;
mod ihi;
mod median;
#[cfg(test)]
mod tests;

pub use anhoej::{longest_run_limit, min_crossings, qbinom_half};
pub use ihi::{
    RUNS_TABLE, RUNS_TABLE_FIRST, RUNS_TABLE_LAST, SHIFT_POINTS, TREND_POINTS, runs_limits,
};

/// The rule set a chart is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleSet {
    /// Shift (6), trend (5), too few or too many runs (the paper's table), astronomical
    /// points as flagged.
    #[default]
    Ihi,
    /// Unusually long run or unusually few crossings (qicharts2), astronomical points as
    /// flagged. No trend rule.
    Anhoej,
}

/// How to compute a run chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChartOptions {
    /// The rule set.
    pub rule_set: RuleSet,
    /// The median comes from the first this-many points (qicharts2's `freeze`); `None`: all.
    pub baseline_len: Option<usize>,
    /// Positions a person flagged as astronomical (order and repeats do not matter).
    pub astronomical: Vec<usize>,
}

/// Why the engine refused its input.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum RunChartError {
    /// No values.
    #[error("there are no values")]
    Empty,
    /// A NaN or infinite value.
    #[error("value {index} is not a finite number ({value})")]
    NonFiniteValue {
        /// Its position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A baseline of no points, or of more points than there are.
    #[error("the baseline must be 1 to {len} points (got {baseline})")]
    BaselineOutOfRange {
        /// The baseline asked for.
        baseline: usize,
        /// How many values there are.
        len: usize,
    },
    /// An astronomical flag on a position outside the series.
    #[error("position {position} is outside the series (positions 0 to {last})")]
    AstronomicalOutOfRange {
        /// Its index in the list of flags.
        index: usize,
        /// The position flagged.
        position: usize,
        /// The last position.
        last: usize,
    },
}

/// Where a point lies against the median.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Above.
    Above,
    /// Exactly on it: not a useful observation.
    On,
    /// Below.
    Below,
}

/// Which way a trend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Up.
    Up,
    /// Down.
    Down,
}

/// One signal of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// IHI: six or more consecutive useful points on one side (positions `start..=end`).
    Shift {
        /// First position.
        start: usize,
        /// Last position.
        end: usize,
        /// Useful points in it.
        len: usize,
        /// Above or below.
        side: Side,
    },
    /// IHI: five or more useful points going one way, equal neighbours counted once.
    Trend {
        /// First position.
        start: usize,
        /// Last position.
        end: usize,
        /// Points counted (equal neighbours once).
        len: usize,
        /// Up or down.
        direction: Direction,
    },
    /// IHI: fewer runs than the table's lower limit.
    TooFewRuns,
    /// IHI: more runs than the table's upper limit.
    TooManyRuns,
    /// Anhøj: a run longer than `round(log2(n)) + 3` (positions `start..=end`).
    LongRun {
        /// First position.
        start: usize,
        /// Last position.
        end: usize,
        /// Useful points in it.
        len: usize,
        /// Above or below.
        side: Side,
    },
    /// Anhøj: fewer crossings than `qbinom(0.05, n − 1, 0.5)`.
    FewCrossings,
    /// A point a person flagged as astronomical.
    Astronomical {
        /// Its position.
        position: usize,
    },
}

/// One point of a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPoint {
    /// The value.
    pub value: f64,
    /// Where it lies against the median.
    pub side: Side,
    /// Part of a shift (IHI).
    pub shift: bool,
    /// Part of a trend (IHI).
    pub trend: bool,
    /// Part of an unusually long run (Anhøj).
    pub long_run: bool,
    /// Flagged astronomical by a person.
    pub astronomical: bool,
}

impl RunPoint {
    /// Whether the point is part of any signal that marks points.
    pub fn in_signal(&self) -> bool {
        self.shift || self.trend || self.long_run || self.astronomical
    }
}

/// The runs test of a chart: how many runs (IHI) or crossings (Anhøj) were allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsTest {
    /// IHI, with the table's limits for this many useful observations.
    IhiApplied {
        /// Fewer runs than this is a signal.
        lower: usize,
        /// More runs than this is a signal.
        upper: usize,
    },
    /// IHI, with a number of useful observations the table does not cover.
    IhiNotApplied,
    /// Anhøj (needs at least one useful observation, as in qicharts2).
    Anhoej {
        /// A run longer than this is a signal.
        longest_run_limit: usize,
        /// Fewer crossings than this is a signal.
        min_crossings: usize,
    },
    /// Anhøj with no useful observation: nothing to test.
    AnhoejNotApplied,
}

/// A computed run chart.
#[derive(Debug, Clone, PartialEq)]
pub struct RunChart {
    /// The rule set used.
    pub rule_set: RuleSet,
    /// The median (of the baseline).
    pub median: f64,
    /// How many points the median comes from.
    pub baseline_len: usize,
    /// Every point, in order.
    pub points: Vec<RunPoint>,
    /// Points not on the median.
    pub useful: usize,
    /// Runs among the useful points.
    pub runs: usize,
    /// Crossings of the median: runs − 1 (0 without points).
    pub crossings: usize,
    /// The longest run's length (0 without useful points).
    pub longest_run: usize,
    /// The runs test and its limits.
    pub runs_test: RunsTest,
    /// Every signal, in the order: shifts, trends, runs, long runs, crossings, astronomical.
    pub signals: Vec<Signal>,
}

impl RunChart {
    /// Whether any rule signalled.
    pub fn has_signal(&self) -> bool {
        !self.signals.is_empty()
    }
}

/// A maximal run of useful points on one side: positions of its first and last point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) len: usize,
    pub(crate) side: Side,
}

/// Computes the run chart of `values` (in time order).
///
/// # Errors
/// [`RunChartError`] for no values, a NaN or infinite value, a baseline out of range or
/// an astronomical flag outside the series; never panics.
pub fn compute(values: &[f64], options: &RunChartOptions) -> Result<RunChart, RunChartError> {
    if values.is_empty() {
        return Err(RunChartError::Empty);
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(RunChartError::NonFiniteValue { index, value });
    }
    let n = values.len();
    let baseline_len = options.baseline_len.unwrap_or(n);
    if baseline_len == 0 || baseline_len > n {
        return Err(RunChartError::BaselineOutOfRange {
            baseline: baseline_len,
            len: n,
        });
    }
    for (index, &position) in options.astronomical.iter().enumerate() {
        if position >= n {
            return Err(RunChartError::AstronomicalOutOfRange {
                index,
                position,
                last: n - 1,
            });
        }
    }
    let median = median::of(&values[..baseline_len]);
    let mut points: Vec<RunPoint> = values
        .iter()
        .map(|&value| RunPoint {
            value,
            side: if value > median {
                Side::Above
            } else if value < median {
                Side::Below
            } else {
                Side::On
            },
            shift: false,
            trend: false,
            long_run: false,
            astronomical: false,
        })
        .collect();
    let runs = runs_of(&points);
    let useful = runs.iter().map(|r| r.len).sum();
    let longest_run = runs.iter().map(|r| r.len).max().unwrap_or(0);
    let crossings = runs.len().saturating_sub(1);

    let mut signals = Vec::new();
    let runs_test = match options.rule_set {
        RuleSet::Ihi => ihi::read(&mut points, &runs, useful, &mut signals),
        RuleSet::Anhoej => anhoej::read(&mut points, &runs, useful, crossings, &mut signals),
    };

    let mut flagged = options.astronomical.clone();
    flagged.sort_unstable();
    flagged.dedup();
    for position in flagged {
        if let Some(p) = points.get_mut(position) {
            p.astronomical = true;
            signals.push(Signal::Astronomical { position });
        }
    }

    Ok(RunChart {
        rule_set: options.rule_set,
        median,
        baseline_len,
        points,
        useful,
        runs: runs.len(),
        crossings,
        longest_run,
        runs_test,
        signals,
    })
}

/// The runs of the useful points (those on the median skipped: they neither make nor break
/// a run).
fn runs_of(points: &[RunPoint]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if p.side == Side::On {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.side == p.side => {
                run.end = i;
                run.len += 1;
            }
            _ => runs.push(Run {
                start: i,
                end: i,
                len: 1,
                side: p.side,
            }),
        }
    }
    runs
}
