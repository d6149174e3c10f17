//! The improvement journey (issue 30) through the gateway: the read model's answers about a
//! cohort's learners and about capability coverage, against a small trust whose story is
//! known, each cross-checked against plain calls to the services' own APIs, and scoped to
//! the caller's sites.

use std::collections::BTreeMap;

use chrono::{Datelike as _, Days, Months, NaiveDate};
use prost::Message as _;
use qi_e2e::insights::{by_the_apis, coverage, from_answer, impact};
use qi_e2e::metrics::{create as create_metric, metric, record, value};
use qi_e2e::projects::{add_team_member, create_programme, create_project, with_aim};
use qi_e2e::training::{
    EXTRACT_TIME, create_cohort, enrol, esr, new_cohort, register, start_cohort, sync,
};
use qi_e2e::{Caller, TestSuite, date, fields, today, until};
use qi_proto::insights as pb;
use qi_proto::metrics as mpb;
use qi_proto::projects as ppb;
use qi_proto::training as tpb;
use tonic::Code;

/// Learners: Ames and Bell at BAS, Cole at SOU; Dale at BRM, untrained.
const AMES: &str = "staff/71000001";
const BELL: &str = "staff/71000002";
const COLE: &str = "staff/71000003";

/// What the story made.
struct Story {
    /// A trust-wide QSIR Fundamentals cohort 420 days ago: Ames, Bell and Cole completed it.
    fundamentals: String,
    /// A BAS QSIR Practitioner cohort that finished 12 days ago: Bell completed it.
    practitioner: String,
    /// BAS, led by Ames since 30 days after Fundamentals; Bell joined today. Measures
    /// length of stay, which shifted down (better) after it started.
    discharge: String,
    /// SOU, led by Cole since 60 days after Fundamentals.
    falls: String,
    /// The trust programme wrapped around Fundamentals, holding the discharge project.
    programme: String,
    /// BAS length of stay (lower is better).
    los: String,
    /// BRM complaints: a spike of concern in the last month.
    complaints: String,
    first_day: NaiveDate,
}

fn project_with(title: &str, programme: &str) -> ppb::Project {
    ppb::Project {
        programme: programme.into(),
        ..with_aim(title)
    }
}

async fn lead(team: &Caller, project: &str, staff: &str) {
    add_team_member(
        team,
        project,
        ppb::TeamMember {
            staff: staff.into(),
            role: ppb::TeamRole::Lead as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn start_on(team: &Caller, project: &str, day: NaiveDate) {
    team.projects()
        .start_project(ppb::StartProjectRequest {
            name: project.into(),
            start_date: Some(date(day)),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The first day of the month `back` months before this one.
fn months_ago(back: u32) -> NaiveDate {
    let this = today().with_day(1).unwrap();
    this - Months::new(back)
}

async fn story(suite: &TestSuite) -> Story {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(
        &hr,
        tpb::SyncMode::Full,
        EXTRACT_TIME,
        &[
            esr("71000001", "BAS", "Ames"),
            esr("71000002", "BAS", "Bell"),
            esr("71000003", "SOU", "Cole"),
            esr("71000004", "BRM", "Dale"),
        ],
    )
    .await
    .unwrap();
    let team = suite.caller("team", &["improvement_team"], &["*"]);

    let first_day = today() - Days::new(420);
    let mut req = new_cohort("trust", "QSIR Fundamentals, cross-site", first_day, 10);
    if let Some(c) = req.cohort.as_mut() {
        c.course = "trust/courses/qsir-fund".into();
    }
    let fundamentals = create_cohort(&team, req).await.unwrap().name;
    for who in [AMES, BELL, COLE] {
        enrol(&team, &fundamentals, who).await.unwrap();
    }
    start_cohort(&team, &fundamentals).await.unwrap();
    let all = [AMES, BELL, COLE].map(|s| (s, tpb::AttendanceStatus::Attended));
    register(&team, &fundamentals, 1, &all).await.unwrap();

    let practitioner = create_cohort(
        &team,
        new_cohort(
            "sites/BAS",
            "QSIR Practitioner, BAS",
            today() - Days::new(40),
            10,
        ),
    )
    .await
    .unwrap()
    .name;
    enrol(&team, &practitioner, BELL).await.unwrap();
    start_cohort(&team, &practitioner).await.unwrap();
    for session in 1..=5 {
        let bell = [(BELL, tpb::AttendanceStatus::Attended)];
        register(&team, &practitioner, session, &bell)
            .await
            .unwrap();
    }

    let programme = create_programme(
        &team,
        "trust",
        "discharge-wrap",
        ppb::ProgrammeKind::TrainingWrapped,
        &fundamentals,
        "",
    )
    .await
    .unwrap()
    .name;
    let discharge = create_project(
        &team,
        "BAS",
        "discharge",
        project_with("Discharge by noon", &programme),
    )
    .await
    .unwrap()
    .name;
    lead(&team, &discharge, AMES).await;
    start_on(&team, &discharge, first_day + Days::new(30)).await;
    qi_e2e::projects::record_progress_score(&team, &discharge, 3.5)
        .await
        .unwrap();
    add_team_member(
        &team,
        &discharge,
        ppb::TeamMember {
            staff: BELL.into(),
            role: ppb::TeamRole::Member as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let falls = create_project(&team, "SOU", "falls", with_aim("Fewer falls at night"))
        .await
        .unwrap()
        .name;
    lead(&team, &falls, COLE).await;
    start_on(&team, &falls, first_day + Days::new(60)).await;

    // Length of stay at BAS: a year near 10 days, then eleven months near 7.
    let los = create_metric(
        &team,
        "sites/BAS",
        "los",
        metric(
            "Length of stay",
            mpb::MetricKind::Outcome,
            mpb::ImprovementDirection::Decrease,
            mpb::MetricFrequency::Month,
            mpb::MetricValueType::Mean,
            &[],
        ),
    )
    .await
    .unwrap()
    .name;
    let noise = [
        0.3, -0.2, 0.1, -0.4, 0.2, 0.0, -0.1, 0.4, -0.3, 0.1, 0.2, -0.2,
    ];
    let points = (1..=24)
        .rev()
        .map(|back| {
            let level = if back > 11 { 10.0 } else { 7.0 };
            value(date(months_ago(back)), level + noise[back as usize % 12])
        })
        .collect();
    record(&team, &los, points, "").await.unwrap();
    team.projects()
        .create_measure(ppb::CreateMeasureRequest {
            parent: discharge.clone(),
            measure: Some(ppb::Measure {
                metric: los.clone(),
                kind: ppb::MeasureKind::Outcome as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();

    // Complaints at BRM, where nobody is trained and no project runs: a spike of concern.
    let complaints = create_metric(
        &team,
        "sites/BRM",
        "complaints",
        metric(
            "Complaints",
            mpb::MetricKind::Qms,
            mpb::ImprovementDirection::Decrease,
            mpb::MetricFrequency::Month,
            mpb::MetricValueType::Count,
            &[],
        ),
    )
    .await
    .unwrap()
    .name;
    let spiked = (1..=20)
        .rev()
        .map(|back| {
            let v = if back == 1 {
                30.0
            } else {
                5.0 + noise[back as usize % 12] * 5.0
            };
            value(date(months_ago(back)), v.round())
        })
        .collect();
    record(&team, &complaints, spiked, "").await.unwrap();
    Story {
        fundamentals,
        practitioner,
        discharge,
        falls,
        programme,
        los,
        complaints,
        first_day,
    }
}

/// Waits until the read model has taken in the whole story: the last things written.
async fn until_caught_up(c: &Caller, s: &Story) {
    until("the read model has the whole story", || async {
        let Ok(answer) = impact(c, &s.fundamentals).await else {
            return false;
        };
        let ames = answer
            .cohorts
            .first()
            .and_then(|c| c.learners.iter().find(|l| l.staff == AMES).cloned());
        let measured = ames.is_some_and(|a| {
            a.projects
                .iter()
                .any(|p| p.outcomes.len() == 1 && p.progress_score.is_some())
        });
        let practitioner = impact(c, &s.practitioner).await.is_ok_and(|a| {
            a.cohorts
                .first()
                .is_some_and(|c| c.learners.iter().any(|l| !l.projects.is_empty()))
        });
        let coverage = coverage(c, "sites/-", pb::CoverageGrouping::Site)
            .await
            .is_ok_and(|rows| rows.iter().any(|r| r.improvement_desert));
        answer
            .cohorts
            .first()
            .is_some_and(|c| c.learners.len() == 3)
            && measured
            && practitioner
            && coverage
    })
    .await;
}

fn projects_of(l: &pb::LearnerImpact) -> Vec<(&str, bool)> {
    l.projects
        .iter()
        .map(|p| (p.project.as_str(), p.lead))
        .collect()
}

fn state_counts(t: &pb::ImpactTotals) -> Vec<(ppb::ProjectState, i32)> {
    t.projects_by_state
        .iter()
        .map(|s| (ppb::ProjectState::try_from(s.state).unwrap(), s.count))
        .collect()
}

#[tokio::test]
async fn a_cohorts_impact_follows_each_learner_to_the_projects_they_lead_and_their_outcomes() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;

    let answer = impact(&trust, &s.fundamentals).await.unwrap();
    assert_eq!(answer.cohorts.len(), 1);
    let cohort = &answer.cohorts[0];
    assert_eq!(cohort.start_date, Some(date(s.first_day)));
    let learners: Vec<&str> = cohort.learners.iter().map(|l| l.staff.as_str()).collect();
    assert_eq!(learners, [AMES, BELL, COLE]);
    let [ames, bell, cole] = [0, 1, 2].map(|i| &cohort.learners[i]);
    assert_eq!(ames.site, "BAS");
    assert_eq!(ames.completion_date, Some(date(s.first_day)));
    // Ames leads the discharge project; Bell joined it over a year after Fundamentals, so
    // it is not one of Fundamentals' outcomes; Cole leads falls at SOU.
    assert_eq!(projects_of(ames), [(s.discharge.as_str(), true)]);
    assert_eq!(projects_of(bell), []);
    assert_eq!(projects_of(cole), [(s.falls.as_str(), true)]);
    let discharge = &ames.projects[0];
    assert_eq!(discharge.state, ppb::ProjectState::InProgress as i32);
    assert_eq!(discharge.progress_score, Some(3.5));
    assert_eq!(
        discharge.start_date,
        Some(date(s.first_day + Days::new(30)))
    );
    assert_eq!(discharge.outcomes.len(), 1);
    let los = &discharge.outcomes[0];
    assert_eq!(los.metric, s.los);
    assert_eq!(los.reading, pb::SpcReading::Improvement as i32);
    assert!(
        los.shift_after_start,
        "length of stay shifted down after the start"
    );

    let t = cohort.totals.as_ref().unwrap();
    assert_eq!(t.completers, 3);
    assert_eq!((t.completers_past_6_months, t.active_at_6_months), (3, 2));
    assert_eq!((t.completers_past_12_months, t.active_at_12_months), (3, 2));
    assert!((t.share_active_at_6_months - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(state_counts(t), [(ppb::ProjectState::InProgress, 2)]);
    assert_eq!(
        (
            t.outcomes_improving,
            t.outcomes_of_concern,
            t.outcomes_shifted_after_start
        ),
        (1, 0, 1)
    );

    // The programme wrapped around Fundamentals: its one project.
    assert_eq!(answer.programmes.len(), 1);
    let programme = &answer.programmes[0];
    assert_eq!(programme.programme, s.programme);
    assert_eq!(programme.projects, [s.discharge.as_str()]);
    let pt = programme.totals.as_ref().unwrap();
    assert_eq!((pt.active_at_6_months, pt.outcomes_improving), (1, 1));
    assert_eq!(state_counts(pt), [(ppb::ProjectState::InProgress, 1)]);

    // The practitioners: Bell joined the discharge project within a year of completing.
    let recent = impact(&trust, &s.practitioner).await.unwrap();
    let bell = &recent.cohorts[0].learners[0];
    assert_eq!(projects_of(bell), [(s.discharge.as_str(), false)]);
    let rt = recent.cohorts[0].totals.as_ref().unwrap();
    assert_eq!((rt.completers, rt.completers_past_6_months), (1, 0));

    // The same learners and projects, read from the services' own APIs.
    assert_eq!(
        by_the_apis(&trust, &s.fundamentals, s.first_day).await,
        from_answer(cohort)
    );
    let chart = qi_e2e::metrics::chart(&trust, qi_e2e::metrics::chart_request(&s.los))
        .await
        .unwrap();
    assert_eq!(
        chart.variation_icon,
        mpb::SpcVariationIcon::ImprovementLow as i32
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_one_site_callers_impact_holds_nothing_of_another_site() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;

    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let answer = impact(&bas, &s.fundamentals).await.unwrap();
    let cohort = &answer.cohorts[0];
    let learners: Vec<&str> = cohort.learners.iter().map(|l| l.staff.as_str()).collect();
    assert_eq!(learners, [AMES, BELL], "Cole is at SOU");
    let t = cohort.totals.as_ref().unwrap();
    assert_eq!((t.completers, t.active_at_6_months), (2, 1));
    assert_eq!(state_counts(t), [(ppb::ProjectState::InProgress, 1)]);
    let bytes = answer.encode_to_vec();
    for other in ["SOU", COLE, &s.falls, "71000003"] {
        assert!(
            !bytes.windows(other.len()).any(|w| w == other.as_bytes()),
            "a BAS caller's answer names {other}"
        );
    }
    assert_eq!(
        by_the_apis(&bas, &s.fundamentals, s.first_day).await,
        from_answer(cohort)
    );

    // Another site's cohort is refused, whether or not it exists; bad requests name fields.
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    assert_eq!(
        impact(&sou, &s.practitioner).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let missing = impact(&sou, "sites/BAS/cohorts/none").await.unwrap_err();
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(
        impact(&bas, "sites/BAS/cohorts/none")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let bad = bas
        .insights()
        .get_cohort_impact(pb::GetCohortImpactRequest {
            course: "sites/BAS/courses/x".into(),
            start_date_to: Some(date(NaiveDate::from_ymd_opt(2020, 1, 1).unwrap())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["course", "start_date_from"]);
    let neither = impact(&bas, "").await.unwrap_err();
    assert_eq!(fields(&neither), ["cohort"]);

    // A range of one course's cohorts: Fundamentals alone started in it.
    let ranged = bas
        .insights()
        .get_cohort_impact(pb::GetCohortImpactRequest {
            course: "trust/courses/qsir-fund".into(),
            start_date_from: Some(date(s.first_day - Days::new(1))),
            start_date_to: Some(date(today())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = ranged.cohorts.iter().map(|c| c.cohort.as_str()).collect();
    assert_eq!(names, [s.fundamentals.as_str()]);
    suite.stop().await.unwrap();
}

/// Each learner of `cohort` the caller sees, with the projects they lead (started on or
/// after `first_day`) or joined within a year of completing, from the services' own
/// lists: completions, projects and their teams.
#[tokio::test]
async fn capability_coverage_counts_each_sites_trained_staff_projects_and_concerns_and_finds_the_desert()
 {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;

    let rows = coverage(&trust, "sites/-", pb::CoverageGrouping::Site)
        .await
        .unwrap();
    let brief: Vec<(&str, i32, i32, i32, i32, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.site.as_str(),
                r.active_headcount,
                r.trained,
                r.live_projects,
                r.metrics_in_concern,
                r.improvement_desert,
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("BAS", 2, 2, 1, 0, false),
            ("BRM", 1, 0, 0, 1, true),
            ("SOU", 1, 1, 1, 0, false),
        ]
    );
    let bas = &rows[0];
    let courses: Vec<(&str, i32)> = bas
        .courses
        .iter()
        .map(|c| (c.course.as_str(), c.trained))
        .collect();
    assert_eq!(
        courses,
        [
            ("trust/courses/qsir-fund", 2),
            ("trust/courses/qsir-prac", 1)
        ]
    );
    assert!((bas.courses[1].share - 0.5).abs() < 1e-9);

    // By staff group, within each site; a one-site caller gets its site's rows alone.
    let by_group = coverage(&trust, "sites/-", pb::CoverageGrouping::StaffGroup)
        .await
        .unwrap();
    let keys: Vec<(&str, &str, i32)> = by_group
        .iter()
        .map(|r| (r.site.as_str(), r.key.as_str(), r.live_projects))
        .collect();
    assert_eq!(keys, [("BAS", "03", 1), ("BRM", "03", 0), ("SOU", "03", 1)]);
    let bas_caller = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let own = coverage(&bas_caller, "sites/-", pb::CoverageGrouping::Site)
        .await
        .unwrap();
    assert_eq!(own, rows[..1]);
    let denied = coverage(&bas_caller, "sites/SOU", pb::CoverageGrouping::Site)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Pages of one row carry on where the last stopped.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = trust
            .insights()
            .list_capability_coverage(pb::ListCapabilityCoverageRequest {
                parent: "sites/-".into(),
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.rows);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, rows);

    // The desert's concern is the metrics service's own reading of BRM's complaints.
    let chart = qi_e2e::metrics::chart(
        &trust,
        qi_e2e::metrics::chart_request("sites/BRM/metrics/complaints"),
    )
    .await
    .unwrap();
    assert_eq!(
        chart.variation_icon,
        mpb::SpcVariationIcon::ConcernHigh as i32
    );
    suite.stop().await.unwrap();
}

/// The answers a trust-wide and a BAS caller get now.
async fn answers(
    suite: &TestSuite,
    s: &Story,
) -> (
    pb::GetCohortImpactResponse,
    pb::GetCohortImpactResponse,
    Vec<pb::CapabilityCoverage>,
) {
    let trust = suite.caller("board", &["viewer"], &["*"]);
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    (
        impact(&trust, &s.fundamentals).await.unwrap(),
        impact(&bas, &s.fundamentals).await.unwrap(),
        coverage(&trust, "sites/-", pb::CoverageGrouping::Site)
            .await
            .unwrap(),
    )
}

/// Rebuilds the read model from the services' lists. The suite's own intake keeps running:
/// the rebuild moves the cursors under it.
async fn rebuild(suite: &TestSuite) -> qi_insights::rebuild::Rebuilt {
    let pool = qi_platform::db::connect_owner(&suite.database_url, qi_insights::SCHEMA)
        .await
        .unwrap();
    let rebuilt = qi::insights_intake(&suite.config, pool.clone(), &suite.service_urls)
        .unwrap()
        .rebuild()
        .await
        .unwrap();
    pool.close().await;
    rebuilt
}

#[tokio::test]
async fn a_rebuild_from_the_services_lists_gives_the_same_answers_and_the_feeds_carry_on() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;
    let before = answers(&suite, &s).await;

    let rebuilt = rebuild(&suite).await;
    let counts: BTreeMap<&str, usize> = rebuilt.resources.iter().copied().collect();
    // 4 staff, 2 cohorts, 4 completions; 2 projects, their 3 staff members, a measure, a
    // progress score, a programme; 2 metrics with 24 and 20 measurements.
    assert_eq!(
        counts,
        BTreeMap::from([("training", 10), ("projects", 8), ("metrics", 46)])
    );
    assert_eq!(answers(&suite, &s).await, before);

    // The intake follows the feeds from the rebuild's cursors: a later write shows.
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    team.projects()
        .update_project(ppb::UpdateProjectRequest {
            project: Some(ppb::Project {
                name: s.discharge.clone(),
                title: "Discharge before noon".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await
        .unwrap();
    until("the title changed after the rebuild", || async {
        impact(&trust, &s.fundamentals).await.is_ok_and(|a| {
            a.cohorts[0].learners[0]
                .projects
                .first()
                .is_some_and(|p| p.title == "Discharge before noon")
        })
    })
    .await;
    suite.stop().await.unwrap();
}

async fn at_risk(c: &Caller, parent: &str) -> Result<Vec<pb::ProjectAtRisk>, tonic::Status> {
    let req = pb::ListProjectsAtRiskRequest {
        parent: parent.into(),
        ..Default::default()
    };
    Ok(c.insights()
        .list_projects_at_risk(req)
        .await?
        .into_inner()
        .projects)
}

fn kinds(p: &pb::ProjectAtRisk) -> Vec<pb::RiskKind> {
    p.reasons
        .iter()
        .map(|r| pb::RiskKind::try_from(r.kind).unwrap())
        .collect()
}

#[tokio::test]
async fn projects_at_risk_name_the_lead_who_left_or_moved_the_silence_and_who_could_lead() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    // The discharge project works on Cedar ward, where Bell is placed by the ESR mapping.
    qi_e2e::projects::create_ward(&team, "BAS", "cedar")
        .await
        .unwrap();
    team.projects()
        .update_project(ppb::UpdateProjectRequest {
            project: Some(ppb::Project {
                name: s.discharge.clone(),
                wards: vec!["sites/BAS/wards/cedar".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["wards".into()],
            }),
        })
        .await
        .unwrap();
    team.training()
        .create_esr_mapping(tpb::CreateEsrMappingRequest {
            parent: "sites/BAS".into(),
            esr_mapping_id: "organisation.CC-CEDAR".into(),
            esr_mapping: Some(tpb::EsrMapping {
                ward: "sites/BAS/wards/cedar".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // Its last PDSA cycle was to end ten days ago and nobody decided it.
    team.projects()
        .create_pdsa_cycle(ppb::CreatePdsaCycleRequest {
            parent: s.discharge.clone(),
            pdsa_cycle: Some(ppb::PdsaCycle {
                change_idea: "Letters drafted the day before".into(),
                objective: "Learn whether it shortens waits".into(),
                prediction: "Waits fall by a third".into(),
                start_date: Some(date(today() - Days::new(30))),
                end_date: Some(date(today() - Days::new(10))),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // Then HR's next full extract: Ames now works at SOU, Bell on Cedar ward, Cole is gone.
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let bell = tpb::EsrRow {
        organisation: "CC-CEDAR".into(),
        ..esr("71000002", "", "Bell")
    };
    sync(
        &hr,
        tpb::SyncMode::Full,
        EXTRACT_TIME + 3600,
        &[
            esr("71000001", "SOU", "Ames"),
            bell,
            esr("71000004", "BRM", "Dale"),
        ],
    )
    .await
    .unwrap();
    until(
        "the read model has the leaver, the mover and the cycle",
        || async {
            at_risk(&trust, "sites/-")
                .await
                .is_ok_and(|p| p.len() == 2 && p[0].reasons.len() == 2 && p[1].reasons.len() == 3)
        },
    )
    .await;

    let projects = at_risk(&trust, "sites/-").await.unwrap();
    let (discharge, falls) = (&projects[0], &projects[1]);
    assert_eq!(discharge.project, s.discharge);
    assert_eq!(discharge.lead, AMES);
    assert_eq!(
        kinds(discharge),
        [pb::RiskKind::LeadMoved, pb::RiskKind::PdsaUndecided]
    );
    assert_eq!(
        discharge.reasons[0].detail,
        "staff/71000001 no longer works at BAS"
    );
    let suggested: Vec<(&str, &str)> = discharge
        .suggested_leads
        .iter()
        .map(|l| (l.staff.as_str(), l.ward.as_str()))
        .collect();
    assert_eq!(suggested, [(BELL, "sites/BAS/wards/cedar")]);
    assert_eq!(falls.project, s.falls);
    assert_eq!(
        kinds(falls),
        [
            pb::RiskKind::LeadLeft,
            pb::RiskKind::NoTrainedMember,
            pb::RiskKind::StaleProgressScore
        ]
    );

    // The projects service learns the same from the training feed: ListProjects finds the
    // projects whose lead left or moved, and the portfolio summary counts them.
    let gone = |c: &Caller, status: &'static str| {
        let c = c.clone();
        async move {
            let filter = format!("lead_status = {status}");
            qi_e2e::projects::project_names_where(&c, "sites/-", &filter)
                .await
                .unwrap()
        }
    };
    until(
        "the projects service has the leaver and the mover",
        || async { gone(&trust, "GONE").await.len() == 2 },
    )
    .await;
    assert_eq!(gone(&trust, "LEFT").await, [s.falls.as_str()]);
    assert_eq!(gone(&trust, "MOVED").await, [s.discharge.as_str()]);
    let lead_gone = |c: &Caller, parent: &'static str| {
        let c = c.clone();
        async move {
            qi_e2e::projects::portfolio_summary(&c, parent, ppb::PortfolioPeriod::Unspecified, "")
                .await
                .unwrap()
                .totals
                .unwrap()
                .projects_lead_gone
        }
    };
    assert_eq!(lead_gone(&trust, "sites/-").await, 2);

    // The leaver and the mover as the training service tells them.
    let staff = |n: &str| {
        let c = trust.clone();
        let n = n.to_owned();
        async move {
            c.training()
                .get_staff(tpb::GetStaffRequest { name: n })
                .await
                .unwrap()
                .into_inner()
                .staff
                .unwrap()
        }
    };
    assert_eq!(staff(AMES).await.site, "sites/SOU");
    assert!(!staff(COLE).await.active);

    // Each site's caller sees its own projects alone; another site's parent is refused.
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let theirs: Vec<String> = at_risk(&bas, "sites/-")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.project)
        .collect();
    assert_eq!(theirs, [s.discharge.as_str()]);
    assert_eq!(
        at_risk(&bas, "sites/SOU").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(gone(&bas, "GONE").await, [s.discharge.as_str()]);
    assert_eq!(lead_gone(&bas, "sites/BAS").await, 1);
    let bad = bas
        .projects()
        .list_projects(ppb::ListProjectsRequest {
            filter: "lead_status = AWAY".into(),
            ..qi_e2e::projects::list_projects("sites/-")
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["filter"]);
    let bad = bas
        .insights()
        .list_projects_at_risk(pb::ListProjectsAtRiskRequest {
            parent: "sites/-".into(),
            stale_score_days: -1,
            silent_periods: 500,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["stale_score_days"]);
    // A shorter patience with progress scores adds none here (the discharge score is today's).
    let patient = trust
        .insights()
        .list_projects_at_risk(pb::ListProjectsAtRiskRequest {
            parent: "sites/-".into(),
            stale_score_days: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kinds(&patient.projects[0]).len(), 2);
    suite.stop().await.unwrap();
}

/// ExplainSignal's answer for `metric` at `period` (6 months' window).
async fn explain(
    c: &Caller,
    metric: &str,
    period: NaiveDate,
) -> Result<pb::ExplainSignalResponse, tonic::Status> {
    c.insights()
        .explain_signal(pb::ExplainSignalRequest {
            metric: metric.into(),
            period: Some(date(period)),
            window_months: 0,
        })
        .await
        .map(tonic::Response::into_inner)
}

fn events(a: &pb::ExplainSignalResponse) -> Vec<(pb::SignalEventKind, &str, i32)> {
    a.events
        .iter()
        .map(|e| {
            let kind = pb::SignalEventKind::try_from(e.kind).unwrap();
            (kind, e.resource.as_str(), e.days_before)
        })
        .collect()
}

#[tokio::test]
async fn a_signal_is_explained_by_the_cycles_starts_and_training_that_came_before_it() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    // The discharge project adopted criteria-led discharge two months before LOS shifted
    // (the project began about 50 days before, its team trained 80 days before).
    let cycle = team
        .projects()
        .create_pdsa_cycle(ppb::CreatePdsaCycleRequest {
            parent: s.discharge.clone(),
            pdsa_cycle: Some(ppb::PdsaCycle {
                change_idea: "Criteria-led discharge".into(),
                objective: "Learn whether it shortens stays".into(),
                prediction: "A day less".into(),
                start_date: Some(date(months_ago(14))),
                end_date: Some(date(months_ago(13))),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pdsa_cycle
        .unwrap();
    team.projects()
        .decide_pdsa_cycle(ppb::DecidePdsaCycleRequest {
            name: cycle.name.clone(),
            decision: ppb::PdsaDecision::Adopt as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    until("the read model has the adopted cycle", || async {
        explain(&trust, &s.los, months_ago(5))
            .await
            .is_ok_and(|a| a.events.len() == 3)
    })
    .await;

    let answer = explain(&trust, &s.los, months_ago(5)).await.unwrap();
    // The run as the metrics service's own chart draws it: the improving points around the
    // period asked, back to the first.
    let chart = qi_e2e::metrics::chart(&trust, qi_e2e::metrics::chart_request(&s.los))
        .await
        .unwrap();
    let improving: Vec<NaiveDate> = chart
        .points
        .iter()
        .filter(|p| p.point_type == mpb::SpcPointType::ImprovementLow as i32)
        .map(|p| qi_e2e::day(p.period.unwrap()))
        .collect();
    let run = answer.run.unwrap();
    assert_eq!(improving.len(), 11);
    assert_eq!(run.points, 11);
    assert_eq!(qi_e2e::day(run.start_period.unwrap()), improving[0]);
    assert_eq!(run.start_period, Some(date(months_ago(11))));
    assert_eq!(run.end_period, Some(date(months_ago(1))));
    assert_eq!(run.reading, pb::SpcReading::Improvement as i32);
    let start = months_ago(11);
    assert_eq!(answer.window_start, Some(date(start - Months::new(6))));
    assert_eq!(answer.projects, [s.discharge.as_str()]);
    let days = |d: NaiveDate| i32::try_from((start - d).num_days()).unwrap();
    assert_eq!(
        events(&answer),
        [
            (
                pb::SignalEventKind::ProjectStarted,
                s.discharge.as_str(),
                days(s.first_day + Days::new(30))
            ),
            (
                pb::SignalEventKind::PdsaAdopted,
                cycle.name.as_str(),
                days(months_ago(13))
            ),
            (
                pb::SignalEventKind::CohortTrained,
                s.fundamentals.as_str(),
                days(s.first_day)
            ),
        ]
    );
    assert_eq!(answer.events[0].description, "Discharge by noon");
    assert_eq!(answer.events[1].description, "Criteria-led discharge");
    assert_eq!(
        answer.events[2].description,
        "QSIR Fundamentals, cross-site: 2 team members trained"
    );
    // The same events, asked from any point of the run; a narrower window drops the oldest.
    // Built again from the services' lists (cycles' ideas and dates), the same.
    rebuild(&suite).await;
    assert_eq!(
        explain(&trust, &s.los, months_ago(5)).await.unwrap(),
        answer
    );
    let from_start = explain(&trust, &s.los, months_ago(11)).await.unwrap();
    assert_eq!(events(&from_start), events(&answer));
    let narrow = trust
        .insights()
        .explain_signal(pb::ExplainSignalRequest {
            metric: s.los.clone(),
            period: Some(date(months_ago(11))),
            window_months: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(narrow.events.is_empty(), "{:?}", narrow.events);

    // A BAS caller explains its own metric alike; a SOU caller may not ask of it.
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    assert_eq!(
        events(&explain(&bas, &s.los, months_ago(5)).await.unwrap()),
        events(&answer)
    );
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    assert_eq!(
        explain(&sou, &s.los, months_ago(5))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Bad questions, each named: a common-cause period, a period not on the chart, a
    // window out of range, no period.
    let common = explain(&trust, &s.complaints, months_ago(5))
        .await
        .unwrap_err();
    assert_eq!(common.code(), Code::FailedPrecondition, "{common:?}");
    let off = explain(&trust, &s.los, today() + Days::new(40))
        .await
        .unwrap_err();
    assert_eq!(fields(&off), ["period"]);
    let bad = trust
        .insights()
        .explain_signal(pb::ExplainSignalRequest {
            metric: s.los.clone(),
            period: None,
            window_months: 37,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["period"]);
    let wide = trust
        .insights()
        .explain_signal(pb::ExplainSignalRequest {
            metric: s.los.clone(),
            period: Some(date(months_ago(5))),
            window_months: 37,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&wide), ["window_months"]);
    suite.stop().await.unwrap();
}

/// The metrics a caller's equity opportunities name, by the read model and by the metrics
/// service's own dashboard (its rows whose gap reads WIDENING).
async fn widening(c: &Caller) -> (Vec<pb::EquityOpportunity>, Vec<String>) {
    let answer = c
        .insights()
        .list_equity_opportunities(pb::ListEquityOpportunitiesRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let board = qi_e2e::metrics::dashboard(
        c,
        qi_e2e::metrics::dashboard_request("sites/-", &[mpb::MetricKind::Qms]),
    )
    .await
    .unwrap();
    let mut by_service: Vec<String> = board
        .rows
        .into_iter()
        .filter(|r| r.inequality_trend == mpb::InequalityGapTrend::Widening as i32)
        .map(|r| r.metric)
        .collect();
    by_service.sort();
    (answer.opportunities, by_service)
}

fn flags(o: &pb::EquityOpportunity) -> Vec<pb::EquityFlag> {
    o.flags
        .iter()
        .map(|f| pb::EquityFlag::try_from(*f).unwrap())
        .collect()
}

/// Creates a monthly QMS count by sex (lower is better), recorded at `location`.
async fn by_sex_metric(
    team: &Caller,
    parent: &str,
    id: &str,
    title: &str,
    location: mpb::LocationBreakdown,
) -> String {
    let definition = mpb::Metric {
        location_breakdown: location as i32,
        ..metric(
            title,
            mpb::MetricKind::Qms,
            mpb::ImprovementDirection::Decrease,
            mpb::MetricFrequency::Month,
            mpb::MetricValueType::Count,
            &[mpb::InequalityDimension::Sex],
        )
    };
    create_metric(team, parent, id, definition)
        .await
        .unwrap()
        .name
}

/// Twenty months of a count by sex: female counts 2 above male, until, `widen`ing, the last
/// eight months add 2 more each month.
fn by_sex(site: &str, widen: bool) -> Vec<mpb::Measurement> {
    let noise = [0.0, 1.0, -1.0, 0.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0];
    let mut out = Vec::new();
    for back in (1..=20u32).rev() {
        let n = noise[back as usize % 10];
        let extra = if widen && back <= 8 {
            2.0 * f64::from(9 - back)
        } else {
            0.0
        };
        for (sex, v) in [("1", 10.0 + n), ("2", 12.0 - n + extra)] {
            out.push(mpb::Measurement {
                site: site.into(),
                stratum: qi_e2e::metrics::stratum("", "", sex),
                ..value(date(months_ago(back)), v)
            });
        }
    }
    out
}

#[tokio::test]
async fn equity_opportunities_are_the_widening_gaps_with_their_projects_and_partners() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    // Falls with harm, a trust QMS metric by site and sex: widening at BAS, steady at SOU.
    let harm = by_sex_metric(
        &team,
        "trust",
        "harm",
        "Falls with harm",
        mpb::LocationBreakdown::Site,
    )
    .await;
    let mut rows = by_sex("sites/BAS", true);
    rows.extend(by_sex("sites/SOU", false));
    record(&team, &harm, rows, "").await.unwrap();
    // Pressure ulcers at SOU: widening, and no project measures it.
    let ulcers = by_sex_metric(
        &team,
        "sites/SOU",
        "ulcers",
        "Pressure ulcers",
        mpb::LocationBreakdown::Unspecified,
    )
    .await;
    record(&team, &ulcers, by_sex("", true), "").await.unwrap();
    // The discharge project (BAS) measures falls with harm too; it has no patient partner.
    team.projects()
        .create_measure(ppb::CreateMeasureRequest {
            parent: s.discharge.clone(),
            measure: Some(ppb::Measure {
                metric: harm.clone(),
                kind: ppb::MeasureKind::Balancing as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    until("the read model has both gaps and the measure", || async {
        let (o, _) = widening(&trust).await;
        o.len() == 2 && o[1].projects.len() == 1
    })
    .await;

    // Trust-wide: both, by name, each as the metrics service's own dashboard reads it.
    let (answer, by_service) = widening(&trust).await;
    let names: Vec<&str> = answer.iter().map(|o| o.metric.as_str()).collect();
    assert_eq!(names, [ulcers.as_str(), harm.as_str()]);
    assert_eq!(by_service, names);
    assert_eq!(flags(&answer[0]), [pb::EquityFlag::WideningGapNoProject]);
    assert_eq!(
        flags(&answer[1]),
        [pb::EquityFlag::ProjectWithoutPatientPartners]
    );
    let gap = &answer[0].gaps[0];
    assert_eq!(gap.dimension, mpb::InequalityDimension::Sex as i32);
    assert_eq!(gap.latest_period, Some(date(months_ago(1))));
    assert_eq!(gap.period_count, 20);
    // The last month: female 12 − 1 + 16, male 10 + 1.
    assert!((gap.latest_gap - 16.0).abs() < 1e-9, "{gap:?}");
    let project = &answer[1].projects[0];
    assert_eq!(
        (project.project.as_str(), project.patient_partner_count),
        (s.discharge.as_str(), 0)
    );
    assert_eq!(project.state, ppb::ProjectState::InProgress as i32);
    // Built again from the services' lists (strata, dimensions, co-production), the same.
    rebuild(&suite).await;
    assert_eq!(widening(&trust).await, (answer.clone(), by_service.clone()));

    // A BAS caller: the trust metric's gap from BAS's rows alone widens; SOU's metric is
    // not theirs. A SOU caller: SOU's rows of the trust metric are steady.
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let (theirs, by_service) = widening(&bas).await;
    let names: Vec<&str> = theirs.iter().map(|o| o.metric.as_str()).collect();
    assert_eq!(names, [harm.as_str()]);
    assert_eq!(by_service, names);
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    let (theirs, by_service) = widening(&sou).await;
    let names: Vec<&str> = theirs.iter().map(|o| o.metric.as_str()).collect();
    assert_eq!(names, [ulcers.as_str()]);
    assert_eq!(by_service, names);

    // A patient partner joins the discharge team: that flag goes.
    add_team_member(
        &team,
        &s.discharge,
        qi_e2e::projects::patient_partner("Pat Green"),
    )
    .await
    .unwrap();
    until("the read model has the patient partner", || async {
        let (o, _) = widening(&trust).await;
        o.len() == 2 && o[1].flags.is_empty()
    })
    .await;
    let (answer, _) = widening(&trust).await;
    assert_eq!(answer[1].projects[0].patient_partner_count, 1);
    // The SOU falls project measures falls with harm too. Whose events explain the trust
    // metric's rise: a BAS caller's chart is BAS's rows, and its projects BAS's alone.
    team.projects()
        .create_measure(ppb::CreateMeasureRequest {
            parent: s.falls.clone(),
            measure: Some(ppb::Measure {
                metric: harm.clone(),
                kind: ppb::MeasureKind::Outcome as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    until("the read model has the SOU measure", || async {
        explain(&trust, &harm, months_ago(1))
            .await
            .is_ok_and(|a| a.projects.len() == 2)
    })
    .await;
    let trust_wide = explain(&trust, &harm, months_ago(1)).await.unwrap();
    assert_eq!(
        trust_wide.projects,
        [s.discharge.as_str(), s.falls.as_str()]
    );
    let theirs = explain(&bas, &harm, months_ago(1)).await.unwrap();
    assert_eq!(theirs.projects, [s.discharge.as_str()]);
    assert!(
        theirs.events.iter().all(|e| e.project == s.discharge),
        "{:?}",
        theirs.events
    );
    assert_eq!(theirs.run.unwrap().reading, pb::SpcReading::Concern as i32);

    // Paged one at a time, the same two; another site's parent is refused.
    let first = trust
        .insights()
        .list_equity_opportunities(pb::ListEquityOpportunitiesRequest {
            parent: "sites/-".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.opportunities.len(), 1);
    let second = trust
        .insights()
        .list_equity_opportunities(pb::ListEquityOpportunitiesRequest {
            parent: "sites/-".into(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.opportunities[0].metric, harm);
    assert!(second.next_page_token.is_empty());
    let refused = bas
        .insights()
        .list_equity_opportunities(pb::ListEquityOpportunitiesRequest {
            parent: "sites/SOU".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

/// SuggestNextWave's answer for `programme`, proposing the plan's number per site.
async fn next_wave(
    c: &Caller,
    programme: &str,
) -> Result<pb::SuggestNextWaveResponse, tonic::Status> {
    c.insights()
        .suggest_next_wave(pb::SuggestNextWaveRequest {
            programme: programme.into(),
            wards_per_site: None,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A candidate as the tests compare it: (ward, rank, proposed).
type Candidate<'a> = (&'a str, i32, bool);

/// Each site's candidates.
fn candidates(a: &pb::SuggestNextWaveResponse) -> Vec<(String, Vec<Candidate<'_>>)> {
    a.sites
        .iter()
        .map(|s| {
            let wards = s
                .wards
                .iter()
                .map(|w| (w.ward.as_str(), w.rank, w.proposed))
                .collect();
            (s.site.clone(), wards)
        })
        .collect()
}

#[tokio::test]
async fn the_next_ward_wave_ranks_wards_by_trained_staff_ideas_and_concerns() {
    let suite = TestSuite::start().await;
    let s = story(&suite).await;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    until_caught_up(&trust, &s).await;
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    for (site, ward) in [
        ("BAS", "ash"),
        ("BAS", "birch"),
        ("BAS", "cedar"),
        ("BAS", "elm"),
        ("SOU", "oak"),
    ] {
        qi_e2e::projects::create_ward(&team, site, ward)
            .await
            .unwrap();
    }
    // Bell (trained twice over) works on Cedar, by the ESR mapping.
    team.training()
        .create_esr_mapping(tpb::CreateEsrMappingRequest {
            parent: "sites/BAS".into(),
            esr_mapping_id: "organisation.CC-CEDAR".into(),
            esr_mapping: Some(tpb::EsrMapping {
                ward: "sites/BAS/wards/cedar".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let bell = tpb::EsrRow {
        organisation: "CC-CEDAR".into(),
        ..esr("71000002", "", "Bell")
    };
    sync(&hr, tpb::SyncMode::Delta, EXTRACT_TIME + 3600, &[bell])
        .await
        .unwrap();
    // Two open ideas from Birch; a declined one from Elm does not count.
    for title in ["Bedside handover", "Quiet hours"] {
        let mut req = qi_e2e::projects::new_idea("BAS", title);
        if let Some(i) = req.idea.as_mut() {
            i.ward = "sites/BAS/wards/birch".into();
        }
        qi_e2e::projects::create_idea(&team, req).await.unwrap();
    }
    let mut req = qi_e2e::projects::new_idea("BAS", "Fewer bleeps");
    if let Some(i) = req.idea.as_mut() {
        i.ward = "sites/BAS/wards/elm".into();
    }
    let declined = qi_e2e::projects::create_idea(&team, req).await.unwrap();
    qi_e2e::projects::decline_idea(&team, &declined.name, "Out of scope")
        .await
        .unwrap();
    // Elm's own falls metric ends in a spike of concern.
    let elm_falls = create_metric(
        &team,
        "sites/BAS",
        "elm-falls",
        mpb::Metric {
            ward: "sites/BAS/wards/elm".into(),
            ..metric(
                "Falls on Elm",
                mpb::MetricKind::Process,
                mpb::ImprovementDirection::Decrease,
                mpb::MetricFrequency::Month,
                mpb::MetricValueType::Count,
                &[],
            )
        },
    )
    .await
    .unwrap()
    .name;
    let noise = [0.0, 1.0, -1.0, 0.0, 1.0, 0.0, -1.0, 1.0, 0.0, -1.0];
    let spiked = (1..=20u32)
        .rev()
        .map(|back| {
            let v = if back == 1 {
                25.0
            } else {
                5.0 + noise[back as usize % 10]
            };
            value(date(months_ago(back)), v)
        })
        .collect();
    record(&team, &elm_falls, spiked, "").await.unwrap();
    // Falls with harm by ward and sex: on Oak, the gap widens (and the total rises).
    let harm = by_sex_metric(
        &team,
        "trust",
        "ward-harm",
        "Falls with harm by ward",
        mpb::LocationBreakdown::Ward,
    )
    .await;
    let on_oak = by_sex("", true)
        .into_iter()
        .map(|m| mpb::Measurement {
            ward: "sites/SOU/wards/oak".into(),
            ..m
        })
        .collect();
    record(&team, &harm, on_oak, "").await.unwrap();
    // The trust's ward programme: waves every three months, two wards a site each; Ash
    // joined the first.
    let programme = create_programme(
        &team,
        "trust",
        "accreditation",
        ppb::ProgrammeKind::WardProgramme,
        "",
        "",
    )
    .await
    .unwrap()
    .name;
    let first_wave = months_ago(2);
    team.projects()
        .plan_waves(ppb::PlanWavesRequest {
            programme: programme.clone(),
            wave_plan: Some(ppb::WavePlan {
                first_wave_date: Some(date(first_wave)),
                interval_months: 3,
                wards_per_wave: 2,
                per_site: true,
                end_date: Some(date(today() + Days::new(730))),
                ..Default::default()
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
    team.projects()
        .create_ward_enrolment(ppb::CreateWardEnrolmentRequest {
            parent: programme.clone(),
            ward_enrolment: Some(ppb::WardEnrolment {
                ward: "sites/BAS/wards/ash".into(),
                wave: 1,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    until(
        "the read model has the wards, ideas, metric and plan",
        || async {
            next_wave(&trust, &programme).await.is_ok_and(|a| {
                a.sites.first().is_some_and(|bas| {
                    bas.enrolled_wards == 1
                        && bas.wards.len() == 3
                        && bas.wards[0].trained_staff == 1
                        && bas.wards[1].open_ideas == 2
                        && bas.wards[2].metrics_in_concern.len() == 1
                }) && a.sites.last().is_some_and(|sou| {
                    sou.wards
                        .first()
                        .is_some_and(|oak| oak.widening_gaps.len() == 1)
                })
            })
        },
    )
    .await;

    let answer = next_wave(&trust, &programme).await.unwrap();
    assert_eq!(answer.next_wave, 2);
    assert_eq!(
        answer.next_wave_start_date,
        Some(date(first_wave + Months::new(3)))
    );
    assert_eq!(
        candidates(&answer),
        [
            (
                "sites/BAS".to_owned(),
                vec![
                    ("sites/BAS/wards/cedar", 1, true),
                    ("sites/BAS/wards/birch", 2, true),
                    ("sites/BAS/wards/elm", 3, false),
                ]
            ),
            ("sites/BRM".to_owned(), vec![]),
            (
                "sites/SOU".to_owned(),
                vec![("sites/SOU/wards/oak", 1, true)]
            ),
        ]
    );
    let bas = &answer.sites[0];
    assert_eq!(bas.wards[0].reasons, ["1 trained staff on the ward"]);
    assert_eq!(bas.wards[1].reasons, ["2 open ideas from the ward"]);
    assert_eq!(bas.wards[2].metrics_in_concern, [elm_falls.as_str()]);
    let oak = &answer.sites[2].wards[0];
    assert_eq!(oak.widening_gaps, [harm.as_str()]);
    // Its total rises with the gap: in concern too.
    assert_eq!(
        oak.reasons,
        [
            format!("in concern: {harm}"),
            format!("inequality gap widening: {harm}")
        ]
    );
    // Built again from the services' lists (wards, ideas, waves, enrolments), the same.
    rebuild(&suite).await;
    assert_eq!(next_wave(&trust, &programme).await.unwrap(), answer);
    // The same figures from the services' own APIs: Bell's ward and completions, Birch's
    // ideas under review or submitted, Elm's chart.
    let bell = trust
        .training()
        .get_staff(tpb::GetStaffRequest { name: BELL.into() })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!(bell.ward, "sites/BAS/wards/cedar");
    let completions = trust
        .training()
        .list_completions(tpb::ListCompletionsRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .completions;
    assert!(completions.iter().any(|c| c.staff == BELL));
    let ideas = trust
        .projects()
        .list_ideas(qi_e2e::projects::list_ideas("sites/BAS"))
        .await
        .unwrap()
        .into_inner()
        .ideas;
    let open_on_birch = ideas
        .iter()
        .filter(|i| {
            i.ward == "sites/BAS/wards/birch" && i.state == ppb::IdeaState::Submitted as i32
        })
        .count();
    assert_eq!(open_on_birch, 2);
    let chart = qi_e2e::metrics::chart(&trust, qi_e2e::metrics::chart_request(&elm_falls))
        .await
        .unwrap();
    assert_eq!(
        chart.points.last().unwrap().point_type,
        mpb::SpcPointType::ConcernHigh as i32
    );

    // A BAS caller sees BAS alone; asked for no proposals, it gets the ranking only.
    let bas_caller = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let theirs = next_wave(&bas_caller, &programme).await.unwrap();
    assert_eq!(candidates(&theirs), candidates(&answer)[..1]);
    let unproposed = bas_caller
        .insights()
        .suggest_next_wave(pb::SuggestNextWaveRequest {
            programme: programme.clone(),
            wards_per_site: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unproposed.sites[0].wards.iter().all(|w| !w.proposed));
    // Bad questions: too many wards, a programme that is not a ward programme, none.
    let bad = bas_caller
        .insights()
        .suggest_next_wave(pb::SuggestNextWaveRequest {
            programme: programme.clone(),
            wards_per_site: Some(51),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["wards_per_site"]);
    let not_wards = next_wave(&trust, &s.programme).await.unwrap_err();
    assert_eq!(not_wards.code(), Code::FailedPrecondition);
    let missing = next_wave(&trust, "trust/programmes/nope")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    suite.stop().await.unwrap();
}
