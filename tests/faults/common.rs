//! What the fault tests share: the writes they make, each with a request id so a retry
//! converges, and the outcome of each call.

use std::time::Duration;

use sqlx::Connection as _;

use qi_e2e::{TestSuite, authed};
use qi_proto::google::r#type::Date;
use qi_proto::metrics as mpb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// The deadline every call in these tests carries: a call that hangs ends as
/// `DEADLINE_EXCEEDED`, which the tests refuse.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Measurements in one batch: a batch is stored whole or not at all.
pub(crate) const BATCH: usize = 5;

/// The metric the measurement writes go to.
pub(crate) const METRIC: &str = "sites/BAS/metrics/daily-discharges";

/// One logical write, identified by its request id.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// A cohort (one row, five sessions, one idempotency row, in one transaction).
    Cohort { n: usize, request_id: String },
    /// A batch of [`BATCH`] measurements on days no other batch uses.
    Batch { n: usize, request_id: String },
}

impl Write {
    /// The `n`th write: cohorts and batches in turn.
    pub(crate) fn nth(n: usize) -> Write {
        let request_id = uuid::Uuid::new_v4().to_string();
        if n.is_multiple_of(2) {
            Write::Cohort { n, request_id }
        } else {
            Write::Batch { n, request_id }
        }
    }
}

fn with_deadline<T>(token: &str, message: T, deadline: Option<Duration>) -> tonic::Request<T> {
    let mut req = authed(token, message);
    if let Some(deadline) = deadline {
        req.set_timeout(deadline);
    }
    req
}

/// Sends `write` once through the gateway with the tests' [`DEADLINE`]; `Ok` when
/// acknowledged.
pub(crate) async fn send(channel: &Channel, token: &str, write: &Write) -> Result<(), Code> {
    send_within(channel, token, write, Some(DEADLINE))
        .await
        .map_err(|s| s.code())
}

/// Sends `write` once through the gateway with `deadline`, or none.
pub(crate) async fn send_within(
    channel: &Channel,
    token: &str,
    write: &Write,
    deadline: Option<Duration>,
) -> Result<(), tonic::Status> {
    match write {
        Write::Cohort { n, request_id } => TrainingServiceClient::new(channel.clone())
            .create_cohort(with_deadline(
                token,
                tpb::CreateCohortRequest {
                    parent: "sites/BAS".into(),
                    cohort_id: String::new(),
                    cohort: Some(tpb::Cohort {
                        course: "trust/courses/qsir-prac".into(),
                        display_name: format!("Fault-test cohort {n}"),
                        start_date: Some(Date {
                            year: 2027,
                            month: 1 + (*n % 12) as i32,
                            day: 1 + (*n % 28) as i32,
                        }),
                        capacity: 24,
                        ..Default::default()
                    }),
                    request_id: request_id.clone(),
                },
                deadline,
            ))
            .await
            .map(|_| ()),
        Write::Batch { n, request_id } => {
            let first = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).expect("a date")
                + chrono::Days::new((*n * BATCH) as u64);
            let measurements = (0..BATCH)
                .map(|i| {
                    let day = first + chrono::Days::new(i as u64);
                    mpb::Measurement {
                        period: Some(date(day)),
                        value: Some((*n + i) as f64),
                        ..Default::default()
                    }
                })
                .collect();
            MetricServiceClient::new(channel.clone())
                .batch_create_measurements(with_deadline(
                    token,
                    mpb::BatchCreateMeasurementsRequest {
                        parent: METRIC.into(),
                        measurements,
                        request_id: request_id.clone(),
                    },
                    deadline,
                ))
                .await
                .map(|_| ())
        }
    }
}

fn date(d: chrono::NaiveDate) -> Date {
    use chrono::Datelike as _;
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// Creates the daily metric the batches write to.
pub(crate) async fn create_metric(suite: &TestSuite, token: &str) {
    MetricServiceClient::new(suite.channel.clone())
        .create_metric(authed(
            token,
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
                request_id: String::new(),
            },
        ))
        .await
        .expect("the metric is created");
}

/// What is stored of the writes: (cohorts, sessions, cohort request ids, measurements).
pub(crate) async fn stored(suite: &TestSuite) -> (i64, i64, i64, i64) {
    (
        suite.count("SELECT count(*) FROM training.cohort").await,
        suite.count("SELECT count(*) FROM training.session").await,
        suite
            .count("SELECT count(*) FROM training.idempotency WHERE method LIKE '%/CreateCohort'")
            .await,
        suite
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
    )
}

/// The token of the trust system making the writes (one caller: request ids are per caller).
pub(crate) fn writer_token(suite: &TestSuite) -> String {
    suite.token("ward-feed", &["improvement_team"], &["BAS"])
}

/// How many of `writes` are stored: (cohorts found by name, batches found whole).
pub(crate) async fn present(suite: &TestSuite, writes: &[Write]) -> (i64, i64) {
    let (mut cohorts, mut batches) = (vec!["''".to_owned()], vec!["-1".to_owned()]);
    for w in writes {
        match w {
            Write::Cohort { n, .. } => cohorts.push(format!("'Fault-test cohort {n}'")),
            Write::Batch { n, .. } => batches.push(n.to_string()),
        }
    }
    let cohorts = suite
        .count(&format!(
            "SELECT count(*) FROM training.cohort WHERE display_name IN ({})",
            cohorts.join(",")
        ))
        .await;
    let batches = suite
        .count(&format!(
            "SELECT count(*) FROM (SELECT (period - date '1990-01-01') / {BATCH} AS n
             FROM metrics.measurement GROUP BY 1 HAVING count(*) = {BATCH}) whole
             WHERE n IN ({})",
            batches.join(",")
        ))
        .await;
    (cohorts, batches)
}

/// Batches stored in part (must be none).
pub(crate) async fn partial_batches(suite: &TestSuite) -> i64 {
    suite
        .count(&format!(
            "SELECT count(*) FROM (SELECT (period - date '1990-01-01') / {BATCH} AS n
             FROM metrics.measurement GROUP BY 1 HAVING count(*) <> {BATCH}) part"
        ))
        .await
}

/// A side connection holding every metric row locked, so measurement writes wait on it.
pub(crate) async fn lock_metrics(suite: &TestSuite) -> sqlx::PgConnection {
    let mut side = sqlx::PgConnection::connect(&suite.database_url)
        .await
        .expect("a side connection");
    sqlx::query("BEGIN").execute(&mut side).await.unwrap();
    sqlx::query("SELECT 1 FROM metrics.metric FOR UPDATE")
        .execute(&mut side)
        .await
        .unwrap();
    side
}

/// How many sessions wait on a lock (calls in flight, inside the service).
pub(crate) async fn waiting_on_locks(suite: &TestSuite) -> i64 {
    suite
        .count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
        .await
}

/// Waits until `n` sessions wait on a lock (the calls are in flight, inside the service).
pub(crate) async fn until_waiting_on_locks(suite: &TestSuite, n: i64) {
    for _ in 0..600 {
        if waiting_on_locks(suite).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the calls never reached the database");
}

/// Ends the side connection, releasing its locks.
pub(crate) async fn unlock(side: sqlx::PgConnection) {
    side.close().await.expect("the side connection closes");
}
