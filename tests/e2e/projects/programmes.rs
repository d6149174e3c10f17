//! Programmes: trust-wide ones made by the trust's team and read by all, site ones made and
//! read at their site; a project joins a trust-wide programme (taking a training-wrapped
//! one's cohort) or its lead site's; project lists filter by programme within the caller's
//! sites.

use qi_e2e::projects::{create_programme, create_project, list_projects, with_aim};
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use qi_proto::projects::ProgrammeKind as K;
use tonic::Code;

use super::{bas_team, bas_viewer, trust_team};

/// The trust's QSIR spring programme, wrapping the spring cohort.
async fn qsir_spring(trust: &Caller) -> pb::Programme {
    create_programme(
        trust,
        "trust",
        "qsir-spring",
        K::TrainingWrapped,
        "trust/cohorts/spring-27",
        "",
    )
    .await
    .unwrap()
}

/// [`qsir_spring`], and BAS's thematic programme on patient flow.
async fn spring_and_flow(suite: &TestSuite) -> (pb::Programme, pb::Programme) {
    let wrapped = qsir_spring(&trust_team(suite)).await;
    let flow = create_programme(
        &bas_team(suite),
        "sites/BAS",
        "flow",
        K::Thematic,
        "",
        "Patient flow",
    )
    .await
    .unwrap();
    (wrapped, flow)
}

/// The programmes under `parent`, as `c` lists them.
async fn programmes(c: &Caller, parent: &str) -> Vec<pb::Programme> {
    let req = pb::ListProgrammesRequest {
        parent: parent.into(),
        ..Default::default()
    };
    let listed = c.projects().list_programmes(req).await.unwrap();
    listed.into_inner().programmes
}

/// BAS's project joining `programme`.
fn joining(programme: &str, title: &str) -> pb::Project {
    pb::Project {
        programme: programme.into(),
        ..with_aim(title)
    }
}

#[tokio::test]
async fn only_the_trust_wide_team_makes_a_trust_wide_programme() {
    let suite = TestSuite::start().await;
    let made = create_programme(
        &bas_team(&suite),
        "trust",
        "qsir-spring",
        K::TrainingWrapped,
        "trust/cohorts/spring-27",
        "",
    )
    .await;
    assert_eq!(code(made), Code::PermissionDenied);
    let wrapped = qsir_spring(&trust_team(&suite)).await;
    assert_eq!(wrapped.name, "trust/programmes/qsir-spring");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_training_wrapped_programme_names_its_cohort() {
    let suite = TestSuite::start().await;
    let err = create_programme(
        &trust_team(&suite),
        "trust",
        "no-cohort",
        K::TrainingWrapped,
        "",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["programme.cohort"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sites_team_makes_programmes_at_its_own_site_only() {
    let suite = TestSuite::start().await;
    let made = create_programme(&bas_team(&suite), "sites/SOU", "x", K::Thematic, "", "x").await;
    assert_eq!(code(made), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn trust_wide_programmes_are_read_by_all_and_a_sites_by_that_site_only() {
    let suite = TestSuite::start().await;
    let (wrapped, flow) = spring_and_flow(&suite).await;
    let sou_viewer = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    let get = |name: &str| pb::GetProgrammeRequest { name: name.into() };
    assert!(
        sou_viewer
            .projects()
            .get_programme(get(&wrapped.name))
            .await
            .is_ok()
    );
    assert_eq!(
        code(sou_viewer.projects().get_programme(get(&flow.name)).await),
        Code::PermissionDenied
    );
    assert_eq!(programmes(&sou_viewer, "trust").await.len(), 1);
    let listed = programmes(&bas_team(&suite), "sites/-").await;
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [flow.name.as_str()]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_joining_a_training_wrapped_programme_takes_its_cohort() {
    let suite = TestSuite::start().await;
    let wrapped = qsir_spring(&trust_team(&suite)).await;
    let joined = create_project(
        &bas_team(&suite),
        "BAS",
        "wrapped",
        joining(&wrapped.name, "Wrapped"),
    )
    .await
    .unwrap();
    assert_eq!(joined.programme, wrapped.name);
    assert_eq!(joined.cohort, "trust/cohorts/spring-27");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_joins_no_programme_of_another_site() {
    let suite = TestSuite::start().await;
    let sou_flow = create_programme(
        &trust_team(&suite),
        "sites/SOU",
        "flow",
        K::Thematic,
        "",
        "Flow",
    )
    .await
    .unwrap();
    let err = create_project(
        &bas_team(&suite),
        "BAS",
        "elsewhere",
        joining(&sou_flow.name, "x"),
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["project.programme"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn projects_filter_by_programme() {
    let suite = TestSuite::start().await;
    let (wrapped, _) = spring_and_flow(&suite).await;
    let bas = bas_team(&suite);
    create_project(&bas, "BAS", "wrapped", joining(&wrapped.name, "Wrapped"))
        .await
        .unwrap();
    create_project(&bas, "BAS", "alone", with_aim("In no programme"))
        .await
        .unwrap();
    let req = pb::ListProjectsRequest {
        programme: wrapped.name.clone(),
        ..list_projects("sites/BAS")
    };
    let filtered = bas.projects().list_projects(req).await.unwrap();
    assert_eq!(filtered.into_inner().projects.len(), 1);
    suite.stop().await.unwrap();
}

/// A trust programme on flow with projects at BAS, SOU and BRM, and a SOU programme with a
/// SOU project: the two programmes' names.
async fn flow_at_three_sites(trust: &Caller) -> (String, String) {
    let flow = create_programme(trust, "trust", "flow", K::Thematic, "", "Flow")
        .await
        .unwrap();
    let sou_flow = create_programme(trust, "sites/SOU", "sou-flow", K::Thematic, "", "Flow")
        .await
        .unwrap();
    for (site, id, programme) in [
        ("BAS", "flow-bas", &flow.name),
        ("SOU", "flow-sou", &flow.name),
        ("BRM", "flow-brm", &flow.name),
        ("SOU", "sou-only", &sou_flow.name),
    ] {
        let p = pb::Project {
            title: format!("Flow at {site}"),
            programme: programme.clone(),
            ..Default::default()
        };
        create_project(trust, site, id, p).await.unwrap();
    }
    (flow.name, sou_flow.name)
}

/// A trust programme with projects at BAS and SOU: a BAS caller listing its projects sees
/// BAS's alone.
#[tokio::test]
async fn a_programme_filter_lists_only_the_callers_sites_projects() {
    let suite = TestSuite::start().await;
    let (flow, _) = flow_at_three_sites(&trust_team(&suite)).await;
    let req = pb::ListProjectsRequest {
        programme: flow,
        ..list_projects("sites/-")
    };
    let listed = bas_viewer(&suite).projects().list_projects(req).await;
    let listed = listed.unwrap().into_inner().projects;
    let names: Vec<_> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sites/BAS/projects/flow-bas"]);
    suite.stop().await.unwrap();
}

/// A programme filter naming a SOU programme is refused to a BAS caller, as its name is.
#[tokio::test]
async fn a_programme_filter_naming_another_sites_programme_is_refused() {
    let suite = TestSuite::start().await;
    let (_, sou_flow) = flow_at_three_sites(&trust_team(&suite)).await;
    let req = pb::ListProjectsRequest {
        programme: sou_flow,
        ..list_projects("sites/-")
    };
    let err = bas_viewer(&suite)
        .projects()
        .list_projects(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    suite.stop().await.unwrap();
}
