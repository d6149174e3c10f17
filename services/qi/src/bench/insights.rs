//! The `insights` scenario: how fresh the read model's answers are. One write at a time
//! through the gateway (a project's title, `UpdateProject`) is timed from its
//! acknowledgement to the first `GetCohortImpact` answer that shows it (asked every 2 ms).
//! The peer, in the same run: the same writes' arrival on a projects feed opened at "now"
//! through the gateway — the read model follows that feed, so it cannot be fresher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Days;
use qi_platform::convert::date;
use qi_proto::common::WatchStart;
use qi_proto::insights as ipb;
use qi_proto::insights::insights_service_client::InsightsServiceClient;
use qi_proto::projects as ppb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, json};
use tonic::metadata::{Ascii, MetadataValue};

use super::headers::{bearer, with_header};
use super::load::percentile_ms;
use super::{Deployment, Effort, Outcome, Target};

const LEARNER: &str = "staff/90000001";
const PROJECT: &str = "sites/BAS/projects/bench-fresh";

/// A learner who completed a one-day cohort and leads a project: the answer to watch.
async fn story(d: &Deployment, token: &MetadataValue<Ascii>) -> anyhow::Result<String> {
    let mut training = TrainingServiceClient::new(d.gateway.clone());
    let row = tpb::EsrRow {
        employee_number: "90000001".into(),
        assignment_number: "90000001".into(),
        primary_assignment: true,
        forename: "Bench".into(),
        surname: "Learner".into(),
        staff_group: "03".into(),
        site: "BAS".into(),
        person_type: "Employee".into(),
        ..Default::default()
    };
    let extract = vec![
        tpb::SyncStaffRequest {
            mode: tpb::SyncMode::Delta as i32,
            extract_id: "bench-insights".into(),
            extract_time: Some(qi_platform::convert::timestamp(chrono::Utc::now())),
            ..Default::default()
        },
        tpb::SyncStaffRequest {
            rows: vec![row],
            complete: true,
            ..Default::default()
        },
    ];
    training
        .sync_staff(with_header(
            tokio_stream::iter(extract),
            "authorization",
            token,
        ))
        .await?;
    let day = qi_platform::calendar::today() - Days::new(30);
    let cohort = training
        .create_cohort(with_header(
            tpb::CreateCohortRequest {
                parent: "trust".into(),
                cohort_id: "bench-fresh".into(),
                cohort: Some(tpb::Cohort {
                    course: "trust/courses/qsir-fund".into(),
                    display_name: "Bench cohort".into(),
                    start_date: Some(date(day)),
                    capacity: 10,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            "authorization",
            token,
        ))
        .await?
        .into_inner()
        .cohort
        .map(|c| c.name)
        .unwrap_or_default();
    training
        .create_enrolment(with_header(
            tpb::CreateEnrolmentRequest {
                parent: cohort.clone(),
                enrolment: Some(tpb::Enrolment {
                    staff: LEARNER.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            "authorization",
            token,
        ))
        .await?;
    training
        .start_cohort(with_header(
            tpb::StartCohortRequest {
                name: cohort.clone(),
                etag: String::new(),
            },
            "authorization",
            token,
        ))
        .await?;
    training
        .record_attendance(with_header(
            tpb::RecordAttendanceRequest {
                session: format!("{cohort}/sessions/1"),
                records: vec![tpb::AttendanceRecord {
                    staff: LEARNER.into(),
                    status: tpb::AttendanceStatus::Attended as i32,
                }],
            },
            "authorization",
            token,
        ))
        .await?;
    let mut projects = ProjectServiceClient::new(d.gateway.clone());
    projects
        .create_project(with_header(
            ppb::CreateProjectRequest {
                parent: "sites/BAS".into(),
                project_id: "bench-fresh".into(),
                project: Some(ppb::Project {
                    title: "Fresh 0".into(),
                    problem_statement: "How fresh are the answers?".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            "authorization",
            token,
        ))
        .await?;
    projects
        .create_team_member(with_header(
            ppb::CreateTeamMemberRequest {
                parent: PROJECT.into(),
                team_member: Some(ppb::TeamMember {
                    staff: LEARNER.into(),
                    role: ppb::TeamRole::Lead as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            "authorization",
            token,
        ))
        .await?;
    Ok(cohort)
}

/// The title the answer shows for the learner's project, if it shows it yet.
async fn title_shown(
    insights: &mut InsightsServiceClient<tonic::transport::Channel>,
    token: &MetadataValue<Ascii>,
    cohort: &str,
) -> anyhow::Result<Option<String>> {
    let answer = match insights
        .get_cohort_impact(with_header(
            ipb::GetCohortImpactRequest {
                cohort: cohort.into(),
                ..Default::default()
            },
            "authorization",
            token,
        ))
        .await
    {
        Ok(answer) => answer.into_inner(),
        // Until the read model has taken in the cohort.
        Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
        Err(status) => return Err(status.into()),
    };
    Ok(answer
        .cohorts
        .iter()
        .flat_map(|c| &c.learners)
        .flat_map(|l| &l.projects)
        .find(|p| p.project == PROJECT)
        .map(|p| p.title.clone()))
}

/// Runs the scenario.
pub(super) async fn insights(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let mut f = Map::new();
    let writer = bearer(&d.token("bench-team", &["improvement_team"])?)?;
    let reader = bearer(&d.token("bench-board", &["viewer"])?)?;
    let setup = bearer(&d.token("bench-admin", &["admin"])?)?;
    let cohort = story(d, &setup).await?;
    let mut insights = InsightsServiceClient::new(d.gateway.clone());
    let waited = Instant::now();
    while title_shown(&mut insights, &reader, &cohort)
        .await?
        .is_none()
    {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(60),
            "the read model did not take in the bench's project within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The peer: a projects feed opened at "now", noting when each title arrives.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut feed = ProjectServiceClient::new(d.gateway.clone())
        .watch_changes(with_header(
            ppb::WatchChangesRequest {
                start: WatchStart::Now as i32,
                collections: vec!["projects".into()],
                ..Default::default()
            },
            "authorization",
            &reader,
        ))
        .await?
        .into_inner();
    let noted = arrived.clone();
    let watching = tokio::spawn(async move {
        while let Ok(Some(m)) = feed.message().await {
            if let Some(ppb::watch_changes_response::Resource::Project(p)) = m.resource
                && let Ok(mut a) = noted.lock()
            {
                a.entry(p.title).or_insert_with(Instant::now);
            }
        }
    });

    let writes = if effort.rounds > 1 { 200 } else { 10 };
    let mut projects = ProjectServiceClient::new(d.gateway.clone());
    let (mut shown, mut acked) = (Vec::new(), Vec::new());
    eprintln!("  {writes} writes, one at a time, each until the answer shows it");
    for n in 1..=writes {
        let title = format!("Fresh {n}");
        projects
            .update_project(with_header(
                ppb::UpdateProjectRequest {
                    project: Some(ppb::Project {
                        name: PROJECT.into(),
                        title: title.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["title".into()],
                    }),
                },
                "authorization",
                &writer,
            ))
            .await?;
        let at = Instant::now();
        loop {
            if title_shown(&mut insights, &reader, &cohort)
                .await?
                .as_deref()
                == Some(&title)
            {
                break;
            }
            anyhow::ensure!(
                at.elapsed() < Duration::from_secs(30),
                "write {n} did not show in the answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        shown.push(at.elapsed());
        acked.push((title, at));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    watching.abort();
    let arrived = arrived.lock().map(|a| a.clone()).unwrap_or_default();
    let mut delivered: Vec<Duration> = acked
        .iter()
        .filter_map(|(t, at)| arrived.get(t).map(|a| a.saturating_duration_since(*at)))
        .collect();
    shown.sort();
    delivered.sort();
    let p99 = percentile_ms(&shown, 0.99);
    f.insert("writes".into(), json!(writes));
    f.insert(
        "answer shows the write p50 ms".into(),
        json!(percentile_ms(&shown, 0.5)),
    );
    f.insert("answer shows the write p99 ms".into(), json!(p99));
    f.insert(
        "feed delivers the write p50 ms".into(),
        json!(percentile_ms(&delivered, 0.5)),
    );
    f.insert(
        "feed delivers the write p99 ms".into(),
        json!(percentile_ms(&delivered, 0.99)),
    );
    f.insert("feed deliveries seen".into(), json!(delivered.len()));
    Ok(Outcome {
        name: "insights",
        figures: f,
        targets: vec![Target::at_most(
            "insights: a write shows in the answers, p99 ms",
            1000.0,
            p99,
        )],
    })
}
