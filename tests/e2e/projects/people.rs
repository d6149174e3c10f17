//! A person's reference in projects (issue 25): team members and idea submitters are
//! stored and answered as `staff/{employee_number}`, whichever form named them (the v1
//! alias `sites/{site}/staff/{n}` included), so one person is one member of a team;
//! `staff/me` names the caller, and needs the employee number in their token. "My projects"
//! is ListProjects by `member`.

use qi_e2e::projects::{
    add_team_member, create_idea, create_project, list_projects, new_idea, patient_partner,
    with_aim,
};
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::{BAS_EDITOR, bas_editor, running_project};

/// A team member named `staff`, in `role`.
fn member(staff: &str, role: pb::TeamRole) -> pb::TeamMember {
    pb::TeamMember {
        staff: staff.into(),
        role: role as i32,
        ..Default::default()
    }
}

/// The staff names on the team of `project`, as listed, but for the editor it was made with.
async fn team(c: &Caller, project: &str) -> Vec<String> {
    let req = pb::ListTeamMembersRequest {
        parent: project.into(),
        ..Default::default()
    };
    let listed = c.projects().list_team_members(req).await.unwrap();
    listed
        .into_inner()
        .team_members
        .into_iter()
        .map(|m| m.staff)
        .filter(|s| *s != format!("staff/{BAS_EDITOR}"))
        .collect()
}

/// An idea at BAS submitted by `staff`.
fn idea_by(staff: &str) -> pb::CreateIdeaRequest {
    let mut req = new_idea("BAS", "Discharge letters before noon");
    req.idea.as_mut().unwrap().submitter_staff = staff.into();
    req
}

/// The ideas at BAS, as listed.
async fn ideas(c: &Caller) -> Vec<pb::Idea> {
    let req = pb::ListIdeasRequest {
        parent: "sites/BAS".into(),
        ..Default::default()
    };
    c.projects()
        .list_ideas(req)
        .await
        .unwrap()
        .into_inner()
        .ideas
}

#[tokio::test]
async fn a_member_named_by_the_v1_alias_is_answered_by_the_canonical_name_and_joins_once() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    // A BAS project's lead who works at SOU, named by the old site form.
    let req = pb::CreateTeamMemberRequest {
        parent: p.name.clone(),
        team_member: Some(member("sites/SOU/staff/10000001", pb::TeamRole::Lead)),
        request_id: "0b6c7a52-3f57-4a53-9a51-2f6f0f7c1a01".into(),
    };
    let added = lead.projects().create_team_member(req.clone()).await;
    let added = added.unwrap().into_inner().team_member.unwrap();
    assert_eq!(added.staff, "staff/10000001");
    // A retry is the first answer, not a second membership.
    let retried = lead.projects().create_team_member(req).await.unwrap();
    assert_eq!(retried.into_inner().team_member, Some(added));
    // The same person under the canonical name, or another site's alias, is on the team.
    for again in [
        "staff/10000001",
        "sites/BAS/staff/10000001",
        "sites/-/staff/10000001",
    ] {
        let err = add_team_member(&lead, &p.name, member(again, pb::TeamRole::Member)).await;
        assert_eq!(code(err), Code::AlreadyExists, "{again}");
    }
    assert_eq!(team(&lead, &p.name).await, ["staff/10000001"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_ideas_submitter_is_answered_by_the_canonical_name() {
    let suite = TestSuite::start().await;
    let nurse = bas_editor(&suite);
    let made = create_idea(&nurse, idea_by("sites/BAS/staff/10000001"))
        .await
        .unwrap();
    assert_eq!(made.submitter_staff, "staff/10000001");
    let got = nurse
        .projects()
        .get_idea(pb::GetIdeaRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .idea
        .unwrap();
    assert_eq!(got.submitter_staff, "staff/10000001");
    let canonical = create_idea(&nurse, idea_by("staff/10000002"))
        .await
        .unwrap();
    assert_eq!(canonical.submitter_staff, "staff/10000002");
    let mut listed: Vec<_> = ideas(&nurse)
        .await
        .into_iter()
        .map(|i| i.submitter_staff)
        .collect();
    listed.sort();
    assert_eq!(listed, ["staff/10000001", "staff/10000002"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn staff_me_is_the_caller_by_the_employee_number_in_their_token() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let me = suite.employee_caller("bas-team", &["improvement_team"], &["BAS"], "00123456");
    let joined = add_team_member(&me, &p.name, member("staff/me", pb::TeamRole::Lead))
        .await
        .unwrap();
    assert_eq!(joined.staff, "staff/00123456");
    let again = member("sites/BAS/staff/00123456", pb::TeamRole::Member);
    assert_eq!(
        code(add_team_member(&me, &p.name, again).await),
        Code::AlreadyExists
    );
    let idea = create_idea(&me, idea_by("staff/me")).await.unwrap();
    assert_eq!(idea.submitter_staff, "staff/00123456");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn staff_me_without_an_employee_number_is_a_failed_precondition_storing_nothing() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    // Neither the improvement team, who may change any of its site's projects, nor a
    // contributor, who submits ideas, can name themselves without the number.
    let team_of = super::bas_team(&suite);
    let lead = suite.caller("bas-nurse", &["contributor"], &["BAS"]);
    let err = add_team_member(&team_of, &p.name, member("staff/me", pb::TeamRole::Lead))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    assert!(team(&lead, &p.name).await.is_empty());
    let err = create_idea(&lead, idea_by("staff/me")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    assert!(ideas(&lead).await.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_reference_that_is_no_person_is_invalid_naming_the_field_storing_nothing() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let me = bas_editor(&suite);
    for bad in [
        "staff/1234",
        "staff/12ab5678",
        "sites/BAS/staff/me",
        "trust/staff/10000001",
        "sites/bas/staff/10000001",
    ] {
        let err = add_team_member(&me, &p.name, member(bad, pb::TeamRole::Member))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["team_member.staff"], "{bad}");
        let err = create_idea(&me, idea_by(bad)).await.unwrap_err();
        assert_eq!(fields(&err), ["idea.submitter_staff"], "{bad}");
    }
    assert!(team(&me, &p.name).await.is_empty());
    assert!(ideas(&me).await.is_empty());
    suite.stop().await.unwrap();
}

/// The names of the projects under `parent` whose team holds `member`, as listed.
async fn projects_of(c: &Caller, parent: &str, member: &str) -> Result<Vec<String>, Status> {
    let req = pb::ListProjectsRequest {
        member: member.into(),
        ..list_projects(parent)
    };
    let listed = c.projects().list_projects(req).await?.into_inner();
    Ok(listed.projects.into_iter().map(|p| p.name).collect())
}

#[tokio::test]
async fn my_projects_are_those_whose_team_holds_me_at_the_sites_i_hold() {
    let suite = TestSuite::start().await;
    // BAS's frailty project, with SOU taking part; and one project led by each site.
    let frailty = running_project(&suite).await;
    let qi_office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let mut led = Vec::new();
    for site in ["BAS", "SOU", "BRM"] {
        let id = format!("sepsis-{}", site.to_lowercase());
        let made = create_project(&qi_office, site, &id, with_aim("Sepsis screening"))
            .await
            .unwrap();
        led.push(made.name);
    }
    let [bas, sou, brm] = [&led[0], &led[1], &led[2]];
    // Me (00123456): lead of frailty, coach at SOU and BRM; someone else on BAS's sepsis.
    for (project, staff, role) in [
        (&frailty.name, "staff/00123456", pb::TeamRole::Lead),
        (sou, "sites/SOU/staff/00123456", pb::TeamRole::Coach),
        (brm, "staff/00123456", pb::TeamRole::Coach),
        (bas, "staff/10000002", pb::TeamRole::Member),
    ] {
        add_team_member(&qi_office, project, member(staff, role))
            .await
            .unwrap();
    }
    add_team_member(&qi_office, bas, patient_partner("Pat Partner"))
        .await
        .unwrap();

    // A BAS contributor who is 00123456: their projects at BAS, whichever form names them;
    // SOU's and BRM's are not BAS's to show.
    let me = suite.employee_caller("me", &["contributor"], &["BAS"], "00123456");
    for form in ["staff/me", "staff/00123456", "sites/SOU/staff/00123456"] {
        for parent in ["sites/-", "sites/BAS"] {
            assert_eq!(
                projects_of(&me, parent, form).await.unwrap(),
                [frailty.name.as_str()],
                "{parent} {form}"
            );
        }
    }
    // A trust-wide viewer who is the same person sees all three, newest first.
    let everywhere = suite.employee_caller("me-too", &["viewer"], &["*"], "00123456");
    assert_eq!(
        projects_of(&everywhere, "sites/-", "staff/me")
            .await
            .unwrap(),
        [brm.as_str(), sou.as_str(), frailty.name.as_str()]
    );
    // SOU takes part in frailty, so a SOU caller finds it among this person's projects.
    let sou_viewer = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    assert_eq!(
        projects_of(&sou_viewer, "sites/-", "staff/00123456")
            .await
            .unwrap(),
        [sou.as_str(), frailty.name.as_str()]
    );
    assert_eq!(
        projects_of(&me, "sites/-", "staff/10000002").await.unwrap(),
        [bas.as_str()]
    );
    assert!(
        projects_of(&me, "sites/-", "staff/99999999")
            .await
            .unwrap()
            .is_empty()
    );

    // Without the claim, `staff/me` names no one: FAILED_PRECONDITION naming the claim.
    let anyone = suite.caller("kiosk", &["viewer"], &["BAS"]);
    let err = projects_of(&anyone, "sites/-", "staff/me")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    // No filter: what it always listed.
    assert_eq!(
        projects_of(&anyone, "sites/-", "").await.unwrap(),
        [bas.as_str(), frailty.name.as_str()]
    );
    for bad in [
        "me",
        "staff/1234",
        "sites/BAS/staff/me",
        "trust/staff/00123456",
    ] {
        let err = projects_of(&me, "sites/-", bad).await.unwrap_err();
        assert_eq!(fields(&err), ["member"], "{bad}");
    }
    suite.stop().await.unwrap();
}
