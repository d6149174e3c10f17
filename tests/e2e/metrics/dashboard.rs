//! The QMS dashboard of [`super::qms_board`]: the caller's sites and the trust's metrics,
//! each row's latest value and SPC icons, and its inequality gap's trend.

use qi_e2e::metrics::{dashboard, dashboard_request, row_names};
use qi_e2e::{Caller, TestSuite, date, ymd};
use qi_proto::metrics as pb;

use super::{bas_viewer, close, qms_board};

/// The dashboard of every site `c` may see, of QMS metrics.
async fn every_site(c: &Caller) -> pb::GetQmsDashboardResponse {
    dashboard(c, dashboard_request("sites/-", &[]))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_site_caller_sees_its_sites_and_the_trusts_qms_metrics_only() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let board = every_site(&bas_viewer(&suite)).await;
    assert_eq!(
        row_names(&board),
        ["trust/metrics/sickness", "sites/BAS/metrics/dna"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_row_carries_the_latest_value_and_the_spc_icons() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let board = every_site(&bas_viewer(&suite)).await;
    let dna = &board.rows[1];
    assert_eq!(dna.point_count, 26);
    assert_eq!(dna.latest_period, Some(date(ymd(2025, 6, 30))));
    // The last week: (q5 + 14) + (q5 + 2) + q5 over 300, plus 1 of 10 unknown.
    let q5 = 11.0;
    let want = (3.0 * q5 + 16.0 + 1.0) / 310.0 * 100.0;
    assert!(
        close(dna.latest_value.unwrap(), want),
        "{:?}",
        dna.latest_value
    );
    assert_ne!(dna.variation_icon, pb::SpcVariationIcon::Unspecified as i32);
    assert_ne!(dna.assurance_icon, pb::SpcAssuranceIcon::None as i32);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_widening_inequality_gap_is_flagged() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let board = every_site(&bas_viewer(&suite)).await;
    let dna = &board.rows[1];
    assert_eq!(
        dna.inequality_trend,
        pb::InequalityGapTrend::Widening as i32
    );
    let signal = &dna.inequality[0];
    assert_eq!(
        signal.dimension,
        pb::InequalityDimension::ImdQuintile as i32
    );
    assert_eq!(signal.gap_period_count, 26);
    assert!(close(signal.latest_gap.unwrap(), 14.0));
    assert!(signal.latest_gap_above_mean);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_metric_without_dimensions_records_no_gap_trend() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let board = every_site(&bas_viewer(&suite)).await;
    assert_eq!(
        board.rows[0].inequality_trend,
        pb::InequalityGapTrend::NotRecorded as i32
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sites_dashboard_shows_outcomes_too_when_asked() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let kinds = [pb::MetricKind::Qms, pb::MetricKind::Outcome];
    let with_outcomes = dashboard(&bas_viewer(&suite), dashboard_request("sites/BAS", &kinds))
        .await
        .unwrap();
    assert_eq!(
        row_names(&with_outcomes),
        [
            "trust/metrics/sickness",
            "sites/BAS/metrics/dna",
            "sites/BAS/metrics/ulcers"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_trusts_dashboard_shows_the_trusts_metrics_alone() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let only_trust = dashboard(&bas_viewer(&suite), dashboard_request("trust", &[]))
        .await
        .unwrap();
    assert_eq!(only_trust.rows.len(), 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_trust_wide_caller_sees_every_sites_metrics() {
    let suite = TestSuite::start().await;
    let trust = qms_board(&suite).await;
    let all = every_site(&trust).await;
    assert_eq!(
        row_names(&all),
        [
            "trust/metrics/sickness",
            "sites/BAS/metrics/dna",
            "sites/SOU/metrics/dna"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_gap_with_a_quintile_unrecorded_is_not_enough_data() {
    let suite = TestSuite::start().await;
    let trust = qms_board(&suite).await;
    let all = every_site(&trust).await;
    assert_eq!(all.rows[2].metric, "sites/SOU/metrics/dna");
    assert_eq!(
        all.rows[2].inequality_trend,
        pb::InequalityGapTrend::NotEnoughData as i32
    );
    suite.stop().await.unwrap();
}
