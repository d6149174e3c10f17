//! Run charts through the gateway: the stateless and the stored chart equal the engine on
//! the same values under both rule sets, flags are echoed, bad input names its field, the
//! picture is well-formed, and the QMS dashboard reads a young metric by a run chart (the
//! threshold configurable).

use chrono::Days;
use qi_e2e::metrics::{create, dashboard, dashboard_request, month, rate, record};
use qi_e2e::{Caller, TestSuite, date, fields, ymd};
use qi_proto::metrics as pb;

// The run-chart engine: the reference the service's answers must equal.
use qi_spc::runchart::{self, RuleSet, RunChartOptions};

use super::picture::well_formed;
use super::{LOS, bas_viewer, los, los_values, sou_viewer, trust_team, weekly_qms};

/// Balestracci's 16-point chart (tests/fixtures/run_charts/cases.txt, `quality-digest-16`).
const SIXTEEN: [f64; 16] = [
    11.0, 12.0, 13.0, 12.0, 14.0, 11.0, 13.0, 5.0, 4.0, 6.0, 5.0, 3.0, 4.0, 6.0, 10.0, 7.0,
];

async fn compute(
    c: &Caller,
    req: pb::ComputeRunChartRequest,
) -> Result<pb::RunChart, tonic::Status> {
    let r = c.metrics().compute_run_chart(req).await?.into_inner();
    Ok(r.chart.expect("a chart"))
}

fn options(rule_set: pb::RunChartRuleSet, baseline: i32) -> Option<pb::RunChartOptions> {
    Some(pb::RunChartOptions {
        rule_set: rule_set as i32,
        baseline_length: baseline,
    })
}

/// Asserts the service's chart is the engine's on the same values and options.
fn assert_same(got: &pb::RunChart, values: &[f64], o: &RunChartOptions) {
    let want = runchart::compute(values, o).unwrap();
    assert_eq!(got.median.to_bits(), want.median.to_bits());
    assert_eq!(got.baseline_length as usize, want.baseline_len);
    assert_eq!(got.point_count as usize, values.len());
    assert_eq!(got.useful_observation_count as usize, want.useful);
    assert_eq!(got.run_count as usize, want.runs);
    assert_eq!(got.crossing_count as usize, want.crossings);
    assert_eq!(got.longest_run as usize, want.longest_run);
    assert_eq!(got.signals.len(), want.signals.len());
    assert_eq!(got.has_signal, want.has_signal());
    for (i, (g, w)) in got.points.iter().zip(&want.points).enumerate() {
        assert_eq!(g.position as usize, i);
        assert_eq!(g.value.to_bits(), w.value.to_bits());
        assert_eq!(
            (g.shift, g.trend, g.long_run, g.astronomical, g.in_signal),
            (w.shift, w.trend, w.long_run, w.astronomical, w.in_signal()),
            "point {i}"
        );
    }
}

#[tokio::test]
async fn the_stateless_chart_reads_both_rule_sets_as_the_fixtures_say() {
    let suite = TestSuite::start().await;
    let viewer = bas_viewer(&suite);
    let ihi = compute(
        &viewer,
        pb::ComputeRunChartRequest {
            values: SIXTEEN.to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ihi.rule_set,
        pb::RunChartRuleSet::Ihi as i32,
        "IHI unless asked"
    );
    assert_eq!((ihi.median, ihi.run_count), (8.5, 4));
    assert_eq!((ihi.min_runs, ihi.max_runs), (Some(5), Some(13)));
    let kinds: Vec<i32> = ihi.signals.iter().map(|s| s.kind).collect();
    use pb::RunChartSignalKind as K;
    assert_eq!(
        kinds,
        [K::Shift as i32, K::Shift as i32, K::TooFewRuns as i32]
    );
    assert_eq!(
        (ihi.signals[0].start, ihi.signals[0].end),
        (Some(0), Some(6))
    );
    assert_eq!(
        ihi.signals[0].direction,
        pb::RunChartSignalDirection::Above as i32
    );
    assert_same(&ihi, &SIXTEEN, &RunChartOptions::default());

    let anhoej = compute(
        &viewer,
        pb::ComputeRunChartRequest {
            values: SIXTEEN.to_vec(),
            options: options(pb::RunChartRuleSet::Anhoej, 0),
            astronomical_positions: vec![15, 15],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (anhoej.longest_run_limit, anhoej.min_crossings),
        (Some(7), Some(4))
    );
    let kinds: Vec<i32> = anhoej.signals.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [K::FewCrossings as i32, K::Astronomical as i32]);
    assert!(anhoej.points[15].astronomical && anhoej.points[15].in_signal);
    assert_same(
        &anhoej,
        &SIXTEEN,
        &RunChartOptions {
            rule_set: RuleSet::Anhoej,
            baseline_len: None,
            astronomical: vec![15],
        },
    );

    // Too few points for the IHI table: the answer says the runs rule was not applied.
    let short = compute(
        &viewer,
        pb::ComputeRunChartRequest {
            values: vec![1.0, 2.0],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!short.runs_test_applied);
    assert!(
        short.runs_test_note.contains("not applied"),
        "{}",
        short.runs_test_note
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stored_metrics_chart_is_the_engines_with_its_baseline_and_flags() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let viewer = sou_viewer(&suite);
    let got = viewer
        .metrics()
        .get_run_chart(pb::GetRunChartRequest {
            metric: LOS.into(),
            options: options(pb::RunChartRuleSet::Anhoej, 18),
            astronomical_periods: vec![month(20)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let chart = got.chart.unwrap();
    assert_eq!(chart.points[0].period, Some(month(0)));
    assert_same(
        &chart,
        &los_values(),
        &RunChartOptions {
            rule_set: RuleSet::Anhoej,
            baseline_len: Some(18),
            astronomical: vec![20],
        },
    );
    // The shift down after month 18 is a long run below the baseline's median.
    assert!(
        chart
            .signals
            .iter()
            .any(|s| s.kind == pb::RunChartSignalKind::LongRun as i32)
    );
    assert!(chart.points[20].astronomical);

    // A baseline longer than the series takes every point.
    let all = viewer
        .metrics()
        .get_run_chart(pb::GetRunChartRequest {
            metric: LOS.into(),
            options: options(pb::RunChartRuleSet::Ihi, 500),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_eq!(all.baseline_length, 30);
    assert_same(&all, &los_values(), &RunChartOptions::default());
    suite.stop().await.unwrap();
}

/// The astronomical rule is a person's judgement, recorded once on an annotation of the
/// point's period (any day in it) and read by every run chart of the metric; a plain note
/// flags nothing.
#[tokio::test]
async fn a_point_flagged_astronomical_on_its_annotation_is_flagged_on_every_run_chart() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let team = trust_team(&suite);
    let note = |id: &str, day, astronomical| pb::CreateAnnotationRequest {
        parent: LOS.into(),
        annotation_id: id.into(),
        annotation: Some(pb::Annotation {
            date: Some(day),
            text: "Norovirus closed two wards".into(),
            astronomical,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let flagged = team
        .metrics()
        .create_annotation(note("noro", date(ymd(2025, 3, 14)), true))
        .await
        .unwrap()
        .into_inner()
        .annotation
        .unwrap();
    assert!(flagged.astronomical);
    team.metrics()
        .create_annotation(note("plain", month(5), false))
        .await
        .unwrap();
    for rule_set in [pb::RunChartRuleSet::Ihi, pb::RunChartRuleSet::Anhoej] {
        let chart = sou_viewer(&suite)
            .metrics()
            .get_run_chart(pb::GetRunChartRequest {
                metric: LOS.into(),
                options: options(rule_set, 0),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .chart
            .unwrap();
        let marked: Vec<usize> = chart
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.astronomical)
            .map(|(i, _)| i)
            .collect();
        // March 2025 is month 14 of the series.
        assert_eq!(marked, [14], "{rule_set:?}");
        assert!(
            chart
                .signals
                .iter()
                .any(|s| s.kind == pb::RunChartSignalKind::Astronomical as i32),
            "{rule_set:?}"
        );
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_run_chart_input_names_each_field() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let viewer = sou_viewer(&suite);
    let err = compute(
        &viewer,
        pb::ComputeRunChartRequest {
            values: vec![1.0, f64::NAN, 3.0],
            options: Some(pb::RunChartOptions {
                rule_set: 9,
                baseline_length: 4,
            }),
            astronomical_positions: vec![1, 3, -1],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "values[1]",
            "options.rule_set",
            "options.baseline_length",
            "astronomical_positions[1]",
            "astronomical_positions[2]"
        ]
    );
    let err = compute(&viewer, pb::ComputeRunChartRequest::default())
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["values"]);
    let err = compute(
        &viewer,
        pb::ComputeRunChartRequest {
            values: vec![f64::INFINITY],
            options: options(pb::RunChartRuleSet::Ihi, -2),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["values[0]", "options.baseline_length"]);
    // A flagged day that starts no period of the series.
    let err = viewer
        .metrics()
        .get_run_chart(pb::GetRunChartRequest {
            metric: LOS.into(),
            astronomical_periods: vec![month(1), date(ymd(2024, 1, 15)), pb_date(0, 13, 1)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["astronomical_periods[2]"],
        "a malformed date is refused before the series is read"
    );
    let err = viewer
        .metrics()
        .get_run_chart(pb::GetRunChartRequest {
            metric: LOS.into(),
            astronomical_periods: vec![month(1), date(ymd(2024, 1, 15))],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["astronomical_periods[1]"]);
    let err = viewer
        .metrics()
        .render_run_chart(pb::RenderRunChartRequest {
            metric: LOS.into(),
            width: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["width"]);
    suite.stop().await.unwrap();
}

fn pb_date(year: i32, month: i32, day: i32) -> qi_proto::google::r#type::Date {
    qi_proto::google::r#type::Date { year, month, day }
}

#[tokio::test]
async fn the_run_chart_picture_is_well_formed_and_shows_the_median() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let picture = sou_viewer(&suite)
        .metrics()
        .render_run_chart(pb::RenderRunChartRequest {
            metric: LOS.into(),
            options: options(pb::RunChartRuleSet::Ihi, 18),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(picture.content_type, "image/svg+xml");
    let svg = &picture.svg;
    if let Some(dir) = std::env::var_os("QI_SAVE_SVG") {
        std::fs::write(std::path::Path::new(&dir).join("run-chart-e2e.svg"), svg).unwrap();
    }
    well_formed(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert!(svg.contains("run chart (IHI rules)"));
    assert!(svg.contains("<title>Median: "));
    assert!(
        svg.contains("Median of the baseline"),
        "dashed beyond the baseline"
    );
    assert!(
        svg.contains("Non-random variation"),
        "the shift after month 18 signals"
    );
    assert_eq!(
        svg.matches("<circle").count(),
        30 + 1 + 4,
        "points, badge, legend dots"
    );
    suite.stop().await.unwrap();
}

/// A weekly QMS metric `id` at BAS with `weeks` weeks recorded: the trust's team.
async fn weekly(suite: &TestSuite, id: &str, weeks: u64) {
    let trust = trust_team(suite);
    create(&trust, "sites/BAS", id, weekly_qms(id, &[]))
        .await
        .unwrap();
    let batch = (0..weeks)
        .map(|w| {
            let monday = date(ymd(2025, 1, 6) + Days::new(7 * w));
            let level = if w > 5 { 7.0 } else { 4.0 };
            rate(monday, None, level + (w % 3) as f64 * 0.1, 100.0)
        })
        .collect();
    record(&trust, &format!("sites/BAS/metrics/{id}"), batch, "")
        .await
        .unwrap();
}

fn row<'a>(board: &'a pb::GetQmsDashboardResponse, id: &str) -> &'a pb::QmsDashboardRow {
    let name = format!("sites/BAS/metrics/{id}");
    board.rows.iter().find(|r| r.metric == name).unwrap()
}

#[tokio::test]
async fn a_young_metric_shows_a_run_chart_reading_instead_of_spc_icons() {
    let suite = TestSuite::start().await;
    weekly(&suite, "young", 12).await;
    weekly(&suite, "grown", 15).await;
    let board = dashboard(&bas_viewer(&suite), dashboard_request("sites/BAS", &[]))
        .await
        .unwrap();
    let young = row(&board, "young");
    assert_eq!(young.reading, pb::QmsReading::RunChart as i32);
    assert_eq!(
        young.variation_icon,
        pb::SpcVariationIcon::Unspecified as i32
    );
    assert_eq!(
        young.assurance_icon,
        pb::SpcAssuranceIcon::Unspecified as i32
    );
    let reading = young.run_chart.as_ref().expect("a run-chart reading");
    assert_eq!(reading.rule_set, pb::RunChartRuleSet::Ihi as i32);
    assert!(
        reading.has_signal,
        "six weeks up a level after six: a shift"
    );
    assert!(reading.latest_in_signal);
    let grown = row(&board, "grown");
    assert_eq!(grown.reading, pb::QmsReading::Spc as i32);
    assert!(grown.run_chart.is_none());
    assert_ne!(
        grown.variation_icon,
        pb::SpcVariationIcon::Unspecified as i32
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_run_chart_threshold_is_configured() {
    let suite = TestSuite::start_with(&[("QI_RUN_CHART_BELOW_POINTS", "20")]).await;
    weekly(&suite, "grown", 15).await;
    let board = dashboard(&bas_viewer(&suite), dashboard_request("sites/BAS", &[]))
        .await
        .unwrap();
    assert_eq!(
        row(&board, "grown").reading,
        pb::QmsReading::RunChart as i32
    );
    suite.stop().await.unwrap();
}
