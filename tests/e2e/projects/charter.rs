//! The project charter: a problem statement, scope in and out, stakeholders, expected
//! benefits, a theme and a QSIR phase, written on create and by UpdateProject's mask; a new
//! project starts only with a problem statement (projects from before the charter are
//! exempt); and ListProjects' AIP-160 filter over the charter, the team's lead, wards and
//! dates, within the caller's sites.

use qi_e2e::projects::{add_team_member, create_project, create_ward, start_project, with_aim};
use qi_e2e::{Caller, TestSuite, fields};
use qi_proto::projects as pb;
use tonic::Code;

use super::bas_team;

fn charter(title: &str, phase: pb::QsirPhase, theme: &str) -> pb::Project {
    pb::Project {
        problem_statement: format!("{title}: patients wait"),
        scope_in: "Adult inpatients".into(),
        scope_out: "Day cases".into(),
        stakeholders: vec!["Night staff".into(), "Patients and carers".into()],
        expected_benefits: vec![
            pb::BenefitKind::BedDaysSaved as i32,
            pb::BenefitKind::HarmEventsAvoided as i32,
        ],
        qsir_phase: phase as i32,
        theme: theme.into(),
        ..with_aim(title)
    }
}

async fn update(
    c: &Caller,
    project: pb::Project,
    paths: &[&str],
) -> Result<pb::Project, tonic::Status> {
    let req = pb::UpdateProjectRequest {
        project: Some(project),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    Ok(c.projects()
        .update_project(req)
        .await?
        .into_inner()
        .project
        .unwrap())
}

#[tokio::test]
async fn a_charter_is_written_read_back_and_changed_by_its_mask() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let made = create_project(
        &team,
        "BAS",
        "night-falls",
        charter("Night falls", pb::QsirPhase::DefineAndScope, "Falls"),
    )
    .await
    .unwrap();
    assert_eq!(made.problem_statement, "Night falls: patients wait");
    assert_eq!(
        (made.scope_in.as_str(), made.scope_out.as_str()),
        ("Adult inpatients", "Day cases")
    );
    assert_eq!(made.stakeholders, ["Night staff", "Patients and carers"]);
    assert_eq!(made.expected_benefits.len(), 2);
    assert_eq!(
        (made.qsir_phase(), made.theme.as_str()),
        (pb::QsirPhase::DefineAndScope, "Falls")
    );
    // The phase is a label: moving it changes no state, and the rest stays.
    let moved = pb::Project {
        name: made.name.clone(),
        qsir_phase: pb::QsirPhase::MeasureAndUnderstand as i32,
        stakeholders: vec!["Physiotherapy".into()],
        ..Default::default()
    };
    let got = update(&team, moved, &["qsir_phase", "stakeholders"])
        .await
        .unwrap();
    assert_eq!(got.qsir_phase(), pb::QsirPhase::MeasureAndUnderstand);
    assert_eq!(got.state(), pb::ProjectState::Scoping);
    assert_eq!(got.stakeholders, ["Physiotherapy"]);
    assert_eq!(got.problem_statement, made.problem_statement);
    // Bad charter fields: each named, nothing stored.
    let bad = pb::Project {
        name: made.name.clone(),
        problem_statement: "x".repeat(2001),
        stakeholders: vec!["Ward".into(), "Ward".into(), " ".into()],
        expected_benefits: vec![0, 99],
        qsir_phase: 42,
        theme: "y".repeat(101),
        ..Default::default()
    };
    let err = update(&team, bad, &["*"]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut named = fields(&err);
    named.sort();
    named.dedup();
    for f in [
        "project.problem_statement",
        "project.stakeholders[1]",
        "project.stakeholders[2]",
        "project.expected_benefits[0]",
        "project.expected_benefits[1]",
        "project.qsir_phase",
        "project.theme",
    ] {
        assert!(named.contains(&f.to_owned()), "{f} not in {named:?}");
    }
    let now = team
        .projects()
        .get_project(pb::GetProjectRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(now.etag, got.etag);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_project_starts_only_with_a_problem_statement_and_an_older_one_is_exempt() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let bare = pb::Project {
        problem_statement: String::new(),
        ..with_aim("Discharge letters")
    };
    let made = create_project(&team, "BAS", "letters", bare).await.unwrap();
    let err = start_project(&team, &made.name).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("problem statement"), "{err:?}");
    let with = pb::Project {
        name: made.name.clone(),
        problem_statement: "Letters wait for the afternoon round".into(),
        ..Default::default()
    };
    update(&team, with, &["problem_statement"]).await.unwrap();
    assert_eq!(
        start_project(&team, &made.name).await.unwrap().state(),
        pb::ProjectState::InProgress
    );
    // A project from before the charter (as the migration marks every row it found)
    // starts without one.
    let old = create_project(
        &team,
        "BAS",
        "older",
        pb::Project {
            problem_statement: String::new(),
            ..with_aim("Older project")
        },
    )
    .await
    .unwrap();
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    sqlx::query("UPDATE projects.project SET charter_exempt = true WHERE id = 'older'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    start_project(&team, &old.name).await.unwrap();
    suite.stop().await.unwrap();
}

/// The names ListProjects gives `c` under `parent` for `filter`.
async fn listed(c: &Caller, parent: &str, filter: &str) -> Result<Vec<String>, tonic::Status> {
    let req = pb::ListProjectsRequest {
        parent: parent.into(),
        filter: filter.into(),
        ..Default::default()
    };
    let got = c.projects().list_projects(req).await?.into_inner();
    Ok(got.projects.into_iter().map(|p| p.name).collect())
}

#[tokio::test]
async fn projects_filter_by_phase_ward_lead_theme_text_and_start_within_the_callers_sites() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    create_ward(&team, "BAS", "cedar").await.unwrap();
    use pb::QsirPhase as Q;
    let a = pb::Project {
        wards: vec!["sites/BAS/wards/cedar".into()],
        ..charter("Night falls on Cedar", Q::PilotAndImplement, "Falls")
    };
    let a = create_project(&team, "BAS", "a", a).await.unwrap();
    let b = charter("Discharge before noon", Q::DefineAndScope, "Flow");
    let b = create_project(&team, "BAS", "b", b).await.unwrap();
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let c = charter(
        "Sepsis screening: 100%_done",
        Q::PilotAndImplement,
        "Sepsis",
    );
    let c = create_project(&sou, "SOU", "c", c).await.unwrap();
    start_project(&team, &a.name).await.unwrap();
    let lead = pb::TeamMember {
        staff: "staff/20000009".into(),
        role: pb::TeamRole::Lead as i32,
        ..Default::default()
    };
    add_team_member(&team, &b.name, lead).await.unwrap();

    let trust = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let all = |f: &'static str| listed(&trust, "sites/-", f);
    assert_eq!(
        all("phase = PILOT_AND_IMPLEMENT").await.unwrap(),
        [c.name.as_str(), a.name.as_str()]
    );
    assert_eq!(
        all("phase != QSIR_PHASE_PILOT_AND_IMPLEMENT")
            .await
            .unwrap(),
        [b.name.as_str()]
    );
    assert_eq!(
        all("ward = sites/BAS/wards/cedar").await.unwrap(),
        [a.name.as_str()]
    );
    assert_eq!(
        all("lead = staff/20000009").await.unwrap(),
        [b.name.as_str()]
    );
    assert_eq!(all("theme = FLOW").await.unwrap(), [b.name.as_str()]);
    assert_eq!(
        all("text = \"BEFORE noon\"").await.unwrap(),
        [b.name.as_str()]
    );
    // The words are taken as written: `%` and `_` are no wildcards.
    assert_eq!(
        all("text = \"100%_done\"").await.unwrap(),
        [c.name.as_str()]
    );
    assert!(all("text = \"100%done\"").await.unwrap().is_empty());
    assert_eq!(
        all("state = IN_PROGRESS AND theme != sepsis")
            .await
            .unwrap(),
        [a.name.as_str()]
    );
    let today = qi_e2e::today();
    let started = format!("start_date >= {today} AND start_date <= {today}");
    let got = listed(&trust, "sites/-", &started).await.unwrap();
    assert_eq!(got, [a.name.as_str()]);
    // A site's caller sees its own sites' projects only, whatever the filter says.
    assert_eq!(
        listed(&sou, "sites/-", "phase = PILOT_AND_IMPLEMENT")
            .await
            .unwrap(),
        [c.name.as_str()]
    );
    assert!(
        listed(&sou, "sites/-", "theme = falls")
            .await
            .unwrap()
            .is_empty()
    );
    // A bad filter is refused, naming `filter`.
    for bad in [
        "colour = red",
        "phase = LAUNCH",
        "phase = A OR phase = B",
        "text = \"open",
        "lead = nobody",
    ] {
        let err = listed(&trust, "sites/-", bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert_eq!(fields(&err), ["filter"], "{bad}");
    }
    let req = pb::ListProjectsRequest {
        parent: "sites/-".into(),
        state: pb::ProjectState::Scoping as i32,
        filter: "state = IN_PROGRESS".into(),
        ..Default::default()
    };
    let err = trust.projects().list_projects(req).await.unwrap_err();
    assert_eq!(fields(&err), ["filter"]);
    // Pages keep to the filter they were issued for.
    let req = pb::ListProjectsRequest {
        parent: "sites/-".into(),
        filter: "phase = PILOT_AND_IMPLEMENT".into(),
        page_size: 1,
        ..Default::default()
    };
    let first = trust
        .projects()
        .list_projects(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.projects.len(), 1);
    let changed = pb::ListProjectsRequest {
        filter: "phase = DEFINE_AND_SCOPE".into(),
        page_token: first.next_page_token.clone(),
        ..req.clone()
    };
    let err = trust.projects().list_projects(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let next = pb::ListProjectsRequest {
        page_token: first.next_page_token,
        ..req
    };
    let second = trust
        .projects()
        .list_projects(next)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.projects[0].name, a.name);
    suite.stop().await.unwrap();
}
