//! Permissions per project (issue 25): a project and everything under it is changed by its
//! team's editors (the lead, and members marked `editor`), `improvement_team` at its sites,
//! and `admin` — not by any contributor of its lead site. A contributor who is not an
//! editor still reads it and submits ideas. The lead hands the lead role over.

use qi_e2e::projects::{
    add_team_member, create_pdsa_cycle, get_project, record_engagement, submit_idea, update_project,
};
use qi_e2e::{Caller, TestSuite, code};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::{BAS_EDITOR, bas_editor, bas_team, running_project};

/// A contributor at BAS whose token carries employee number `n`.
fn bas_person(suite: &TestSuite, n: &str) -> Caller {
    suite.employee_caller(&format!("bas-{n}"), &["contributor"], &["BAS"], n)
}

/// Staff member `n` in `role`, with edit rights or not.
fn staff(n: &str, role: pb::TeamRole, editor: bool) -> pb::TeamMember {
    pb::TeamMember {
        staff: format!("staff/{n}"),
        role: role as i32,
        editor,
        ..Default::default()
    }
}

/// Asserts `r` is PERMISSION_DENIED with a reason containing `why`.
fn denied<T: std::fmt::Debug>(r: Result<T, Status>, why: &str) {
    let err = r.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains(why), "{why}: {err:?}");
}

/// Changes `member`'s `paths` to what `member` holds.
async fn update_member(
    c: &Caller,
    member: pb::TeamMember,
    paths: &[&str],
) -> Result<pb::TeamMember, Status> {
    let req = pb::UpdateTeamMemberRequest {
        team_member: Some(member),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let updated = c.projects().update_team_member(req).await?.into_inner();
    Ok(updated.team_member.expect("a member"))
}

/// The project's team, as listed.
async fn team(c: &Caller, project: &str) -> Vec<pb::TeamMember> {
    let req = pb::ListTeamMembersRequest {
        parent: project.into(),
        ..Default::default()
    };
    let listed = c.projects().list_team_members(req).await.unwrap();
    listed.into_inner().team_members
}

/// Every change a caller might make to `project`, each answered.
async fn every_change(c: &Caller, project: &pb::Project) -> Vec<Result<(), Status>> {
    let mut involved = project.clone();
    involved.participating_sites = vec!["sites/BRM".into(), "sites/SOU".into()];
    let measure = pb::CreateMeasureRequest {
        parent: project.name.clone(),
        measure: Some(pb::Measure {
            metric: "sites/BAS/metrics/falls".into(),
            kind: pb::MeasureKind::Outcome as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    vec![
        update_project(c, involved).await.map(drop),
        add_team_member(
            c,
            &project.name,
            staff("30000009", pb::TeamRole::Member, false),
        )
        .await
        .map(drop),
        c.projects().create_measure(measure).await.map(drop),
        create_pdsa_cycle(c, &project.name, "Earlier discharge")
            .await
            .map(drop),
        record_engagement(c, &project.name).await.map(drop),
    ]
}

/// The finding: a contributor of the lead site who is on no team changed a
/// project's participating sites. Now every change is refused, saying what is missing,
/// and nothing is stored; they still read it and submit ideas.
#[tokio::test]
async fn a_contributor_on_no_team_reads_the_project_but_changes_nothing() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let outsider = bas_person(&suite, "30000001");
    for r in every_change(&outsider, &p).await {
        denied(r, "staff/30000001 is not on its team");
    }
    let after = get_project(&outsider, &p.name).await.unwrap();
    assert_eq!(after, p);
    assert_eq!(team(&outsider, &p.name).await.len(), 1);
    assert_eq!(
        suite
            .count("SELECT count(*) FROM projects.pdsa_cycle")
            .await,
        0
    );
    submit_idea(&outsider, "BAS", "Discharge before noon")
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_contributors_token_without_an_employee_number_cannot_show_membership() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let anonymous = suite.caller("bas-nurse", &["contributor"], &["BAS"]);
    for r in every_change(&anonymous, &p).await {
        denied(r, "the token carries no `employee_number` claim");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_member_edits_once_an_editor_makes_them_one() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let plain = add_team_member(
        &editor,
        &p.name,
        staff("30000002", pb::TeamRole::Coach, false),
    )
    .await
    .unwrap();
    assert!(!plain.editor);
    let coach = bas_person(&suite, "30000002");
    denied(
        create_pdsa_cycle(&coach, &p.name, "x").await,
        "on the team of sites/BAS/projects/frailty-los but not as an editor",
    );
    // They cannot make themselves an editor either.
    let mut promoted = plain.clone();
    promoted.editor = true;
    denied(
        update_member(&coach, promoted.clone(), &["editor"]).await,
        "not as an editor",
    );
    let made = update_member(&editor, promoted.clone(), &["editor"])
        .await
        .unwrap();
    assert!(made.editor);
    // The same change again is answered the same.
    let again = update_member(&editor, promoted, &["editor"]).await.unwrap();
    assert_eq!(again, made);
    create_pdsa_cycle(&coach, &p.name, "Coach's cycle")
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_lead_hands_the_lead_over_and_only_the_lead_or_the_team_moves_it() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    // With no lead yet, an editor appoints one.
    let lead = add_team_member(
        &editor,
        &p.name,
        staff("30000003", pb::TeamRole::Lead, false),
    )
    .await
    .unwrap();
    assert!(lead.editor, "a lead always edits");
    // A second lead is refused: the role is handed over, not shared.
    let second = add_team_member(
        &editor,
        &p.name,
        staff("30000004", pb::TeamRole::Lead, false),
    )
    .await
    .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition, "{second:?}");
    assert!(second.message().contains("has a lead, staff/30000003"));
    // The lead again is a member already, as for anyone on the team.
    let again = add_team_member(
        &editor,
        &p.name,
        staff("30000003", pb::TeamRole::Lead, false),
    );
    assert_eq!(code(again.await), Code::AlreadyExists);
    let next = add_team_member(
        &editor,
        &p.name,
        staff("30000004", pb::TeamRole::Member, false),
    )
    .await
    .unwrap();
    // An editor who is not the lead cannot move the lead role, nor remove the lead.
    let mut to_next = next.clone();
    to_next.role = pb::TeamRole::Lead as i32;
    denied(
        update_member(&editor, to_next.clone(), &["role"]).await,
        "handed over by its lead, staff/30000003",
    );
    denied(
        editor
            .projects()
            .delete_team_member(pb::DeleteTeamMemberRequest {
                name: lead.name.clone(),
            })
            .await,
        "handed over by its lead",
    );
    // The lead hands it over; they stay on as an editing member.
    let handed = update_member(&bas_person(&suite, "30000003"), to_next.clone(), &["role"])
        .await
        .unwrap();
    assert_eq!(handed.role, pb::TeamRole::Lead as i32);
    let roles: Vec<(String, i32, bool)> = team(&editor, &p.name)
        .await
        .into_iter()
        .map(|m| (m.staff, m.role, m.editor))
        .collect();
    assert_eq!(
        roles,
        [
            (
                format!("staff/{BAS_EDITOR}"),
                pb::TeamRole::Member as i32,
                true
            ),
            ("staff/30000003".into(), pb::TeamRole::Member as i32, true),
            ("staff/30000004".into(), pb::TeamRole::Lead as i32, true),
        ]
    );
    // A retry of the hand-over by the former lead is answered the same.
    let retried = update_member(&bas_person(&suite, "30000003"), to_next, &["role"])
        .await
        .unwrap();
    assert_eq!(retried, handed);
    // The improvement team may move it back.
    let mut back = lead.clone();
    back.role = pb::TeamRole::Lead as i32;
    update_member(&bas_team(&suite), back, &["role"])
        .await
        .unwrap();
    let leads = team(&editor, &p.name)
        .await
        .into_iter()
        .filter(|m| m.role == pb::TeamRole::Lead as i32)
        .map(|m| m.staff)
        .collect::<Vec<_>>();
    assert_eq!(leads, ["staff/30000003"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_team_member_update_names_the_field_and_stores_nothing() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let partner = add_team_member(
        &editor,
        &p.name,
        qi_e2e::projects::patient_partner("Pat Jones"),
    )
    .await
    .unwrap();
    let mut as_editor = partner.clone();
    as_editor.editor = true;
    let mut as_staff = partner.clone();
    as_staff.role = pb::TeamRole::Member as i32;
    let mut unnamed = partner.clone();
    unnamed.display_name = String::new();
    let mut long = partner.clone();
    long.affiliation = "x".repeat(201);
    for (member, path, field) in [
        (as_editor, "editor", "team_member.editor"),
        (as_staff, "role", "team_member.role"),
        (unnamed, "display_name", "team_member.display_name"),
        (long, "affiliation", "team_member.affiliation"),
    ] {
        let err = update_member(&editor, member, &[path]).await.unwrap_err();
        assert_eq!(qi_e2e::fields(&err), [field], "{err:?}");
    }
    let err = update_member(&editor, partner.clone(), &["staff"])
        .await
        .unwrap_err();
    assert_eq!(qi_e2e::fields(&err), ["update_mask"]);
    let mut nobody = partner.clone();
    nobody.name = format!("{}/teamMembers/{}", p.name, uuid_like());
    assert_eq!(
        code(update_member(&editor, nobody, &["affiliation"]).await),
        Code::NotFound
    );
    let stored = team(&editor, &p.name).await;
    assert_eq!(stored.last(), Some(&partner));
    suite.stop().await.unwrap();
}

/// A well-formed member id that no member has.
fn uuid_like() -> &'static str {
    "0190b9e4-0000-7000-8000-000000000000"
}
