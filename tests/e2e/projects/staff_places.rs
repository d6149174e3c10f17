//! The projects service learns where people work from the training service's feed
//! (issue 31): a new follower starts from training's list of staff, then follows the feed
//! from the cursor it took, and of two replicas only one consumes.

use qi_e2e::training::{EXTRACT_TIME, esr, sync};
use qi_e2e::{TestSuite, until};
use qi_proto::training::SyncMode;
use tokio::sync::watch;

/// Everyone the follower has placed: (name, site, active), by name.
async fn places(pool: &sqlx::PgPool) -> Vec<(String, String, bool)> {
    sqlx::query_as("SELECT staff, site, active FROM projects.staff_place ORDER BY staff")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_follower_starts_from_the_staff_list_then_follows_the_feed() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(
        &hr,
        SyncMode::Full,
        EXTRACT_TIME,
        &[
            esr("72000001", "BAS", "Ames"),
            esr("72000002", "SOU", "Bell"),
        ],
    )
    .await
    .unwrap();
    // A projects schema of its own: the suite's own follower holds the lock in the suite's
    // database, which these replicas must not contend for.
    let pool = qi_test_kit::migrated(qi_projects::SCHEMA, &qi_projects::MIGRATOR)
        .await
        .unwrap();
    let key = suite.config.access_keys.current.clone().unwrap();
    let training = suite.service_urls["qi.training.v1.TrainingService"].clone();
    let (stop, stopping) = watch::channel(false);
    let first = tokio::spawn(
        qi_projects::people::follower(pool.clone(), &key, "projects", &training)
            .run(stopping.clone()),
    );
    let second = tokio::spawn(
        qi_projects::people::follower(pool.clone(), &key, "projects", &training).run(stopping),
    );
    // Built from the list, with the feed's cursor beside it.
    let listed = vec![
        ("staff/72000001".to_owned(), "BAS".to_owned(), true),
        ("staff/72000002".to_owned(), "SOU".to_owned(), true),
    ];
    until("the people placed from the list", || async {
        places(&pool).await == listed
    })
    .await;
    let cursors: i64 = sqlx::query_scalar("SELECT count(*) FROM projects.feed")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cursors, 1);
    // Then from the feed: Ames moves to BRM, Bell leaves (absent from a full extract).
    sync(
        &hr,
        SyncMode::Full,
        EXTRACT_TIME + 60,
        &[esr("72000001", "BRM", "Ames")],
    )
    .await
    .unwrap();
    let followed = vec![
        ("staff/72000001".to_owned(), "BRM".to_owned(), true),
        ("staff/72000002".to_owned(), "SOU".to_owned(), false),
    ];
    until("the move and the leaver followed", || async {
        places(&pool).await == followed
    })
    .await;
    // One replica held the lock throughout: the other waited.
    let holders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(holders, 1);
    stop.send_replace(true);
    first.await.unwrap();
    second.await.unwrap();
    pool.close().await;
    suite.stop().await.unwrap();
}
