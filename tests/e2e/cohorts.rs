//! The first slice's behaviour: scheduling and listing cohorts, with retries, paging and
//! bad input as a trust system would meet them.

use qi_e2e::{TestSuite, authed};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

fn request(parent: &str, day: i32, request_id: &str) -> pb::CreateCohortRequest {
    pb::CreateCohortRequest {
        parent: parent.into(),
        cohort_id: String::new(),
        cohort: Some(pb::Cohort {
            course: "trust/courses/qsir-prac".into(),
            display_name: format!("Cohort starting on day {day}"),
            start_date: Some(Date {
                year: 2027,
                month: 1,
                day,
            }),
            capacity: 24,
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

async fn stored_cohorts(suite: &TestSuite) -> i64 {
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM training.cohort")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_makes_one_cohort() {
    let suite = TestSuite::start().await;
    let token = suite.token("bas-lead", &["improvement_team"], &["BAS"]);
    let client = TrainingServiceClient::new(suite.channel.clone());
    let id = uuid::Uuid::new_v4().to_string();
    // Eight concurrent sends and one after: all answer the same cohort.
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let mut c = client.clone();
            let req = authed(&token, request("sites/BAS", 5, &id));
            tokio::spawn(async move { c.create_cohort(req).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    let mut c = client.clone();
    let again = c
        .create_cohort(authed(&token, request("sites/BAS", 5, &id)))
        .await
        .unwrap()
        .into_inner();
    for a in &answers {
        assert_eq!(a.as_ref().unwrap(), &again);
    }
    assert_eq!(stored_cohorts(&suite).await, 1);

    // The same id with a different request is refused, naming request_id.
    let err = c
        .create_cohort(authed(&token, request("sites/BAS", 6, &id)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields = err.get_details_bad_request().unwrap().field_violations;
    assert_eq!(fields[0].field, "request_id");
    assert_eq!(stored_cohorts(&suite).await, 1);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn lists_page_through_every_cohort_newest_first_without_repeats() {
    let suite = TestSuite::start().await;
    let token = suite.token("bas-lead", &["improvement_team"], &["BAS", "SOU"]);
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    for day in 1..=7 {
        for site in ["sites/BAS", "sites/SOU"] {
            client
                .create_cohort(authed(&token, request(site, day, "")))
                .await
                .unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_cohorts(authed(
                &token,
                pb::ListCohortsRequest {
                    parent: "sites/-".into(),
                    page_size: 3,
                    page_token: page_token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.cohorts.len() <= 3);
        seen.extend(page.cohorts);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
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
        .list_cohorts(authed(
            &token,
            pb::ListCohortsRequest {
                parent: "sites/-".into(),
                page_size: 3,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_cohorts(authed(
            &token,
            pb::ListCohortsRequest {
                parent: "sites/BAS".into(),
                page_size: 3,
                page_token: first.next_page_token,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let suite = TestSuite::start().await;
    let token = suite.token("qi-office", &["improvement_team"], &["*"]);
    let mut client = TrainingServiceClient::new(suite.channel.clone());
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
    let err = client.create_cohort(authed(&token, bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = err
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|f| f.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "cohort.capacity",
            "cohort.display_name",
            "cohort.start_date",
            "cohort_id"
        ]
    );

    // A site the trust does not have, for a trust-wide caller.
    let err = client
        .create_cohort(authed(&token, request("sites/XYZ", 1, "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "parent"
    );

    // A course that does not exist.
    let mut unknown = request("sites/BAS", 1, "");
    if let Some(c) = unknown.cohort.as_mut() {
        c.course = "trust/courses/no-such-course".into();
    }
    let err = client
        .create_cohort(authed(&token, unknown))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("cohort.course"), "{}", err.message());

    // A cohort id taken at the same site.
    let mut named = request("sites/BAS", 1, "");
    named.cohort_id = "spring-27".into();
    client
        .create_cohort(authed(&token, named.clone()))
        .await
        .unwrap();
    let err = client
        .create_cohort(authed(&token, named))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    assert_eq!(stored_cohorts(&suite).await, 1);
    suite.stop().await.unwrap();
}
