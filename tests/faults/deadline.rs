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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_past_the_servers_deadline_is_answered_deadline_exceeded_and_its_retry_converges() {
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
