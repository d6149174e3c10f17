//! Rebase points: at a period's start only, one a period, listed (those past the last
//! measurement too), deleted by the improvement team alone, and the chart joins again.

use qi_e2e::metrics::{
    chart, chart_request, create_rebase_point, delete_rebase_point, month, rebase_point,
};
use qi_e2e::{TestSuite, date, fields, ymd};
use qi_proto::metrics as pb;
use tonic::Code;

use super::{LOS, los, rebased_los, sou_viewer};

/// The rebase point `d2a` of [`LOS`], at month 18.
const D2A: &str = "sites/SOU/metrics/los/rebasePoints/d2a";

#[tokio::test]
async fn a_rebase_point_off_a_periods_start_is_refused() {
    let suite = TestSuite::start().await;
    let team = los(&suite).await;
    let mid_month = rebase_point(LOS, "d2a", date(ymd(2025, 7, 2)));
    let err = create_rebase_point(&team, mid_month).await.unwrap_err();
    assert_eq!(fields(&err), ["rebase_point.period"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_period_takes_one_rebase_point() {
    let suite = TestSuite::start().await;
    let team = rebased_los(&suite).await;
    let again = rebase_point(LOS, "again", month(18));
    let err = create_rebase_point(&team, again).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn rebase_points_past_the_last_measurement_are_listed_too() {
    let suite = TestSuite::start().await;
    rebased_los(&suite).await;
    let req = pb::ListRebasePointsRequest {
        parent: LOS.into(),
        ..Default::default()
    };
    let listed = sou_viewer(&suite)
        .metrics()
        .list_rebase_points(req)
        .await
        .unwrap()
        .into_inner()
        .rebase_points;
    assert_eq!(listed.len(), 2);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_contributor_cannot_delete_a_rebase_point() {
    let suite = TestSuite::start().await;
    rebased_los(&suite).await;
    let nurse = suite.caller("sou-nurse", &["contributor"], &["SOU"]);
    let err = delete_rebase_point(&nurse, D2A).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_deleted_rebase_point_no_longer_splits_the_chart() {
    let suite = TestSuite::start().await;
    let team = rebased_los(&suite).await;
    delete_rebase_point(&team, D2A).await.unwrap();
    let chart = chart(&sou_viewer(&suite), chart_request(LOS))
        .await
        .unwrap();
    assert_eq!(chart.groups.len(), 1);
    suite.stop().await.unwrap();
}
