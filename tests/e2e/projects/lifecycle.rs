//! A project's states: created in scoping, started once it has an aim, completed with an
//! outcome and typed benefits or stopped with a reason — and nothing changes after either.

use qi_e2e::projects::{
    complete_project, create_pdsa_cycle, create_project, new_progress_score, outcome,
    record_engagement, start_project, stop_project, update_project,
};
use qi_e2e::{Caller, TestSuite, code, date, fields, today};
use qi_proto::projects as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::{bas_editor, bas_team, completed_project, frailty_project, running_project};

#[tokio::test]
async fn a_project_is_created_in_scoping_with_its_aim() {
    let suite = TestSuite::start().await;
    let p = frailty_project(&suite).await;
    assert_eq!(p.name, "sites/BAS/projects/frailty-los");
    assert_eq!(p.state, pb::ProjectState::Scoping as i32);
    assert_eq!(p.aim.as_ref().unwrap().baseline, Some(9.5));
    assert!(!p.coproduced);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_that_never_started_cannot_complete() {
    let suite = TestSuite::start().await;
    let p = frailty_project(&suite).await;
    let done = complete_project(&bas_team(&suite), &p.name, outcome()).await;
    assert_eq!(code(done), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

/// BAS's project with a title and no aim yet.
async fn aimless_project(team: &Caller) -> pb::Project {
    let project = pb::Project {
        title: "No aim yet".into(),
        ..Default::default()
    };
    create_project(team, "BAS", "aimless", project)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_project_without_an_aim_cannot_start() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let aimless = aimless_project(&team).await;
    let err = start_project(&team, &aimless.name).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_details_error_info().unwrap().reason, "AIM_REQUIRED");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_contributor_does_not_run_a_projects_lifecycle() {
    let suite = TestSuite::start().await;
    let p = frailty_project(&suite).await;
    let started = start_project(&bas_editor(&suite), &p.name).await;
    assert_eq!(code(started), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_starts_once_and_today() {
    let suite = TestSuite::start().await;
    let started = running_project(&suite).await;
    assert_eq!(started.state, pb::ProjectState::InProgress as i32);
    assert_eq!(started.start_date, Some(date(today())));
    let again = start_project(&bas_team(&suite), &started.name).await;
    assert_eq!(code(again), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_outcome_names_each_missing_or_bad_field() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let bad = pb::Outcome {
        summary: String::new(),
        benefits: vec![pb::Benefit {
            kind: pb::BenefitKind::Other as i32,
            value: -1.0,
            ..Default::default()
        }],
    };
    let err = complete_project(&bas_team(&suite), &p.name, bad)
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "outcome.summary",
            "outcome.benefits[0].value",
            "outcome.benefits[0].unit"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn completion_records_the_outcome_and_its_typed_benefits() {
    let suite = TestSuite::start().await;
    let done = completed_project(&suite).await;
    assert_eq!(done.state, pb::ProjectState::Completed as i32);
    assert_eq!(done.end_date, Some(date(today())));
    let o = done.outcome.unwrap();
    assert_eq!(o.benefits.len(), 2);
    assert_eq!(o.benefits[0].unit, "bed days");
    assert_eq!(o.benefits[0].value, 1_150.0);
    assert_eq!(o.benefits[1].unit, "minutes per discharge");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_completed_project_neither_completes_again_nor_stops() {
    let suite = TestSuite::start().await;
    let p = completed_project(&suite).await;
    let team = bas_team(&suite);
    let again = complete_project(&team, &p.name, outcome()).await;
    assert_eq!(code(again), Code::FailedPrecondition);
    let stopped = stop_project(&team, &p.name, "late").await;
    assert_eq!(code(stopped), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_completed_project_takes_no_more_cycles_activities_scores_or_changes() {
    let suite = TestSuite::start().await;
    let p = completed_project(&suite).await;
    let lead = bas_editor(&suite);
    let cycle = create_pdsa_cycle(&lead, &p.name, "After the end").await;
    assert_eq!(code(cycle), Code::FailedPrecondition);
    assert_eq!(
        code(record_engagement(&lead, &p.name).await),
        Code::FailedPrecondition
    );
    let score = lead
        .projects()
        .record_progress_score(new_progress_score(&p.name, 4.0))
        .await;
    assert_eq!(code(score), Code::FailedPrecondition);
    let renamed = pb::Project {
        name: p.name.clone(),
        title: "Renamed".into(),
        ..Default::default()
    };
    assert_eq!(
        code(update_project(&lead, renamed).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn stopping_a_project_needs_a_reason_and_keeps_it() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let aimless = aimless_project(&team).await;
    let err = stop_project(&team, &aimless.name, "").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    let stopped = stop_project(&team, &aimless.name, "Superseded by the frailty programme")
        .await
        .unwrap();
    assert_eq!(stopped.state, pb::ProjectState::Stopped as i32);
    assert_eq!(stopped.stop_reason, "Superseded by the frailty programme");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopped_project_neither_starts_nor_stops_again_nor_completes() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let aimless = aimless_project(&team).await;
    stop_project(&team, &aimless.name, "Superseded by the frailty programme")
        .await
        .unwrap();
    assert_eq!(
        code(start_project(&team, &aimless.name).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(stop_project(&team, &aimless.name, "again").await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(complete_project(&team, &aimless.name, outcome()).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}
