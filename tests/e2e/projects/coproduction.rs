//! Co-production: patient partners on a team, who are not staff, and engagement activities
//! with patients; either makes a project co-produced.

use qi_e2e::projects::{add_team_member, get_project, patient_partner, record_engagement};
use qi_e2e::{TestSuite, fields};
use qi_proto::projects as pb;

use super::{bas_editor, running_project};

/// Pat Jones of the patient panel.
fn pat() -> pb::TeamMember {
    pb::TeamMember {
        affiliation: "Patient panel".into(),
        ..patient_partner("Pat Jones")
    }
}

#[tokio::test]
async fn a_patient_partner_is_not_staff() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    let staff = pb::TeamMember {
        staff: "staff/10000003".into(),
        ..pat()
    };
    let err = add_team_member(&lead, &p.name, staff).await.unwrap_err();
    assert_eq!(fields(&err), ["team_member.staff"]);
    let joined = add_team_member(&lead, &p.name, pat()).await.unwrap();
    assert!(joined.staff.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_patient_partner_makes_a_project_coproduced() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    add_team_member(&lead, &p.name, pat()).await.unwrap();
    let coproduced = get_project(&lead, &p.name).await.unwrap();
    assert!(coproduced.coproduced);
    assert_eq!(coproduced.patient_partner_count, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_engagement_activity_is_listed_under_its_project() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    record_engagement(&lead, &p.name).await.unwrap();
    let req = pb::ListEngagementActivitiesRequest {
        parent: p.name.clone(),
        ..Default::default()
    };
    let activities = lead
        .projects()
        .list_engagement_activities(req)
        .await
        .unwrap()
        .into_inner()
        .engagement_activities;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].participants, 8);
    suite.stop().await.unwrap();
}
