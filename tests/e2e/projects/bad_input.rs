//! Field-named validation: a request with bad input is refused naming every bad field, in
//! order, and stores nothing.

use qi_e2e::projects::{aim, create_project, create_ward, with_aim};
use qi_e2e::{Caller, TestSuite, date, fields, today};
use qi_proto::projects as pb;

use super::{bas_team, trust_team};

/// Asserts that nothing but `projects` projects is stored.
async fn nothing_stored_but(suite: &TestSuite, projects: i64) {
    for table in [
        "idea",
        "pdsa_cycle",
        "engagement_activity",
        "benefit",
        "team_member",
        "progress_score",
    ] {
        assert_eq!(
            suite
                .count(&format!("SELECT count(*) FROM projects.{table}"))
                .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        suite.count("SELECT count(*) FROM projects.project").await,
        projects
    );
}

/// Wards Cedar at BAS and Willow at SOU.
async fn cedar_and_willow(suite: &TestSuite) {
    create_ward(&bas_team(suite), "BAS", "cedar").await.unwrap();
    create_ward(&trust_team(suite), "SOU", "willow")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bad_project_names_each_bad_field() {
    let suite = TestSuite::start().await;
    cedar_and_willow(&suite).await;
    let p = pb::Project {
        title: " ".into(),
        aim: Some(pb::Aim {
            measure: String::new(),
            target_date: None,
            ..aim()
        }),
        participating_sites: vec!["sites/XYZ".into()],
        wards: vec![
            "sites/SOU/wards/willow".into(),
            "sites/BAS/wards/cedar".into(),
            "wards/x".into(),
        ],
        programme: "sites/SOU/programmes/frailty".into(),
        cohort: "cohorts/spring".into(),
        patient_involvement: 99,
        ..Default::default()
    };
    let err = create_project(&bas_team(&suite), "BAS", "Bad Id", p)
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "project_id",
            "project.title",
            "project.aim.measure",
            "project.aim.target_date",
            "project.participating_sites[0]",
            "project.wards[0]",
            "project.wards[2]",
            "project.programme",
            "project.cohort",
            "project.patient_involvement"
        ]
    );
    nothing_stored_but(&suite, 0).await;
    suite.stop().await.unwrap();
}

/// References that parse but do not exist are refused in the transaction, by field.
#[tokio::test]
async fn a_project_naming_a_ward_or_programme_that_does_not_exist_names_them() {
    let suite = TestSuite::start().await;
    cedar_and_willow(&suite).await;
    let unknown = pb::Project {
        wards: vec![
            "sites/BAS/wards/cedar".into(),
            "sites/BAS/wards/nowhere".into(),
        ],
        programme: "trust/programmes/nope".into(),
        ..with_aim("Unknown references")
    };
    let err = create_project(&bas_team(&suite), "BAS", "refs", unknown)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["project.wards[1]", "project.programme"]);
    nothing_stored_but(&suite, 0).await;
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_on_a_ward_of_another_site_or_none_names_the_ward() {
    let suite = TestSuite::start().await;
    cedar_and_willow(&suite).await;
    let idea = |ward: &str| pb::CreateIdeaRequest {
        parent: "sites/BAS".into(),
        idea: Some(pb::Idea {
            title: "t".into(),
            submitter: "s".into(),
            ward: ward.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for ward in ["sites/SOU/wards/willow", "sites/BAS/wards/nowhere"] {
        let err = bas_team(&suite)
            .projects()
            .create_idea(idea(ward))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["idea.ward"], "{ward}");
    }
    nothing_stored_but(&suite, 0).await;
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_needs_a_title_and_a_submitter() {
    let suite = TestSuite::start().await;
    let bas = bas_team(&suite);
    let req = |idea: Option<pb::Idea>| pb::CreateIdeaRequest {
        parent: "sites/BAS".into(),
        idea,
        ..Default::default()
    };
    let err = bas
        .projects()
        .create_idea(req(Some(pb::Idea::default())))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["idea.title", "idea.submitter"]);
    let err = bas.projects().create_idea(req(None)).await.unwrap_err();
    assert_eq!(fields(&err), ["idea"]);
    nothing_stored_but(&suite, 0).await;
    suite.stop().await.unwrap();
}

/// BAS's team, and a BAS project ready to start.
async fn real_project(suite: &TestSuite) -> (Caller, pb::Project) {
    let bas = bas_team(suite);
    let real = create_project(&bas, "BAS", "real", with_aim("Real"))
        .await
        .unwrap();
    (bas, real)
}

#[tokio::test]
async fn a_bad_engagement_activity_names_each_bad_field() {
    let suite = TestSuite::start().await;
    let (bas, real) = real_project(&suite).await;
    let req = pb::CreateEngagementActivityRequest {
        parent: real.name.clone(),
        engagement_activity: Some(pb::EngagementActivity {
            activity_date: Some(date(today() + chrono::Days::new(30))),
            participants: 0,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let err = bas
        .projects()
        .create_engagement_activity(req)
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "engagement_activity.activity_date",
            "engagement_activity.kind",
            "engagement_activity.participants",
            "engagement_activity.summary"
        ]
    );
    nothing_stored_but(&suite, 1).await;
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_pdsa_cycle_needs_a_change_an_objective_and_a_prediction() {
    let suite = TestSuite::start().await;
    let (bas, real) = real_project(&suite).await;
    let req = pb::CreatePdsaCycleRequest {
        parent: real.name.clone(),
        pdsa_cycle: Some(pb::PdsaCycle::default()),
        request_id: String::new(),
    };
    let err = bas.projects().create_pdsa_cycle(req).await.unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "pdsa_cycle.change_idea",
            "pdsa_cycle.objective",
            "pdsa_cycle.prediction"
        ]
    );
    nothing_stored_but(&suite, 1).await;
    suite.stop().await.unwrap();
}
