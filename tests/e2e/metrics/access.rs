//! Access: every method states its policy and the gateway applies it; a site's metrics,
//! charts, breakdowns and dashboard are refused to another site's callers, and only
//! contributors of the metric's site record.

use qi_e2e::TestSuite;
use qi_e2e::metrics::{
    breakdown, chart, chart_request, compute, dashboard, dashboard_request, get_metric, record,
};
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use tonic::Code;

use super::{
    DNA, FALLS, LOS, bas_falls, bas_nurse, bas_viewer, december_breakdown, los, qms_board,
    readmissions_at_brm, sou_viewer, weekly_batch, weekly_dna,
};

#[test]
fn every_metrics_method_states_its_access_policy() {
    let pool = prost_reflect::DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
    let methods = qi_gateway::policy::load(&pool);
    let ours: Vec<_> = methods
        .values()
        .filter(|m| m.service == "qi.metrics.v1.MetricService")
        .collect();
    assert_eq!(ours.len(), 21);
    for m in &ours {
        let policy = m
            .policy
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", m.path));
        assert!(!policy.roles.iter().any(|r| r == "hr_sync"), "{}", m.path);
    }
    let policy = |name: &str| {
        methods[&format!("/qi.metrics.v1.MetricService/{name}")]
            .policy
            .clone()
            .unwrap()
    };
    assert!(
        policy("BatchCreateMeasurements")
            .roles
            .contains(&"contributor".to_owned())
    );
    assert!(
        !policy("CreateRebasePoint")
            .roles
            .contains(&"contributor".to_owned())
    );
    assert!(policy("ComputeSpc").resource_path.is_empty());
}

/// A stateless chart of three values.
fn three_values() -> pb::ComputeSpcRequest {
    pb::ComputeSpcRequest {
        values: vec![1.0, 2.0, 3.0],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stateless_chart_needs_a_token() {
    let suite = TestSuite::start().await;
    let mut anonymous = MetricServiceClient::new(suite.channel.clone());
    let err = anonymous.compute_spc(three_values()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stateless_chart_needs_a_reading_role() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let err = compute(&hr, three_values()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_viewer_of_any_site_draws_a_stateless_chart() {
    let suite = TestSuite::start().await;
    let viewer = suite.caller("viewer", &["viewer"], &["BRM"]);
    let chart = compute(&viewer, three_values()).await.unwrap();
    assert_eq!(chart.point_count, 3);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn another_sites_viewer_cannot_read_a_sites_metric() {
    let suite = TestSuite::start().await;
    bas_falls(&suite).await;
    let err = get_metric(&sou_viewer(&suite), FALLS).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn viewers_and_other_sites_contributors_cannot_record() {
    let suite = TestSuite::start().await;
    weekly_dna(&suite).await;
    let sou_nurse = suite.caller("sou-nurse", &["contributor"], &["SOU"]);
    // Another site's contributor is refused whether or not the metric exists.
    for (caller, name) in [
        (bas_viewer(&suite), DNA),
        (sou_nurse.clone(), DNA),
        (sou_nurse, "sites/BAS/metrics/no-such-metric"),
    ] {
        let err = record(&caller, name, weekly_batch(), "").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{name}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn recording_on_a_missing_metric_of_ones_own_site_is_not_found() {
    let suite = TestSuite::start().await;
    let name = "sites/BAS/metrics/no-such-metric";
    let err = record(&bas_nurse(&suite), name, weekly_batch(), "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn another_sites_viewer_cannot_read_a_chart() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let err = chart(&bas_viewer(&suite), chart_request(LOS))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn another_sites_viewer_cannot_read_a_breakdown() {
    let suite = TestSuite::start().await;
    readmissions_at_brm(&suite).await;
    let req = december_breakdown(pb::InequalityDimension::ImdQuintile, false);
    let err = breakdown(&sou_viewer(&suite), req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn another_sites_dashboard_is_refused() {
    let suite = TestSuite::start().await;
    qms_board(&suite).await;
    let req = dashboard_request("sites/SOU", &[]);
    let err = dashboard(&bas_viewer(&suite), req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}
