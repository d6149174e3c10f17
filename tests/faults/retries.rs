//! Retries where the first answer was lost: the same create with the same request id, sent
//! eight times at once and once more after, makes one record and gets one answer. Cohorts
//! and projects are covered in `e2e` (cohorts.rs, projects.rs); these are the creates not
//! yet covered concurrently: a measurement batch, a metric, and a course.

use std::future::Future;

use qi_e2e::{TestSuite, authed};
use qi_proto::metrics as mpb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;

use crate::common;

/// Sends eight at once and one after; every answer must be the same success.
async fn nine_sends<T, F, Fut>(send: F) -> T
where
    T: PartialEq + std::fmt::Debug + Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
{
    let at_once: Vec<_> = (0..8).map(|_| tokio::spawn(send())).collect();
    let mut answers = Vec::new();
    for s in at_once {
        answers.push(s.await.expect("a send never panics").expect("a success"));
    }
    let after = send().await.expect("a success");
    for a in &answers {
        assert_eq!(a, &after, "every retry gets the first answer");
    }
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_measurement_batch_metric_and_course_are_each_stored_once() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let token = common::writer_token(&suite);
    let metrics = MetricServiceClient::new(suite.channel.clone());

    let metric_rid = uuid::Uuid::new_v4().to_string();
    let metric = nine_sends(|| {
        let mut c = metrics.clone();
        let req = authed(
            &token,
            mpb::CreateMetricRequest {
                parent: "sites/BAS".into(),
                metric_id: "daily-discharges".into(),
                metric: Some(mpb::Metric {
                    display_name: "Discharges before noon".into(),
                    kind: mpb::MetricKind::Process as i32,
                    improvement_direction: mpb::ImprovementDirection::Increase as i32,
                    frequency: mpb::MetricFrequency::Day as i32,
                    value_type: mpb::MetricValueType::Count as i32,
                    ..Default::default()
                }),
                request_id: metric_rid.clone(),
            },
        );
        async move { c.create_metric(req).await.map(|r| r.into_inner()) }
    })
    .await;
    assert_eq!(metric.metric.unwrap().name, common::METRIC);

    let batch_rid = uuid::Uuid::new_v4().to_string();
    let batch = nine_sends(|| {
        let mut c = metrics.clone();
        let measurements = (1..=common::BATCH as i32)
            .map(|day| mpb::Measurement {
                period: Some(qi_proto::google::r#type::Date {
                    year: 2025,
                    month: 3,
                    day,
                }),
                value: Some(f64::from(day)),
                ..Default::default()
            })
            .collect();
        let req = authed(
            &token,
            mpb::BatchCreateMeasurementsRequest {
                parent: common::METRIC.into(),
                measurements,
                request_id: batch_rid.clone(),
            },
        );
        async move {
            c.batch_create_measurements(req)
                .await
                .map(|r| r.into_inner())
        }
    })
    .await;
    assert_eq!(batch.created_count, common::BATCH as i32, "{batch:?}");

    let trust = suite.token("qi-office", &["admin"], &["*"]);
    let training = TrainingServiceClient::new(suite.channel.clone());
    let course_rid = uuid::Uuid::new_v4().to_string();
    nine_sends(|| {
        let mut c = training.clone();
        let req = authed(
            &trust,
            tpb::CreateCourseRequest {
                parent: "trust".into(),
                course_id: "qsir-lead".into(),
                course: Some(tpb::Course {
                    code: "QSIR-LEAD".into(),
                    display_name: "QSIR for leaders".into(),
                    session_count: 2,
                    ..Default::default()
                }),
                request_id: course_rid.clone(),
            },
        );
        async move { c.create_course(req).await.map(|r| r.into_inner()) }
    })
    .await;

    let stored = (
        suite.count("SELECT count(*) FROM metrics.metric").await,
        suite
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
        suite
            .count("SELECT count(*) FROM training.course WHERE id = 'qsir-lead'")
            .await,
    );
    assert_eq!(stored, (1, common::BATCH as i64, 1));
    suite.stop().await.unwrap();
}
