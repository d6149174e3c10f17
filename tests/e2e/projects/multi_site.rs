//! Projects spanning sites: listed and read from every site taking part, by the lead
//! site's name or `sites/-/projects/{id}`; changed by the improvement teams of every site
//! taking part (and the project's team: `permissions`); and project ids unique
//! across the trust, refused without saying where an id is taken.

use qi_e2e::projects::{
    create_pdsa_cycle, create_project, get_project, pdsa_cycles, project_names, review_idea,
    start_project, submit_idea, with_aim,
};
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::bas_team;

/// The project every participating site reads it by.
const ANY: &str = "sites/-/projects/sepsis";

/// Improvement teams at SOU and BRM, and a trust-wide viewer.
struct Callers {
    sou: Caller,
    brm: Caller,
    trust: Caller,
}

/// BAS's sepsis project with SOU taking part and one PDSA cycle, a BAS-only and a SOU-only
/// project: the three, in that order, and the callers at the other sites.
async fn three_projects(suite: &TestSuite) -> ([pb::Project; 3], Callers) {
    let bas = bas_team(suite);
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let shared = pb::Project {
        participating_sites: vec!["sites/SOU".into()],
        ..with_aim("Sepsis screening")
    };
    let shared = create_project(&bas, "BAS", "sepsis", shared).await.unwrap();
    let own = create_project(&bas, "BAS", "bas-only", with_aim("BAS only"))
        .await
        .unwrap();
    let sou_own = create_project(&sou, "SOU", "sou-only", with_aim("SOU only"))
        .await
        .unwrap();
    create_pdsa_cycle(&bas, &shared.name, "Screening tool")
        .await
        .unwrap();
    let callers = Callers {
        sou,
        brm: suite.caller("brm-team", &["improvement_team"], &["BRM"]),
        trust: suite.caller("qi-office", &["viewer"], &["*"]),
    };
    ([shared, own, sou_own], callers)
}

#[tokio::test]
async fn a_site_leads_only_its_own_projects() {
    let suite = TestSuite::start().await;
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let made = create_project(&sou, "BAS", "x", with_aim("x")).await;
    assert_eq!(code(made), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sites_project_lists_include_the_projects_it_takes_part_in() {
    let suite = TestSuite::start().await;
    let ([shared, _, sou_own], c) = three_projects(&suite).await;
    let both = [shared.name.clone(), sou_own.name.clone()];
    assert_eq!(project_names(&c.sou, "sites/-").await.unwrap(), both);
    assert_eq!(project_names(&c.sou, "sites/SOU").await.unwrap(), both);
    assert_eq!(
        project_names(&c.brm, "sites/-").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(project_names(&c.trust, "sites/-").await.unwrap().len(), 3);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn projects_are_listed_under_the_callers_sites_only() {
    let suite = TestSuite::start().await;
    let (_, c) = three_projects(&suite).await;
    assert_eq!(
        code(project_names(&c.sou, "sites/BAS").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(project_names(&c.sou, "trust").await),
        Code::InvalidArgument
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_participating_site_reads_a_project_and_its_cycles_by_the_any_site_name() {
    let suite = TestSuite::start().await;
    let ([shared, ..], c) = three_projects(&suite).await;
    assert_eq!(get_project(&c.sou, ANY).await.unwrap().name, shared.name);
    let cycles = pdsa_cycles(&c.sou, ANY).await.unwrap();
    assert_eq!(cycles[0].name, format!("{}/pdsaCycles/1", shared.name));
    let req = pb::GetPdsaCycleRequest {
        name: format!("{ANY}/pdsaCycles/1"),
    };
    let cycle = c.sou.projects().get_pdsa_cycle(req).await.unwrap();
    assert_eq!(cycle.into_inner().pdsa_cycle.unwrap().number, 1);
    assert_eq!(get_project(&c.trust, ANY).await.unwrap().name, shared.name);
    suite.stop().await.unwrap();
}

/// A list and a read agree (issue 25): a participating site's caller reads the project by
/// the name its list gave, under the lead site; the gateway leaves that check to the
/// service, which refuses a site taking no part whether or not the project exists.
#[tokio::test]
async fn a_participating_site_reads_a_project_by_its_lead_sites_name_and_others_are_refused() {
    let suite = TestSuite::start().await;
    let ([shared, own, _], c) = three_projects(&suite).await;
    let listed = project_names(&c.sou, "sites/-").await.unwrap();
    assert!(listed.contains(&shared.name));
    assert_eq!(get_project(&c.sou, &shared.name).await.unwrap(), shared);
    let cycles = pdsa_cycles(&c.sou, &shared.name).await.unwrap();
    assert_eq!(cycles.len(), 1);
    let refused = [
        get_project(&c.sou, &own.name).await,
        get_project(&c.sou, "sites/BAS/projects/no-such-project").await,
        get_project(&c.brm, &shared.name).await,
    ];
    for r in refused {
        assert_eq!(code(r), Code::PermissionDenied);
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn sites_not_in_a_project_or_the_wrong_site_in_its_name_find_nothing() {
    let suite = TestSuite::start().await;
    let (_, c) = three_projects(&suite).await;
    assert_eq!(code(get_project(&c.brm, ANY).await), Code::NotFound);
    assert_eq!(
        code(get_project(&c.sou, "sites/-/projects/bas-only").await),
        Code::NotFound
    );
    assert_eq!(
        code(get_project(&c.trust, "sites/SOU/projects/sepsis").await),
        Code::NotFound
    );
    suite.stop().await.unwrap();
}

/// The improvement team of a participating site changes a shared project, under its lead
/// site's name; a site taking no part cannot, whether or not the project exists.
#[tokio::test]
async fn a_participating_sites_team_changes_a_shared_project_and_no_other_site_does() {
    let suite = TestSuite::start().await;
    let ([shared, own, _], c) = three_projects(&suite).await;
    for refused in [
        start_project(&c.brm, &shared.name).await,
        start_project(&c.sou, &own.name).await,
        start_project(&c.sou, "sites/BAS/projects/no-such-project").await,
    ] {
        assert_eq!(code(refused), Code::PermissionDenied);
    }
    assert_eq!(
        code(create_pdsa_cycle(&c.brm, &shared.name, "x").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(start_project(&c.sou, "sites/SOU/projects/sepsis").await),
        Code::NotFound
    );
    assert_eq!(
        fields(&start_project(&c.sou, ANY).await.unwrap_err()),
        ["name"]
    );
    assert_eq!(
        fields(&create_pdsa_cycle(&c.sou, ANY, "x").await.unwrap_err()),
        ["parent"]
    );
    assert_eq!(
        suite
            .count("SELECT count(*) FROM projects.pdsa_cycle")
            .await,
        1
    );
    create_pdsa_cycle(&c.sou, &shared.name, "Screening at SOU")
        .await
        .unwrap();
    let started = start_project(&c.sou, &shared.name).await;
    assert_eq!(started.unwrap().state, pb::ProjectState::InProgress as i32);
    suite.stop().await.unwrap();
}

/// What a refusal of a taken id says, with the id asked for blanked out; asserting that it
/// is ALREADY_EXISTS and names no place.
fn said(s: Status, id: &str) -> Vec<String> {
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    let info = s.get_details_error_info().unwrap();
    let mut said = vec![s.message().to_owned()];
    said.extend(info.metadata.into_values());
    for text in &said {
        assert!(!text.contains("sites/"), "names a place: {text}");
    }
    said.iter().map(|t| t.replace(id, "ID")).collect()
}

/// A project on falls, with no aim yet.
fn fewer_falls() -> pb::Project {
    pb::Project {
        title: "Fewer falls".into(),
        ..Default::default()
    }
}

/// Project `falls-sou` at SOU and `falls-bas` at BAS: BAS's team.
async fn falls_at_sou_and_bas(suite: &TestSuite) -> Caller {
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let bas = bas_team(suite);
    create_project(&sou, "SOU", "falls-sou", fewer_falls())
        .await
        .unwrap();
    create_project(&bas, "BAS", "falls-bas", fewer_falls())
        .await
        .unwrap();
    bas
}

/// Project ids are unique across the trust, so an id taken at SOU is refused to a BAS
/// caller as well; the refusal names no site, and reads the same as for an id taken at
/// BAS, so it does not tell where the clash is.
#[tokio::test]
async fn a_taken_project_id_is_refused_without_saying_where_it_is_taken() {
    let suite = TestSuite::start().await;
    let bas = falls_at_sou_and_bas(&suite).await;
    let elsewhere = create_project(&bas, "BAS", "falls-sou", fewer_falls()).await;
    let here = create_project(&bas, "BAS", "falls-bas", fewer_falls()).await;
    assert_eq!(
        said(elsewhere.unwrap_err(), "falls-sou"),
        said(here.unwrap_err(), "falls-bas")
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_accepted_as_a_taken_project_id_is_refused_without_saying_where() {
    let suite = TestSuite::start().await;
    let bas = falls_at_sou_and_bas(&suite).await;
    let idea = submit_idea(&bas, "BAS", "Fewer falls").await.unwrap();
    review_idea(&bas, &idea.name).await.unwrap();
    let accept = |project_id: &str| pb::AcceptIdeaRequest {
        name: idea.name.clone(),
        project_id: project_id.into(),
        ..Default::default()
    };
    let elsewhere = bas.projects().accept_idea(accept("falls-sou")).await;
    let here = bas.projects().accept_idea(accept("falls-bas")).await;
    assert_eq!(
        said(elsewhere.unwrap_err(), "falls-sou"),
        said(here.unwrap_err(), "falls-bas")
    );
    suite.stop().await.unwrap();
}
