//! PDSA cycles: numbered in order under their project, studied by update, decided once,
//! and unchanged after the decision.

use qi_e2e::projects::{create_pdsa_cycle, pdsa_cycles};
use qi_e2e::{Caller, TestSuite, code, date, fields, today};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::{bas_editor, running_project};

/// Updates cycle `name` with `do_notes` and `study_notes`, with no mask.
async fn study(
    c: &Caller,
    name: &str,
    do_notes: &str,
    study_notes: &str,
) -> Result<pb::PdsaCycle, Status> {
    let req = pb::UpdatePdsaCycleRequest {
        pdsa_cycle: Some(pb::PdsaCycle {
            name: name.into(),
            do_notes: do_notes.into(),
            study_notes: study_notes.into(),
            ..Default::default()
        }),
        update_mask: None,
    };
    let updated = c.projects().update_pdsa_cycle(req).await?.into_inner();
    Ok(updated.pdsa_cycle.expect("a cycle"))
}

/// Decides cycle `name` with `decision`, to adapt by adding the pharmacist.
async fn decide(
    c: &Caller,
    name: &str,
    decision: pb::PdsaDecision,
) -> Result<pb::PdsaCycle, Status> {
    let req = pb::DecidePdsaCycleRequest {
        name: name.into(),
        decision: decision as i32,
        act_notes: "Adapt: add the pharmacist".into(),
        ..Default::default()
    };
    let decided = c.projects().decide_pdsa_cycle(req).await?.into_inner();
    Ok(decided.pdsa_cycle.expect("a cycle"))
}

/// [`running_project`]'s first PDSA cycle, testing a discharge checklist: the contributor
/// who made it, the project's name, and the cycle.
async fn first_cycle(suite: &TestSuite) -> (Caller, String, pb::PdsaCycle) {
    let p = running_project(suite).await;
    let lead = bas_editor(suite);
    let c1 = create_pdsa_cycle(&lead, &p.name, "Discharge checklist")
        .await
        .unwrap();
    (lead, p.name, c1)
}

#[tokio::test]
async fn pdsa_cycles_are_numbered_in_order() {
    let suite = TestSuite::start().await;
    let (lead, project, c1) = first_cycle(&suite).await;
    let c2 = create_pdsa_cycle(&lead, &project, "Checklist, revised")
        .await
        .unwrap();
    assert_eq!((c1.number, c2.number), (1, 2));
    assert_eq!(c2.name, format!("{project}/pdsaCycles/2"));
    let cycles = pdsa_cycles(&lead, &project).await.unwrap();
    assert_eq!(cycles.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn studying_a_cycle_keeps_the_fields_not_given() {
    let suite = TestSuite::start().await;
    let (lead, _, c1) = first_cycle(&suite).await;
    let studied = study(
        &lead,
        &c1.name,
        "Used on 40 discharges",
        "Waits fell by a quarter, less than predicted",
    )
    .await
    .unwrap();
    assert_eq!(studied.do_notes, "Used on 40 discharges");
    assert_eq!(studied.objective, c1.objective, "unmasked fields are kept");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_pdsa_decision_is_one_of_adopt_adapt_or_abandon() {
    let suite = TestSuite::start().await;
    let (lead, _, c1) = first_cycle(&suite).await;
    let err = decide(&lead, &c1.name, pb::PdsaDecision::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["decision"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_decided_cycle_ends_today_and_changes_no_more() {
    let suite = TestSuite::start().await;
    let (lead, _, c1) = first_cycle(&suite).await;
    let decided = decide(&lead, &c1.name, pb::PdsaDecision::Adapt)
        .await
        .unwrap();
    assert_eq!(decided.decision, pb::PdsaDecision::Adapt as i32);
    assert_eq!(decided.end_date, Some(date(today())));
    assert_eq!(
        code(decide(&lead, &c1.name, pb::PdsaDecision::Adopt).await),
        Code::FailedPrecondition
    );
    let late = study(&lead, &c1.name, "more", "").await;
    assert_eq!(code(late), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}
