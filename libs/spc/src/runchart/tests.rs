//! The engine against the fixtures in `tests/fixtures/run_charts/` (their provenance is in
//! `PROVENANCE.md` there), and the edges no fixture covers.

use super::*;

const CASES: &str = include_str!("../../../../tests/fixtures/run_charts/cases.txt");
const LIMITS: &str = include_str!("../../../../tests/fixtures/run_charts/anhoej_limits.txt");
const DATASETS: &str = include_str!("../../../../tests/fixtures/run_charts/qicharts2_datasets.txt");

/// One case of `cases.txt`.
#[derive(Debug, Default)]
struct Case {
    name: String,
    values: Vec<f64>,
    baseline: Option<usize>,
    flags: Vec<usize>,
    median: f64,
    useful: usize,
    runs: usize,
    crossings: usize,
    longest: usize,
    ihi: Vec<String>,
    ihi_runs: String,
    anhoej: Vec<String>,
    anhoej_limits: String,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut case = Case::default();
    for line in CASES.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let nums = || -> Vec<f64> {
            rest.split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect()
        };
        let words = || -> Vec<String> {
            rest.split_whitespace()
                .filter(|w| *w != "none")
                .map(str::to_owned)
                .collect()
        };
        match key {
            "case" => case.name = rest.to_owned(),
            "source" => {}
            "values" => case.values = nums(),
            "baseline" => case.baseline = Some(rest.parse().unwrap()),
            "flag" => {
                case.flags = rest
                    .split_whitespace()
                    .map(|x| x.parse().unwrap())
                    .collect()
            }
            "median" => case.median = rest.parse().unwrap(),
            "useful" => case.useful = rest.parse().unwrap(),
            "runs" => case.runs = rest.parse().unwrap(),
            "crossings" => case.crossings = rest.parse().unwrap(),
            "longest" => case.longest = rest.parse().unwrap(),
            "ihi" => case.ihi = words(),
            "ihi_runs" => case.ihi_runs = rest.to_owned(),
            "anhoej" => case.anhoej = words(),
            "anhoej_limits" => case.anhoej_limits = rest.to_owned(),
            "end" => out.push(std::mem::take(&mut case)),
            other => panic!("unknown fixture line {other:?}"),
        }
    }
    out
}

/// A signal as the fixtures write it.
fn word(s: &Signal) -> String {
    match *s {
        Signal::Shift { start, end, .. } => format!("shift:{start}-{end}"),
        Signal::Trend { start, end, .. } => format!("trend:{start}-{end}"),
        Signal::LongRun { start, end, .. } => format!("long_run:{start}-{end}"),
        Signal::TooFewRuns => "too_few_runs".into(),
        Signal::TooManyRuns => "too_many_runs".into(),
        Signal::FewCrossings => "few_crossings".into(),
        Signal::Astronomical { position } => format!("astronomical:{position}"),
    }
}

fn runs_test(t: RunsTest) -> String {
    match t {
        RunsTest::IhiApplied { lower, upper } => format!("{lower}-{upper}"),
        RunsTest::Anhoej {
            longest_run_limit,
            min_crossings,
        } => format!("{longest_run_limit}-{min_crossings}"),
        RunsTest::IhiNotApplied | RunsTest::AnhoejNotApplied => "not_applied".into(),
    }
}

#[test]
fn both_rule_sets_pass_every_fixture() {
    let all = cases();
    assert!(all.len() >= 9, "the fixtures were read");
    for case in all {
        for (rule_set, want, limits) in [
            (RuleSet::Ihi, &case.ihi, &case.ihi_runs),
            (RuleSet::Anhoej, &case.anhoej, &case.anhoej_limits),
        ] {
            let at = format!("{} ({rule_set:?})", case.name);
            let options = RunChartOptions {
                rule_set,
                baseline_len: case.baseline,
                astronomical: case.flags.clone(),
            };
            let chart = compute(&case.values, &options).unwrap();
            assert_eq!(chart.median, case.median, "{at} median");
            assert_eq!(chart.useful, case.useful, "{at} useful");
            assert_eq!(chart.runs, case.runs, "{at} runs");
            assert_eq!(chart.crossings, case.crossings, "{at} crossings");
            assert_eq!(chart.longest_run, case.longest, "{at} longest");
            let got: Vec<String> = chart.signals.iter().map(word).collect();
            assert_eq!(&got, want, "{at} signals");
            assert_eq!(&runs_test(chart.runs_test), limits, "{at} limits");
            assert_eq!(chart.has_signal(), !want.is_empty(), "{at}");
            // Each point's part agrees with the signals.
            for (i, p) in chart.points.iter().enumerate() {
                let inside = |kind: &str| {
                    got.iter().any(|w| {
                        w.strip_prefix(kind).is_some_and(|span| {
                            let (a, b) = span.split_once('-').unwrap();
                            (a.parse().unwrap()..=b.parse().unwrap()).contains(&i)
                        })
                    })
                };
                let useful = p.side != Side::On;
                assert_eq!(p.shift, useful && inside("shift:"), "{at} point {i} shift");
                assert_eq!(p.trend, useful && inside("trend:"), "{at} point {i} trend");
                assert_eq!(p.long_run, useful && inside("long_run:"), "{at} point {i}");
                assert_eq!(p.astronomical, case.flags.contains(&i), "{at} point {i}");
            }
        }
    }
}

#[test]
fn the_anhoej_limits_are_qicharts2s_for_every_n() {
    let mut rows = 0;
    for line in LIMITS.lines().filter(|l| !l.starts_with('#')) {
        let v: Vec<usize> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let [n, longest, crossings] = v[..] else {
            panic!("bad row {line:?}")
        };
        assert_eq!(longest_run_limit(n), longest, "round(log2({n})) + 3");
        assert_eq!(min_crossings(n), crossings, "qbinom(0.05, {n} - 1, 0.5)");
        rows += 1;
    }
    assert!(rows > 200);
}

/// qicharts2's own datasets, their Anhøj analysis from a transliteration of qicharts2's
/// `runs.analysis` that was first checked against outputs qicharts2 stored (see
/// `PROVENANCE.md`).
#[test]
fn qicharts2s_datasets_read_as_qicharts2_reads_them() {
    let mut read = 0;
    for block in DATASETS.split("\nend").filter(|b| b.contains("case ")) {
        let field = |key: &str| -> &str {
            block
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("{key} missing in {block}"))
        };
        let at = field("case");
        let values: Vec<f64> = field("values")
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let options = RunChartOptions {
            rule_set: RuleSet::Anhoej,
            baseline_len: None,
            astronomical: Vec::new(),
        };
        let chart = compute(&values, &options).unwrap();
        let num = |key| field(key).parse::<usize>().unwrap();
        assert_eq!(
            chart.median,
            field("median").parse::<f64>().unwrap(),
            "{at}"
        );
        assert_eq!(chart.useful, num("useful"), "{at} n.useful");
        assert_eq!(chart.crossings, num("crossings"), "{at} n.crossings");
        assert_eq!(chart.longest_run, num("longest"), "{at} longest.run");
        assert_eq!(&runs_test(chart.runs_test), field("limits"), "{at} limits");
        assert_eq!(
            chart.has_signal(),
            field("signal") == "true",
            "{at} runs.signal"
        );
        read += 1;
    }
    assert_eq!(read, 12, "every dataset case was read");
}

#[test]
fn qbinom_handles_its_edges() {
    assert_eq!(qbinom_half(0.05, 0), 0);
    assert_eq!(qbinom_half(0.0, 10), 0);
    assert_eq!(qbinom_half(1.0, 10), 10);
    // P(X <= 0) = 1/2 for one trial: the median of Binomial(1, ½) is 0.
    assert_eq!(qbinom_half(0.5, 1), 0);
    assert_eq!(min_crossings(0), 0);
}

/// The exact Swed–Eisenhart distribution of runs with n₁ and n₂ points on each side:
/// P(R ≤ r) and P(R ≥ r) as fractions of C(n, n₁), in u128 (n ≤ 60 fits).
fn runs_tails(n: usize) -> (Vec<u128>, u128) {
    fn c(n: usize, k: usize) -> u128 {
        if k > n {
            return 0;
        }
        (0..k).fold(1u128, |acc, i| acc * (n - i) as u128 / (i + 1) as u128)
    }
    let (n1, n2) = (n / 2, n - n / 2);
    let mut ways = vec![0u128; n + 2];
    for (r, w) in ways.iter_mut().enumerate().skip(2) {
        *w = if r % 2 == 0 {
            let k = r / 2;
            2 * c(n1 - 1, k - 1) * c(n2 - 1, k - 1)
        } else {
            let k = (r - 1) / 2;
            c(n1 - 1, k) * c(n2 - 1, k - 1) + c(n1 - 1, k - 1) * c(n2 - 1, k)
        };
    }
    (ways, c(n, n1))
}

#[test]
fn every_row_of_the_runs_table_is_within_a_run_of_swed_and_eisenhart() {
    for n in RUNS_TABLE_FIRST..=RUNS_TABLE_LAST {
        let (ways, total) = runs_tails(n);
        let below = |r: usize| ways[..r].iter().sum::<u128>();
        let above = |r: usize| ways[r + 1..].iter().sum::<u128>();
        // The exact limits at 2.5% in each tail.
        let lower = (2..=n).filter(|&r| below(r) * 40 <= total).max().unwrap();
        let upper = (1..=n).find(|&r| above(r) * 40 <= total).unwrap();
        let (l, u) = runs_limits(n).unwrap();
        assert!(
            l.abs_diff(lower) <= 1 && u.abs_diff(upper) <= 1,
            "row {n}: {l}-{u} against {lower}-{upper}"
        );
        assert!(l < u);
    }
    assert_eq!(runs_limits(9), None);
    assert_eq!(runs_limits(61), None);
    assert_eq!(runs_limits(0), None);
}

#[test]
fn outside_the_table_the_runs_rule_is_not_applied() {
    let values: Vec<f64> = (0..8).map(|i| f64::from(i % 2)).collect();
    let chart = compute(&values, &RunChartOptions::default()).unwrap();
    assert_eq!((chart.useful, chart.runs), (8, 8));
    assert_eq!(chart.runs_test, RunsTest::IhiNotApplied);
    assert!(
        !chart.has_signal(),
        "eight alternating points: no verdict on runs"
    );
}

#[test]
fn bad_input_is_refused_not_panicked_on() {
    let o = RunChartOptions::default();
    assert_eq!(compute(&[], &o), Err(RunChartError::Empty));
    assert!(matches!(
        compute(&[1.0, f64::NAN], &o),
        Err(RunChartError::NonFiniteValue { index: 1, .. })
    ));
    assert!(matches!(
        compute(&[f64::INFINITY], &o),
        Err(RunChartError::NonFiniteValue { index: 0, .. })
    ));
    let zero = RunChartOptions {
        baseline_len: Some(0),
        ..o.clone()
    };
    assert!(matches!(
        compute(&[1.0], &zero),
        Err(RunChartError::BaselineOutOfRange { .. })
    ));
    let long = RunChartOptions {
        baseline_len: Some(3),
        ..o.clone()
    };
    assert!(compute(&[1.0, 2.0], &long).is_err());
    let flag = RunChartOptions {
        astronomical: vec![0, 2],
        ..o
    };
    assert_eq!(
        compute(&[1.0, 2.0], &flag),
        Err(RunChartError::AstronomicalOutOfRange {
            index: 1,
            position: 2,
            last: 1
        })
    );
}

#[test]
fn the_median_is_rs_and_stays_finite() {
    assert_eq!(median::of(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median::of(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median::of(&[f64::MAX, f64::MAX]), f64::MAX);
    assert_eq!(median::of(&[-0.0, 0.0]), 0.0);
}

#[test]
fn a_long_trend_with_plateaus_is_one_trend() {
    // 1, 2, 2, 2, 3, 4, 6 up (5 distinct values), then down to 0.5 (6 values), the peak in
    // both.
    let values = [1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 6.0, 4.5, 3.5, 2.5, 1.5, 0.5];
    let chart = compute(&values, &RunChartOptions::default()).unwrap();
    let trends: Vec<String> = chart
        .signals
        .iter()
        .filter(|s| matches!(s, Signal::Trend { .. }))
        .map(word)
        .collect();
    // The median is 2.25 (no point on it); up 0..=6 has 5 groups, down 6..=11 has 6.
    assert_eq!(trends, ["trend:0-6", "trend:6-11"]);
}
