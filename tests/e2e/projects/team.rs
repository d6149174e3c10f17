//! A project's team: staff in roles, each once, listed in the order they joined, and
//! removed by name.

use qi_e2e::projects::{add_team_member, patient_partner};
use qi_e2e::{Caller, TestSuite, code};
use qi_proto::projects as pb;
use tonic::Code;

use super::{bas_editor, running_project};

/// Staff member `number` in `role`.
fn staff(number: &str, role: pb::TeamRole) -> pb::TeamMember {
    pb::TeamMember {
        staff: format!("staff/{number}"),
        role: role as i32,
        ..Default::default()
    }
}

/// Adds a lead, a sponsor and a patient partner to `project`, in that order.
async fn team_of_three(lead: &Caller, project: &str) {
    for member in [
        staff("10000001", pb::TeamRole::Lead),
        staff("10000002", pb::TeamRole::Sponsor),
        patient_partner("Pat Jones"),
    ] {
        add_team_member(lead, project, member).await.unwrap();
    }
}

/// The team of `project`, as listed.
async fn members(lead: &Caller, project: &str) -> Vec<pb::TeamMember> {
    let req = pb::ListTeamMembersRequest {
        parent: project.into(),
        ..Default::default()
    };
    let listed = lead.projects().list_team_members(req).await.unwrap();
    listed.into_inner().team_members
}

#[tokio::test]
async fn a_member_of_staff_joins_a_team_once() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    add_team_member(&lead, &p.name, staff("10000001", pb::TeamRole::Lead))
        .await
        .unwrap();
    let again = add_team_member(&lead, &p.name, staff("10000001", pb::TeamRole::Member)).await;
    assert_eq!(code(again), Code::AlreadyExists);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_team_lists_in_the_order_it_joined() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    team_of_three(&lead, &p.name).await;
    let roles: Vec<i32> = members(&lead, &p.name)
        .await
        .iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(
        roles,
        [
            // The editor the project was made with.
            pb::TeamRole::Member as i32,
            pb::TeamRole::Lead as i32,
            pb::TeamRole::Sponsor as i32,
            pb::TeamRole::PatientPartner as i32
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_removed_team_member_is_gone() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    team_of_three(&lead, &p.name).await;
    let sponsor = members(&lead, &p.name).await[2].name.clone();
    let delete = || pb::DeleteTeamMemberRequest {
        name: sponsor.clone(),
    };
    lead.projects().delete_team_member(delete()).await.unwrap();
    assert_eq!(
        code(lead.projects().delete_team_member(delete()).await),
        Code::NotFound
    );
    suite.stop().await.unwrap();
}
