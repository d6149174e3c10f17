//! SPC through the service equals the engine on the same values, bit for bit: a stored
//! metric's chart with its defaults, with every option, without its rebase points; the
//! stateless chart and its summary; too little data is marked, not an error.

use qi_e2e::metrics::{
    chart, chart_request, compute, create, get_chart, metric, month, record, value,
};
use qi_e2e::{TestSuite, date, ymd};
use qi_proto::metrics as pb;

// The SPC engine itself: the reference the service's answers must equal bit for bit.
use qi_spc as spc;

use super::{LOS, bas_viewer, los, los_values, rebased_los, sou_viewer};

fn point_type(t: spc::PointType) -> pb::SpcPointType {
    match t {
        spc::PointType::CommonCause => pb::SpcPointType::CommonCause,
        spc::PointType::ImprovementHigh => pb::SpcPointType::ImprovementHigh,
        spc::PointType::ImprovementLow => pb::SpcPointType::ImprovementLow,
        spc::PointType::ConcernHigh => pb::SpcPointType::ConcernHigh,
        spc::PointType::ConcernLow => pb::SpcPointType::ConcernLow,
        spc::PointType::NeutralHigh => pb::SpcPointType::NeutralHigh,
        spc::PointType::NeutralLow => pb::SpcPointType::NeutralLow,
    }
}

fn variation(v: spc::VariationIcon) -> pb::SpcVariationIcon {
    match v {
        spc::VariationIcon::CommonCause => pb::SpcVariationIcon::CommonCause,
        spc::VariationIcon::ImprovementHigh => pb::SpcVariationIcon::ImprovementHigh,
        spc::VariationIcon::ImprovementLow => pb::SpcVariationIcon::ImprovementLow,
        spc::VariationIcon::ConcernHigh => pb::SpcVariationIcon::ConcernHigh,
        spc::VariationIcon::ConcernLow => pb::SpcVariationIcon::ConcernLow,
        spc::VariationIcon::NeutralHigh => pb::SpcVariationIcon::NeutralHigh,
        spc::VariationIcon::NeutralLow => pb::SpcVariationIcon::NeutralLow,
    }
}

fn assurance(a: Option<spc::AssuranceIcon>) -> pb::SpcAssuranceIcon {
    match a {
        None => pb::SpcAssuranceIcon::None,
        Some(spc::AssuranceIcon::ConsistentPass) => pb::SpcAssuranceIcon::ConsistentPass,
        Some(spc::AssuranceIcon::ConsistentFail) => pb::SpcAssuranceIcon::ConsistentFail,
        Some(spc::AssuranceIcon::Inconsistent) => pb::SpcAssuranceIcon::Inconsistent,
    }
}

/// Asserts the service's chart is the engine's, field for field and bit for bit.
fn assert_same_chart(got: &pb::SpcChart, want: &spc::SpcChart) {
    assert_eq!(got.points.len(), want.points.len());
    for (i, (g, w)) in got.points.iter().zip(&want.points).enumerate() {
        let at = format!("point {i}");
        assert_eq!(g.position as usize, i, "{at}");
        assert_eq!(g.value.to_bits(), w.value.to_bits(), "{at} value");
        assert_eq!(g.mean.to_bits(), w.mean.to_bits(), "{at} mean");
        assert_eq!(g.group as usize, w.group, "{at} group");
        assert_eq!(g.rebase_group as usize, w.rebase_group, "{at} rebase group");
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        assert_eq!(
            bits(g.lower_process_limit),
            bits(w.limits.map(|l| l.lower)),
            "{at}"
        );
        assert_eq!(
            bits(g.upper_process_limit),
            bits(w.limits.map(|l| l.upper)),
            "{at}"
        );
        assert_eq!(
            bits(g.lower_two_sigma),
            bits(w.limits.map(|l| l.lower_two_sigma)),
            "{at}"
        );
        assert_eq!(
            bits(g.upper_two_sigma),
            bits(w.limits.map(|l| l.upper_two_sigma)),
            "{at}"
        );
        assert_eq!(
            bits(g.moving_range),
            bits(w.moving_range),
            "{at} moving range"
        );
        assert_eq!(
            g.moving_range_screened_out, w.moving_range_screened_out,
            "{at}"
        );
        let side = match w.side {
            spc::MeanSide::Above => pb::SpcMeanSide::Above,
            spc::MeanSide::On => pb::SpcMeanSide::On,
            spc::MeanSide::Below => pb::SpcMeanSide::Below,
        };
        assert_eq!(g.side, side as i32, "{at} side");
        assert_eq!(g.near_limit, w.near_limit, "{at} near limit");
        let rules = g.rules.unwrap_or_default();
        assert_eq!(
            (
                rules.outside_limits,
                rules.shift,
                rules.trend,
                rules.two_in_three
            ),
            (
                w.rules.outside_limits,
                w.rules.shift,
                w.rules.trend,
                w.rules.two_in_three
            ),
            "{at} rules"
        );
        assert_eq!(g.special_cause_label, w.special_cause.ptd_label(), "{at}");
        assert_eq!(g.point_type, point_type(w.point_type) as i32, "{at}");
        assert_eq!(g.colour, w.point_type.colour(), "{at}");
        assert_eq!(g.trial_limits, w.trial_limits, "{at}");
    }
    assert_eq!(got.groups.len(), want.groups.len());
    for (g, w) in got.groups.iter().zip(&want.groups) {
        assert_eq!(
            (
                g.start as usize,
                g.length as usize,
                g.baseline_length as usize
            ),
            (w.start, w.len, w.baseline_len)
        );
        assert_eq!(g.mean.to_bits(), w.mean.to_bits());
        assert_eq!(
            g.mean_moving_range.map(f64::to_bits),
            w.mean_moving_range.map(f64::to_bits)
        );
        assert_eq!(g.trial_limits, w.trial_limits);
    }
    assert_eq!(got.variation_icon, variation(want.variation) as i32);
    assert_eq!(got.assurance_icon, assurance(want.assurance) as i32);
    assert_eq!(got.point_count as usize, want.points.len());
}

#[tokio::test]
async fn a_stored_chart_with_the_metrics_defaults_equals_the_engine() {
    let suite = TestSuite::start().await;
    rebased_los(&suite).await;
    let resp = get_chart(&sou_viewer(&suite), chart_request(LOS))
        .await
        .unwrap();
    let chart = resp.chart.unwrap();
    let defaults = spc::SpcOptions {
        improvement_direction: spc::ImprovementDirection::Decrease,
        target: Some(5.5),
        rebase_positions: vec![18],
        ..spc::SpcOptions::default()
    };
    let want = spc::compute(&los_values(), &defaults).unwrap();
    assert_same_chart(&chart, &want);
    assert_eq!(
        chart.groups.len(),
        2,
        "the stored rebase point splits the chart"
    );
    assert_eq!(
        resp.applied_rebase_points.len(),
        1,
        "the future one applies to nothing"
    );
    assert_eq!(chart.points[0].period, Some(month(0)));
    assert_eq!(chart.points[29].period, Some(month(29)));
    assert_eq!(
        chart.applied_options.as_ref().unwrap().rebase_positions,
        [18]
    );
    suite.stop().await.unwrap();
}

/// Every option set, other than the defaults.
fn every_option() -> pb::SpcOptions {
    pb::SpcOptions {
        improvement_direction: pb::ImprovementDirection::Increase as i32,
        target: Some(4.0),
        rebase_positions: Vec::new(),
        fix_after_n_points: Some(12),
        screen_outliers: Some(false),
        rule_set: pb::SpcRuleSet::LifeQi as i32,
        shift_points: 0,
        trend_points: 5,
        trial_limit_threshold: 12,
    }
}

/// [`every_option`] as the engine takes them, with these rebase positions.
fn engine_options(rebase: Vec<usize>) -> spc::SpcOptions {
    spc::SpcOptions {
        improvement_direction: spc::ImprovementDirection::Increase,
        target: Some(4.0),
        rebase_positions: rebase,
        fix_after_n_points: Some(12),
        screen_outliers: false,
        rules: spc::RuleParameters {
            shift_points: 8,
            trend_points: 5,
        },
        trial_limit_threshold: 12,
    }
}

/// [`LOS`]'s chart with [`every_option`], ignoring its rebase points or not.
fn with_every_option(ignore_rebase_points: bool) -> pb::GetSpcChartRequest {
    pb::GetSpcChartRequest {
        options: Some(every_option()),
        ignore_rebase_points,
        ..chart_request(LOS)
    }
}

#[tokio::test]
async fn a_stored_chart_with_every_option_equals_the_engine() {
    let suite = TestSuite::start().await;
    rebased_los(&suite).await;
    let got = chart(&sou_viewer(&suite), with_every_option(false))
        .await
        .unwrap();
    let want = spc::compute(&los_values(), &engine_options(vec![18])).unwrap();
    assert_same_chart(&got, &want);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stored_chart_ignoring_its_rebase_points_equals_the_engine_without_them() {
    let suite = TestSuite::start().await;
    rebased_los(&suite).await;
    let got = chart(&sou_viewer(&suite), with_every_option(true))
        .await
        .unwrap();
    let want = spc::compute(&los_values(), &engine_options(Vec::new())).unwrap();
    assert_same_chart(&got, &want);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stateless_chart_with_every_option_equals_the_engine() {
    let suite = TestSuite::start().await;
    let req = pb::ComputeSpcRequest {
        values: los_values(),
        options: Some(pb::SpcOptions {
            rebase_positions: vec![18, 0],
            ..every_option()
        }),
        view: 0,
    };
    let computed = compute(&bas_viewer(&suite), req).await.unwrap();
    let want = spc::compute(&los_values(), &engine_options(vec![18, 0])).unwrap();
    assert_same_chart(&computed, &want);
    assert_eq!(
        computed.groups[0].rebase_group, 1,
        "a rebase at 0 numbers from 1"
    );
    suite.stop().await.unwrap();
}

/// The stateless chart of [`los_values`] with the package's defaults, in `view`.
fn plain(view: pb::SpcChartView) -> pb::ComputeSpcRequest {
    pb::ComputeSpcRequest {
        values: los_values(),
        view: view as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stateless_charts_defaults_are_the_packages() {
    let suite = TestSuite::start().await;
    let req = plain(pb::SpcChartView::Unspecified);
    let got = compute(&bas_viewer(&suite), req).await.unwrap();
    let want = spc::compute(&los_values(), &spc::SpcOptions::default()).unwrap();
    assert_same_chart(&got, &want);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_summary_chart_keeps_the_count_and_the_latest_point_alone() {
    let suite = TestSuite::start().await;
    let viewer = bas_viewer(&suite);
    let full = compute(&viewer, plain(pb::SpcChartView::Unspecified))
        .await
        .unwrap();
    let summary = compute(&viewer, plain(pb::SpcChartView::Summary))
        .await
        .unwrap();
    assert!(summary.points.is_empty());
    assert_eq!(summary.point_count, 30);
    assert_eq!(summary.latest_point, full.points.last().cloned());
    suite.stop().await.unwrap();
}

/// SOU's daily bed occupancy, with nothing recorded.
const OCCUPANCY: &str = "sites/SOU/metrics/occupancy";

/// Defines [`OCCUPANCY`], besides [`los`]: SOU's improvement team.
async fn occupancy(suite: &TestSuite) -> qi_e2e::Caller {
    let team = los(suite).await;
    let empty = metric(
        "Bed occupancy",
        pb::MetricKind::Process,
        pb::ImprovementDirection::Neither,
        pb::MetricFrequency::Day,
        pb::MetricValueType::Mean,
        &[],
    );
    create(&team, "sites/SOU", "occupancy", empty)
        .await
        .unwrap();
    team
}

#[tokio::test]
async fn a_metric_with_no_measurements_charts_as_not_enough_data() {
    let suite = TestSuite::start().await;
    occupancy(&suite).await;
    let none = chart(&sou_viewer(&suite), chart_request(OCCUPANCY))
        .await
        .unwrap();
    assert_eq!(
        none.data_sufficiency,
        pb::SpcDataSufficiency::NotEnoughData as i32
    );
    assert!(none.data_sufficiency_reason.contains("no measurements"));
    assert!(none.points.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_single_point_charts_as_not_enough_data() {
    let suite = TestSuite::start().await;
    let team = occupancy(&suite).await;
    let one = vec![value(date(ymd(2026, 3, 1)), 0.93)];
    record(&team, OCCUPANCY, one, "").await.unwrap();
    let one = chart(&sou_viewer(&suite), chart_request(OCCUPANCY))
        .await
        .unwrap();
    assert_eq!(
        one.data_sufficiency,
        pb::SpcDataSufficiency::NotEnoughData as i32
    );
    assert_eq!(one.points.len(), 1);
    suite.stop().await.unwrap();
}
