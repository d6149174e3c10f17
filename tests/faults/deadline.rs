//! Deadlines: a call still waiting when the server's deadline passes is answered
//! DEADLINE_EXCEEDED, not CANCELLED (which tonic's own server timeout answers, and which
//! means the caller gave up). The server's deadline is the caller's `grpc-timeout` capped at
//! `QI_REQUEST_TIMEOUT_MS`; a caller's own shorter deadline is reported by its own client
//! (tonic's as CANCELLED), which gives up at the same moment, so it is not what is tested
//! here. A retry of the write with its request id then converges to one record.

use std::time::Duration;

use qi_e2e::TestSuite;
use tonic::Code;

use crate::common::{self, Write};

/// A suite whose calls end after 1 s, a writer's token, a measurement batch, and a side
/// connection holding the lock that batch will wait on.
async fn a_batch_and_a_lock_it_waits_on() -> (TestSuite, String, Write, sqlx::PgConnection) {
    let suite = TestSuite::start_with(&[
        ("QI_REQUEST_TIMEOUT_MS", "1000"),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
    ])
    .await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;
    let write = Write::nth(1);
    assert!(matches!(write, Write::Batch { .. }), "a measurement batch");
    let side = common::lock_metrics(&suite).await;
    (suite, token, write, side)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_past_the_servers_deadline_is_answered_deadline_exceeded_and_its_retry_converges() {
    let (suite, token, write, side) = a_batch_and_a_lock_it_waits_on().await;

    // No deadline of the caller's, and one longer than the server allows: both end at the
    // server's, as DEADLINE_EXCEEDED.
    for deadline in [None, Some(Duration::from_secs(30))] {
        let status = common::send_within(&suite.channel, &token, &write, deadline)
            .await
            .expect_err("the batch waits on the lock");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{deadline:?}: {status:?}"
        );
        assert!(status.message().contains("(1000 ms)"), "{status:?}");
    }

    // A passed deadline leaves the write's fate unknown to its caller: the retry with the
    // same request id settles it, exactly once.
    common::unlock(side).await;
    common::send(&suite.channel, &token, &write)
        .await
        .expect("the retry is acknowledged");
    assert_eq!(common::present(&suite, &[write]).await, (0, 1));
    assert_eq!(common::partial_batches(&suite).await, 0);
}

/// A statement still running when its call is answered is cancelled by PostgreSQL at the
/// call's deadline: dropping the call does not stop a statement the server is running, so
/// without the transaction's `statement_timeout` the write would wait on the lock for as
/// long as it is held, holding a pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_does_not_outlive_its_call() {
    let (suite, token, write, side) = a_batch_and_a_lock_it_waits_on().await;
    let status = common::send_within(&suite.channel, &token, &write, None)
        .await
        .expect_err("the batch waits on the lock");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The lock is still held; the service's statement waiting on it must be gone. Polled
    // (bounded) because the cancel and the answer race by a few milliseconds.
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE application_name = 'qi-metrics' AND wait_event_type = 'Lock'";
    let mut left = suite.count(waiting).await;
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = suite.count(waiting).await;
    }
    assert_eq!(left, 0, "a statement outlived its call");
    common::unlock(side).await;
    assert_eq!(common::present(&suite, &[write]).await, (0, 0));
}
