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

/// Plans a cycle testing `change` at `scale`, following cycle `follows` (or none).
async fn plan(
    c: &Caller,
    project: &str,
    change: &str,
    scale: &str,
    follows: &str,
) -> Result<pb::PdsaCycle, Status> {
    let req = pb::CreatePdsaCycleRequest {
        parent: project.into(),
        pdsa_cycle: Some(pb::PdsaCycle {
            change_idea: change.into(),
            objective: "Learn whether it shortens waits".into(),
            prediction: "Waits fall by a third".into(),
            scale: scale.into(),
            follows: follows.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_pdsa_cycle(req).await?.into_inner();
    Ok(made.pdsa_cycle.expect("a cycle"))
}

/// The cycles of the ramp of cycle `ramp`, page by page (two a page).
async fn ramp(c: &Caller, project: &str, ramp: &str) -> Result<Vec<pb::PdsaCycle>, Status> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = pb::ListPdsaCyclesRequest {
            parent: project.into(),
            page_size: 2,
            page_token,
            ramp: ramp.into(),
            ..Default::default()
        };
        let page = c.projects().list_pdsa_cycles(req).await?.into_inner();
        all.extend(page.pdsa_cycles);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_ramp_grows_in_scale_and_reads_back_in_order_with_its_decisions() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    let c1 = plan(
        &lead,
        &p.name,
        "Checklist",
        "one patient, one afternoon",
        "",
    )
    .await
    .unwrap();
    // Another change, tested on its own, between the ramp's cycles.
    let other = plan(&lead, &p.name, "Bedside handover", "one shift", "")
        .await
        .unwrap();
    decide(&lead, &c1.name, pb::PdsaDecision::Adapt)
        .await
        .unwrap();
    let c3 = plan(
        &lead,
        &p.name,
        "Checklist, revised",
        "one ward, a week",
        &c1.name,
    )
    .await
    .unwrap();
    assert_eq!((c3.number, c3.follows.as_str()), (3, c1.name.as_str()));
    assert_eq!(c3.scale, "one ward, a week");
    // Studying records the result against the prediction.
    let req = pb::UpdatePdsaCycleRequest {
        pdsa_cycle: Some(pb::PdsaCycle {
            name: c3.name.clone(),
            result: "Waits fell by a quarter".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["result".into()],
        }),
    };
    let studied = lead.projects().update_pdsa_cycle(req).await.unwrap();
    let studied = studied.into_inner().pdsa_cycle.unwrap();
    assert_eq!(
        (studied.prediction.as_str(), studied.result.as_str()),
        ("Waits fall by a third", "Waits fell by a quarter")
    );
    decide(&lead, &c3.name, pb::PdsaDecision::Adopt)
        .await
        .unwrap();
    let c4 = plan(
        &lead,
        &p.name,
        "Checklist everywhere",
        "three wards",
        &c3.name,
    )
    .await
    .unwrap();

    // From any of its cycles, the ramp reads first to last, without the other change.
    for from in [&c1.name, &c3.name, &c4.name] {
        let got: Vec<(i32, i32)> = ramp(&lead, &p.name, from)
            .await
            .unwrap()
            .iter()
            .map(|c| (c.number, c.decision))
            .collect();
        let adapt = pb::PdsaDecision::Adapt as i32;
        let adopt = pb::PdsaDecision::Adopt as i32;
        assert_eq!(got, [(1, adapt), (3, adopt), (4, 0)], "from {from}");
    }
    let alone = ramp(&lead, &p.name, &other.name).await.unwrap();
    assert_eq!(alone.iter().map(|c| c.number).collect::<Vec<_>>(), [2]);

    // A ramp is one line: a second cycle after cycle 1 is refused, and nothing is stored.
    let fork = plan(&lead, &p.name, "Fork", "one bay", &c1.name).await;
    assert_eq!(code(fork), Code::FailedPrecondition);
    assert_eq!(pdsa_cycles(&lead, &p.name).await.unwrap().len(), 4);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_cycle_follows_only_an_existing_cycle_of_its_own_project() {
    let suite = TestSuite::start().await;
    let (lead, project, c1) = first_cycle(&suite).await;
    let elsewhere = "sites/BAS/projects/other/pdsaCycles/1";
    for follows in [
        elsewhere,
        &format!("{project}/pdsaCycles/9"),
        "pdsaCycles/1",
    ] {
        let err = plan(&lead, &project, "Next", "two wards", follows)
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["pdsa_cycle.follows"], "{follows}");
    }
    // Nor may a cycle follow itself or a later one.
    let req = pb::UpdatePdsaCycleRequest {
        pdsa_cycle: Some(pb::PdsaCycle {
            name: c1.name.clone(),
            follows: c1.name.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["follows".into()],
        }),
    };
    let err = lead.projects().update_pdsa_cycle(req).await.unwrap_err();
    assert_eq!(fields(&err), ["pdsa_cycle.follows"]);
    let err = ramp(&lead, &project, elsewhere).await.unwrap_err();
    assert_eq!(fields(&err), ["ramp"]);
    let missing = ramp(&lead, &project, &format!("{project}/pdsaCycles/9")).await;
    assert_eq!(code(missing), Code::NotFound);
    assert_eq!(pdsa_cycles(&lead, &project).await.unwrap().len(), 1);
    suite.stop().await.unwrap();
}
