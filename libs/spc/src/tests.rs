//! Tests of the SPC engine.
//!
//! Most expected values are NHSRplotthedots' own: its testthat cases (paths given per test)
//! and numbers from running the package's R sources (R 4.2.2, x86-64) on the same input,
//! printed to 17 significant digits. Where a test states a snapshot value, it is the one in the
//! package's `tests/testthat/_snaps/*.md`.

#![allow(
    clippy::excessive_precision,
    reason = "expected values are R's, printed to 17 significant digits"
)]

use super::rules;
use super::*;

/// `set.seed(123); rnorm(20)` in R, the data of `tests/testthat/test-ptd_spc_standard.R` and
/// `test-ptd_spc.R`.
const RNORM_123: [f64; 20] = [
    -0.5604756465522126,
    -0.23017748948327996,
    1.558708314149124,
    0.070508391424576003,
    0.12928773516094624,
    1.715064986883281,
    0.4609162059892023,
    -1.265061234606534,
    -0.68685285189352607,
    -0.44566197009995806,
    1.2240817974394615,
    0.35981382705736381,
    0.40077145059405217,
    0.11068271594511971,
    -0.55584113475407493,
    1.7869131368030782,
    0.49785047822923939,
    -1.9666171566296382,
    0.70135590156368555,
    -0.47279140772793404,
];

fn run(values: &[f64], options: &SpcOptions) -> SpcChart {
    match compute(values, options) {
        Ok(chart) => chart,
        Err(e) => panic!("compute failed: {e}"),
    }
}

fn run_default(values: &[f64]) -> SpcChart {
    run(values, &SpcOptions::default())
}

fn limits(chart: &SpcChart, group: usize) -> Limits {
    chart.groups[group].limits.expect("limits")
}

/// Equal within `tol`, relative to max(1, |expected|).
fn assert_close(actual: f64, expected: f64, tol: f64) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol * scale,
        "{actual:.17e} != {expected:.17e} (tolerance {tol:e})"
    );
}

fn sides(chart: &SpcChart) -> Vec<i8> {
    chart.points.iter().map(|p| p.side.sign()).collect()
}

fn labels(chart: &SpcChart) -> Vec<&'static str> {
    chart
        .points
        .iter()
        .map(|p| p.special_cause.ptd_label())
        .collect()
}

fn types(chart: &SpcChart) -> Vec<&'static str> {
    chart
        .points
        .iter()
        .map(|p| p.point_type.ptd_name())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_spc_standard.R

/// "it returns expected values", r1: the snapshot `_snaps/ptd_spc_standard.md` shows
/// mean_col 0.1416238, lpl -3.01138, upl 3.294627 and the first relative_to_mean values.
#[test]
fn standard_returns_the_snapshot_values() {
    let chart = run_default(&RNORM_123);
    let g = &chart.groups[0];
    assert_close(g.mean, 0.1416238, 5e-8);
    assert_close(limits(&chart, 0).lower, -3.01138, 5e-6);
    assert_close(limits(&chart, 0).upper, 3.294627, 5e-7);
    // Full precision, from the package's R source on the same data.
    assert_close(g.mean, 0.1416238024745986, 1e-15);
    let l = limits(&chart, 0);
    assert_close(l.lower, -3.0113795957080995, 1e-15);
    assert_close(l.upper, 3.2946272006572963, 1e-15);
    assert_close(l.lower_two_sigma, -1.9603784629805332, 1e-15);
    assert_close(l.upper_two_sigma, 2.2436260679297302, 1e-15);
    assert_eq!(
        sides(&chart),
        [
            -1, -1, 1, -1, -1, 1, 1, -1, -1, -1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1
        ]
    );
    assert!(chart.points.iter().all(|p| !p.rules.outside_limits));
    // R: close_to_limits only for row 18 (-1.97 is below the lower 2σ bound -1.96).
    let near: Vec<usize> = (0..20).filter(|&i| chart.points[i].near_limit).collect();
    assert_eq!(near, [17]);
    assert!(
        chart
            .points
            .iter()
            .all(|p| p.rebase_group == 0 && p.group == 0)
    );
}

/// "it returns expected values", r2 and r3: y[15] <- 10, with and without screening.
#[test]
fn standard_screening_outliers_changes_the_limits() {
    let mut y = RNORM_123;
    y[14] = 10.0;
    let r1 = run_default(&RNORM_123);
    let r2 = run_default(&y);
    let r3 = run(
        &y,
        &SpcOptions {
            screen_outliers: false,
            ..SpcOptions::default()
        },
    );
    // Snapshot values.
    assert_close(r2.groups[0].mean, 0.6694159, 5e-8);
    assert_close(limits(&r2, 0).lower, -2.383666, 5e-7);
    assert_close(limits(&r2, 0).upper, 3.722497, 5e-7);
    assert_close(r3.groups[0].mean, 0.6694159, 5e-8);
    assert_close(limits(&r3, 0).lower, -4.596625, 5e-7);
    assert_close(limits(&r3, 0).upper, 5.935457, 5e-7);
    // Full precision.
    assert_close(limits(&r2, 0).lower, -2.3836655972741312, 1e-15);
    assert_close(limits(&r2, 0).upper, 3.7224973156987362, 1e-15);
    assert_close(limits(&r3, 0).lower, -4.5966251824697597, 1e-15);
    assert_close(limits(&r3, 0).upper, 5.9354569008943638, 1e-15);
    assert_eq!(
        sides(&r2)[..14],
        [-1, -1, 1, -1, -1, 1, -1, -1, -1, -1, 1, -1, -1, -1]
    );
    // The package's expect_true() checks.
    let (l1, l2, l3) = (limits(&r1, 0), limits(&r2, 0), limits(&r3, 0));
    assert!(l1.lower != l2.lower && l1.lower != l3.lower && l2.lower != l3.lower);
    assert!(l1.upper != l2.upper && l1.upper != l3.upper && l2.upper != l3.upper);
    assert!(l3.upper - l3.lower > l2.upper - l2.lower);
    // In R the screened moving ranges are NA: rows 15 and 16 (1-based), either side of the 10.
    let screened: Vec<usize> = r2
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.moving_range_screened_out)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(screened, [14, 15]);
    assert!(r3.points.iter().all(|p| !p.moving_range_screened_out));
    assert_eq!(r2.points[14].special_cause, SpecialCause::AboveUpperLimit);
    assert_eq!(r2.points[14].point_type, PointType::ImprovementHigh);
}

/// "setting fix_after_n_points changes the calculations".
#[test]
fn standard_fix_after_n_points_changes_the_limits() {
    let s0 = run_default(&RNORM_123);
    let fixed = SpcOptions {
        fix_after_n_points: Some(12),
        ..SpcOptions::default()
    };
    let s1 = run(&RNORM_123, &fixed);
    assert!(limits(&s1, 0).lower != limits(&s0, 0).lower);
    assert!(limits(&s1, 0).upper != limits(&s0, 0).upper);
    // R: the first 12 points only.
    assert_close(s1.groups[0].mean, 0.19417933878903704, 1e-15);
    assert_close(limits(&s1, 0).lower, -2.6073998147977493, 1e-15);
    assert_close(limits(&s1, 0).upper, 2.9957584923758231, 1e-15);
    assert_eq!(s1.groups[0].baseline_len, 12);
    // No moving range after the 12th point.
    assert!(
        s1.points[..12]
            .iter()
            .skip(1)
            .all(|p| p.moving_range.is_some())
    );
    assert!(s1.points[12..].iter().all(|p| p.moving_range.is_none()));
    // With the outlier of r2 after the baseline, the limits are the same, and it is flagged.
    let mut y = RNORM_123;
    y[14] = 10.0;
    let s2 = run(&y, &fixed);
    assert_eq!(limits(&s2, 0), limits(&s1, 0));
    assert_eq!(s2.points[14].special_cause, SpecialCause::AboveUpperLimit);
}

/// "it sets the rebase_group field".
#[test]
fn standard_sets_the_rebase_group() {
    let r1 = run_default(&RNORM_123);
    assert!(r1.points.iter().all(|p| p.rebase_group == 0));
    let r2 = run(
        &RNORM_123,
        &SpcOptions {
            rebase_positions: vec![10],
            ..SpcOptions::default()
        },
    );
    let groups: Vec<usize> = r2.points.iter().map(|p| p.rebase_group).collect();
    let expected: Vec<usize> = [0; 10].into_iter().chain([1; 10]).collect();
    assert_eq!(groups, expected);
    assert_eq!(r2.groups.len(), 2);
    assert_eq!((r2.groups[1].start, r2.groups[1].len), (10, 10));
}

/// "it only reports special cause for 2of3 points close to limits when they are on the same
/// side of the mean" (issue #143).
#[test]
fn standard_two_in_three_needs_one_side_of_the_mean() {
    let mut data: Vec<f64> = [1.0, -1.0].repeat(8);
    data[14] = 5.5;
    data[15] = -5.5;
    let chart = run_default(&data);
    assert_eq!(types(&chart)[14..], ["common_cause", "common_cause"]);
    // Both are near a limit, on opposite sides.
    assert!(chart.points[14].near_limit && chart.points[15].near_limit);
    assert_close(limits(&chart, 0).upper, 6.1750000000000007, 1e-15);
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_spc.R (summary() snapshots in _snaps/ptd_spc.md)

/// The data split in two halves (the snapshot's facets 0 and 1, here rebase groups): means
/// 0.0746 and 0.209, limits -2.60..2.75 and -3.28..3.70, 10 points, all common cause.
#[test]
fn summary_of_two_groups() {
    let chart = run(
        &RNORM_123,
        &SpcOptions {
            rebase_positions: vec![10],
            ..SpcOptions::default()
        },
    );
    let (a, b) = (&chart.groups[0], &chart.groups[1]);
    assert_close(a.mean, 0.0746, 5e-5);
    assert_close(b.mean, 0.209, 5e-4);
    assert_close(limits(&chart, 0).lower, -2.60, 5e-3);
    assert_close(limits(&chart, 0).upper, 2.75, 5e-3);
    assert_close(limits(&chart, 1).lower, -3.28, 5e-3);
    assert_close(limits(&chart, 1).upper, 3.70, 5e-3);
    assert_close(a.mean, 0.074625644097161895, 1e-15);
    assert_close(limits(&chart, 1).upper, 3.6962493694334788, 1e-15);
    assert_eq!((a.len, b.len), (10, 10));
    assert!(
        chart
            .points
            .iter()
            .all(|p| !p.point_type.is_special_cause())
    );
    // Groups of 10 warn (trial limits) in the package.
    assert!(a.trial_limits && b.trial_limits);
    assert_eq!(chart.sufficiency, DataSufficiency::TrialLimits);
    assert_eq!(chart.variation, VariationIcon::CommonCause);
}

/// "summary with a target": target 0.5 lies between the limits: hit and miss.
#[test]
fn summary_with_a_target() {
    let chart = run(
        &RNORM_123,
        &SpcOptions {
            target: Some(0.5),
            ..SpcOptions::default()
        },
    );
    assert_eq!(chart.groups[0].len, 20);
    assert_eq!(
        chart
            .points
            .iter()
            .filter(|p| !p.point_type.is_special_cause())
            .count(),
        20
    );
    assert_eq!(chart.variation.ptd_name(), "common_cause");
    assert_eq!(chart.assurance, Some(AssuranceIcon::Inconsistent));
    assert_eq!(chart.sufficiency, DataSufficiency::Sufficient);
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_calculate_point_type.R

fn shift_flags(sides: &[i8]) -> Vec<bool> {
    let mut out = vec![false; sides.len()];
    rules::shift(sides, 7, &mut out);
    out
}

fn trend_flags(ys: &[f64]) -> Vec<bool> {
    let mut out = vec![false; ys.len()];
    rules::trend(ys, 7, &mut out);
    out
}

fn two_in_three_flags(near: &[u8], sides: &[i8]) -> Vec<u8> {
    let near: Vec<bool> = near.iter().map(|&b| b == 1).collect();
    let mut out = vec![false; near.len()];
    rules::two_in_three(&near, sides, &mut out);
    out.into_iter().map(u8::from).collect()
}

fn bools(v: &[u8]) -> Vec<bool> {
    v.iter().map(|&b| b == 1).collect()
}

/// "ptd_seven_point_one_side_mean works as expected", through `ptd_part_of_seven_trend`.
#[test]
fn shift_rule_as_the_package() {
    assert!(shift_flags(&[]).is_empty());
    assert_eq!(shift_flags(&[1; 6]), [false; 6]);
    assert_eq!(shift_flags(&[1, 1, 1, 1, 1, 1, -1]), [false; 7]);
    // c(rep(1, 8), -1): windows end at points 7 and 8, so points 1 to 8 are part of it.
    assert_eq!(
        shift_flags(&[1, 1, 1, 1, 1, 1, 1, 1, -1]),
        bools(&[1, 1, 1, 1, 1, 1, 1, 1, 0])
    );
    assert_eq!(
        shift_flags(&[-1, -1, -1, -1, -1, -1, -1, -1, 1]),
        bools(&[1, 1, 1, 1, 1, 1, 1, 1, 0])
    );
    // A point on the mean breaks a run.
    assert_eq!(shift_flags(&[1, 1, 1, 0, 1, 1, 1, 1]), [false; 8]);
}

/// "ptd_part_of_seven_trend works as expected": a window ending at point 7 covers points
/// 1 to 7; one ending at point 8 covers 2 to 8.
#[test]
fn part_of_a_run_as_the_package() {
    assert_eq!(shift_flags(&[0; 6]), [false; 6]);
    assert_eq!(
        shift_flags(&[1, 1, 1, 1, 1, 1, 1, 0]),
        bools(&[1, 1, 1, 1, 1, 1, 1, 0])
    );
    assert_eq!(
        shift_flags(&[0, 1, 1, 1, 1, 1, 1, 1, 0]),
        bools(&[0, 1, 1, 1, 1, 1, 1, 1, 0])
    );
    assert_eq!(
        shift_flags(&[-1, -1, -1, -1, -1, -1, -1, 0]),
        bools(&[1, 1, 1, 1, 1, 1, 1, 0])
    );
    assert_eq!(
        shift_flags(&[0, -1, -1, -1, -1, -1, -1, -1, 0]),
        bools(&[0, 1, 1, 1, 1, 1, 1, 1, 0])
    );
}

/// "ptd_seven_point_trend works as expected", through `ptd_part_of_seven_trend`.
#[test]
fn trend_rule_as_the_package() {
    let seq = |from: i32, to: i32| -> Vec<f64> {
        if from <= to {
            (from..=to).map(f64::from).collect()
        } else {
            (to..=from).rev().map(f64::from).collect()
        }
    };
    assert!(trend_flags(&[]).is_empty());
    assert_eq!(trend_flags(&seq(1, 6)), [false; 6]);
    // c(1:3, 3:6): an equal value breaks the trend.
    assert_eq!(
        trend_flags(&[1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0]),
        [false; 7]
    );
    assert_eq!(trend_flags(&seq(1, 7)), [true; 7]);
    let mut d = vec![2.0];
    d.extend(seq(1, 7));
    d.push(3.0);
    assert_eq!(trend_flags(&d), bools(&[0, 1, 1, 1, 1, 1, 1, 1, 0]));
    assert_eq!(trend_flags(&seq(7, 1)), [true; 7]);
    let mut f = vec![2.0];
    f.extend(seq(7, 1));
    f.push(3.0);
    assert_eq!(trend_flags(&f), bools(&[0, 1, 1, 1, 1, 1, 1, 1, 0]));
}

/// "ptd_two_in_three works as expected" and "ptd_part_of_two_in_three works as expected":
/// only near-limit points of a qualifying window are part of it.
#[test]
fn two_in_three_rule_as_the_package() {
    assert!(two_in_three_flags(&[], &[]).is_empty());
    assert_eq!(two_in_three_flags(&[1, 0, 1], &[1, 1, 1]), [1, 0, 1]);
    assert_eq!(two_in_three_flags(&[0, 1, 1], &[1, 1, 1]), [0, 1, 1]);
    assert_eq!(two_in_three_flags(&[1, 1, 0], &[1, 1, 1]), [1, 1, 0]);
    assert_eq!(
        two_in_three_flags(&[0, 0, 1, 0, 1, 0, 0], &[1; 7]),
        [0, 0, 1, 0, 1, 0, 0]
    );
    assert_eq!(
        two_in_three_flags(&[0, 0, 1, 1, 0, 0, 0], &[1; 7]),
        [0, 0, 1, 1, 0, 0, 0]
    );
    assert_eq!(two_in_three_flags(&[1, 0, 0, 1], &[1; 4]), [0, 0, 0, 0]);
    assert_eq!(
        two_in_three_flags(&[1, 0, 0, 1, 1], &[1; 5]),
        [0, 0, 0, 1, 1]
    );
}

/// "ptd_two_in_three works as expected when points are on opposite sides of the mean".
#[test]
fn two_in_three_on_opposite_sides_is_not_special() {
    assert_eq!(two_in_three_flags(&[1, 0, 1], &[1, -1, 1]), [0; 3]);
    assert_eq!(two_in_three_flags(&[0, 1, 1], &[1, -1, 1]), [0; 3]);
    assert_eq!(two_in_three_flags(&[1, 1, 0], &[1, -1, 1]), [0; 3]);
    assert_eq!(
        two_in_three_flags(&[0, 0, 1, 0, 1, 0, 0], &[1, -1, 1, -1, 1, -1, 1]),
        [0; 7]
    );
    assert_eq!(
        two_in_three_flags(&[0, 0, 1, 1, 0, 0, 0], &[-1, 1, -1, 1, -1, 1, -1]),
        [0; 7]
    );
}

/// "ptd_special_cause_type works as expected": the package mocks the rule results; the same
/// inputs through our classification give its expected labels (outside the limits, then
/// trend, then two in three, then shift).
#[test]
fn special_cause_type_as_the_package() {
    let y: Vec<f64> = (1..=8).map(f64::from).collect();
    let sides = [1, 1, 1, 1, -1, -1, -1, -1];
    let trend = bools(&[1, 1, 0, 0, 0, 0, 0, 0]); // the mock's c(1, -1, 0, ...)
    let shift = bools(&[0, 0, 1, 1, 0, 0, 0, 0]); // c(0, 0, 1, -1, ...)
    let two_in_three = bools(&[0, 0, 0, 0, 1, 0, 0, 0]);
    let outside = bools(&[0, 0, 0, 0, 0, 1, 1, 0]); // c(..., 1, -1, 0)
    let got: Vec<&str> = (0..8)
        .map(|i| {
            let fired = SpecialCauseRules {
                outside_limits: outside[i],
                shift: shift[i],
                trend: trend[i],
                two_in_three: two_in_three[i],
            };
            rules::special_cause(fired, sides[i], rules::trend_sign(&y, &trend, i)).ptd_label()
        })
        .collect();
    assert_eq!(
        got,
        [
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "7 Points Above CL",
            "7 Points Above CL",
            "2 in 3 Below CL",
            "Below LCL",
            "Below LCL",
            "Common Cause",
        ]
    );
}

/// `ptd_point_type`: the reading of each special cause against each direction.
#[test]
fn point_type_reads_the_direction() {
    use ImprovementDirection::{Decrease, Increase, Neither};
    let above = SpecialCause::ShiftAbove;
    let below = SpecialCause::TrendDecreasing;
    assert_eq!(PointType::new(above, Increase), PointType::ImprovementHigh);
    assert_eq!(PointType::new(below, Increase), PointType::ConcernLow);
    assert_eq!(PointType::new(above, Decrease), PointType::ConcernHigh);
    assert_eq!(PointType::new(below, Decrease), PointType::ImprovementLow);
    assert_eq!(PointType::new(above, Neither), PointType::NeutralHigh);
    assert_eq!(PointType::new(below, Neither), PointType::NeutralLow);
    for direction in [Increase, Decrease, Neither] {
        assert_eq!(
            PointType::new(SpecialCause::CommonCause, direction),
            PointType::CommonCause
        );
    }
    assert_eq!(PointType::ConcernHigh.ptd_name(), "special_cause_concern");
    assert_eq!(
        PointType::NeutralLow.ptd_name(),
        "special_cause_neutral_low"
    );
}

// ---------------------------------------------------------------------------------------------
// Literal ports of the package's window functions, to check the one-pass rules against them
// on many series.

/// `ptd_seven_point_one_side_mean`, for run length `w`.
fn r_one_side_mean(v: &[i8], w: usize) -> Vec<i8> {
    let mut vp = vec![0; w - 1];
    vp.extend_from_slice(v);
    (0..v.len())
        .map(|k| {
            let i = k + w - 1;
            i8::from((1..w).all(|j| vp[i] == vp[i - j]) && vp[i] != 0)
        })
        .collect()
}

/// `ptd_part_of_seven_trend`, for run length `w`.
fn r_part_of(v: &[i8], w: usize) -> Vec<bool> {
    let mut vp = v.to_vec();
    vp.extend(std::iter::repeat_n(0, w - 1));
    (0..v.len())
        .map(|i| (0..w).any(|j| vp[i + j].abs() == 1))
        .collect()
}

/// `ptd_seven_point_trend`, for run length `w`.
fn r_trend(y: &[f64], w: usize) -> Vec<i8> {
    if y.len() < w {
        return vec![0; y.len()];
    }
    let mut out = vec![0; w - 1];
    for i in w - 1..y.len() {
        let d: Vec<i8> = (0..w - 1)
            .map(|k| rmath_sign(y[i - k] - y[i - k - 1]))
            .collect();
        out.push(if d.iter().all(|&s| s == 1) {
            1
        } else if d.iter().all(|&s| s == -1) {
            -1
        } else {
            0
        });
    }
    out
}

fn rmath_sign(x: f64) -> i8 {
    super::rmath::sign(x)
}

/// `ptd_two_in_three` then `ptd_part_of_two_in_three`.
fn r_two_in_three(near: &[bool], rtm: &[i8]) -> Vec<bool> {
    let pad = |v: Vec<i32>| [vec![0, 0], v, vec![0, 0]].concat();
    let vp = pad(near.iter().map(|&b| i32::from(b)).collect());
    let rp = pad(rtm.iter().map(|&s| i32::from(s)).collect());
    (0..near.len())
        .map(|i| {
            let window = |a: usize| {
                vp[i + a..i + a + 3].iter().sum::<i32>() >= 2
                    && rp[i + a..i + a + 3].iter().sum::<i32>().abs() == 3
            };
            (window(0) || window(1) || window(2)) && near[i]
        })
        .collect()
}

/// `sdy` in `ptd_special_cause_type`.
fn r_sdy(y: &[f64], part: &[bool]) -> Vec<i8> {
    let n = y.len();
    let sdy: Vec<i8> = (1..n).map(|i| rmath_sign(y[i] - y[i - 1])).collect();
    (0..n)
        .map(|i| {
            let next = i + 1 < n && part[i + 1];
            if next && part[i] {
                sdy[i]
            } else if i > 0 {
                sdy[i - 1]
            } else {
                0
            }
        })
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A series with ties, runs, trends and the odd outlier.
    fn series(&mut self, len: usize) -> Vec<f64> {
        let style = self.below(4);
        let mut level = 0.0;
        (0..len)
            .map(|_| match style {
                0 => self.below(4) as f64,
                1 => {
                    level += self.below(3) as f64 - 0.9;
                    level
                }
                2 => {
                    (self.below(1000) as f64) / 100.0 + if self.below(15) == 0 { 9.0 } else { 0.0 }
                }
                _ => {
                    level += if self.below(2) == 0 { 1.0 } else { -1.0 };
                    level.round()
                }
            })
            .collect()
    }
}

/// The one-pass rules mark exactly the points the package's windows mark, for the MDC lengths
/// and others.
#[test]
fn one_pass_rules_equal_the_package_windows() {
    let mut rng = Rng(2024);
    for case in 0..3000 {
        let len = rng.below(40) as usize;
        let y = rng.series(len);
        let w = [7, 7, 6, 8, 2, 3][case % 6];
        let rtm: Vec<i8> = y.iter().map(|&v| rmath_sign(v - 1.5)).collect();
        let near: Vec<bool> = (0..len).map(|_| rng.below(3) == 0).collect();

        let mut shift = vec![false; len];
        rules::shift(&rtm, w, &mut shift);
        assert_eq!(
            shift,
            r_part_of(&r_one_side_mean(&rtm, w), w),
            "shift {rtm:?}"
        );

        let mut trend = vec![false; len];
        rules::trend(&y, w, &mut trend);
        assert_eq!(trend, r_part_of(&r_trend(&y, w), w), "trend {y:?}");

        let mut two = vec![false; len];
        rules::two_in_three(&near, &rtm, &mut two);
        assert_eq!(two, r_two_in_three(&near, &rtm), "2in3 {near:?} {rtm:?}");

        let sdy = r_sdy(&y, &trend);
        for (i, &expected) in sdy.iter().enumerate() {
            assert_eq!(rules::trend_sign(&y, &trend, i), expected);
        }
    }
}

/// End to end: every point's label is the package's `case_when` over the package's windows,
/// applied to the sides, near-limit and outside flags we computed.
#[test]
fn labels_equal_the_package_case_when() {
    let mut rng = Rng(99);
    for _ in 0..500 {
        let len = 1 + rng.below(60) as usize;
        let y = rng.series(len);
        let chart = run_default(&y);
        let rtm = sides(&chart);
        let near: Vec<bool> = chart.points.iter().map(|p| p.near_limit).collect();
        let trend = r_part_of(&r_trend(&y, 7), 7);
        let two = r_two_in_three(&near, &rtm);
        let shift = r_part_of(&r_one_side_mean(&rtm, 7), 7);
        let sdy = r_sdy(&y, &trend);
        for (i, p) in chart.points.iter().enumerate() {
            let expected = if p.rules.outside_limits {
                if rtm[i] == 1 {
                    "Above UCL"
                } else {
                    "Below LCL"
                }
            } else if trend[i] {
                if sdy[i] == 1 {
                    "7 Point Trend (Increasing)"
                } else {
                    "7 Point Trend (Decreasing)"
                }
            } else if two[i] {
                if rtm[i] > 0 {
                    "2 in 3 Above CL"
                } else {
                    "2 in 3 Below CL"
                }
            } else if shift[i] {
                if rtm[i] > 0 {
                    "7 Points Above CL"
                } else {
                    "7 Points Below CL"
                }
            } else {
                "Common Cause"
            };
            assert_eq!(p.special_cause.ptd_label(), expected, "{y:?} at {i}");
            assert_eq!(
                (p.rules.trend, p.rules.two_in_three, p.rules.shift),
                (trend[i], two[i], shift[i])
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_calculate_assurance_type.R

fn limits_of(lower: f64, upper: f64) -> Option<Limits> {
    Some(Limits {
        lower,
        upper,
        lower_two_sigma: lower,
        upper_two_sigma: upper,
    })
}

#[test]
fn assurance_as_the_package() {
    use ImprovementDirection::{Decrease, Increase, Neither};
    let rows = [
        limits_of(1.0, 3.0),
        limits_of(5.0, 7.0),
        limits_of(1.0, 5.0),
    ];
    // "it returns a column of NA's if there is no target"
    assert_eq!(AssuranceIcon::new(Increase, None, rows[0]), None);
    let names = |direction| -> Vec<Option<&str>> {
        rows.iter()
            .map(|&l| AssuranceIcon::new(direction, Some(4.0), l).map(AssuranceIcon::ptd_name))
            .collect()
    };
    assert_eq!(
        names(Increase),
        [
            Some("consistent_fail"),
            Some("consistent_pass"),
            Some("inconsistent")
        ]
    );
    assert_eq!(
        names(Decrease),
        [
            Some("consistent_pass"),
            Some("consistent_fail"),
            Some("inconsistent")
        ]
    );
    assert_eq!(names(Neither), [None, None, None]);
    // Strict comparisons: a target on a limit is hit and miss; NA limits too.
    assert_eq!(
        AssuranceIcon::new(Increase, Some(3.0), rows[0]),
        Some(AssuranceIcon::Inconsistent)
    );
    assert_eq!(
        AssuranceIcon::new(Decrease, Some(3.0), None),
        Some(AssuranceIcon::Inconsistent)
    );
}

/// "it returns correct values for assurance when rebase": only the last row (the last group)
/// counts.
#[test]
fn assurance_reads_the_last_group() {
    let high: Vec<f64> = (0..15).map(|i| 6.0 + f64::from(i % 2) * 0.5).collect();
    let low: Vec<f64> = (0..15).map(|i| 1.0 + f64::from(i % 2) * 0.5).collect();
    let options = |target| SpcOptions {
        improvement_direction: ImprovementDirection::Decrease,
        target: Some(target),
        rebase_positions: vec![15],
        ..SpcOptions::default()
    };
    let low_last = [high.clone(), low.clone()].concat();
    let high_last = [low, high].concat();
    assert_eq!(
        run(&low_last, &options(4.0)).assurance,
        Some(AssuranceIcon::ConsistentPass)
    );
    assert_eq!(
        run(&high_last, &options(4.0)).assurance,
        Some(AssuranceIcon::ConsistentFail)
    );
    assert_eq!(
        run(&high_last, &options(6.2)).assurance,
        Some(AssuranceIcon::Inconsistent)
    );
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_add_short_group_warnings.R (the package's tests pass a threshold of
// 12; its default, getOption("ptd_spc.warning_threshold", 13), is tested after).

fn trial_flags(len: usize, rebase: Vec<usize>, threshold: usize) -> Vec<bool> {
    let values: Vec<f64> = (0..len).map(|i| (i % 5) as f64).collect();
    let chart = run(
        &values,
        &SpcOptions {
            rebase_positions: rebase,
            trial_limit_threshold: threshold,
            ..SpcOptions::default()
        },
    );
    chart.points.iter().map(|p| p.trial_limits).collect()
}

#[test]
fn short_groups_have_trial_limits() {
    assert_eq!(trial_flags(11, vec![], 12), [true; 11]);
    assert_eq!(trial_flags(12, vec![], 12), [false; 12]);
    assert_eq!(trial_flags(20, vec![], 12), [false; 20]);
    // "it handles facets and rebase groups": 4 groups of 20 (no warnings), then groups of
    // 35, 5, 20 and 20 (the group of 5 warns).
    assert_eq!(trial_flags(80, vec![20, 40, 60], 12), [false; 80]);
    let expected: Vec<bool> = [(35, false), (5, true), (40, false)]
        .iter()
        .flat_map(|&(n, b)| std::iter::repeat_n(b, n))
        .collect();
    assert_eq!(trial_flags(80, vec![35, 40, 60], 12), expected);
}

#[test]
fn default_trial_threshold_is_the_package_default() {
    assert_eq!(SpcOptions::default().trial_limit_threshold, 13);
    assert_eq!(
        trial_flags(12, vec![], DEFAULT_TRIAL_LIMIT_THRESHOLD),
        [true; 12]
    );
    assert_eq!(
        trial_flags(13, vec![], DEFAULT_TRIAL_LIMIT_THRESHOLD),
        [false; 13]
    );
    let chart = run_default(&(0..12).map(|i| f64::from(i % 3)).collect::<Vec<_>>());
    assert!(chart.groups[0].trial_limits);
    assert_eq!(chart.sufficiency, DataSufficiency::TrialLimits);
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-ptd_spc_options.R

#[test]
fn fix_after_n_points_must_be_at_least_twelve() {
    let values = [1.0; 20];
    for given in [0, 1, 11] {
        let options = SpcOptions {
            fix_after_n_points: Some(given),
            ..SpcOptions::default()
        };
        assert_eq!(
            compute(&values, &options),
            Err(SpcError::FixAfterNPointsTooSmall { given, minimum: 12 })
        );
    }
    let twelve = SpcOptions {
        fix_after_n_points: Some(12),
        ..SpcOptions::default()
    };
    assert!(compute(&values, &twelve).is_ok());
    // More than the group holds: all its points.
    let chart = run(
        &RNORM_123,
        &SpcOptions {
            fix_after_n_points: Some(500),
            ..SpcOptions::default()
        },
    );
    assert_eq!(chart.groups[0], run_default(&RNORM_123).groups[0]);
}

#[test]
fn improvement_direction_defaults_to_increase() {
    assert_eq!(
        SpcOptions::default().improvement_direction,
        ImprovementDirection::Increase
    );
    assert!(SpcOptions::default().screen_outliers);
    assert_eq!(
        SpcOptions::default().rules,
        RuleParameters {
            shift_points: 7,
            trend_points: 7
        }
    );
    assert_eq!(
        [
            ImprovementDirection::Increase,
            ImprovementDirection::Neither,
            ImprovementDirection::Decrease
        ]
        .map(ImprovementDirection::code),
        [1, 0, -1]
    );
}

// ---------------------------------------------------------------------------------------------
// tests/testthat/test-spc-function-public-api.R data (1 to 12, rebased at 4, or 4 and 10;
// percentages), with the package's results on them.

#[test]
fn one_to_twelve() {
    let values: Vec<f64> = (1..=12).map(f64::from).collect();
    let chart = run_default(&values);
    assert_eq!(chart.groups[0].mean, 6.5);
    assert_close(limits(&chart, 0).lower, 3.8399999999999999, 1e-15);
    assert_close(limits(&chart, 0).upper, 9.1600000000000001, 1e-15);
    let mut expected = vec!["Below LCL"; 3];
    expected.extend(["7 Point Trend (Increasing)"; 6]);
    expected.extend(["Above UCL"; 3]);
    assert_eq!(labels(&chart), expected);
    assert_eq!(
        types(&chart),
        [
            vec!["special_cause_concern"; 3],
            vec!["special_cause_improvement"; 9]
        ]
        .concat()
    );
    assert_eq!(chart.variation, VariationIcon::ImprovementHigh);
    // Every point is part of the trend and several are beyond a limit.
    assert!(chart.points.iter().all(|p| p.rules.trend));
    assert_eq!(
        chart
            .points
            .iter()
            .filter(|p| p.rules.outside_limits)
            .count(),
        6
    );

    let decrease = run(
        &values,
        &SpcOptions {
            improvement_direction: ImprovementDirection::Decrease,
            ..SpcOptions::default()
        },
    );
    assert_eq!(
        types(&decrease),
        [
            vec!["special_cause_improvement"; 3],
            vec!["special_cause_concern"; 9]
        ]
        .concat()
    );
    assert_eq!(decrease.variation, VariationIcon::ConcernHigh);
    assert_eq!(decrease.points[0].point_type, PointType::ImprovementLow);
}

#[test]
fn one_to_twelve_rebased() {
    let values: Vec<f64> = (1..=12).map(f64::from).collect();
    let once = run(
        &values,
        &SpcOptions {
            rebase_positions: vec![3],
            ..SpcOptions::default()
        },
    );
    assert_eq!((once.groups[0].mean, once.groups[1].mean), (2.0, 8.0));
    assert_close(limits(&once, 0).lower, -0.66000000000000014, 1e-15);
    assert_close(limits(&once, 1).upper, 10.66, 1e-15);
    assert_eq!(sides(&once), [-1, 0, 1, -1, -1, -1, -1, 0, 1, 1, 1, 1]);
    let mut expected = vec!["Common Cause"; 3];
    expected.extend(["Below LCL"; 2]);
    expected.extend(["7 Point Trend (Increasing)"; 5]);
    expected.extend(["Above UCL"; 2]);
    assert_eq!(labels(&once), expected);

    let twice = run(
        &values,
        &SpcOptions {
            rebase_positions: vec![9, 3],
            ..SpcOptions::default()
        },
    );
    let means: Vec<f64> = twice.groups.iter().map(|g| g.mean).collect();
    assert_eq!(means, [2.0, 6.5, 11.0]);
    assert_eq!(sides(&twice), [-1, 0, 1, -1, -1, -1, 1, 1, 1, -1, 0, 1]);
    assert!(
        twice
            .points
            .iter()
            .all(|p| !p.point_type.is_special_cause())
    );
    assert_eq!(twice.variation, VariationIcon::CommonCause);
}

#[test]
fn percentages_with_no_direction() {
    let values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.8, 0.7, 0.6];
    let chart = run(
        &values,
        &SpcOptions {
            improvement_direction: ImprovementDirection::Neither,
            target: Some(0.5),
            ..SpcOptions::default()
        },
    );
    // R: mean 0.55000000000000004 (the double nearest 0.55), limits 0.284..0.816.
    assert_eq!(chart.groups[0].mean, 0.55);
    assert_close(limits(&chart, 0).lower, 0.28400000000000003, 1e-15);
    assert_close(limits(&chart, 0).upper, 0.81600000000000006, 1e-15);
    assert_eq!(
        labels(&chart),
        [
            "Below LCL",
            "Below LCL",
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "7 Point Trend (Increasing)",
            "Above UCL",
            "2 in 3 Above CL",
            "7 Points Above CL",
            "7 Points Above CL",
        ]
    );
    assert_eq!(chart.points[0].point_type, PointType::NeutralLow);
    assert_eq!(chart.points[11].point_type, PointType::NeutralHigh);
    assert_eq!(chart.variation, VariationIcon::NeutralHigh);
    // No assurance without an improvement direction.
    assert_eq!(chart.assurance, None);
}

/// A longer series through every rule, with a rebase, fix_after_n_points, direction decrease
/// and a target; labels, point types and limits from the package's R source.
#[test]
fn every_rule_with_rebase_and_fixed_limits() {
    let z = [
        55.5, 47.7, 51.5, 52.5, 51.6, 49.6, 56.0, 49.6, 58.1, 49.7, 55.2, 59.1, 44.4, 48.9, 51.9,
        54.3, 56.1, 56.8, 57.6, 60.2, 62.1, 63.2, 39.7, 42.4, 43.8, 39.1, 39.5, 36.5, 40.9, 38.7,
        40.9, 41.4, 48.0, 46.4, 47.5, 45.3, 46.2, 46.1, 70.0, 37.8, 45.1, 45.6, 43.9, 47.3,
    ];
    let chart = run(
        &z,
        &SpcOptions {
            improvement_direction: ImprovementDirection::Decrease,
            target: Some(44.0),
            rebase_positions: vec![22],
            fix_after_n_points: Some(15),
            ..SpcOptions::default()
        },
    );
    let (g0, g1) = (&chart.groups[0], &chart.groups[1]);
    assert_close(g0.mean, 52.086666666666666, 1e-15);
    assert_close(limits(&chart, 0).lower, 37.494666666666667, 1e-15);
    assert_close(limits(&chart, 0).upper, 66.678666666666658, 1e-15);
    assert_close(limits(&chart, 0).upper_two_sigma, 61.814666666666668, 1e-15);
    assert_close(g1.mean, 42.420000000000002, 1e-15);
    assert_close(limits(&chart, 1).lower, 35.978999999999999, 1e-15);
    assert_close(limits(&chart, 1).upper, 48.861000000000004, 1e-15);
    assert_close(limits(&chart, 1).lower_two_sigma, 38.126000000000005, 1e-15);
    assert_eq!((g0.len, g1.len, g0.baseline_len), (22, 22, 15));

    let mut expected = vec!["Common Cause"; 12];
    expected.extend(["7 Point Trend (Increasing)"; 10]);
    expected.extend(["Common Cause"; 3]);
    expected.extend(["7 Points Below CL"; 7]);
    expected.extend([
        "2 in 3 Above CL",
        "7 Points Above CL",
        "2 in 3 Above CL",
        "7 Points Above CL",
        "7 Points Above CL",
        "7 Points Above CL",
        "Above UCL",
    ]);
    expected.extend(["Common Cause"; 5]);
    assert_eq!(labels(&chart), expected);
    let t = types(&chart);
    assert!(t[12..22].iter().all(|&s| s == "special_cause_concern"));
    assert!(t[25..32].iter().all(|&s| s == "special_cause_improvement"));
    assert!(t[32..39].iter().all(|&s| s == "special_cause_concern"));
    // R's NA moving ranges: first point of each group and after the 15th of each.
    let missing: Vec<usize> = chart
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.moving_range.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    let expected_missing: Vec<usize> = [1].into_iter().chain(16..=23).chain(38..=44).collect();
    assert_eq!(missing, expected_missing);
    assert_eq!(chart.variation, VariationIcon::CommonCause);
    assert_eq!(chart.assurance, Some(AssuranceIcon::Inconsistent));
    assert_eq!(chart.sufficiency, DataSufficiency::Sufficient);
}

// ---------------------------------------------------------------------------------------------
// Awkward inputs: errors, never panics.

#[test]
fn awkward_inputs_are_refused_clearly() {
    let ok = SpcOptions::default();
    assert_eq!(compute(&[], &ok), Err(SpcError::Empty));
    match compute(&[1.0, 2.0, f64::NAN, 4.0], &ok) {
        Err(SpcError::NonFiniteValue { index, value }) => {
            assert_eq!(index, 2);
            assert!(value.is_nan());
        }
        other => panic!("expected a NaN error, got {other:?}"),
    }
    assert_eq!(
        compute(&[1.0, f64::INFINITY], &ok),
        Err(SpcError::NonFiniteValue {
            index: 1,
            value: f64::INFINITY
        })
    );
    assert_eq!(
        compute(&[f64::NEG_INFINITY], &ok),
        Err(SpcError::NonFiniteValue {
            index: 0,
            value: f64::NEG_INFINITY
        })
    );
    let rebase = SpcOptions {
        rebase_positions: vec![1, 3],
        ..SpcOptions::default()
    };
    assert_eq!(
        compute(&[1.0, 2.0, 3.0], &rebase),
        Err(SpcError::RebasePositionOutOfRange {
            position: 3,
            len: 3
        })
    );
    let target = SpcOptions {
        target: Some(f64::NAN),
        ..SpcOptions::default()
    };
    assert!(matches!(
        compute(&[1.0, 2.0], &target),
        Err(SpcError::NonFiniteTarget { .. })
    ));
    let shift = SpcOptions {
        rules: RuleParameters {
            shift_points: 1,
            trend_points: 7,
        },
        ..SpcOptions::default()
    };
    assert_eq!(
        compute(&[1.0, 2.0], &shift),
        Err(SpcError::ShiftPointsTooSmall { given: 1 })
    );
    let trend = SpcOptions {
        rules: RuleParameters {
            shift_points: 7,
            trend_points: 0,
        },
        ..SpcOptions::default()
    };
    assert_eq!(
        compute(&[1.0, 2.0], &trend),
        Err(SpcError::TrendPointsTooSmall { given: 0 })
    );
    // The messages name the problem.
    let message = SpcError::NonFiniteValue {
        index: 7,
        value: f64::NAN,
    }
    .to_string();
    assert!(message.contains("position 7"), "{message}");
    assert!(
        SpcError::RebasePositionOutOfRange {
            position: 9,
            len: 3
        }
        .to_string()
        .contains("rebase position 9")
    );
    assert!(
        SpcError::FixAfterNPointsTooSmall {
            given: 0,
            minimum: 12
        }
        .to_string()
        .contains("at least 12")
    );
    assert!(!SpcError::Empty.to_string().is_empty());
}

/// One point: R gives mean = the value, NaN limits, common cause, "inconsistent".
#[test]
fn one_point_is_not_enough_data() {
    let chart = run(
        &[5.0],
        &SpcOptions {
            target: Some(3.0),
            ..SpcOptions::default()
        },
    );
    let p = chart.points[0];
    assert_eq!(
        (p.value, p.mean, p.limits, p.moving_range),
        (5.0, 5.0, None, None)
    );
    assert_eq!(p.side, MeanSide::On);
    assert_eq!(p.point_type, PointType::CommonCause);
    assert!(p.trial_limits);
    assert_eq!(chart.groups[0].mean_moving_range, None);
    assert_eq!(chart.sufficiency, DataSufficiency::NotEnoughData);
    assert_eq!(chart.variation, VariationIcon::CommonCause);
    assert_eq!(chart.assurance, Some(AssuranceIcon::Inconsistent));
    // A one-point group after a rebase likewise; the group before keeps its limits.
    let chart = run(
        &[1.0, 3.0, 2.0, 9.0],
        &SpcOptions {
            rebase_positions: vec![3],
            ..SpcOptions::default()
        },
    );
    assert!(chart.groups[0].limits.is_some());
    assert_eq!(chart.groups[1].limits, None);
    assert_eq!(chart.sufficiency, DataSufficiency::NotEnoughData);
}

/// Two points are the least that give limits.
#[test]
fn two_points_give_limits() {
    let chart = run_default(&[1.0, 3.0]);
    let l = limits(&chart, 0);
    assert_eq!(chart.groups[0].mean, 2.0);
    assert_eq!(chart.groups[0].mean_moving_range, Some(2.0));
    assert_close(l.upper, 2.0 + 2.66 * 2.0, 1e-15);
    assert_close(l.lower_two_sigma, 2.0 - 2.0 * (2.66 / 3.0) * 2.0, 1e-15);
    assert_eq!(chart.sufficiency, DataSufficiency::TrialLimits);
}

/// All values equal: every moving range is 0, so screening (`mr < 3.267 × 0`) drops them all
/// and R's limits are NaN; without screening the limits sit on the mean.
#[test]
fn equal_values_have_zero_moving_ranges() {
    let values = [4.0; 15];
    let screened = run(
        &values,
        &SpcOptions {
            target: Some(3.0),
            ..SpcOptions::default()
        },
    );
    assert_eq!(screened.groups[0].mean, 4.0);
    assert_eq!(screened.groups[0].limits, None);
    assert!(
        screened
            .points
            .iter()
            .skip(1)
            .all(|p| p.moving_range == Some(0.0))
    );
    assert!(
        screened
            .points
            .iter()
            .skip(1)
            .all(|p| p.moving_range_screened_out)
    );
    assert!(
        screened
            .points
            .iter()
            .all(|p| p.side == MeanSide::On && !p.point_type.is_special_cause())
    );
    assert_eq!(screened.sufficiency, DataSufficiency::NotEnoughData);
    assert_eq!(screened.assurance, Some(AssuranceIcon::Inconsistent));

    let unscreened = run(
        &values,
        &SpcOptions {
            target: Some(3.0),
            screen_outliers: false,
            ..SpcOptions::default()
        },
    );
    let l = limits(&unscreened, 0);
    assert_eq!(
        (l.lower, l.upper, l.lower_two_sigma, l.upper_two_sigma),
        (4.0, 4.0, 4.0, 4.0)
    );
    assert!(unscreened.points.iter().all(|p| !p.rules.outside_limits));
    // R: the target 3 is below the lower limit 4, direction increase: consistent pass.
    assert_eq!(unscreened.assurance, Some(AssuranceIcon::ConsistentPass));
    assert_eq!(unscreened.sufficiency, DataSufficiency::Sufficient);
}

/// Values near the largest double: moving ranges overflow to infinity as in R's double
/// arithmetic, the mean does not (R sums in long double); R gives mean 2e307, infinite limits,
/// all common cause, "inconsistent".
#[test]
fn huge_values_follow_r() {
    let values = [
        1e308, -1e308, 1e308, 5e307, -1.7e308, 1.7e308, 0.0, 1e308, -1e308, 1e307, 9e307, -9e307,
        1e308,
    ];
    let chart = run(
        &values,
        &SpcOptions {
            target: Some(0.0),
            ..SpcOptions::default()
        },
    );
    assert_eq!(chart.groups[0].mean, 2e307);
    let l = limits(&chart, 0);
    assert_eq!((l.lower, l.upper), (f64::NEG_INFINITY, f64::INFINITY));
    assert_eq!(sides(&chart), [1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1]);
    assert!(
        chart
            .points
            .iter()
            .all(|p| p.special_cause == SpecialCause::CommonCause)
    );
    assert_eq!(chart.assurance, Some(AssuranceIcon::Inconsistent));
    // The infinite moving ranges are the ones screened out.
    assert!(
        chart
            .points
            .iter()
            .all(|p| p.moving_range_screened_out == (p.moving_range == Some(f64::INFINITY)))
    );
    // Tiny values too.
    let tiny = run_default(&[5e-324, 1e-323, 5e-324, 0.0]);
    assert!(tiny.groups[0].mean > 0.0);
}

/// R's long-double mean puts these points exactly on the mean (0.2); a plain double sum would
/// not, and would move them to one side.
#[test]
fn points_on_the_mean_follow_r() {
    let values = [
        0.1, 0.2, 0.3, 0.2, 0.1, 0.3, 0.2, 0.2, 0.2, 0.1, 0.3, 0.2, 0.2,
    ];
    let chart = run_default(&values);
    assert_eq!(chart.groups[0].mean, 0.2);
    assert_eq!(sides(&chart), [-1, 0, 1, 0, -1, 1, 0, 0, 0, -1, 1, 0, 0]);
    assert_close(limits(&chart, 0).lower, -0.043833333333333308, 1e-15);
    // A shift of 7 at the mean does not count; seven just above it would.
    let on_mean = [1.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 3.0];
    assert!(run_default(&on_mean).points.iter().all(|p| !p.rules.shift));
}

#[test]
fn rebase_positions_are_a_set() {
    let values: Vec<f64> = (0..30).map(|i| f64::from(i % 7)).collect();
    let a = run(
        &values,
        &SpcOptions {
            rebase_positions: vec![10, 20],
            ..SpcOptions::default()
        },
    );
    let b = run(
        &values,
        &SpcOptions {
            rebase_positions: vec![20, 10, 20, 10],
            ..SpcOptions::default()
        },
    );
    assert_eq!(a, b);
    // A rebase on the first point starts no new group but numbers the groups from 1, as
    // `cumsum(rebase)` does.
    let c = run(
        &values,
        &SpcOptions {
            rebase_positions: vec![0, 10, 20],
            ..SpcOptions::default()
        },
    );
    assert_eq!(c.groups.len(), 3);
    assert_eq!(
        c.groups.iter().map(|g| g.rebase_group).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(c.points[0].rebase_group, 1);
    assert_eq!(c.points[0].group, 0);
    assert_eq!(c.groups[0].limits, a.groups[0].limits);
}

/// Configurable run lengths (Life QI: shift 8, trend 6).
#[test]
fn rule_lengths_are_configurable() {
    // Seven above the mean after five below: a shift for MDC, not for Life QI.
    let values = [1.0, 1.5, 1.0, 1.5, 1.0, 5.0, 5.5, 5.0, 5.5, 5.0, 5.5, 5.0];
    let mdc = run_default(&values);
    assert!(mdc.points[5..].iter().all(|p| p.rules.shift));
    let life = run(
        &values,
        &SpcOptions {
            rules: RuleParameters::LIFE_QI,
            ..SpcOptions::default()
        },
    );
    assert!(life.points.iter().all(|p| !p.rules.shift));
    // Six rising: a trend for Life QI, not for MDC.
    let rising = [3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 2.0];
    assert!(run_default(&rising).points.iter().all(|p| !p.rules.trend));
    let life = run(
        &rising,
        &SpcOptions {
            rules: RuleParameters::LIFE_QI,
            ..SpcOptions::default()
        },
    );
    let trend: Vec<bool> = life.points.iter().map(|p| p.rules.trend).collect();
    assert_eq!(trend, bools(&[0, 1, 1, 1, 1, 1, 1, 0]));
}

/// A peak shared by a rising and a falling trend is labelled by the step after it (R's `sdy`).
/// The see-saw start widens the limits (screening off) so that no point is beyond them.
#[test]
fn trend_direction_at_a_peak() {
    let mut values = vec![20.0, -10.0, 20.0, -10.0];
    values.extend((1..=7).chain((1..=6).rev()).map(f64::from));
    let chart = run(
        &values,
        &SpcOptions {
            screen_outliers: false,
            ..SpcOptions::default()
        },
    );
    // R: Common Cause x3, Increasing x7 (from the -10), Decreasing x7 (from the peak).
    assert!(
        chart.points[..3]
            .iter()
            .all(|p| p.special_cause == SpecialCause::CommonCause)
    );
    assert!(
        chart.points[3..10]
            .iter()
            .all(|p| p.special_cause == SpecialCause::TrendIncreasing)
    );
    assert!(
        chart.points[10..]
            .iter()
            .all(|p| p.special_cause == SpecialCause::TrendDecreasing)
    );
    assert!(
        chart.points[3..]
            .iter()
            .all(|p| p.rules.trend && !p.rules.outside_limits)
    );
}

/// The variation icon follows `ptd_get_icons`: the side of improvement and concern comes from
/// the direction.
#[test]
fn variation_icon_follows_the_package() {
    use ImprovementDirection::{Decrease, Increase, Neither};
    assert_eq!(
        VariationIcon::new(PointType::ConcernLow, Increase).ptd_name(),
        "concern_low"
    );
    assert_eq!(
        VariationIcon::new(PointType::ConcernHigh, Decrease).ptd_name(),
        "concern_high"
    );
    assert_eq!(
        VariationIcon::new(PointType::ImprovementHigh, Increase).ptd_name(),
        "improvement_high"
    );
    assert_eq!(
        VariationIcon::new(PointType::ImprovementLow, Decrease).ptd_name(),
        "improvement_low"
    );
    assert_eq!(
        VariationIcon::new(PointType::NeutralLow, Neither).ptd_name(),
        "neutral_low"
    );
    assert_eq!(
        VariationIcon::new(PointType::CommonCause, Neither).ptd_name(),
        "common_cause"
    );
}

#[test]
fn colours_are_the_mdc_colours() {
    assert_eq!(COLOUR_COMMON_CAUSE, "#a6a6a6");
    assert_eq!(COLOUR_IMPROVEMENT, "#00b0f0");
    assert_eq!(COLOUR_CONCERN, "#e46c0a");
    assert_eq!(COLOUR_NEUTRAL, "#490092");
    assert_eq!(COLOUR_TARGET, "#de1b1b");
    assert_eq!(PointType::CommonCause.colour(), COLOUR_COMMON_CAUSE);
    assert_eq!(PointType::ImprovementLow.colour(), COLOUR_IMPROVEMENT);
    assert_eq!(PointType::ConcernHigh.colour(), COLOUR_CONCERN);
    assert_eq!(PointType::NeutralHigh.colour(), COLOUR_NEUTRAL);
}

/// Ten thousand points: one entry per value, groups covering the series, sensible limits.
/// (Speed is measured outside the tests.)
#[test]
fn ten_thousand_points() {
    let mut rng = Rng(5);
    let values: Vec<f64> = (0..10_000)
        .map(|_| rng.below(10_000) as f64 / 100.0)
        .collect();
    let chart = run(
        &values,
        &SpcOptions {
            target: Some(50.0),
            rebase_positions: vec![2_000, 5_000],
            ..SpcOptions::default()
        },
    );
    assert_eq!(chart.points.len(), 10_000);
    assert_eq!(chart.groups.iter().map(|g| g.len).sum::<usize>(), 10_000);
    for g in &chart.groups {
        let l = g.limits.expect("limits");
        assert!(l.lower < l.lower_two_sigma && l.lower_two_sigma < g.mean);
        assert!(g.mean < l.upper_two_sigma && l.upper_two_sigma < l.upper);
        assert!((g.mean - 50.0).abs() < 3.0, "{}", g.mean);
    }
    assert_eq!(chart.assurance, Some(AssuranceIcon::Inconsistent));
}
