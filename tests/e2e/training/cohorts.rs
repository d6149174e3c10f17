//! Cohorts: scheduled once however often a create is retried, listed newest first page by
//! page, refused with the fields named, planned in a series, moved and closed by their
//! lifecycle.

use chrono::Days;
use qi_e2e::training::{create_cohort, new_cohort};
use qi_e2e::{Caller, TestSuite, date, fields, today, ymd};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use tonic::Code;

use super::{STARTED_DAYS_AGO, running_cohort};

/// A cohort under `parent` starting on day `day` of January 2027.
fn request(parent: &str, day: u32, request_id: &str) -> pb::CreateCohortRequest {
    let name = format!("Cohort starting on day {day}");
    pb::CreateCohortRequest {
        request_id: request_id.into(),
        ..new_cohort(parent, &name, ymd(2027, 1, day), 24)
    }
}

const STORED: &str = "SELECT count(*) FROM training.cohort";

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_makes_one_cohort() {
    let suite = TestSuite::start().await;
    let lead = suite.caller("bas-lead", &["improvement_team"], &["BAS"]);
    let id = uuid::Uuid::new_v4().to_string();
    // Eight concurrent sends and one after: all answer the same cohort.
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let mut c = lead.training();
            let req = request("sites/BAS", 5, &id);
            tokio::spawn(async move { c.create_cohort(req).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    let mut c = lead.training();
    let again = c
        .create_cohort(request("sites/BAS", 5, &id))
        .await
        .unwrap()
        .into_inner();
    for a in &answers {
        assert_eq!(a.as_ref().unwrap(), &again);
    }
    assert_eq!(suite.count(STORED).await, 1);

    // The same id with a different request is refused, naming request_id.
    let err = c
        .create_cohort(request("sites/BAS", 6, &id))
        .await
        .unwrap_err();
    assert_eq!(fields(&err)[0], "request_id");
    assert_eq!(suite.count(STORED).await, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn lists_page_through_every_cohort_newest_first_without_repeats() {
    let suite = TestSuite::start().await;
    let lead = suite.caller("bas-lead", &["improvement_team"], &["BAS", "SOU"]);
    let mut client = lead.training();
    for day in 1..=7 {
        for site in ["sites/BAS", "sites/SOU"] {
            client.create_cohort(request(site, day, "")).await.unwrap();
        }
    }
    let page = |parent: &str, page_token: String| pb::ListCohortsRequest {
        parent: parent.into(),
        page_size: 3,
        page_token,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let listed = client
            .list_cohorts(page("sites/-", page_token.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.cohorts.len() <= 3);
        seen.extend(listed.cohorts);
        if listed.next_page_token.is_empty() {
            break;
        }
        page_token = listed.next_page_token;
    }
    assert_eq!(seen.len(), 14);
    let days: Vec<i32> = seen.iter().map(|c| c.start_date.unwrap().day).collect();
    let mut sorted = days.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(days, sorted, "newest first");
    let mut names: Vec<_> = seen.iter().map(|c| c.name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 14, "no repeats");

    // A token is bound to the parameters it was issued for.
    let first = client
        .list_cohorts(page("sites/-", String::new()))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_cohorts(page("sites/BAS", first.next_page_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let suite = TestSuite::start().await;
    let office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let mut client = office.training();
    let mut bad = request("sites/BAS", 1, "");
    if let Some(c) = bad.cohort.as_mut() {
        c.capacity = 10_000;
        c.display_name = "x".repeat(5_000);
        c.start_date = Some(Date {
            year: 2027,
            month: 13,
            day: 1,
        });
    }
    bad.cohort_id = "Not An Id".into();
    let err = client.create_cohort(bad).await.unwrap_err();
    let mut named = fields(&err);
    named.sort();
    assert_eq!(
        named,
        [
            "cohort.capacity",
            "cohort.display_name",
            "cohort.start_date",
            "cohort_id"
        ]
    );

    // A site the trust does not have, for a trust-wide caller.
    let err = client
        .create_cohort(request("sites/XYZ", 1, ""))
        .await
        .unwrap_err();
    assert_eq!(fields(&err)[0], "parent");

    // A course that does not exist.
    let mut unknown = request("sites/BAS", 1, "");
    if let Some(c) = unknown.cohort.as_mut() {
        c.course = "trust/courses/no-such-course".into();
    }
    let err = client.create_cohort(unknown).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("cohort.course"), "{}", err.message());

    // A cohort id taken at the same site.
    let mut named = request("sites/BAS", 1, "");
    named.cohort_id = "spring-27".into();
    client.create_cohort(named.clone()).await.unwrap();
    let err = client.create_cohort(named).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    assert_eq!(suite.count(STORED).await, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_cohort_has_five_sessions_a_week_apart() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    let sessions = team
        .training()
        .list_sessions(pb::ListSessionsRequest { parent: cohort })
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let dates: Vec<_> = sessions.iter().map(|s| s.date.unwrap()).collect();
    let start = today() - Days::new(STARTED_DAYS_AGO);
    assert_eq!(
        dates,
        (0..5)
            .map(|w| date(start + Days::new(7 * w)))
            .collect::<Vec<_>>()
    );
    suite.stop().await.unwrap();
}

/// The first Thursday of 2027, when [`plan`]'s series starts.
fn first() -> chrono::NaiveDate {
    ymd(2027, 1, 7)
}

/// Plans four cohorts of QSIR Practitioner at SOU from [`first`]: them, and SOU's team.
async fn plan(suite: &TestSuite) -> (Vec<pb::Cohort>, Caller) {
    let team = suite.caller("sou-lead", &["improvement_team"], &["SOU"]);
    let planned = team
        .training()
        .plan_cohorts(pb::PlanCohortsRequest {
            parent: "sites/SOU".into(),
            course: "trust/courses/qsir-prac".into(),
            first_start_date: Some(date(first())),
            count: 4,
            capacity: 24,
            facilitators: vec![],
            request_id: "plan-2027".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cohorts;
    (planned, team)
}

#[tokio::test]
async fn a_planned_series_starts_its_cohorts_thirteen_weeks_apart() {
    let suite = TestSuite::start().await;
    let (planned, _) = plan(&suite).await;
    let starts: Vec<_> = planned.iter().map(|c| c.start_date.unwrap()).collect();
    assert_eq!(
        starts,
        [0, 13, 26, 39].map(|w| date(first() + Days::new(7 * w))),
        "four cohorts, thirteen weeks apart"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_session_moves_to_another_day() {
    let suite = TestSuite::start().await;
    let (planned, team) = plan(&suite).await;
    let moved = team
        .training()
        .update_session(pb::UpdateSessionRequest {
            session: Some(pb::Session {
                name: format!("{}/sessions/2", planned[0].name),
                date: Some(date(first() + Days::new(8))),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(moved.date, Some(date(first() + Days::new(8))));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_planned_cohort_cannot_complete() {
    let suite = TestSuite::start().await;
    let (planned, team) = plan(&suite).await;
    let err = team
        .training()
        .complete_cohort(pb::CompleteCohortRequest {
            name: planned[0].name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_cancellation_needs_a_reason_and_a_cancelled_cohort_does_not_open() {
    let suite = TestSuite::start().await;
    let (planned, team) = plan(&suite).await;
    let c = planned[0].name.clone();
    let cancel = |reason: &str| pb::CancelCohortRequest {
        name: c.clone(),
        reason: reason.into(),
        etag: String::new(),
    };
    let mut training = team.training();
    let err = training.cancel_cohort(cancel(" ")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let cancelled = training
        .cancel_cohort(cancel("Room unavailable"))
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    assert_eq!(cancelled.state, pb::CohortState::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "Room unavailable");
    let err = training
        .open_cohort(pb::OpenCohortRequest {
            name: c,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_cohorts_state_is_not_changed_by_an_update() {
    let suite = TestSuite::start().await;
    let office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let cohort = create_cohort(&office, request("trust", 1, ""))
        .await
        .unwrap();
    let state = pb::UpdateCohortRequest {
        cohort: Some(pb::Cohort {
            name: cohort.name,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["state".into()],
        }),
    };
    let err = office.training().update_cohort(state).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}
