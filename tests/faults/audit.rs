//! The audit trail while the gateway's database is away: nothing is dropped, readiness says
//! NOT_SERVING, a full queue fails closed (UNAVAILABLE), and once the database is back every
//! queued decision reaches the table and calls are served again.

use qi_e2e::{TestSuite, authed, until};
use qi_proto::training as tpb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Held events: small, so the test fills the queue quickly.
const QUEUE: usize = 20;

/// A call the gateway decides alone (a viewer may not create courses): fast, and audited.
async fn denied_call(suite: &TestSuite, token: &str) -> tonic::Status {
    let mut client = TrainingServiceClient::new(suite.channel.clone());
    let req = tpb::CreateCourseRequest {
        parent: "trust".into(),
        course_id: "never".into(),
        ..Default::default()
    };
    client
        .create_course(authed(token, req))
        .await
        .expect_err("a viewer cannot create a course")
}

async fn gateway_health(suite: &TestSuite) -> i32 {
    let mut health = HealthClient::new(suite.channel.clone());
    let req = HealthCheckRequest {
        service: "qi.gateway.v1.GatewayService".into(),
    };
    health.check(req).await.map_or(0, |r| r.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_its_database_away_the_gateway_holds_every_decision_then_fails_closed() {
    let suite = TestSuite::start_on_own_cluster(&[
        ("QI_AUDIT_QUEUE", &QUEUE.to_string()),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
        ("QI_BACKEND_CHECK_INTERVAL_MS", "100"),
    ])
    .await;
    let viewer = suite.token("audited-viewer", &["viewer"], &["*"]);
    assert_eq!(
        denied_call(&suite, &viewer).await.code(),
        Code::PermissionDenied
    );
    suite.stop_database().await;

    // Denials pile up while nothing can be written; once the queue is full, calls are
    // refused as UNAVAILABLE, naming the audit trail. The writer holds one batch besides.
    let mut denied = 1;
    let closed = loop {
        let status = denied_call(&suite, &viewer).await;
        if status.code() == Code::Unavailable {
            break status;
        }
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        denied += 1;
        assert!(denied < 5_000, "the queue never filled");
    };
    assert!(
        closed.message().contains("auditing is unavailable"),
        "{closed:?}"
    );
    until("readiness NOT_SERVING", || async {
        gateway_health(&suite).await == 2
    })
    .await;

    // The database returns: every held decision is written, none twice, and calls are
    // decided again.
    suite.start_database().await;
    let stored = || async {
        suite
            .count("SELECT count(*) FROM gateway.audit_event WHERE subject = 'audited-viewer' AND code = 'PermissionDenied'")
            .await
    };
    until("every held decision written", || async {
        stored().await >= denied
    })
    .await;
    assert_eq!(stored().await, denied, "each decision once");
    until("readiness SERVING", || async {
        gateway_health(&suite).await == 1
    })
    .await;
    assert_eq!(
        denied_call(&suite, &viewer).await.code(),
        Code::PermissionDenied
    );
    eprintln!("{denied} decisions held while the database was away, all written after");
}
