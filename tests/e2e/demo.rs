//! The demo trust (`qi seed --demo`): loaded at full size through the gateway, it shows the
//! programme's headline figures to a trust-wide caller and each site's share to a site's
//! caller, HR's export names the courses' ESR competences, the training from before the
//! system is there, and loading it again changes nothing.

use qi::demo::{self, Options};
use qi_e2e::insights::{by_the_apis, coverage, from_answer, impact};
use qi_e2e::{TestSuite, authed, until};
use qi_proto::gateway as gw;
use qi_proto::gateway::gateway_service_client::GatewayServiceClient;
use qi_proto::insights as ins;
use qi_proto::projects as pj;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training as tr;

async fn overview(suite: &TestSuite, token: &str) -> gw::Overview {
    GatewayServiceClient::new(suite.channel.clone())
        .get_overview(authed(token, gw::GetOverviewRequest {}))
        .await
        .expect("the overview answers")
        .into_inner()
        .overview
        .expect("an overview")
}

#[tokio::test]
async fn the_demo_trust_shows_the_programme_s_headline_and_each_site_its_share() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let admin = suite.token("demo-loader", &["admin"], &["*"]);
    // Full size (15,000 staff): the headline figures are checked as a user would see them.
    let options = Options::default();
    let first = demo::seed(&gateway, &admin, &options)
        .await
        .expect("the demo loads");
    assert!(first.tally.created > 3_000, "{:?}", first.tally);
    assert_eq!(first.staff.inserted, 15_000);
    assert!(first.staff.rejected.is_empty());
    // The extract carried ESR codes, not sites: the trust's mapping placed everyone, and
    // its nurses and healthcare assistants on wards of their site.
    assert!(first.staff.unmapped_codes.is_empty());
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.staff WHERE ward NOT LIKE 'sites/' || site || '/wards/%' AND ward <> ''")
            .await,
        0
    );
    assert!(
        suite
            .count("SELECT count(*) FROM training.staff WHERE ward <> ''")
            .await
            > 5_000
    );

    let expected = demo::expected(&options);
    let trust = overview(&suite, &suite.token("board", &["viewer"], &["*"])).await;
    assert!(trust.unavailable.is_empty(), "{:?}", trust.unavailable);
    // Just over 700 colleagues trained; the portfolio's figures exactly.
    assert!(
        (701..=760).contains(&trust.staff_trained),
        "{} trained",
        trust.staff_trained
    );
    assert_eq!(
        trust.staff_trained,
        expected.staff_trained.values().sum::<i64>()
    );
    assert_eq!(trust.ideas_received, 469);
    assert_eq!(trust.projects_completed, 45);
    assert_eq!(trust.projects_in_progress, 99);
    assert_eq!(trust.wards_in_programme, 60);
    // Each site's four, and SOU's missed appointments (the widening gap).
    assert_eq!(trust.metrics_on_dashboard, 13);
    assert!(trust.projects_coproduced > 0);
    let courses: Vec<&str> = trust
        .trained_by_course
        .iter()
        .map(|c| c.course_code.as_str())
        .collect();
    assert_eq!(courses, ["QSIR-FUND", "QSIR-PRAC"]);

    // HR's export names each course's ESR competence, not its title.
    let mut records = suite
        .caller("esr", &["hr_sync"], &["*"])
        .training()
        .stream_training_records(qi_proto::training::StreamTrainingRecordsRequest::default())
        .await
        .expect("the export answers")
        .into_inner();
    let first = records.message().await.expect("a page").expect("changes");
    assert!(!first.changes.is_empty());
    for c in &first.changes {
        let expected = match c.course_code.as_str() {
            "QSIR-FUND" => ("37210001", "372|LOCAL|QSIR Fundamentals|"),
            _ => ("37210002", "372|LOCAL|QSIR Practitioner|"),
        };
        assert_eq!(
            (c.competence_id.as_str(), c.competence_name.as_str()),
            expected
        );
    }

    // What came before the system, imported as completions from elsewhere: the paper
    // register of 2019 and 2020, transfers from other trusts, competences ESR holds.
    assert!(
        suite
            .count("SELECT count(*) FROM training.completion WHERE source = 'historic' AND completion_date < '2021-01-01'")
            .await
            > 30
    );
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.completion WHERE source IN ('transfer', 'esr')")
            .await,
        9
    );

    // Ideas keep the day they were received: the funnel spans the years since 2021.
    let by_year = ProjectServiceClient::new(suite.channel.clone())
        .get_portfolio_summary(authed(
            &suite.token("board", &["viewer"], &["*"]),
            pj::GetPortfolioSummaryRequest {
                parent: "sites/-".into(),
                period: pj::PortfolioPeriod::FinancialYear as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("the portfolio answers")
        .into_inner();
    let mut years: Vec<i32> = by_year
        .rows
        .iter()
        .filter(|r| r.counts.as_ref().is_some_and(|c| c.ideas_received > 0))
        .filter_map(|r| r.period_start.map(|d| d.year))
        .collect();
    years.dedup();
    assert_eq!(years, [2020, 2021, 2022, 2023, 2024, 2025, 2026]);
    // The funnel, from the ideas' dated history: every stage entered, days to weeks in
    // triage, and a backlog past the 30-day review deadline.
    let stage = |s: pj::IdeaState| {
        by_year
            .funnel
            .iter()
            .find(|f| f.stage() == s)
            .cloned()
            .unwrap_or_else(|| panic!("no {s:?} stage"))
    };
    let submitted = stage(pj::IdeaState::Submitted);
    assert_eq!(submitted.entered, 469);
    let median = submitted.median_days.expect("ideas left submission");
    assert!((2.0..=60.0).contains(&median), "{median} days submitted");
    let review = stage(pj::IdeaState::UnderReview);
    let median = review.median_days.expect("ideas left review");
    assert!(
        (10.0..=120.0).contains(&median),
        "{median} days under review"
    );
    assert!(review.conversion.is_some_and(|c| c > 0.5), "{review:?}");
    assert!(
        submitted.overdue > 0 && review.overdue > 0,
        "{submitted:?} {review:?}"
    );
    for s in [
        pj::IdeaState::Accepted,
        pj::IdeaState::Declined,
        pj::IdeaState::Merged,
    ] {
        assert!(stage(s).entered > 0, "{s:?}");
    }
    assert_eq!(by_year.review_deadline_days, 30);
    // Each idea waiting under review has a reviewer.
    let assigned = suite
        .count("SELECT count(*) FROM projects.idea WHERE state = 'under_review' AND reviewer LIKE 'staff/%'")
        .await;
    assert_eq!(assigned, review.waiting);

    // Each site's caller sees its own share, and the shares add up to the trust's figures.
    let mut sum = gw::Overview::default();
    for site in ["BAS", "BRM", "SOU"] {
        let o = overview(&suite, &suite.token("ward-sister", &["viewer"], &[site])).await;
        assert_eq!(o.sites, [site]);
        assert_eq!(o.staff_trained, expected.staff_trained[site], "{site}");
        assert_eq!(o.ideas_received, expected.ideas[site], "{site}");
        assert_eq!(o.projects_completed, expected.completed[site], "{site}");
        assert_eq!(o.projects_in_progress, expected.in_progress[site], "{site}");
        assert_eq!(o.wards_in_programme, expected.wards[site], "{site}");
        let qms = if site == "SOU" { 5 } else { 4 };
        assert_eq!(o.metrics_on_dashboard, qms, "{site}");
        assert!(o.ideas_received < trust.ideas_received);
        sum.staff_trained += o.staff_trained;
        sum.ideas_received += o.ideas_received;
        sum.projects_completed += o.projects_completed;
        sum.projects_in_progress += o.projects_in_progress;
        sum.wards_in_programme += o.wards_in_programme;
        sum.metrics_on_dashboard += o.metrics_on_dashboard;
    }
    assert_eq!(
        (
            sum.staff_trained,
            sum.ideas_received,
            sum.projects_completed,
            sum.projects_in_progress,
            sum.wards_in_programme,
            sum.metrics_on_dashboard
        ),
        (
            trust.staff_trained,
            trust.ideas_received,
            trust.projects_completed,
            trust.projects_in_progress,
            trust.wards_in_programme,
            trust.metrics_on_dashboard
        )
    );

    // Every project in progress has its driver diagram, drawn as its team would.
    assert_eq!(
        suite
            .count(
                "SELECT count(*) FROM projects.project p WHERE p.state = 'in_progress'
                 AND EXISTS (SELECT 1 FROM projects.driver_diagram_version d
                             WHERE d.project_uid = p.uid)"
            )
            .await,
        99
    );
    let (site, id): (String, String) = qi_e2e::rows(
        &suite.database_url,
        "SELECT p.lead_site, p.id FROM projects.project p
         JOIN projects.driver_diagram_version d ON d.project_uid = p.uid
         ORDER BY p.id LIMIT 1",
    )
    .await
    .pop()
    .expect("a diagram");
    let svg = ProjectServiceClient::new(suite.channel.clone())
        .render_driver_diagram(authed(
            &suite.token("board", &["viewer"], &["*"]),
            pj::RenderDriverDiagramRequest {
                name: format!("sites/{site}/projects/{id}/driverDiagram"),
                version: 0,
            },
        ))
        .await
        .expect("the diagram draws")
        .into_inner()
        .svg;
    assert!(svg.contains("data-kind=\"change-idea\""));
    // To look at it: QI_DRIVER_DIAGRAM_SVG=/tmp/demo.svg cargo test -p qi-e2e --test e2e demo
    if let Ok(path) = std::env::var("QI_DRIVER_DIAGRAM_SVG") {
        std::fs::write(path, &svg).expect("the SVG is written");
    }

    the_read_model_agrees_with_the_services_and_rebuilds_the_same(&suite).await;
    the_journey_s_next_steps_read_the_demo_as_the_services_do(&suite).await;

    // Loading again finds everything and changes nothing.
    let again = demo::seed(&gateway, &admin, &options)
        .await
        .expect("the demo reloads");
    assert_eq!(
        (again.tally.created, again.tally.advanced),
        (0, 0),
        "{:?}",
        again.tally
    );
    assert_eq!(again.staff.inserted + again.staff.updated, 0);
    let after = overview(&suite, &suite.token("board", &["viewer"], &["*"])).await;
    assert_eq!(after, trust);
    let database = suite.database_url.clone();
    // A clean stop writes the last audit events.
    suite.stop().await.expect("a clean stop");

    // The loader kept to the gateway's per-caller rate (the default, 200 a second): not one
    // of its calls was refused over it (each refusal is an audit event).
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let (calls, refused): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE code = 'ResourceExhausted')
         FROM gateway.audit_event WHERE subject = 'demo-loader'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(calls > 3_000, "{calls} calls audited");
    assert_eq!(
        refused, 0,
        "of {calls} calls of the loader, refused over its rate"
    );
}

/// The read model over the demo trust (issue 30): April 2022's practitioners and the
/// coverage of each site, as the services' own APIs give them, for a trust-wide and a
/// one-site caller; then a rebuild from the services' lists, in under 30 s, changes no answer.
async fn the_read_model_agrees_with_the_services_and_rebuilds_the_same(suite: &TestSuite) {
    const COHORT: &str = "trust/cohorts/prac-2022-04";
    let trust = suite.caller("board", &["viewer"], &["*"]);
    let bas = suite.caller("bas-board", &["viewer"], &["BAS"]);
    let first_day = trust
        .training()
        .get_cohort(tr::GetCohortRequest {
            name: COHORT.into(),
        })
        .await
        .expect("the cohort")
        .into_inner()
        .cohort
        .and_then(|c| c.start_date)
        .and_then(|d| chrono::NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32))
        .expect("a start date");
    for caller in [&trust, &bas] {
        let expected = by_the_apis(caller, COHORT, first_day).await;
        assert!(expected.len() > 5, "{} learners", expected.len());
        until(
            "the read model's learners of April 2022 as the services list them",
            || async {
                impact(caller, COHORT)
                    .await
                    .is_ok_and(|a| a.cohorts.len() == 1 && from_answer(&a.cohorts[0]) == expected)
            },
        )
        .await;
    }
    let answer = impact(&trust, COHORT).await.unwrap();
    let leads: Vec<&ins::LearnerImpact> = answer.cohorts[0]
        .learners
        .iter()
        .filter(|l| l.projects.iter().any(|p| p.lead))
        .collect();
    assert!(
        !leads.is_empty(),
        "some of April 2022's practitioners lead projects"
    );
    eprintln!(
        "April 2022: {} learners, {} leading; totals {:?}",
        answer.cohorts[0].learners.len(),
        leads.len(),
        answer.cohorts[0].totals
    );

    // Coverage by site against the training summary and the project lists.
    let rows = coverage(&trust, "sites/-", ins::CoverageGrouping::Site)
        .await
        .unwrap();
    let summary = trust
        .training()
        .get_training_summary(tr::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            group_by: vec![tr::SummaryDimension::Site as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for row in &rows {
        let by_site = summary
            .breakdown
            .iter()
            .find(|b| b.site.trim_start_matches("sites/") == row.site)
            .expect("the site in the summary");
        assert_eq!(
            (i64::from(row.active_headcount), i64::from(row.trained)),
            (by_site.headcount, by_site.staff_trained),
            "{}",
            row.site
        );
        let mut live = 0;
        for state in [pj::ProjectState::Scoping, pj::ProjectState::InProgress] {
            let listed = ProjectServiceClient::new(suite.channel.clone())
                .list_projects(authed(
                    &suite.token("board", &["viewer"], &["*"]),
                    pj::ListProjectsRequest {
                        parent: format!("sites/{}", row.site),
                        state: state as i32,
                        page_size: 500,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(listed.next_page_token.is_empty());
            live += listed.projects.len();
        }
        assert_eq!(row.live_projects as usize, live, "{}", row.site);
    }

    // By ward, against the training summary's coverage per ward.
    let wards = coverage(&trust, "sites/-", ins::CoverageGrouping::Ward)
        .await
        .unwrap();
    assert!(wards.len() >= 20, "{} ward rows", wards.len());
    let by_ward = trust
        .training()
        .get_training_summary(tr::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            group_by: vec![tr::SummaryDimension::Ward as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for row in &wards {
        assert!(
            row.key.starts_with(&format!("sites/{}/wards/", row.site)),
            "{}",
            row.key
        );
        let summary = by_ward
            .breakdown
            .iter()
            .find(|b| b.ward == row.key)
            .expect("the ward in the summary");
        assert_eq!(
            (i64::from(row.active_headcount), i64::from(row.trained)),
            (summary.headcount, summary.staff_trained),
            "{}",
            row.key
        );
    }

    // A rebuild from the services' lists: quick, and every answer as before.
    let before = (
        impact(&trust, COHORT).await.unwrap(),
        impact(&bas, COHORT).await.unwrap(),
        rows,
    );
    let pool = qi_platform::db::connect_owner(&suite.database_url, qi_insights::SCHEMA)
        .await
        .unwrap();
    let rebuilt = qi::insights_intake(&suite.config, pool.clone(), &suite.service_urls)
        .unwrap()
        .rebuild()
        .await
        .unwrap();
    pool.close().await;
    eprintln!("the demo's read model rebuilt: {rebuilt:?}");
    assert!(rebuilt.millis < 30_000, "{} ms", rebuilt.millis);
    let after = (
        impact(&trust, COHORT).await.unwrap(),
        impact(&bas, COHORT).await.unwrap(),
        coverage(&trust, "sites/-", ins::CoverageGrouping::Site)
            .await
            .unwrap(),
    );
    assert_eq!(after, before);
}

/// The read model's other answers over the demo trust (issue 31), each against the
/// services' own APIs: the lead who left, the widening gaps, a signal's context and the
/// next ward wave.
async fn the_journey_s_next_steps_read_the_demo_as_the_services_do(suite: &TestSuite) {
    use qi_proto::metrics as mt;
    let trust = suite.caller("board", &["viewer"], &["*"]);
    let bas = suite.caller("bas-board", &["viewer"], &["BAS"]);

    suite.until_read_model_caught_up().await;
    // Projects at risk: live, each with a reason; a BAS caller's are BAS's or shared.
    let risky = trust
        .insights()
        .list_projects_at_risk(ins::ListProjectsAtRiskRequest {
            parent: "sites/-".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .projects;
    let mut kinds = std::collections::BTreeMap::<i32, usize>::new();
    for p in &risky {
        assert!(!p.reasons.is_empty(), "{}", p.project);
        for r in &p.reasons {
            *kinds.entry(r.kind).or_default() += 1;
        }
    }
    eprintln!("demo projects at risk: {} ({kinds:?})", risky.len());

    // One lead left the trust: HR's last extract of the story.
    let left: Vec<&ins::ProjectAtRisk> = risky
        .iter()
        .filter(|p| {
            p.reasons
                .iter()
                .any(|r| r.kind == ins::RiskKind::LeadLeft as i32)
        })
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let leaver = trust
        .training()
        .get_staff(tr::GetStaffRequest {
            name: left[0].lead.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert!(!leaver.active, "{leaver:?}");
    let team = ProjectServiceClient::new(suite.channel.clone())
        .list_team_members(authed(
            &suite.token("board", &["viewer"], &["*"]),
            pj::ListTeamMembersRequest {
                parent: left[0].project.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .team_members;
    assert!(
        team.iter()
            .any(|m| m.staff == leaver.name && m.role == pj::TeamRole::Lead as i32)
    );

    // Widening gaps: SOU's complaints (its projects, some without patient partners) and
    // missed appointments (no project), as the QMS dashboard reads them.
    let equity = |c: &qi_e2e::Caller| {
        let c = c.clone();
        async move {
            c.insights()
                .list_equity_opportunities(ins::ListEquityOpportunitiesRequest {
                    parent: "sites/-".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .opportunities
        }
    };
    let opportunities = equity(&trust).await;
    let named: Vec<(&str, Vec<i32>)> = opportunities
        .iter()
        .map(|o| (o.metric.as_str(), o.flags.clone()))
        .collect();
    assert_eq!(
        named,
        [
            (
                "sites/SOU/metrics/complaints",
                vec![ins::EquityFlag::ProjectWithoutPatientPartners as i32]
            ),
            (
                "sites/SOU/metrics/dna",
                vec![ins::EquityFlag::WideningGapNoProject as i32]
            ),
        ]
    );
    let board = trust
        .metrics()
        .get_qms_dashboard(mt::GetQmsDashboardRequest {
            parent: "sites/-".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut widening: Vec<&str> = board
        .rows
        .iter()
        .filter(|r| r.inequality_trend == mt::InequalityGapTrend::Widening as i32)
        .map(|r| r.metric.as_str())
        .collect();
    widening.sort_unstable();
    assert_eq!(widening, named.iter().map(|(m, _)| *m).collect::<Vec<_>>());
    assert!(equity(&bas).await.is_empty());

    // BAS complaints improved from August 2025: the run as the service's chart draws it,
    // and what happened in the six months before.
    const COMPLAINTS: &str = "sites/BAS/metrics/complaints";
    let explained = trust
        .insights()
        .explain_signal(ins::ExplainSignalRequest {
            metric: COMPLAINTS.into(),
            period: Some(qi_e2e::date(qi_e2e::ymd(2025, 8, 1))),
            window_months: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let chart = qi_e2e::metrics::chart(&trust, qi_e2e::metrics::chart_request(COMPLAINTS))
        .await
        .unwrap();
    let improving: Vec<chrono::NaiveDate> = chart
        .points
        .iter()
        .filter(|p| p.point_type == mt::SpcPointType::ImprovementLow as i32)
        .map(|p| qi_e2e::day(p.period.unwrap()))
        .filter(|d| *d >= qi_e2e::ymd(2025, 8, 1))
        .collect();
    let run = explained.run.unwrap();
    assert_eq!(qi_e2e::day(run.start_period.unwrap()), improving[0]);
    assert_eq!(run.points as usize, improving.len());
    assert!(!explained.events.is_empty());
    let window = qi_e2e::day(explained.window_start.unwrap())..=improving[0];
    for e in &explained.events {
        assert!(window.contains(&qi_e2e::day(e.date.unwrap())), "{e:?}");
        assert!(explained.projects.contains(&e.project), "{e:?}");
    }
    eprintln!(
        "demo signal: {COMPLAINTS} from {}: {} events over {} projects",
        improving[0],
        explained.events.len(),
        explained.projects.len()
    );

    // The next ward programme's first wave: each site's wards ranked, two proposed; each
    // ward's trained staff as the training summary counts them.
    let wave = trust
        .insights()
        .suggest_next_wave(ins::SuggestNextWaveRequest {
            programme: "trust/programmes/fundamental-care".into(),
            wards_per_site: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wave.next_wave, 1);
    let by_ward = trust
        .training()
        .get_training_summary(tr::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            group_by: vec![tr::SummaryDimension::Ward as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wave.sites.len(), 3);
    for site in &wave.sites {
        assert_eq!(site.wards.len(), 20, "{}", site.site);
        let proposed: Vec<&str> = site
            .wards
            .iter()
            .filter(|w| w.proposed)
            .map(|w| w.ward.as_str())
            .collect();
        assert_eq!(proposed.len(), 2, "{}", site.site);
        assert!(site.wards[0].trained_staff >= site.wards[2].trained_staff);
        for w in &site.wards {
            let summary = by_ward.breakdown.iter().find(|b| b.ward == w.ward);
            let trained = summary.map_or(0, |b| b.staff_trained);
            assert_eq!(i64::from(w.trained_staff), trained, "{}", w.ward);
        }
        eprintln!("demo next wave at {}: {proposed:?}", site.site);
    }
}
