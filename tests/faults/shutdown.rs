//! A graceful stop while calls are in flight: they finish, new calls are refused, the suite
//! exits, and the gateway's audit trail holds every call it answered.
//!
//! The suite runs in process, so "SIGTERM" here is the stop future that `qi up`'s signal
//! handler completes (the process-level SIGTERM path is in `services/qi/tests/process.rs`).

use std::time::Duration;

use qi_e2e::TestSuite;
use tonic::Code;

use crate::common::{self, Write};

/// Calls held in flight when the stop comes.
const IN_FLIGHT: usize = 4;

/// Waits until the gateway's listener is closed.
async fn until_refusing(addr: std::net::SocketAddr) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway kept accepting connections after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_finishes_calls_in_flight_refuses_new_ones_and_flushes_the_audit_trail() {
    let suite = TestSuite::start_with(&[("QI_RATE_LIMIT_PER_SUBJECT", "0")]).await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;
    let before = 1; // CreateMetric.

    let side = common::lock_metrics(&suite).await;
    let in_flight: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let (channel, token) = (suite.channel.clone(), token.clone());
            tokio::spawn(
                async move { common::send(&channel, &token, &Write::nth(2 * i + 1)).await },
            )
        })
        .collect();
    common::until_waiting_on_locks(&suite, IN_FLIGHT as i64).await;

    let (addr, channel, url) = (
        suite.addr,
        suite.channel.clone(),
        suite.database_url.clone(),
    );
    let stopping = tokio::spawn(suite.stop());
    until_refusing(addr).await;
    // New connections are refused. A call on the already-open connection races the
    // server's GOAWAY: a stream started before it is served in full (and audited), one
    // after it is not run (tonic reports UNAVAILABLE, or CANCELLED for a connection it
    // finds going away, or INTERNAL "h2 protocol error" for a stream the GOAWAY ended with
    // NO_ERROR, which tonic maps so); counted below either way. A service's own INTERNAL
    // would say something else, and fails here.
    let raced = common::send_within(&channel, &token, &Write::nth(100), Some(common::DEADLINE))
        .await
        .map_err(|s| (s.code(), s.message().to_owned()));
    let goaway = |m: &str| m.starts_with("h2 protocol error");
    assert!(
        match &raced {
            Ok(()) => true,
            Err((code, message)) => {
                matches!(code, Code::Unavailable | Code::Cancelled)
                    || (*code == Code::Internal && goaway(message))
            }
        },
        "{raced:?}"
    );
    let raced_served = i64::from(raced.is_ok());
    let fresh = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    assert!(fresh.is_err(), "a stopped gateway accepts no connection");

    // The in-flight calls finish once the database lets them, and the suite then exits.
    common::unlock(side).await;
    for call in in_flight {
        assert_eq!(call.await.unwrap(), Ok(()), "an in-flight call was cut off");
    }
    stopping
        .await
        .unwrap()
        .expect("the suite stops cleanly after draining");

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gateway.audit_event WHERE subject = 'ward-feed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let measurements: i64 = sqlx::query_scalar("SELECT count(*) FROM metrics.measurement")
        .fetch_one(&pool)
        .await
        .unwrap();
    let cohorts: i64 = sqlx::query_scalar("SELECT count(*) FROM training.cohort")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(cohorts, raced_served, "a refused call was not run");
    assert_eq!(
        audited,
        (before + IN_FLIGHT) as i64 + raced_served,
        "one audit event per call answered"
    );
    eprintln!(
        "graceful stop: {IN_FLIGHT} calls in flight completed; the call racing the stop ended \
         {raced:?}; {audited} audit events for {} calls answered",
        (before + IN_FLIGHT) as i64 + raced_served
    );
    assert_eq!(measurements, (IN_FLIGHT * common::BATCH) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_stuck_past_the_grace_period_does_not_keep_the_suite_from_exiting() {
    let suite = TestSuite::start_with(&[
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
        ("QI_SHUTDOWN_GRACE_MS", "1000"),
    ])
    .await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;
    let side = common::lock_metrics(&suite).await;
    let stuck = {
        let (channel, token) = (suite.channel.clone(), token.clone());
        tokio::spawn(async move { common::send(&channel, &token, &Write::nth(1)).await })
    };
    common::until_waiting_on_locks(&suite, 1).await;
    // Gateway and services each wait out their grace; far beyond that, the stop hangs.
    let url = suite.database_url.clone();
    let stopped = tokio::time::timeout(Duration::from_secs(30), suite.stop()).await;
    let outcome = stuck.await.unwrap();
    // The call was cut, not left running: once the lock is gone it cannot commit.
    drop(side);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let measurements: i64 = sqlx::query_scalar("SELECT count(*) FROM metrics.measurement")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        measurements, 0,
        "a call cut at shutdown committed afterwards"
    );
    assert!(
        stopped.is_ok(),
        "the suite was still stopping 30 s after a stop with a 1 s grace"
    );
    assert_eq!(
        outcome,
        Err(Code::Unavailable),
        "the stuck call is cut, answered UNAVAILABLE so its caller retries it"
    );
    eprintln!("the call stuck past the grace period ended as {outcome:?}");
}
