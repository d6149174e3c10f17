//! The IHI rules (Perla, Provost & Murray 2011): shift, trend, and too few or too many runs
//! against the paper's table. Astronomical points are flags a person sets (see
//! [`super::compute`]), not computed here.

use super::{Direction, Run, RunPoint, RunsTest, Side, Signal};

/// Six or more consecutive useful points on one side of the median is a shift.
pub const SHIFT_POINTS: usize = 6;
/// Five or more points all going up, or all going down, is a trend.
pub const TREND_POINTS: usize = 5;

/// The first number of useful observations the runs table covers.
pub const RUNS_TABLE_FIRST: usize = 10;
/// The last number of useful observations the runs table covers.
pub const RUNS_TABLE_LAST: usize = 60;

/// Perla, Provost & Murray 2011, Table 1 ("Table for checking for too many or too few runs
/// on a run chart", after Swed & Eisenhart 1943): for 10 to 60 useful observations (points
/// not on the median), `(lower, upper)`: fewer runs than `lower`, or more than `upper`, is
/// a signal. Row `i` is for `RUNS_TABLE_FIRST + i` observations.
///
/// Provenance: rows 10–26 as reproduced in a public implementation read for this work
/// (see `tests/fixtures/run_charts/PROVENANCE.md`); rows 27–60 as the paper prints them,
/// not re-read from a copy of the paper in this change. `tests.rs` checks every row against
/// an exact Swed–Eisenhart computation to within one run, which catches a typo but not an
/// off-by-one the paper itself carries.
pub const RUNS_TABLE: [(usize, usize); RUNS_TABLE_LAST - RUNS_TABLE_FIRST + 1] = [
    (3, 9),   // 10
    (3, 10),  // 11
    (3, 11),  // 12
    (4, 11),  // 13
    (4, 12),  // 14
    (5, 12),  // 15
    (5, 13),  // 16
    (5, 13),  // 17
    (6, 14),  // 18
    (6, 15),  // 19
    (6, 16),  // 20
    (7, 16),  // 21
    (7, 17),  // 22
    (7, 17),  // 23
    (8, 18),  // 24
    (8, 18),  // 25
    (9, 19),  // 26
    (10, 19), // 27
    (10, 20), // 28
    (10, 20), // 29
    (11, 21), // 30
    (11, 22), // 31
    (11, 23), // 32
    (12, 23), // 33
    (12, 24), // 34
    (13, 24), // 35
    (13, 25), // 36
    (13, 25), // 37
    (14, 26), // 38
    (14, 26), // 39
    (15, 27), // 40
    (15, 27), // 41
    (16, 28), // 42
    (16, 28), // 43
    (17, 29), // 44
    (17, 30), // 45
    (17, 31), // 46
    (18, 31), // 47
    (18, 32), // 48
    (19, 32), // 49
    (19, 33), // 50
    (20, 33), // 51
    (20, 34), // 52
    (21, 34), // 53
    (21, 35), // 54
    (22, 35), // 55
    (22, 36), // 56
    (23, 36), // 57
    (23, 37), // 58
    (24, 38), // 59
    (24, 38), // 60
];

/// The table's `(lower, upper)` limits on runs for `useful` observations; `None` outside
/// the table's range, where the runs rule is not applied.
pub fn runs_limits(useful: usize) -> Option<(usize, usize)> {
    RUNS_TABLE
        .get(useful.checked_sub(RUNS_TABLE_FIRST)?)
        .copied()
}

/// Reads the points by the IHI rules: marks shift and trend points, pushes the signals.
pub(super) fn read(
    points: &mut [RunPoint],
    runs: &[Run],
    useful: usize,
    signals: &mut Vec<Signal>,
) -> RunsTest {
    for run in runs.iter().filter(|r| r.len >= SHIFT_POINTS) {
        for p in &mut points[run.start..=run.end] {
            // A point on the median inside the span is not part of the run.
            p.shift = p.side != Side::On;
        }
        signals.push(Signal::Shift {
            start: run.start,
            end: run.end,
            len: run.len,
            side: run.side,
        });
    }
    trends(points, signals);
    match runs_limits(useful) {
        Some((lower, upper)) => {
            if runs.len() < lower {
                signals.push(Signal::TooFewRuns);
            } else if runs.len() > upper {
                signals.push(Signal::TooManyRuns);
            }
            RunsTest::IhiApplied { lower, upper }
        }
        None => RunsTest::IhiNotApplied,
    }
}

/// The trend rule over the useful points (domain.md: points on the median are left out of
/// every count; the paper says so for shifts and runs). Equal neighbours count once: they
/// form one group that neither makes nor breaks a trend. A trend is a maximal stretch of
/// groups each higher (or each lower) than the one before; its length is its number of
/// groups, and a turning group belongs to the stretches on both sides of it.
fn trends(points: &mut [RunPoint], signals: &mut Vec<Signal>) {
    // Groups of equal consecutive useful values: (value, first position, last position).
    let mut groups: Vec<(f64, usize, usize)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if p.side == Side::On {
            continue;
        }
        match groups.last_mut() {
            Some(g) if g.0 == p.value => g.2 = i,
            _ => groups.push((p.value, i, i)),
        }
    }
    let direction = |j: usize| {
        if groups[j + 1].0 > groups[j].0 {
            Direction::Up
        } else {
            Direction::Down
        }
    };
    let steps = groups.len().saturating_sub(1);
    let mut first = 0; // the first step of the current stretch
    for j in 0..steps {
        let last_of_stretch = j + 1 == steps || direction(j + 1) != direction(j);
        if !last_of_stretch {
            continue;
        }
        // Steps first..=j join groups first..=j + 1.
        let len = j + 2 - first;
        if len >= TREND_POINTS {
            let (start, end) = (groups[first].1, groups[j + 1].2);
            for p in &mut points[start..=end] {
                p.trend = p.side != Side::On;
            }
            signals.push(Signal::Trend {
                start,
                end,
                len,
                direction: direction(j),
            });
        }
        first = j + 1;
    }
}
