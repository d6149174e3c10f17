//! The projects service through the gateway: wards, ideas and their triage, projects from
//! scoping to completion with teams, measures, PDSA cycles, progress scores and
//! co-production, programmes and the ward programme's waves, the portfolio summary — and
//! the site rules, idempotent creates, paging and field-named validation with nothing
//! stored. Here, the callers and the project several of its tests start from.

mod bad_input;
mod charter;
mod coproduction;
mod driver_diagram;
mod extract;
mod idea_history;
mod ideas;
mod idempotency;
mod lifecycle;
mod measures;
mod multi_site;
mod paging;
mod pdsa;
mod people;
mod permissions;
mod portfolio;
mod programmes;
mod scores;
mod staff_places;
mod team;
mod update;
mod ward_programme;
mod wards;

use qi_e2e::projects::{
    add_team_member, complete_project, create_project, create_ward, outcome, start_project,
    with_aim,
};
use qi_e2e::{Caller, TestSuite};
use qi_proto::projects as pb;

/// BAS's improvement team, which runs BAS's projects.
fn bas_team(suite: &TestSuite) -> Caller {
    suite.caller("bas-team", &["improvement_team"], &["BAS"])
}

/// The employee number of [`bas_editor`].
const BAS_EDITOR: &str = "20000001";

/// A contributor at BAS, an editing member of the team of [`frailty_project`] (so of
/// [`running_project`] and [`completed_project`]): works on the project, but does not run
/// its lifecycle.
fn bas_editor(suite: &TestSuite) -> Caller {
    suite.employee_caller("bas-editor", &["contributor"], &["BAS"], BAS_EDITOR)
}

/// A viewer at BAS.
fn bas_viewer(suite: &TestSuite) -> Caller {
    suite.caller("bas-viewer", &["viewer"], &["BAS"])
}

/// The trust's improvement team (the QI office), at every site.
fn trust_team(suite: &TestSuite) -> Caller {
    suite.caller("qi-office", &["improvement_team"], &["*"])
}

/// Wards Cedar at BAS and Willow at SOU, and BAS's project on frailty length of stay, with
/// SOU taking part, on both wards, co-designed with patients, in scoping.
async fn frailty_project(suite: &TestSuite) -> pb::Project {
    let team = bas_team(suite);
    create_ward(&team, "BAS", "cedar").await.unwrap();
    create_ward(&trust_team(suite), "SOU", "willow")
        .await
        .unwrap();
    let project = pb::Project {
        participating_sites: vec!["sites/SOU".into()],
        wards: vec![
            "sites/BAS/wards/cedar".into(),
            "sites/SOU/wards/willow".into(),
        ],
        cohort: "trust/cohorts/spring-27".into(),
        patient_involvement: pb::PatientInvolvement::CoDesigning as i32,
        ..with_aim("Frailty length of stay")
    };
    let project = create_project(&team, "BAS", "frailty-los", project)
        .await
        .unwrap();
    let editor = pb::TeamMember {
        staff: format!("staff/{BAS_EDITOR}"),
        role: pb::TeamRole::Member as i32,
        editor: true,
        ..Default::default()
    };
    add_team_member(&team, &project.name, editor).await.unwrap();
    project
}

/// [`frailty_project`], started by BAS's team: the project as started.
async fn running_project(suite: &TestSuite) -> pb::Project {
    let p = frailty_project(suite).await;
    start_project(&bas_team(suite), &p.name).await.unwrap()
}

/// [`running_project`], completed with [`outcome`]: the project as completed.
async fn completed_project(suite: &TestSuite) -> pb::Project {
    let p = running_project(suite).await;
    complete_project(&bas_team(suite), &p.name, outcome())
        .await
        .unwrap()
}
