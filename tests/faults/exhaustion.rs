//! Limits reached: a service's connection pool used up by calls waiting on locks, and the
//! servers' concurrency limit reached. Callers beyond a limit are answered at once (within
//! their deadline, with a code that says "try later"), and the suite keeps serving.

use qi_e2e::{TestSuite, authed};
use qi_proto::metrics as mpb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;

use crate::common::{self, DEADLINE, Write};

/// A metrics read that needs a pooled connection but no lock.
async fn get_metric(suite: &TestSuite, token: &str) -> Result<(), Code> {
    let mut req = authed(
        token,
        mpb::GetMetricRequest {
            name: common::METRIC.into(),
        },
    );
    req.set_timeout(DEADLINE);
    MetricServiceClient::new(suite.channel.clone())
        .get_metric(req)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

/// A training read: another service, another pool.
async fn list_cohorts(suite: &TestSuite, token: &str) -> Result<(), Code> {
    let mut req = authed(
        token,
        tpb::ListCohortsRequest {
            parent: "sites/BAS".into(),
            ..Default::default()
        },
    );
    req.set_timeout(DEADLINE);
    TrainingServiceClient::new(suite.channel.clone())
        .list_cohorts(req)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

/// Adds `n` measurement writes to `held`, each waiting on the side connection's lock before
/// the next is sent. A write the limit sheds is sent again: another call may still hold a
/// permit for a moment (the suite's own background calls, such as the read model following
/// the metrics feed, or the last read's, released just after its answer left), and a write
/// arriving then is rightly refused. Under load this happened in 1 run in 5.
async fn hold_writes(
    suite: &TestSuite,
    token: &str,
    held: &mut Vec<tokio::task::JoinHandle<Result<(), Code>>>,
    n: usize,
) {
    let until = held.len() + n;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while held.len() < until {
        let i = held.len();
        let mut call = held_writes(suite, token, 1).remove(0);
        let call = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "write {i} never held"
            );
            if common::waiting_on_locks(suite).await > i as i64 {
                break Some(call);
            }
            if call.is_finished() {
                match (&mut call).await.unwrap() {
                    Err(Code::ResourceExhausted) => {
                        eprintln!(
                            "write {i} was shed: another call still held a permit; sent again"
                        );
                        break None;
                    }
                    other => panic!("write {i} was not held: {other:?}"),
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        held.extend(call);
    }
}

/// Starts `n` measurement writes that wait on the side connection's lock.
fn held_writes(
    suite: &TestSuite,
    token: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), Code>>> {
    (0..n)
        .map(|i| {
            let (channel, token) = (suite.channel.clone(), token.to_owned());
            tokio::spawn(
                async move { common::send(&channel, &token, &Write::nth(2 * i + 1)).await },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_pool_answers_unavailable_at_once_and_other_services_still_serve() {
    let suite = TestSuite::start_with(&[
        ("QI_DB_MAX_CONNECTIONS", "2"),
        ("QI_DB_ACQUIRE_TIMEOUT_MS", "500"),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
    ])
    .await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;
    let side = common::lock_metrics(&suite).await;
    // Two writes wait on the lock, each holding one of the metrics service's two connections.
    let held = held_writes(&suite, &token, 2);
    common::until_waiting_on_locks(&suite, 2).await;

    // The next metrics call finds no connection: UNAVAILABLE once the acquire timeout
    // passes, well inside its deadline (a queue without end would be DEADLINE_EXCEEDED).
    assert_eq!(get_metric(&suite, &token).await, Err(Code::Unavailable));
    // Another service, with its own pool, is served meanwhile.
    assert_eq!(list_cohorts(&suite, &token).await, Ok(()));

    // Once the lock goes, the held writes complete and the metrics service serves again.
    common::unlock(side).await;
    for call in held {
        assert_eq!(call.await.unwrap(), Ok(()));
    }
    assert_eq!(get_metric(&suite, &token).await, Ok(()));
    assert_eq!(
        suite
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
        2 * common::BATCH as i64
    );
    suite.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_concurrency_limit_sheds_the_excess_at_once_and_serves_within_it() {
    const LIMIT: usize = 3;
    let suite = TestSuite::start_with(&[
        ("QI_CONCURRENCY_LIMIT", "3"),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
    ])
    .await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;
    let side = common::lock_metrics(&suite).await;

    // Below the limit, other callers are served while calls are held.
    let mut held = Vec::new();
    hold_writes(&suite, &token, &mut held, LIMIT - 1).await;
    for _ in 0..3 {
        assert_eq!(list_cohorts(&suite, &token).await, Ok(()));
    }

    // At the limit, the next caller is shed at once: RESOURCE_EXHAUSTED, not a queue.
    hold_writes(&suite, &token, &mut held, 1).await;
    assert_eq!(
        list_cohorts(&suite, &token).await,
        Err(Code::ResourceExhausted)
    );

    common::unlock(side).await;
    for call in held {
        assert_eq!(call.await.unwrap(), Ok(()));
    }
    assert_eq!(list_cohorts(&suite, &token).await, Ok(()));
    suite.stop().await.unwrap();
}
