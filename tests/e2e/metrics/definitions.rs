//! Metric definitions: their scope (site, ward, project, trust), who writes them, and
//! updates by field mask and etag, recording rules fixed once something is recorded.

use qi_e2e::metrics::{create, get_metric, month, rate, record, stratum, update, update_metric};
use qi_e2e::{TestSuite, fields};
use qi_proto::metrics as pb;
use tonic::Code;

use super::{
    FALLS, bas_falls, bas_nurse, bas_team, bas_viewer, complaints, falls_definition, trust_team,
};

#[tokio::test]
async fn a_site_metric_keeps_its_definition() {
    let suite = TestSuite::start().await;
    let (made, _) = bas_falls(&suite).await;
    assert_eq!(made.name, FALLS);
    assert_eq!(made.scope, pb::MetricScope::Site as i32);
    assert_eq!(made.rate_per, 1_000.0);
    assert_eq!(made.target, Some(5.0));
    assert_eq!(made.location_breakdown, pb::LocationBreakdown::None as i32);
    assert_eq!(made.dimensions.len(), 2);
    assert!(!made.has_measurements);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_wards_metric_lives_under_its_site() {
    let suite = TestSuite::start().await;
    let mut ward = falls_definition();
    ward.ward = "sites/BAS/wards/cedar".into();
    let ward = create(&bas_team(&suite), "sites/BAS", "cedar-falls", ward)
        .await
        .unwrap();
    assert_eq!(ward.scope, pb::MetricScope::Ward as i32);
    assert_eq!(ward.ward, "sites/BAS/wards/cedar");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_projects_metric_lives_under_its_site() {
    let suite = TestSuite::start().await;
    let mut project = falls_definition();
    project.project = "sites/BAS/projects/frailty".into();
    let project = create(&bas_team(&suite), "sites/BAS", "frailty-falls", project)
        .await
        .unwrap();
    assert_eq!(project.scope, pb::MetricScope::Project as i32);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_of_another_site_is_refused_by_field() {
    let suite = TestSuite::start().await;
    let mut elsewhere = falls_definition();
    elsewhere.project = "sites/SOU/projects/frailty".into();
    let err = create(&bas_team(&suite), "sites/BAS", "x", elsewhere)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["metric.project"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_trust_metric_is_written_by_trust_wide_callers_only() {
    let suite = TestSuite::start().await;
    let err = create(&bas_team(&suite), "trust", "complaints", complaints())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    create(&trust_team(&suite), "trust", "complaints", complaints())
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_trust_metric_is_read_by_a_viewer_of_any_site() {
    let suite = TestSuite::start().await;
    create(&trust_team(&suite), "trust", "complaints", complaints())
        .await
        .unwrap();
    let got = get_metric(&bas_viewer(&suite), "trust/metrics/complaints")
        .await
        .unwrap();
    assert_eq!(got.scope, pb::MetricScope::Trust as i32);
    suite.stop().await.unwrap();
}

/// The new name, and no target.
fn renamed(m: &pb::Metric) -> pb::Metric {
    pb::Metric {
        display_name: "Falls per 1,000 occupied bed days".into(),
        target: None,
        ..m.clone()
    }
}

#[tokio::test]
async fn an_update_changes_the_masked_fields_and_the_etag() {
    let suite = TestSuite::start().await;
    let (made, team) = bas_falls(&suite).await;
    let req = update(renamed(&made), &["display_name", "target"]);
    let updated = update_metric(&team, req).await.unwrap();
    assert_eq!(updated.display_name, "Falls per 1,000 occupied bed days");
    assert_eq!(updated.target, None, "a masked, unset target is cleared");
    assert_ne!(updated.etag, made.etag);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_aborted() {
    let suite = TestSuite::start().await;
    let (made, team) = bas_falls(&suite).await;
    let change = renamed(&made);
    update_metric(&team, update(change.clone(), &["display_name", "target"]))
        .await
        .unwrap();
    let err = update_metric(&team, update(change, &["display_name"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_frequency_cannot_be_updated() {
    let suite = TestSuite::start().await;
    let (made, team) = bas_falls(&suite).await;
    let err = update_metric(&team, update(made, &["frequency"]))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["update_mask"]);
    suite.stop().await.unwrap();
}

/// Adds ethnic category to the falls metric's dimensions.
async fn widen(team: &qi_e2e::Caller, made: pb::Metric) -> pb::Metric {
    let mut wider = made;
    wider
        .dimensions
        .push(pb::InequalityDimension::EthnicCategory as i32);
    update_metric(team, update(wider, &["dimensions"]))
        .await
        .unwrap()
}

#[tokio::test]
async fn recording_rules_change_freely_until_the_first_measurement() {
    let suite = TestSuite::start().await;
    let (made, team) = bas_falls(&suite).await;
    let widened = widen(&team, made).await;
    assert_eq!(widened.dimensions.len(), 3);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn recording_rules_are_fixed_once_a_measurement_is_recorded() {
    let suite = TestSuite::start().await;
    let (made, team) = bas_falls(&suite).await;
    let widened = widen(&team, made).await;
    let one = vec![rate(month(0), stratum("1", "A", "2"), 2.0, 400.0)];
    record(&bas_nurse(&suite), FALLS, one, "").await.unwrap();
    let mut narrower = widened;
    narrower.dimensions.pop();
    let err = update_metric(&team, update(narrower, &["dimensions"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn contributors_record_but_do_not_define() {
    let suite = TestSuite::start().await;
    let (made, _) = bas_falls(&suite).await;
    let err = update_metric(&bas_nurse(&suite), update(made, &["display_name"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}
