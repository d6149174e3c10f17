//! What keeps the tables from growing for ever, and who may touch them: expired request ids
//! purged by each service, the audit trail's monthly partitions dropped past retention, and
//! the runtime roles' privileges (the gateway's may add and read audit events, never change
//! or delete one).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qi_e2e::{TestSuite, authed};
use qi_gateway::retention;
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use sqlx::PgPool;

/// Polls `sql` (a count) until it is `want`, for up to 20 s; returns the last value.
async fn count_becomes(suite: &TestSuite, sql: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = suite.count(sql).await;
        if n == want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_service_purges_expired_request_ids_and_keeps_fresh_ones() {
    let suite = TestSuite::start_with(&[("QI_IDEMPOTENCY_PURGE_INTERVAL_MS", "100")]).await;
    let pool = PgPool::connect(&suite.database_url).await.unwrap();
    for schema in ["training", "projects", "metrics"] {
        for (id, age_hours) in [("expired", 25), ("fresh", 23)] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {schema}.idempotency (caller, method, request_id, request, create_time)
                 VALUES ('someone', '/m', $1, '\\x00', now() - make_interval(hours => $2))"
            )))
            .bind(id)
            .bind(age_hours)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    for schema in ["training", "projects", "metrics"] {
        let expired =
            format!("SELECT count(*) FROM {schema}.idempotency WHERE request_id = 'expired'");
        assert_eq!(count_becomes(&suite, &expired, 0).await, 0, "{schema}");
        let fresh = format!("SELECT count(*) FROM {schema}.idempotency WHERE request_id = 'fresh'");
        assert_eq!(suite.count(&fresh).await, 1, "{schema}");
    }
    pool.close().await;
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_gateways_runtime_role_adds_and_reads_audit_events_but_cannot_change_or_delete_them() {
    let role = format!("qi_rt_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let suite = TestSuite::start_with_runtime_role(&role, &[]).await;
    // Served as the runtime role: a call through the gateway reaches training, and is audited.
    let token = suite.token("role-check", &["viewer"], &["BAS"]);
    TrainingServiceClient::new(suite.channel.clone())
        .list_courses(authed(
            &token,
            pb::ListCoursesRequest {
                parent: "trust".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let audited = "SELECT count(*) FROM gateway.audit_event WHERE subject = 'role-check'";
    assert_eq!(count_becomes(&suite, audited, 1).await, 1);
    let sessions = format!(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'qi-gateway'
           AND usename <> '{role}'"
    );
    assert_eq!(
        suite.count(&sessions).await,
        0,
        "the gateway serves as {role}"
    );

    let runtime_url =
        suite
            .database_url
            .replacen("postgres://qi@", &format!("postgres://{role}@"), 1);
    let runtime = PgPool::connect(&runtime_url).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM gateway.audit_event")
        .fetch_one(&runtime)
        .await
        .unwrap();
    assert!(seen >= 1);
    for statement in [
        "UPDATE gateway.audit_event SET reason = 'rewritten'",
        "DELETE FROM gateway.audit_event",
        "TRUNCATE gateway.audit_event",
        "DELETE FROM gateway.audit_event_default",
        "DROP TABLE gateway.audit_event_default",
        "ALTER TABLE gateway.audit_event DISABLE TRIGGER ALL",
        "SELECT setval('gateway.audit_event_id', 1)",
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&runtime)
            .await
            .expect_err(statement);
        let code = refused
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {refused}");
    }
    runtime.close().await;
    assert_eq!(suite.count(audited).await, 1, "the audit row is untouched");
    suite.stop().await.unwrap();
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

async fn insert_event(pool: &PgPool, table: &str, subject: &str, time: DateTime<Utc>) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO gateway.{table} (time, subject, method, decision, code, reason, trace_id)
         VALUES ($1, $2, '/m', 'deny', 'Unauthenticated', 'r', 't')"
    )))
    .bind(time)
    .bind(subject)
    .execute(pool)
    .await
    .unwrap();
}

async fn subjects(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT subject FROM gateway.audit_event ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'gateway.audit_event'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn partition_of(t: DateTime<Utc>) -> String {
    t.format("audit_event_%Y_%m").to_string()
}

#[tokio::test]
async fn audit_partitions_are_made_ahead_and_dropped_whole_past_retention() {
    qi_platform::telemetry::init_for_tests();
    let url = qi_test_kit::database().await.unwrap();
    let pool = qi_platform::db::connect_owner(&url, qi_gateway::SCHEMA)
        .await
        .unwrap();
    let now = Utc::now();
    // A trail from before partitioning keeps its rows and ids through the migration.
    qi_gateway::MIGRATOR
        .run_to(20261201000001, &pool)
        .await
        .unwrap();
    insert_event(&pool, "audit_event", "old", now - days(100)).await;
    insert_event(&pool, "audit_event", "recent", now).await;
    qi_gateway::MIGRATOR.run(&pool).await.unwrap();
    assert_eq!(subjects(&pool).await, ["old", "recent"]);
    let made = partitions(&pool).await;
    for month in [now - days(100), now, now + days(85)] {
        assert!(made.contains(&partition_of(month)), "{month}: {made:?}");
    }
    // New ids continue after the old ones.
    insert_event(&pool, "audit_event", "after", now).await;
    assert_eq!(subjects(&pool).await, ["old", "recent", "after"]);

    // Retention of 30 days drops the month of "old" whole; the current month stays.
    let report = retention::maintain(&pool, 30, now).await.unwrap().unwrap();
    assert!(
        report.dropped.contains(&partition_of(now - days(100))),
        "{report:?}"
    );
    assert!(!report.dropped.contains(&partition_of(now)), "{report:?}");
    assert_eq!(subjects(&pool).await, ["recent", "after"]);

    // An event no month holds lands in the default partition, and moves into its month's
    // partition when maintenance (here, 200 days on) creates it; by then the current
    // months are past retention.
    let later = now + days(200);
    insert_event(&pool, "audit_event", "straggler", later).await;
    let in_default = "SELECT count(*) FROM gateway.audit_event_default";
    let n: i64 = sqlx::query_scalar(in_default)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let report = retention::maintain(&pool, 30, later)
        .await
        .unwrap()
        .unwrap();
    assert!(report.created.contains(&partition_of(later)), "{report:?}");
    assert_eq!(report.moved, 1);
    assert!(report.dropped.contains(&partition_of(now)), "{report:?}");
    assert_eq!(subjects(&pool).await, ["straggler"]);
    let n: i64 = sqlx::query_scalar(in_default)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Rows past retention in the default partition are deleted too.
    sqlx::query("INSERT INTO gateway.audit_event_default (time, subject, method, decision, code, reason, trace_id) VALUES ($1, 'lost', '/m', 'deny', 'c', 'r', 't')")
        .bind(now - days(1000))
        .execute(&pool)
        .await
        .unwrap();
    let report = retention::maintain(&pool, 30, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert!(report.created.is_empty() && report.dropped.is_empty());

    // A run while another holds the lock (a second replica, or a CronJob overlapping
    // `qi up`) does nothing.
    #[expect(clippy::disallowed_methods, reason = "a session that holds the lock")]
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(retention::LOCK_KEY)
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(
        retention::maintain(&pool, 30, later + days(400))
            .await
            .unwrap(),
        None
    );
    drop(other);
    pool.close().await;
}
