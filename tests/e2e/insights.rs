//! The read model's intake (issue 30): a new model is built from the services' lists, then
//! it mirrors every service's feed, followed straight from the services with a context it
//! signs, resumes where it left off, and only one replica consumes at a time.

use std::time::Duration;

use qi_e2e::projects::{add_team_member, create_project, patient_partner, with_aim};
use qi_e2e::training::{EXTRACT_TIME, esr, sync};
use qi_e2e::{TestSuite, until};
use qi_insights::intake::{Intake, Service, Source};
use qi_proto::projects as pb;
use qi_proto::training::SyncMode;
use tokio::sync::watch;

/// A read model's pool on a database of its own, migrated: the suite runs its own intake
/// on its database, whose consumer lock these replicas must not contend for.
async fn insights_pool() -> sqlx::PgPool {
    qi_test_kit::migrated(qi_insights::SCHEMA, &qi_insights::MIGRATOR)
        .await
        .unwrap()
}

/// An intake of every service of `suite`, signing with the suite's key.
fn intake(suite: &TestSuite, pool: &sqlx::PgPool) -> Intake {
    let url = |name: &str| suite.service_urls[name].clone();
    let sources = vec![
        Source {
            service: Service::Training,
            url: url("qi.training.v1.TrainingService"),
        },
        Source {
            service: Service::Projects,
            url: url("qi.projects.v1.ProjectService"),
        },
        Source {
            service: Service::Metrics,
            url: url("qi.metrics.v1.MetricService"),
        },
    ];
    let key = suite.config.access_keys.current.clone().unwrap();
    Intake::new(pool.clone(), &key, "insights", sources)
}

/// The mirrored names of `collection` of `service`, sorted.
async fn mirrored(pool: &sqlx::PgPool, service: &str, collection: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM insights.resource WHERE service = $1 AND collection = $2 ORDER BY name",
    )
    .bind(service)
    .bind(collection)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Waits until the mirror of `collection` holds exactly `expected`.
async fn until_mirrored(pool: &sqlx::PgPool, service: &str, collection: &str, expected: &[&str]) {
    until(
        &format!("{service} {collection} mirrored as {expected:?}"),
        || async { mirrored(pool, service, collection).await == expected },
    )
    .await;
}

/// How many sessions hold the intake's consumer lock (in this database: the suite's own
/// intake holds the same key in the suite's).
async fn lock_holders(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND (classid::bigint << 32 | objid::bigint) = $1
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(0x7169_5f69_6e74_616b_i64)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until `n` sessions hold the consumer lock. A session lock is given back when its
/// backend exits, which PostgreSQL does after the client's goodbye has returned: read once,
/// a lock just let go may still show.
async fn until_lock_holders(pool: &sqlx::PgPool, n: i64) {
    until(
        &format!("{n} sessions holding the consumer lock"),
        || async { lock_holders(pool).await == n },
    )
    .await;
}

#[tokio::test]
async fn the_intake_builds_from_the_lists_mirrors_every_feed_resumes_and_one_replica_consumes() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(
        &hr,
        SyncMode::Full,
        EXTRACT_TIME,
        &[
            esr("30000001", "BAS", "Ames"),
            esr("30000002", "SOU", "Bell"),
        ],
    )
    .await
    .unwrap();
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    let project = create_project(&team, "BAS", "discharge", with_aim("Discharge by noon"))
        .await
        .unwrap();
    let partner = add_team_member(&team, &project.name, patient_partner("A. Patient"))
        .await
        .unwrap();

    // The feeds' history is purged (as their retention does after 30 days): a new read
    // model is built from the services' lists, not from what the feeds still hold.
    for schema in ["training", "projects"] {
        let service = qi_platform::db::connect_owner(&suite.database_url, schema)
            .await
            .unwrap();
        let purged = qi_platform::changes::purge_expired(&service, Duration::ZERO)
            .await
            .unwrap();
        assert!(purged > 0, "{schema} had changes to purge");
        service.close().await;
    }
    let pool = insights_pool().await;
    let (stop, stopping) = watch::channel(false);
    let first = tokio::spawn(intake(&suite, &pool).run(stopping.clone()));
    until_mirrored(
        &pool,
        "training",
        "staff",
        &["staff/30000001", "staff/30000002"],
    )
    .await;
    until_mirrored(&pool, "projects", "projects", &[project.name.as_str()]).await;
    // The member's change may come in a later batch than its project's.
    until("the patient partner mirrored", || async {
        mirrored(&pool, "projects", "teamMembers")
            .await
            .contains(&partner.name)
    })
    .await;
    // What is mirrored is the service's message whole, resource included.
    let message: Vec<u8> = sqlx::query_scalar(
        "SELECT message FROM insights.resource WHERE service = 'projects' AND name = $1",
    )
    .bind(&project.name)
    .fetch_one(&pool)
    .await
    .unwrap();
    let change = <pb::WatchChangesResponse as prost::Message>::decode(message.as_slice()).unwrap();
    let Some(pb::watch_changes_response::Resource::Project(mirrored_project)) = change.resource
    else {
        panic!("a project change without its project: {change:?}");
    };
    assert_eq!(mirrored_project.title, "Discharge by noon");

    // A second replica waits for the lock while the first consumes.
    let (stop_second, second_stopping) = watch::channel(false);
    let second = tokio::spawn(intake(&suite, &pool).run(second_stopping));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lock_holders(&pool).await, 1);

    // The first stops and gives the lock back; changes made meanwhile reach the mirror
    // through the second, which resumes from the stored cursors.
    stop.send_replace(true);
    first.await.unwrap();
    team.projects()
        .delete_team_member(pb::DeleteTeamMemberRequest {
            name: partner.name.clone(),
        })
        .await
        .unwrap();
    sync(
        &hr,
        SyncMode::Delta,
        EXTRACT_TIME + 60,
        &[esr("30000003", "BAS", "Cole")],
    )
    .await
    .unwrap();
    until_mirrored(
        &pool,
        "training",
        "staff",
        &["staff/30000001", "staff/30000002", "staff/30000003"],
    )
    .await;
    until("the patient partner's deletion mirrored", || async {
        !mirrored(&pool, "projects", "teamMembers")
            .await
            .contains(&partner.name)
    })
    .await;
    assert_eq!(lock_holders(&pool).await, 1);
    // Every feed's cursor is stored, each the feed's own (a quiet feed's comes with the
    // checkpoint ending its backlog, which may be the last to arrive).
    until("a cursor stored for every feed", || async {
        let feeds: Vec<String> = sqlx::query_scalar("SELECT service FROM insights.feed ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
        feeds == ["metrics", "projects", "training"]
    })
    .await;

    stop_second.send_replace(true);
    second.await.unwrap();
    until_lock_holders(&pool, 0).await;
    suite.stop().await.unwrap();
}
