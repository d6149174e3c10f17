//! The projects service through the gateway: wards, ideas and their triage, projects from
//! scoping to completion with teams, measures, PDSA cycles, progress scores and
//! co-production, programmes and the ward programme's waves, the portfolio summary — and
//! the site rules, idempotent creates, paging and field-named validation with nothing stored.

use chrono::{Datelike, Months, NaiveDate};
use qi_e2e::{TestSuite, authed, today};
use qi_proto::google::r#type::Date;
use qi_proto::projects as pb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

type Client = ProjectServiceClient<Channel>;

fn day(d: NaiveDate) -> Option<Date> {
    Some(qi_platform::convert::date(d))
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The fields a refusal names.
fn fields(s: &Status) -> Vec<String> {
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
        .unwrap_or_default()
}

fn code<T>(r: Result<T, Status>) -> Code {
    r.err().map_or(Code::Ok, |s| s.code())
}

async fn count(suite: &TestSuite, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

struct Api {
    c: Client,
}

impl Api {
    fn new(suite: &TestSuite) -> Api {
        Api {
            c: Client::new(suite.channel.clone()),
        }
    }

    async fn ward(&mut self, t: &str, site: &str, id: &str) -> Result<pb::Ward, Status> {
        self.c
            .create_ward(authed(
                t,
                pb::CreateWardRequest {
                    parent: format!("sites/{site}"),
                    ward_id: id.into(),
                    ward: Some(pb::Ward {
                        display_name: format!("{id} ward"),
                        specialty: "Acute medicine".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().ward.unwrap())
    }

    async fn idea(&mut self, t: &str, site: &str, title: &str) -> Result<pb::Idea, Status> {
        self.c
            .create_idea(authed(
                t,
                pb::CreateIdeaRequest {
                    parent: format!("sites/{site}"),
                    idea: Some(pb::Idea {
                        title: title.into(),
                        submitter: "A. Nurse".into(),
                        theme: "Patient flow".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner().idea.unwrap())
    }

    async fn review(&mut self, t: &str, name: &str) -> Result<pb::Idea, Status> {
        self.c
            .review_idea(authed(
                t,
                pb::ReviewIdeaRequest {
                    name: name.into(),
                    etag: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().idea.unwrap())
    }

    async fn decline(&mut self, t: &str, name: &str, reason: &str) -> Result<pb::Idea, Status> {
        self.c
            .decline_idea(authed(
                t,
                pb::DeclineIdeaRequest {
                    name: name.into(),
                    reason: reason.into(),
                    etag: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().idea.unwrap())
    }

    async fn accept(
        &mut self,
        t: &str,
        name: &str,
        rid: &str,
    ) -> Result<pb::AcceptIdeaResponse, Status> {
        self.c
            .accept_idea(authed(
                t,
                pb::AcceptIdeaRequest {
                    name: name.into(),
                    request_id: rid.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn merge(&mut self, t: &str, name: &str, into: &str) -> Result<pb::Idea, Status> {
        self.c
            .merge_idea(authed(
                t,
                pb::MergeIdeaRequest {
                    name: name.into(),
                    into: into.into(),
                    etag: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().idea.unwrap())
    }

    async fn reopen(&mut self, t: &str, name: &str, reason: &str) -> Result<pb::Idea, Status> {
        self.c
            .reopen_idea(authed(
                t,
                pb::ReopenIdeaRequest {
                    name: name.into(),
                    reason: reason.into(),
                    etag: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().idea.unwrap())
    }

    async fn project(
        &mut self,
        t: &str,
        site: &str,
        id: &str,
        p: pb::Project,
    ) -> Result<pb::Project, Status> {
        self.c
            .create_project(authed(
                t,
                pb::CreateProjectRequest {
                    parent: format!("sites/{site}"),
                    project_id: id.into(),
                    project: Some(p),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().project.unwrap())
    }

    async fn get(&mut self, t: &str, name: &str) -> Result<pb::Project, Status> {
        self.c
            .get_project(authed(t, pb::GetProjectRequest { name: name.into() }))
            .await
            .map(|r| r.into_inner().project.unwrap())
    }

    async fn list(&mut self, t: &str, parent: &str) -> Result<Vec<String>, Status> {
        let resp = self
            .c
            .list_projects(authed(
                t,
                pb::ListProjectsRequest {
                    parent: parent.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        let mut names: Vec<String> = resp.projects.into_iter().map(|p| p.name).collect();
        names.sort();
        Ok(names)
    }

    async fn start(&mut self, t: &str, name: &str) -> Result<pb::Project, Status> {
        self.c
            .start_project(authed(
                t,
                pb::StartProjectRequest {
                    name: name.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner().project.unwrap())
    }

    async fn complete(
        &mut self,
        t: &str,
        name: &str,
        outcome: pb::Outcome,
    ) -> Result<pb::Project, Status> {
        self.c
            .complete_project(authed(
                t,
                pb::CompleteProjectRequest {
                    name: name.into(),
                    outcome: Some(outcome),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner().project.unwrap())
    }

    async fn stop(&mut self, t: &str, name: &str, reason: &str) -> Result<pb::Project, Status> {
        self.c
            .stop_project(authed(
                t,
                pb::StopProjectRequest {
                    name: name.into(),
                    reason: reason.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner().project.unwrap())
    }

    async fn pdsa(&mut self, t: &str, parent: &str, change: &str) -> Result<pb::PdsaCycle, Status> {
        self.c
            .create_pdsa_cycle(authed(
                t,
                pb::CreatePdsaCycleRequest {
                    parent: parent.into(),
                    pdsa_cycle: Some(pb::PdsaCycle {
                        change_idea: change.into(),
                        objective: "Learn whether it shortens waits".into(),
                        prediction: "Waits fall by a third".into(),
                        plan: "Two weeks on the ward, nurses collect times".into(),
                        start_date: day(today()),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().pdsa_cycle.unwrap())
    }

    async fn member(
        &mut self,
        t: &str,
        parent: &str,
        m: pb::TeamMember,
    ) -> Result<pb::TeamMember, Status> {
        self.c
            .create_team_member(authed(
                t,
                pb::CreateTeamMemberRequest {
                    parent: parent.into(),
                    team_member: Some(m),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().team_member.unwrap())
    }

    async fn engage(&mut self, t: &str, parent: &str) -> Result<pb::EngagementActivity, Status> {
        self.c
            .create_engagement_activity(authed(
                t,
                pb::CreateEngagementActivityRequest {
                    parent: parent.into(),
                    engagement_activity: Some(pb::EngagementActivity {
                        activity_date: day(today()),
                        kind: pb::EngagementKind::Workshop as i32,
                        participants: 8,
                        summary: "Patients mapped the discharge journey with the team".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().engagement_activity.unwrap())
    }

    async fn programme(
        &mut self,
        t: &str,
        parent: &str,
        id: &str,
        kind: pb::ProgrammeKind,
        cohort: &str,
        theme: &str,
    ) -> Result<pb::Programme, Status> {
        self.c
            .create_programme(authed(
                t,
                pb::CreateProgrammeRequest {
                    parent: parent.into(),
                    programme_id: id.into(),
                    programme: Some(pb::Programme {
                        display_name: format!("Programme {id}"),
                        kind: kind as i32,
                        cohort: cohort.into(),
                        theme: theme.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().programme.unwrap())
    }

    async fn summary(
        &mut self,
        t: &str,
        parent: &str,
        period: pb::PortfolioPeriod,
        programme: &str,
    ) -> Result<pb::GetPortfolioSummaryResponse, Status> {
        self.c
            .get_portfolio_summary(authed(
                t,
                pb::GetPortfolioSummaryRequest {
                    parent: parent.into(),
                    period: period as i32,
                    programme: programme.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner())
    }
}

/// A whole SMART aim.
fn aim() -> pb::Aim {
    pb::Aim {
        statement: "Reduce length of stay for frail patients on Cedar Ward".into(),
        measure: "Mean length of stay".into(),
        metric: "sites/BAS/metrics/los-frailty".into(),
        baseline: Some(9.5),
        target: Some(7.0),
        unit: "days".into(),
        target_date: day(ymd(2027, 12, 31)),
    }
}

fn with_aim(title: &str) -> pb::Project {
    pb::Project {
        title: title.into(),
        aim: Some(aim()),
        ..Default::default()
    }
}

fn outcome() -> pb::Outcome {
    pb::Outcome {
        summary: "Length of stay fell from 9.5 to 7.2 days, sustained for 12 weeks".into(),
        benefits: vec![
            pb::Benefit {
                kind: pb::BenefitKind::BedDaysSaved as i32,
                value: 1_150.0,
                description: "per year, from the SPC shift".into(),
                ..Default::default()
            },
            pb::Benefit {
                kind: pb::BenefitKind::Other as i32,
                value: 12.0,
                unit: "minutes per discharge".into(),
                ..Default::default()
            },
        ],
    }
}

#[tokio::test]
async fn wards_are_added_and_read_within_the_callers_sites_and_page() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    for w in ["ash", "beech", "cedar", "elm", "oak"] {
        api.ward(&bas, "BAS", w).await.unwrap();
    }
    assert_eq!(
        code(api.ward(&bas, "SOU", "ash").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(api.ward(&viewer, "BAS", "fir").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(api.ward(&bas, "BAS", "ash").await),
        Code::AlreadyExists
    );
    let err = api.ward(&trust, "XYZ", "ash").await.unwrap_err();
    assert_eq!(fields(&err), ["parent"]);
    api.ward(&trust, "SOU", "willow").await.unwrap();

    // Pages of two: every ward once, in order, and the token is bound to its parent.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let resp = api
            .c
            .list_wards(authed(
                &viewer,
                pb::ListWardsRequest {
                    parent: "sites/-".into(),
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(resp.wards.into_iter().map(|w| w.name));
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
        let other = api
            .c
            .list_wards(authed(
                &viewer,
                pb::ListWardsRequest {
                    parent: "sites/BAS".into(),
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(fields(&other), ["page_token"]);
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = ["ash", "beech", "cedar", "elm", "oak"]
        .iter()
        .map(|w| format!("sites/BAS/wards/{w}"))
        .collect();
    assert_eq!(seen, expected, "a BAS caller sees only BAS wards");
    let get = |name: &str| pb::GetWardRequest { name: name.into() };
    assert_eq!(
        code(
            api.c
                .get_ward(authed(&viewer, get("sites/SOU/wards/willow")))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            api.c
                .get_ward(authed(&viewer, get("sites/BAS/wards/nope")))
                .await
        ),
        Code::NotFound
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn ideas_move_through_triage_and_every_other_move_is_refused() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let team = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let nurse = suite.token("bas-nurse", &["contributor"], &["BAS"]);
    api.ward(&team, "BAS", "cedar").await.unwrap();

    // A contributor submits; only the improvement team triages.
    let first = api
        .c
        .create_idea(authed(
            &nurse,
            pb::CreateIdeaRequest {
                parent: "sites/BAS".into(),
                idea_id: "discharge-letters".into(),
                idea: Some(pb::Idea {
                    title: "Discharge letters before noon".into(),
                    description: "Letters wait for the afternoon round".into(),
                    ward: "sites/BAS/wards/cedar".into(),
                    submitter: "A. Nurse".into(),
                    submitter_staff: "sites/BAS/staff/10000001".into(),
                    theme: "Patient flow".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .idea
        .unwrap();
    assert_eq!(first.state, pb::IdeaState::Submitted as i32);
    assert_eq!(
        code(api.review(&nurse, &first.name).await),
        Code::PermissionDenied
    );

    // submitted → accepted directly is refused; submitted → under review → accepted.
    assert_eq!(
        code(api.accept(&team, &first.name, "").await),
        Code::FailedPrecondition
    );
    let reviewed = api.review(&team, &first.name).await.unwrap();
    assert_eq!(reviewed.state, pb::IdeaState::UnderReview as i32);
    assert_eq!(
        code(api.review(&team, &first.name).await),
        Code::FailedPrecondition
    );
    let rid = uuid::Uuid::new_v4().to_string();
    let accepted = api.accept(&team, &first.name, &rid).await.unwrap();
    let again = api.accept(&team, &first.name, &rid).await.unwrap();
    assert_eq!(accepted, again, "a retried accept answers the same");
    let idea = accepted.idea.unwrap();
    let project = accepted.project.unwrap();
    assert_eq!(idea.state, pb::IdeaState::Accepted as i32);
    assert_eq!(idea.project, project.name);
    assert_eq!(project.idea, idea.name);
    assert!(project.name.starts_with("sites/BAS/projects/"));
    assert_eq!(project.state, pb::ProjectState::Scoping as i32);
    assert_eq!(project.title, "Discharge letters before noon");
    assert_eq!(project.wards, ["sites/BAS/wards/cedar"]);
    assert_eq!(
        count(&suite, "SELECT count(*) FROM projects.project").await,
        1
    );
    for m in [
        api.decline(&team, &idea.name, "no").await.map(|_| ()),
        api.merge(&team, &idea.name, &project.name)
            .await
            .map(|_| ()),
        api.reopen(&team, &idea.name, "why").await.map(|_| ()),
        api.review(&team, &idea.name).await.map(|_| ()),
    ] {
        assert_eq!(
            code(m),
            Code::FailedPrecondition,
            "an accepted idea stays accepted"
        );
    }

    // Declined needs a reason; it is left only by ReopenIdea, with a reason.
    let second = api
        .idea(&nurse, "BAS", "Ward-based pharmacist")
        .await
        .unwrap();
    let err = api.decline(&team, &second.name, "  ").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    let declined = api
        .decline(&team, &second.name, "Covered by the pharmacy review")
        .await
        .unwrap();
    assert_eq!(declined.state, pb::IdeaState::Declined as i32);
    assert_eq!(declined.decline_reason, "Covered by the pharmacy review");
    for m in [
        api.review(&team, &second.name).await,
        api.accept(&team, &second.name, "")
            .await
            .map(|r| r.idea.unwrap()),
        api.merge(&team, &second.name, &first.name).await,
        api.decline(&team, &second.name, "again").await,
    ] {
        assert_eq!(
            code(m),
            Code::FailedPrecondition,
            "a declined idea is reopened first"
        );
    }
    assert_eq!(
        fields(&api.reopen(&team, &second.name, "").await.unwrap_err()),
        ["reason"]
    );
    let reopened = api
        .reopen(
            &team,
            &second.name,
            "The pharmacy review did not cover wards",
        )
        .await
        .unwrap();
    assert_eq!(reopened.state, pb::IdeaState::UnderReview as i32);
    assert_eq!(reopened.decline_reason, "");
    assert_eq!(
        reopened.reopen_reason,
        "The pharmacy review did not cover wards"
    );
    assert_eq!(
        code(api.reopen(&team, &second.name, "again").await),
        Code::FailedPrecondition,
        "only a declined idea reopens"
    );

    // Merged: into another live idea of the site, or a project the site is in.
    let third = api
        .idea(&nurse, "BAS", "Pharmacist on the ward round")
        .await
        .unwrap();
    let merged = api.merge(&team, &third.name, &second.name).await.unwrap();
    assert_eq!(merged.state, pb::IdeaState::Merged as i32);
    assert_eq!(merged.merged_into, second.name);
    let fourth = api.idea(&nurse, "BAS", "Letters template").await.unwrap();
    for into in [
        fourth.name.clone(),
        third.name.clone(),
        "sites/BAS/ideas/no-such".into(),
        "sites/SOU/ideas/x".into(),
        "sites/SOU/projects/x".into(),
        "elsewhere".into(),
    ] {
        let err = api.merge(&team, &fourth.name, &into).await.unwrap_err();
        assert_eq!(fields(&err), ["into"], "{into}");
    }
    let merged = api.merge(&team, &fourth.name, &project.name).await.unwrap();
    assert_eq!(merged.merged_into, project.name);
    assert_eq!(
        code(api.merge(&team, &fourth.name, &project.name).await),
        Code::FailedPrecondition
    );

    // Filters: by state and theme.
    let listed = api
        .c
        .list_ideas(authed(
            &nurse,
            pb::ListIdeasRequest {
                parent: "sites/BAS".into(),
                state: pb::IdeaState::Merged as i32,
                theme: "patient FLOW".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<_> = listed.ideas.into_iter().map(|i| i.name).collect();
    names.sort();
    let mut expected = vec![third.name.clone(), fourth.name.clone()];
    expected.sort();
    assert_eq!(names, expected);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_runs_from_scoping_to_completion_with_team_measures_pdsa_and_scores() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let team = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let lead = suite.token("bas-lead", &["contributor"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    api.ward(&team, "BAS", "cedar").await.unwrap();
    api.ward(&trust, "SOU", "willow").await.unwrap();

    let p = api
        .project(
            &team,
            "BAS",
            "frailty-los",
            pb::Project {
                participating_sites: vec!["sites/SOU".into()],
                wards: vec![
                    "sites/BAS/wards/cedar".into(),
                    "sites/SOU/wards/willow".into(),
                ],
                cohort: "trust/cohorts/spring-27".into(),
                patient_involvement: pb::PatientInvolvement::CoDesigning as i32,
                ..with_aim("Frailty length of stay")
            },
        )
        .await
        .unwrap();
    assert_eq!(p.name, "sites/BAS/projects/frailty-los");
    assert_eq!(p.state, pb::ProjectState::Scoping as i32);
    assert_eq!(p.aim.as_ref().unwrap().baseline, Some(9.5));
    assert!(!p.coproduced);

    // A project that never started cannot complete.
    assert_eq!(
        code(api.complete(&team, &p.name, outcome()).await),
        Code::FailedPrecondition
    );
    // A project without an aim cannot start.
    let aimless = api
        .project(
            &team,
            "BAS",
            "aimless",
            pb::Project {
                title: "No aim yet".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = api.start(&team, &aimless.name).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_details_error_info().unwrap().reason, "AIM_REQUIRED");
    // A contributor works on the project but does not run its lifecycle.
    assert_eq!(
        code(api.start(&lead, &p.name).await),
        Code::PermissionDenied
    );
    let started = api.start(&team, &p.name).await.unwrap();
    assert_eq!(started.state, pb::ProjectState::InProgress as i32);
    assert_eq!(started.start_date, day(today()));
    assert_eq!(
        code(api.start(&team, &p.name).await),
        Code::FailedPrecondition
    );

    // Update: masked fields only, the etag guards, a ward must be of the project's sites.
    let mut change = pb::Project {
        name: p.name.clone(),
        title: "Frailty length of stay (phase 1)".into(),
        etag: started.etag.clone(),
        ..Default::default()
    };
    let updated = api
        .c
        .update_project(authed(
            &lead,
            pb::UpdateProjectRequest {
                project: Some(change.clone()),
                update_mask: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(updated.title, "Frailty length of stay (phase 1)");
    assert_eq!(updated.wards.len(), 2, "unmasked fields are kept");
    let stale = api
        .c
        .update_project(authed(
            &lead,
            pb::UpdateProjectRequest {
                project: Some(change.clone()),
                update_mask: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    change.etag = String::new();
    change.participating_sites = Vec::new();
    let err = api
        .c
        .update_project(authed(
            &lead,
            pb::UpdateProjectRequest {
                project: Some(change),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["participating_sites".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["project.wards[1]"],
        "dropping SOU would orphan its ward"
    );

    // IHI progress scores: on the scale, and every one kept.
    let score = |s: f64, rid: &str| pb::RecordProgressScoreRequest {
        parent: p.name.clone(),
        progress_score: Some(pb::ProgressScore {
            score: s,
            assessed_date: day(today()),
            note: format!("scored {s}"),
            ..Default::default()
        }),
        request_id: rid.into(),
    };
    for bad in [0.0, 5.5, 2.3] {
        let err = api
            .c
            .record_progress_score(authed(&lead, score(bad, "")))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["progress_score.score"], "{bad}");
    }
    for s in [1.5, 2.0, 3.5] {
        api.c
            .record_progress_score(authed(&lead, score(s, "")))
            .await
            .unwrap();
    }
    let history = api
        .c
        .list_progress_scores(authed(
            &lead,
            pb::ListProgressScoresRequest {
                parent: p.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .progress_scores;
    let scores: Vec<(String, f64)> = history.iter().map(|h| (h.name.clone(), h.score)).collect();
    assert_eq!(
        scores,
        [
            (format!("{}/progressScores/3", p.name), 3.5),
            (format!("{}/progressScores/2", p.name), 2.0),
            (format!("{}/progressScores/1", p.name), 1.5)
        ]
    );
    assert_eq!(history[0].recorded_by, "bas-lead");
    assert_eq!(api.get(&lead, &p.name).await.unwrap().progress_score, 3.5);

    // The team: staff in roles, and patient partners who are not staff.
    let staff = |n: &str, role: pb::TeamRole| pb::TeamMember {
        staff: format!("sites/BAS/staff/{n}"),
        role: role as i32,
        ..Default::default()
    };
    api.member(&lead, &p.name, staff("10000001", pb::TeamRole::Lead))
        .await
        .unwrap();
    api.member(&lead, &p.name, staff("10000002", pb::TeamRole::Sponsor))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.member(&lead, &p.name, staff("10000001", pb::TeamRole::Member))
                .await
        ),
        Code::AlreadyExists
    );
    let partner = pb::TeamMember {
        display_name: "Pat Jones".into(),
        role: pb::TeamRole::PatientPartner as i32,
        affiliation: "Patient panel".into(),
        ..Default::default()
    };
    let err = api
        .member(
            &lead,
            &p.name,
            pb::TeamMember {
                staff: "sites/BAS/staff/10000003".into(),
                ..partner.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["team_member.staff"]);
    let pat = api.member(&lead, &p.name, partner).await.unwrap();
    assert!(pat.staff.is_empty());
    let coproduced = api.get(&lead, &p.name).await.unwrap();
    assert!(coproduced.coproduced);
    assert_eq!(coproduced.patient_partner_count, 1);
    let members = api
        .c
        .list_team_members(authed(
            &lead,
            pb::ListTeamMembersRequest {
                parent: p.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .team_members;
    let roles: Vec<i32> = members.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            pb::TeamRole::Lead as i32,
            pb::TeamRole::Sponsor as i32,
            pb::TeamRole::PatientPartner as i32
        ]
    );
    api.c
        .delete_team_member(authed(
            &lead,
            pb::DeleteTeamMemberRequest {
                name: members[1].name.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.c
                .delete_team_member(authed(
                    &lead,
                    pb::DeleteTeamMemberRequest {
                        name: members[1].name.clone()
                    }
                ))
                .await
        ),
        Code::NotFound
    );

    // Measures: outcome, process, balancing; a metric once.
    for (metric, kind) in [
        ("trust/metrics/falls", pb::MeasureKind::Balancing),
        ("sites/BAS/metrics/los-frailty", pb::MeasureKind::Outcome),
        (
            "sites/BAS/metrics/letters-by-noon",
            pb::MeasureKind::Process,
        ),
    ] {
        api.c
            .create_measure(authed(
                &lead,
                pb::CreateMeasureRequest {
                    parent: p.name.clone(),
                    measure: Some(pb::Measure {
                        metric: metric.into(),
                        kind: kind as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    let dup = api
        .c
        .create_measure(authed(
            &lead,
            pb::CreateMeasureRequest {
                parent: p.name.clone(),
                measure: Some(pb::Measure {
                    metric: "trust/metrics/falls".into(),
                    kind: pb::MeasureKind::Process as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    assert_eq!(code(dup), Code::AlreadyExists);
    let bad = api
        .c
        .create_measure(authed(
            &lead,
            pb::CreateMeasureRequest {
                parent: p.name.clone(),
                measure: Some(pb::Measure {
                    metric: "metrics/falls".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["measure.metric", "measure.kind"]);
    let measures = api
        .c
        .list_measures(authed(
            &lead,
            pb::ListMeasuresRequest {
                parent: p.name.clone(),
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = measures.measures.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            pb::MeasureKind::Outcome as i32,
            pb::MeasureKind::Process as i32
        ]
    );
    let rest = api
        .c
        .list_measures(authed(
            &lead,
            pb::ListMeasuresRequest {
                parent: p.name.clone(),
                page_size: 2,
                page_token: measures.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.measures[0].metric, "trust/metrics/falls");
    assert!(rest.next_page_token.is_empty());

    // PDSA cycles: numbered in order; a decided cycle no longer changes.
    let c1 = api
        .pdsa(&lead, &p.name, "Discharge checklist")
        .await
        .unwrap();
    let c2 = api
        .pdsa(&lead, &p.name, "Checklist, revised")
        .await
        .unwrap();
    assert_eq!((c1.number, c2.number), (1, 2));
    assert_eq!(c2.name, format!("{}/pdsaCycles/2", p.name));
    let studied = api
        .c
        .update_pdsa_cycle(authed(
            &lead,
            pb::UpdatePdsaCycleRequest {
                pdsa_cycle: Some(pb::PdsaCycle {
                    name: c1.name.clone(),
                    do_notes: "Used on 40 discharges".into(),
                    study_notes: "Waits fell by a quarter, less than predicted".into(),
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .pdsa_cycle
        .unwrap();
    assert_eq!(studied.do_notes, "Used on 40 discharges");
    assert_eq!(studied.objective, c1.objective, "unmasked fields are kept");
    let decide = |name: &str, d: pb::PdsaDecision| pb::DecidePdsaCycleRequest {
        name: name.into(),
        decision: d as i32,
        act_notes: "Adapt: add the pharmacist".into(),
        ..Default::default()
    };
    let err = api
        .c
        .decide_pdsa_cycle(authed(
            &lead,
            decide(&c1.name, pb::PdsaDecision::Unspecified),
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["decision"]);
    let decided = api
        .c
        .decide_pdsa_cycle(authed(&lead, decide(&c1.name, pb::PdsaDecision::Adapt)))
        .await
        .unwrap()
        .into_inner()
        .pdsa_cycle
        .unwrap();
    assert_eq!(decided.decision, pb::PdsaDecision::Adapt as i32);
    assert_eq!(decided.end_date, day(today()));
    assert_eq!(
        code(
            api.c
                .decide_pdsa_cycle(authed(&lead, decide(&c1.name, pb::PdsaDecision::Adopt)))
                .await
        ),
        Code::FailedPrecondition
    );
    let late = api
        .c
        .update_pdsa_cycle(authed(
            &lead,
            pb::UpdatePdsaCycleRequest {
                pdsa_cycle: Some(pb::PdsaCycle {
                    name: c1.name.clone(),
                    do_notes: "more".into(),
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await;
    assert_eq!(code(late), Code::FailedPrecondition);
    let cycles = api
        .c
        .list_pdsa_cycles(authed(
            &lead,
            pb::ListPdsaCyclesRequest {
                parent: p.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .pdsa_cycles;
    assert_eq!(cycles.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);

    // Co-production: an engagement activity.
    api.engage(&lead, &p.name).await.unwrap();
    let activities = api
        .c
        .list_engagement_activities(authed(
            &lead,
            pb::ListEngagementActivitiesRequest {
                parent: p.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .engagement_activities;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].participants, 8);

    // Completion records the outcome and typed benefits; then nothing changes.
    let err = api
        .complete(
            &team,
            &p.name,
            pb::Outcome {
                summary: String::new(),
                benefits: vec![pb::Benefit {
                    kind: pb::BenefitKind::Other as i32,
                    value: -1.0,
                    ..Default::default()
                }],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "outcome.summary",
            "outcome.benefits[0].value",
            "outcome.benefits[0].unit"
        ]
    );
    let done = api.complete(&team, &p.name, outcome()).await.unwrap();
    assert_eq!(done.state, pb::ProjectState::Completed as i32);
    assert_eq!(done.end_date, day(today()));
    let o = done.outcome.unwrap();
    assert_eq!(o.benefits.len(), 2);
    assert_eq!(o.benefits[0].unit, "bed days");
    assert_eq!(o.benefits[0].value, 1_150.0);
    assert_eq!(o.benefits[1].unit, "minutes per discharge");
    assert_eq!(
        code(api.complete(&team, &p.name, outcome()).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.stop(&team, &p.name, "late").await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.pdsa(&lead, &p.name, "After the end").await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.engage(&lead, &p.name).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            api.c
                .record_progress_score(authed(&lead, score(4.0, "")))
                .await
        ),
        Code::FailedPrecondition
    );
    let closed = api
        .c
        .update_project(authed(
            &lead,
            pb::UpdateProjectRequest {
                project: Some(pb::Project {
                    name: p.name.clone(),
                    title: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: None,
            },
        ))
        .await;
    assert_eq!(code(closed), Code::FailedPrecondition);

    // Stopping: from scoping or in progress, with a reason.
    assert_eq!(
        fields(&api.stop(&team, &aimless.name, "").await.unwrap_err()),
        ["reason"]
    );
    let stopped = api
        .stop(&team, &aimless.name, "Superseded by the frailty programme")
        .await
        .unwrap();
    assert_eq!(stopped.state, pb::ProjectState::Stopped as i32);
    assert_eq!(stopped.stop_reason, "Superseded by the frailty programme");
    assert_eq!(
        code(api.start(&team, &aimless.name).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.stop(&team, &aimless.name, "again").await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.complete(&team, &aimless.name, outcome()).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_spanning_sites_is_read_from_any_of_them_and_changed_only_by_its_lead() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let sou = suite.token("sou-team", &["improvement_team"], &["SOU"]);
    let brm = suite.token("brm-team", &["improvement_team"], &["BRM"]);
    let trust = suite.token("qi-office", &["viewer"], &["*"]);
    let shared = api
        .project(
            &bas,
            "BAS",
            "sepsis",
            pb::Project {
                participating_sites: vec!["sites/SOU".into()],
                ..with_aim("Sepsis screening")
            },
        )
        .await
        .unwrap();
    let own = api
        .project(&bas, "BAS", "bas-only", with_aim("BAS only"))
        .await
        .unwrap();
    let sou_own = api
        .project(&sou, "SOU", "sou-only", with_aim("SOU only"))
        .await
        .unwrap();
    api.pdsa(&bas, &shared.name, "Screening tool")
        .await
        .unwrap();
    assert_eq!(
        code(api.project(&sou, "BAS", "x", with_aim("x")).await),
        Code::PermissionDenied
    );

    // Lists under sites/- and under a site include projects the site takes part in.
    assert_eq!(
        api.list(&sou, "sites/-").await.unwrap(),
        [shared.name.clone(), sou_own.name.clone()]
    );
    assert_eq!(
        api.list(&sou, "sites/SOU").await.unwrap(),
        [shared.name.clone(), sou_own.name.clone()]
    );
    assert_eq!(
        api.list(&brm, "sites/-").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        code(api.list(&sou, "sites/BAS").await),
        Code::PermissionDenied
    );
    assert_eq!(code(api.list(&sou, "trust").await), Code::InvalidArgument);
    assert_eq!(api.list(&trust, "sites/-").await.unwrap().len(), 3);

    // A participating caller reads it by `sites/-/projects/{id}`, and what is under it.
    let any = "sites/-/projects/sepsis";
    assert_eq!(api.get(&sou, any).await.unwrap().name, shared.name);
    let cycles = api
        .c
        .list_pdsa_cycles(authed(
            &sou,
            pb::ListPdsaCyclesRequest {
                parent: any.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .pdsa_cycles;
    assert_eq!(cycles[0].name, format!("{}/pdsaCycles/1", shared.name));
    let cycle = api
        .c
        .get_pdsa_cycle(authed(
            &sou,
            pb::GetPdsaCycleRequest {
                name: format!("{any}/pdsaCycles/1"),
            },
        ))
        .await
        .unwrap();
    assert_eq!(cycle.into_inner().pdsa_cycle.unwrap().number, 1);
    // The gateway authorizes the name's site: the lead site's name is refused for SOU
    // before the service sees it, whether or not SOU takes part.
    assert_eq!(
        code(api.get(&sou, &shared.name).await),
        Code::PermissionDenied
    );
    assert_eq!(code(api.get(&sou, &own.name).await), Code::PermissionDenied);
    // Sites not in the project find nothing; the wrong site in a name finds nothing.
    assert_eq!(code(api.get(&brm, any).await), Code::NotFound);
    assert_eq!(
        code(api.get(&sou, "sites/-/projects/bas-only").await),
        Code::NotFound
    );
    assert_eq!(
        code(api.get(&trust, "sites/SOU/projects/sepsis").await),
        Code::NotFound
    );
    assert_eq!(api.get(&trust, any).await.unwrap().name, shared.name);

    // Only the lead site changes it.
    assert_eq!(
        code(api.start(&sou, &shared.name).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(api.start(&sou, "sites/SOU/projects/sepsis").await),
        Code::NotFound
    );
    assert_eq!(fields(&api.start(&sou, any).await.unwrap_err()), ["name"]);
    assert_eq!(
        code(api.pdsa(&sou, &shared.name, "x").await),
        Code::PermissionDenied
    );
    assert_eq!(
        fields(&api.pdsa(&sou, any, "x").await.unwrap_err()),
        ["parent"]
    );
    assert_eq!(
        api.start(&bas, &shared.name).await.unwrap().state,
        pb::ProjectState::InProgress as i32
    );
    assert_eq!(
        count(&suite, "SELECT count(*) FROM projects.pdsa_cycle").await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_names_each_field_and_stores_nothing() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    api.ward(&bas, "BAS", "cedar").await.unwrap();
    api.ward(&trust, "SOU", "willow").await.unwrap();
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
    let err = api.project(&bas, "BAS", "Bad Id", p).await.unwrap_err();
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
    // References that parse but do not exist are refused in the transaction, by field.
    let unknown = pb::Project {
        wards: vec![
            "sites/BAS/wards/cedar".into(),
            "sites/BAS/wards/nowhere".into(),
        ],
        programme: "trust/programmes/nope".into(),
        ..with_aim("Unknown references")
    };
    let err = api.project(&bas, "BAS", "refs", unknown).await.unwrap_err();
    assert_eq!(fields(&err), ["project.wards[1]", "project.programme"]);

    // Ideas: a ward of another site, or unknown.
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
        let err = api
            .c
            .create_idea(authed(&bas, idea(ward)))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["idea.ward"], "{ward}");
    }
    let err = api
        .c
        .create_idea(authed(
            &bas,
            pb::CreateIdeaRequest {
                parent: "sites/BAS".into(),
                idea: Some(pb::Idea::default()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["idea.title", "idea.submitter"]);
    let err = api
        .c
        .create_idea(authed(
            &bas,
            pb::CreateIdeaRequest {
                parent: "sites/BAS".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["idea"]);

    // Engagement and PDSA input under a real project.
    let real = api
        .project(&bas, "BAS", "real", with_aim("Real"))
        .await
        .unwrap();
    let err = api
        .c
        .create_engagement_activity(authed(
            &bas,
            pb::CreateEngagementActivityRequest {
                parent: real.name.clone(),
                engagement_activity: Some(pb::EngagementActivity {
                    activity_date: day(today() + chrono::Days::new(30)),
                    participants: 0,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
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
    let err = api
        .c
        .create_pdsa_cycle(authed(
            &bas,
            pb::CreatePdsaCycleRequest {
                parent: real.name.clone(),
                pdsa_cycle: Some(pb::PdsaCycle::default()),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "pdsa_cycle.change_idea",
            "pdsa_cycle.objective",
            "pdsa_cycle.prediction"
        ]
    );

    for table in [
        "idea",
        "pdsa_cycle",
        "engagement_activity",
        "benefit",
        "team_member",
        "progress_score",
    ] {
        assert_eq!(
            count(&suite, &format!("SELECT count(*) FROM projects.{table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(&suite, "SELECT count(*) FROM projects.project").await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn creates_with_a_request_id_happen_once() {
    let suite = TestSuite::start().await;
    let team = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let client = Client::new(suite.channel.clone());
    let rid = uuid::Uuid::new_v4().to_string();
    let req = |title: &str| pb::CreateProjectRequest {
        parent: "sites/BAS".into(),
        project_id: String::new(),
        project: Some(with_aim(title)),
        request_id: rid.clone(),
    };
    // Eight concurrent sends and one after: one project, the same answer to all.
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let mut c = client.clone();
            let r = authed(&team, req("Falls"));
            tokio::spawn(async move { c.create_project(r).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sends {
        answers.push(s.await.unwrap().unwrap());
    }
    let mut c = client.clone();
    let again = c
        .create_project(authed(&team, req("Falls")))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.iter().all(|a| *a == again));
    assert_eq!(
        count(&suite, "SELECT count(*) FROM projects.project").await,
        1
    );
    let err = c
        .create_project(authed(&team, req("Not falls")))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["request_id"]);

    // Numbered children too: a retried PDSA cycle is not a second cycle.
    let parent = again.project.unwrap().name;
    let cycle = pb::CreatePdsaCycleRequest {
        parent: parent.clone(),
        pdsa_cycle: Some(pb::PdsaCycle {
            change_idea: "Hourly rounding".into(),
            objective: "o".into(),
            prediction: "p".into(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let one = c
        .create_pdsa_cycle(authed(&team, cycle.clone()))
        .await
        .unwrap()
        .into_inner();
    let two = c
        .create_pdsa_cycle(authed(&team, cycle))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one, two);
    assert_eq!(
        count(&suite, "SELECT count(*) FROM projects.pdsa_cycle").await,
        1
    );
    let idea = pb::CreateIdeaRequest {
        parent: "sites/BAS".into(),
        idea: Some(pb::Idea {
            title: "t".into(),
            submitter: "s".into(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let a = c
        .create_idea(authed(&team, idea.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = c
        .create_idea(authed(&team, idea))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&suite, "SELECT count(*) FROM projects.idea").await, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn idea_and_project_lists_page_through_everything_once() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let team = suite.token("bas-team", &["improvement_team"], &["BAS", "SOU"]);
    let mut made = Vec::new();
    for i in 0..7 {
        let site = if i % 2 == 0 { "BAS" } else { "SOU" };
        made.push(
            api.idea(&team, site, &format!("Idea {i}"))
                .await
                .unwrap()
                .name,
        );
        api.project(&team, site, &format!("p{i}"), with_aim("p"))
            .await
            .unwrap();
    }
    made.reverse(); // newest first
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let resp = api
            .c
            .list_ideas(authed(
                &team,
                pb::ListIdeasRequest {
                    parent: "sites/-".into(),
                    page_size: 3,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(resp.ideas.into_iter().map(|i| i.name));
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!((pages, seen), (3, made));
    let bad = api
        .c
        .list_ideas(authed(
            &team,
            pb::ListIdeasRequest {
                parent: "sites/-".into(),
                page_size: -1,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["page_size"]);

    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let resp = api
            .c
            .list_projects(authed(
                &team,
                pb::ListProjectsRequest {
                    parent: "sites/-".into(),
                    page_size: 4,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        names.extend(resp.projects.into_iter().map(|p| p.name));
        if resp.next_page_token.is_empty() {
            break;
        }
        let other = api
            .c
            .list_projects(authed(
                &team,
                pb::ListProjectsRequest {
                    parent: "sites/-".into(),
                    state: pb::ProjectState::Completed as i32,
                    page_size: 4,
                    page_token: resp.next_page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(fields(&other), ["page_token"]);
        token = resp.next_page_token;
    }
    assert_eq!(names.len(), 7);
    names.dedup();
    assert_eq!(names.len(), 7);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn programmes_trust_wide_are_read_by_all_and_changed_only_trust_wide() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let sou_viewer = suite.token("sou-viewer", &["viewer"], &["SOU"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    use pb::ProgrammeKind as K;
    assert_eq!(
        code(
            api.programme(
                &bas,
                "trust",
                "qsir-spring",
                K::TrainingWrapped,
                "trust/cohorts/spring-27",
                ""
            )
            .await
        ),
        Code::PermissionDenied
    );
    let wrapped = api
        .programme(
            &trust,
            "trust",
            "qsir-spring",
            K::TrainingWrapped,
            "trust/cohorts/spring-27",
            "",
        )
        .await
        .unwrap();
    assert_eq!(wrapped.name, "trust/programmes/qsir-spring");
    let err = api
        .programme(&trust, "trust", "no-cohort", K::TrainingWrapped, "", "")
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["programme.cohort"]);
    let flow = api
        .programme(&bas, "sites/BAS", "flow", K::Thematic, "", "Patient flow")
        .await
        .unwrap();
    assert_eq!(
        code(
            api.programme(&bas, "sites/SOU", "x", K::Thematic, "", "x")
                .await
        ),
        Code::PermissionDenied
    );

    // Everyone with the role reads trust-wide programmes; site ones stay with their site.
    let get = |name: &str| pb::GetProgrammeRequest { name: name.into() };
    assert!(
        api.c
            .get_programme(authed(&sou_viewer, get(&wrapped.name)))
            .await
            .is_ok()
    );
    assert_eq!(
        code(
            api.c
                .get_programme(authed(&sou_viewer, get(&flow.name)))
                .await
        ),
        Code::PermissionDenied
    );
    let listed = api
        .c
        .list_programmes(authed(
            &sou_viewer,
            pb::ListProgrammesRequest {
                parent: "trust".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .programmes;
    assert_eq!(listed.len(), 1);
    let listed = api
        .c
        .list_programmes(authed(
            &bas,
            pb::ListProgrammesRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .programmes;
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [flow.name.as_str()]
    );

    // A project joins a trust-wide programme (taking its cohort) or its lead site's.
    let joined = api
        .project(
            &bas,
            "BAS",
            "wrapped",
            pb::Project {
                programme: wrapped.name.clone(),
                ..with_aim("Wrapped")
            },
        )
        .await
        .unwrap();
    assert_eq!(joined.programme, wrapped.name);
    assert_eq!(joined.cohort, "trust/cohorts/spring-27");
    let sou_flow = api
        .programme(&trust, "sites/SOU", "flow", K::Thematic, "", "Flow")
        .await
        .unwrap();
    let err = api
        .project(
            &bas,
            "BAS",
            "elsewhere",
            pb::Project {
                programme: sou_flow.name,
                ..with_aim("x")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["project.programme"]);
    let filtered = api
        .c
        .list_projects(authed(
            &bas,
            pb::ListProjectsRequest {
                parent: "sites/BAS".into(),
                programme: wrapped.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(filtered.len(), 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_programme_plans_waves_enrols_wards_tracks_stages_and_shows_progress() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let bas_viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    for (site, ward) in [
        ("BAS", "ash"),
        ("BAS", "beech"),
        ("BAS", "cedar"),
        ("SOU", "willow"),
        ("BRM", "oak"),
    ] {
        api.ward(&trust, site, ward).await.unwrap();
    }
    let programme = api
        .programme(
            &trust,
            "trust",
            "ward-accreditation",
            pb::ProgrammeKind::WardProgramme,
            "",
            "",
        )
        .await
        .unwrap();
    let thematic = api
        .programme(
            &trust,
            "trust",
            "flow",
            pb::ProgrammeKind::Thematic,
            "",
            "Flow",
        )
        .await
        .unwrap();

    // Waves: two wards every three months, from two quarters ago until two years on.
    let first = today().with_day(1).unwrap() - Months::new(6);
    let end = first + Months::new(30);
    let plan = |size: i32| pb::WavePlan {
        first_wave_date: day(first),
        interval_months: 3,
        wards_per_wave: size,
        end_date: day(end),
        target_wards: 60,
        ..Default::default()
    };
    let plan_req = |name: &str, size: i32| pb::PlanWavesRequest {
        programme: name.into(),
        wave_plan: Some(plan(size)),
        etag: String::new(),
    };
    assert_eq!(
        code(
            api.c
                .plan_waves(authed(&bas, plan_req(&programme.name, 2)))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            api.c
                .plan_waves(authed(&trust, plan_req(&thematic.name, 2)))
                .await
        ),
        Code::FailedPrecondition
    );
    let bad = api
        .c
        .plan_waves(authed(
            &trust,
            pb::PlanWavesRequest {
                programme: programme.name.clone(),
                wave_plan: Some(pb::WavePlan {
                    interval_months: 0,
                    ..plan(2)
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["wave_plan.interval_months"]);
    let planned = api
        .c
        .plan_waves(authed(&trust, plan_req(&programme.name, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(planned.waves.len(), 11, "every three months for 30 months");
    assert_eq!(planned.waves[1].start_date, day(first + Months::new(3)));
    assert_eq!(
        planned.waves[10].name,
        format!("{}/waves/11", programme.name)
    );
    assert_eq!(
        planned
            .programme
            .unwrap()
            .wave_plan
            .unwrap()
            .reassessment_months,
        6
    );
    let waves = api
        .c
        .list_waves(authed(
            &bas_viewer,
            pb::ListWavesRequest {
                parent: programme.name.clone(),
                page_size: 4,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waves.waves.len(), 4);
    assert!(!waves.next_page_token.is_empty());

    // Enrolment: into a planned wave, up to its size; a ward once.
    let enrol = |ward: &str, wave: i32| pb::CreateWardEnrolmentRequest {
        parent: programme.name.clone(),
        ward_enrolment: Some(pb::WardEnrolment {
            ward: ward.into(),
            wave,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let ash = api
        .c
        .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/ash", 1)))
        .await
        .unwrap()
        .into_inner()
        .ward_enrolment
        .unwrap();
    assert_eq!(
        ash.name,
        format!("{}/wardEnrolments/bas-ash", programme.name)
    );
    assert_eq!(ash.stage, pb::WardStage::Diagnostic as i32);
    assert_eq!(ash.diagnostic_date, day(first));
    api.c
        .create_ward_enrolment(authed(&trust, enrol("sites/SOU/wards/willow", 1)))
        .await
        .unwrap();
    let full = api
        .c
        .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/beech", 1)))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::FailedPrecondition);
    assert_eq!(full.get_details_error_info().unwrap().reason, "WAVE_FULL");
    api.c
        .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/beech", 2)))
        .await
        .unwrap();
    api.c
        .create_ward_enrolment(authed(&trust, enrol("sites/BRM/wards/oak", 2)))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.c
                .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/ash", 3)))
                .await
        ),
        Code::AlreadyExists
    );
    assert_eq!(
        fields(
            &api.c
                .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/ash", 40)))
                .await
                .unwrap_err()
        ),
        ["ward_enrolment.wave"]
    );
    assert_eq!(
        fields(
            &api.c
                .create_ward_enrolment(authed(&trust, enrol("sites/BAS/wards/nowhere", 3)))
                .await
                .unwrap_err()
        ),
        ["ward_enrolment.ward"]
    );
    assert_eq!(
        code(
            api.c
                .create_ward_enrolment(authed(&bas, enrol("sites/BAS/wards/cedar", 3)))
                .await
        ),
        Code::PermissionDenied
    );
    // The plan is fixed once wards join.
    assert_eq!(
        code(
            api.c
                .plan_waves(authed(&trust, plan_req(&programme.name, 5)))
                .await
        ),
        Code::FailedPrecondition
    );

    // A site's ward programme takes its own wards only.
    let local = api
        .programme(
            &bas,
            "sites/BAS",
            "bas-wards",
            pb::ProgrammeKind::WardProgramme,
            "",
            "",
        )
        .await
        .unwrap();
    api.c
        .plan_waves(authed(&bas, plan_req(&local.name, 5)))
        .await
        .unwrap();
    let err = api
        .c
        .create_ward_enrolment(authed(
            &bas,
            pb::CreateWardEnrolmentRequest {
                parent: local.name.clone(),
                ward_enrolment: Some(pb::WardEnrolment {
                    ward: "sites/SOU/wards/willow".into(),
                    wave: 1,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Stages: diagnostic → assessment → accredited (and re-rated); withdrawn; the rest refused.
    let accredit =
        |name: &str, rating: pb::AccreditationRating, met: i32| pb::AccreditWardRequest {
            name: name.into(),
            rating: rating as i32,
            standards_met: met,
            standards_assessed: 15,
            ..Default::default()
        };
    assert_eq!(
        code(
            api.c
                .accredit_ward(authed(
                    &trust,
                    accredit(&ash.name, pb::AccreditationRating::Gold, 15)
                ))
                .await
        ),
        Code::FailedPrecondition
    );
    let assessing = api
        .c
        .start_ward_assessment(authed(
            &trust,
            pb::StartWardAssessmentRequest {
                name: ash.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ward_enrolment
        .unwrap();
    assert_eq!(assessing.stage, pb::WardStage::Assessment as i32);
    assert_eq!(
        code(
            api.c
                .start_ward_assessment(authed(
                    &trust,
                    pb::StartWardAssessmentRequest {
                        name: ash.name.clone(),
                        ..Default::default()
                    }
                ))
                .await
        ),
        Code::FailedPrecondition
    );
    let err = api
        .c
        .accredit_ward(authed(
            &trust,
            accredit(&ash.name, pb::AccreditationRating::Unspecified, 16),
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["rating", "standards_met"]);
    let silver = api
        .c
        .accredit_ward(authed(
            &trust,
            accredit(&ash.name, pb::AccreditationRating::Silver, 12),
        ))
        .await
        .unwrap()
        .into_inner()
        .ward_enrolment
        .unwrap();
    assert_eq!(
        (silver.stage, silver.rating),
        (
            pb::WardStage::Accredited as i32,
            pb::AccreditationRating::Silver as i32
        )
    );
    assert_eq!(silver.reassessment_due_date, day(today() + Months::new(6)));
    let gold = api
        .c
        .accredit_ward(authed(
            &trust,
            accredit(&ash.name, pb::AccreditationRating::Gold, 14),
        ))
        .await
        .unwrap()
        .into_inner()
        .ward_enrolment
        .unwrap();
    assert_eq!(
        gold.rating,
        pb::AccreditationRating::Gold as i32,
        "reassessment re-rates"
    );
    let oak = format!("{}/wardEnrolments/brm-oak", programme.name);
    let withdraw = |reason: &str| pb::WithdrawWardEnrolmentRequest {
        name: oak.clone(),
        reason: reason.into(),
        etag: String::new(),
    };
    assert_eq!(
        fields(
            &api.c
                .withdraw_ward_enrolment(authed(&trust, withdraw("")))
                .await
                .unwrap_err()
        ),
        ["reason"]
    );
    api.c
        .withdraw_ward_enrolment(authed(&trust, withdraw("Ward closed for refurbishment")))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.c
                .withdraw_ward_enrolment(authed(&trust, withdraw("again")))
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            api.c
                .start_ward_assessment(authed(
                    &trust,
                    pb::StartWardAssessmentRequest {
                        name: oak.clone(),
                        ..Default::default()
                    }
                ))
                .await
        ),
        Code::FailedPrecondition
    );

    // Progress: wards by wave and site, waves done and remaining; a site sees its own wards.
    let progress = |t: &str| {
        let mut c = api.c.clone();
        let req = authed(
            t,
            pb::GetWardProgrammeProgressRequest {
                programme: programme.name.clone(),
            },
        );
        async move {
            c.get_ward_programme_progress(req)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let all = progress(&trust).await;
    assert_eq!(all.waves_planned, 11);
    assert_eq!(
        all.waves_started, 3,
        "the waves of two quarters ago, last quarter and this one"
    );
    assert_eq!(all.waves_remaining, 8);
    assert_eq!(all.wards_enrolled, 3);
    assert_eq!(all.wards_to_target, 57);
    let totals = all.totals.unwrap();
    assert_eq!(
        (
            totals.diagnostic,
            totals.accredited,
            totals.gold,
            totals.withdrawn
        ),
        (2, 1, 1, 1)
    );
    let wave1: Vec<(String, i32)> = all.waves[0]
        .sites
        .iter()
        .map(|s| (s.site.clone(), s.counts.as_ref().unwrap().enrolled))
        .collect();
    assert_eq!(
        wave1,
        [("sites/BAS".to_owned(), 1), ("sites/SOU".to_owned(), 1)]
    );
    assert_eq!(
        all.waves[1].wave.as_ref().unwrap().enrolled_count,
        1,
        "withdrawn wards leave the count"
    );
    let mine = progress(&bas_viewer).await;
    assert_eq!(mine.sites, ["sites/BAS"]);
    assert_eq!(mine.wards_enrolled, 2);
    assert!(
        mine.waves
            .iter()
            .flat_map(|w| &w.sites)
            .all(|s| s.site == "sites/BAS")
    );
    let listed = api
        .c
        .list_ward_enrolments(authed(
            &bas_viewer,
            pb::ListWardEnrolmentsRequest {
                parent: programme.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ward_enrolments;
    assert_eq!(
        listed.iter().map(|e| e.ward.as_str()).collect::<Vec<_>>(),
        ["sites/BAS/wards/ash", "sites/BAS/wards/beech"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_portfolio_counts_a_known_data_set_by_site_programme_and_period() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let bas_viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let programme = api
        .programme(
            &trust,
            "trust",
            "qsir-spring",
            pb::ProgrammeKind::TrainingWrapped,
            "trust/cohorts/spring-27",
            "",
        )
        .await
        .unwrap();

    // Ideas at BAS: one of each state; at SOU: two submitted.
    let mut ideas = Vec::new();
    for i in 0..5 {
        ideas.push(
            api.idea(&trust, "BAS", &format!("BAS idea {i}"))
                .await
                .unwrap()
                .name,
        );
    }
    for i in 0..2 {
        api.idea(&trust, "SOU", &format!("SOU idea {i}"))
            .await
            .unwrap();
    }
    api.review(&trust, &ideas[1]).await.unwrap();
    api.review(&trust, &ideas[2]).await.unwrap();
    let accepted = api
        .accept(&trust, &ideas[2], "")
        .await
        .unwrap()
        .project
        .unwrap(); // BAS, scoping
    api.decline(&trust, &ideas[3], "Out of scope")
        .await
        .unwrap();
    api.merge(&trust, &ideas[4], &ideas[1]).await.unwrap();

    // Projects: BAS in progress (programme, co-produced), BAS completed (programme), BAS
    // stopped, SOU in progress (co-produced by an engagement activity), SOU scoping.
    let in_programme = |t: &str| pb::Project {
        programme: programme.name.clone(),
        ..with_aim(t)
    };
    let a = api
        .project(&trust, "BAS", "a", in_programme("a"))
        .await
        .unwrap();
    api.start(&trust, &a.name).await.unwrap();
    api.member(
        &trust,
        &a.name,
        pb::TeamMember {
            display_name: "Pat".into(),
            role: pb::TeamRole::PatientPartner as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b = api
        .project(&trust, "BAS", "b", in_programme("b"))
        .await
        .unwrap();
    api.start(&trust, &b.name).await.unwrap();
    api.complete(&trust, &b.name, outcome()).await.unwrap();
    let c = api
        .project(&trust, "BAS", "c", with_aim("c"))
        .await
        .unwrap();
    api.stop(&trust, &c.name, "No capacity").await.unwrap();
    let d = api
        .project(&trust, "SOU", "d", with_aim("d"))
        .await
        .unwrap();
    api.start(&trust, &d.name).await.unwrap();
    api.engage(&trust, &d.name).await.unwrap();
    api.project(&trust, "SOU", "e", with_aim("e"))
        .await
        .unwrap();

    let all = api
        .summary(&trust, "sites/-", pb::PortfolioPeriod::Unspecified, "")
        .await
        .unwrap();
    let t = all.totals.unwrap();
    assert_eq!(
        (
            t.ideas_received,
            t.ideas_submitted,
            t.ideas_under_review,
            t.ideas_accepted,
            t.ideas_declined,
            t.ideas_merged
        ),
        (7, 3, 1, 1, 1, 1)
    );
    assert_eq!(
        (
            t.projects_scoping,
            t.projects_in_progress,
            t.projects_completed,
            t.projects_stopped,
            t.projects_coproduced
        ),
        (2, 2, 1, 1, 2)
    );
    let by_site: Vec<(String, i64, i64)> = all
        .by_site
        .iter()
        .map(|g| {
            let c = g.counts.as_ref().unwrap();
            (
                g.key.clone(),
                c.ideas_received,
                c.projects_scoping
                    + c.projects_in_progress
                    + c.projects_completed
                    + c.projects_stopped,
            )
        })
        .collect();
    assert_eq!(
        by_site,
        [
            ("sites/BAS".to_owned(), 5, 4),
            ("sites/SOU".to_owned(), 2, 2)
        ]
    );
    let by_programme: Vec<(String, i64, i64)> = all
        .by_programme
        .iter()
        .map(|g| {
            let c = g.counts.as_ref().unwrap();
            (g.key.clone(), c.projects_in_progress, c.projects_completed)
        })
        .collect();
    assert_eq!(
        by_programme,
        [(String::new(), 1, 0), (programme.name.clone(), 1, 1)]
    );
    assert!(all.rows.iter().all(|r| r.period_start.is_none()));
    assert!(accepted.name.starts_with("sites/BAS/projects/"));

    // By month and by financial year: every row starts a period (all of today's, give or
    // take the hour around midnight where London's date is not UTC's).
    let monthly = api
        .summary(&trust, "sites/-", pb::PortfolioPeriod::Month, "")
        .await
        .unwrap();
    assert!(!monthly.rows.is_empty());
    assert!(
        monthly
            .rows
            .iter()
            .all(|r| r.period_start.as_ref().is_some_and(|d| d.day == 1))
    );
    let fy = api
        .summary(&trust, "sites/-", pb::PortfolioPeriod::FinancialYear, "")
        .await
        .unwrap();
    assert!(fy.rows.iter().all(|r| {
        r.period_start
            .as_ref()
            .is_some_and(|d| (d.month, d.day) == (4, 1))
    }));
    assert_eq!(
        fy.totals, monthly.totals,
        "grouping in time changes no count"
    );

    // A BAS caller counts BAS only; a programme counts its projects only.
    let bas = api
        .summary(&bas_viewer, "sites/-", pb::PortfolioPeriod::Unspecified, "")
        .await
        .unwrap();
    let t = bas.totals.unwrap();
    assert_eq!(
        (
            t.ideas_received,
            t.projects_in_progress,
            t.projects_coproduced
        ),
        (5, 1, 1)
    );
    assert_eq!(
        code(
            api.summary(
                &bas_viewer,
                "sites/SOU",
                pb::PortfolioPeriod::Unspecified,
                ""
            )
            .await
        ),
        Code::PermissionDenied
    );
    let wrapped = api
        .summary(
            &bas_viewer,
            "sites/BAS",
            pb::PortfolioPeriod::Quarter,
            &programme.name,
        )
        .await
        .unwrap();
    let t = wrapped.totals.unwrap();
    assert_eq!(
        (
            t.ideas_received,
            t.projects_in_progress,
            t.projects_completed,
            t.projects_stopped
        ),
        (0, 1, 1, 0)
    );
    let err = api
        .c
        .get_portfolio_summary(authed(
            &trust,
            pb::GetPortfolioSummaryRequest {
                parent: "sites/-".into(),
                period: 9,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["period"]);
    suite.stop().await.unwrap();
}

/// The portfolio summary over 10,000 ideas and 2,000 projects, through the gateway: loads
/// the data set with set-based SQL, then times 100 calls and prints the distribution.
/// A measurement, not a test of speed (the team's rule: speed is measured by `qi bench`, never asserted): run it with
/// `cargo test --release -p qi-e2e --test e2e portfolio_summary_timing -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
async fn portfolio_summary_timing_over_ten_thousand_ideas_and_two_thousand_projects() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let trust = suite.token("qi-office", &["viewer"], &["*"]);
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO projects.programme (uid, site, id, display_name, kind, theme)
         SELECT gen_random_uuid(), NULL, 'p' || n, 'Programme ' || n, 'thematic', 'theme'
         FROM generate_series(1, 20) n",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO projects.project (uid, lead_site, id, title, state, state_date, start_date,
                                       end_date, stop_reason, outcome_summary, programme_uid,
                                       patient_partner_count, engagement_count, participating_sites)
         SELECT gen_random_uuid(), (ARRAY['BAS','BRM','SOU'])[1 + n % 3], 'proj-' || n, 'Project ' || n,
                s.state, d, CASE WHEN s.state <> 'scoping' THEN d END,
                CASE WHEN s.state IN ('completed','stopped') THEN d END,
                CASE WHEN s.state = 'stopped' THEN 'reason' END,
                CASE WHEN s.state = 'completed' THEN 'outcome' END,
                CASE WHEN n % 4 = 0 THEN (SELECT uid FROM projects.programme WHERE id = 'p' || (1 + n % 20)) END,
                (n % 5 = 0)::int, (n % 7 = 0)::int,
                CASE WHEN n % 6 = 0 THEN ARRAY['SOU'] ELSE '{}' END
         FROM generate_series(1, 2000) n,
              LATERAL (SELECT (ARRAY['scoping','in_progress','completed','stopped'])[1 + n % 4] AS state,
                              date '2021-04-01' + (n % 1800) AS d) s",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO projects.idea (uid, site, id, title, submitter, state, decline_reason,
                                    submit_date, merged_idea_uid)
         SELECT gen_random_uuid(), (ARRAY['BAS','BRM','SOU'])[1 + n % 3], 'idea-' || n, 'Idea ' || n,
                'someone', s.state, CASE WHEN s.state = 'declined' THEN 'no' END,
                date '2021-04-01' + (n % 1800), NULL
         FROM generate_series(1, 10000) n,
              LATERAL (SELECT (ARRAY['submitted','under_review','declined'])[1 + n % 3] AS state) s",
    )
    .execute(&pool)
    .await
    .unwrap();
    for table in ["idea", "project"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "VACUUM ANALYZE projects.{table}"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let mut times = Vec::new();
    for i in 0..120 {
        let period = [
            pb::PortfolioPeriod::Unspecified,
            pb::PortfolioPeriod::Quarter,
            pb::PortfolioPeriod::Month,
        ][i % 3];
        let started = std::time::Instant::now();
        let s = api.summary(&trust, "sites/-", period, "").await.unwrap();
        let took = started.elapsed();
        assert_eq!(s.totals.unwrap().ideas_received, 10_000);
        if i >= 20 {
            times.push(took);
        }
    }
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "portfolio summary (10,000 ideas, 2,000 projects, through the gateway): p50 {:?} p95 {:?} max {:?} over {} calls",
        pct(50),
        pct(95),
        times[times.len() - 1],
        times.len()
    );
    suite.stop().await.unwrap();
}

/// Project ids are unique across the trust, so an id taken at SOU is refused to a BAS
/// caller as well; the refusal names no site, and reads the same as for an id taken at
/// BAS, so it does not tell where the clash is.
#[tokio::test]
async fn a_taken_project_id_is_refused_without_saying_where_it_is_taken() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let sou = suite.token("sou-team", &["improvement_team"], &["SOU"]);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let titled = || pb::Project {
        title: "Fewer falls".into(),
        ..Default::default()
    };
    api.project(&sou, "SOU", "falls-sou", titled())
        .await
        .unwrap();
    api.project(&bas, "BAS", "falls-bas", titled())
        .await
        .unwrap();
    // What a refusal says, with the id asked for blanked out.
    let said = |s: Status, id: &str| {
        assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
        let info = s.get_details_error_info().unwrap();
        let mut said = vec![s.message().to_owned()];
        said.extend(info.metadata.into_values());
        for text in &said {
            assert!(!text.contains("sites/"), "names a place: {text}");
        }
        said.iter().map(|t| t.replace(id, "ID")).collect::<Vec<_>>()
    };
    let elsewhere = api.project(&bas, "BAS", "falls-sou", titled()).await;
    let here = api.project(&bas, "BAS", "falls-bas", titled()).await;
    assert_eq!(
        said(elsewhere.unwrap_err(), "falls-sou"),
        said(here.unwrap_err(), "falls-bas")
    );

    let idea = api.idea(&bas, "BAS", "Fewer falls").await.unwrap();
    api.review(&bas, &idea.name).await.unwrap();
    let accept = |project_id: &str| pb::AcceptIdeaRequest {
        name: idea.name.clone(),
        project_id: project_id.into(),
        ..Default::default()
    };
    let elsewhere = api.c.accept_idea(authed(&bas, accept("falls-sou"))).await;
    let here = api.c.accept_idea(authed(&bas, accept("falls-bas"))).await;
    assert_eq!(
        said(elsewhere.unwrap_err(), "falls-sou"),
        said(here.unwrap_err(), "falls-bas")
    );
    suite.stop().await.unwrap();
}

/// A trust programme with projects at BAS and SOU: a BAS caller listing its projects sees
/// BAS's alone, and a programme filter naming a SOU programme is refused, as its name is.
#[tokio::test]
async fn a_programme_filter_lists_only_the_callers_sites_projects() {
    let suite = TestSuite::start().await;
    let mut api = Api::new(&suite);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let bas = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    use pb::ProgrammeKind as K;
    let flow = api
        .programme(&trust, "trust", "flow", K::Thematic, "", "Flow")
        .await
        .unwrap();
    let sou_flow = api
        .programme(&trust, "sites/SOU", "sou-flow", K::Thematic, "", "Flow")
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
        api.project(&trust, site, id, p).await.unwrap();
    }
    let list = |programme: &str| pb::ListProjectsRequest {
        parent: "sites/-".into(),
        programme: programme.into(),
        ..Default::default()
    };
    let listed = api
        .c
        .list_projects(authed(&bas, list(&flow.name)))
        .await
        .unwrap()
        .into_inner()
        .projects;
    let names: Vec<_> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sites/BAS/projects/flow-bas"]);
    let err = api
        .c
        .list_projects(authed(&bas, list(&sou_flow.name)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    suite.stop().await.unwrap();
}
