//! A change feed (`WatchChanges`) while PostgreSQL stops and starts: the stream ends
//! UNAVAILABLE rather than sitting on a lost database, and a consumer resuming from its last
//! cursor misses no write acknowledged before, during or after.

use std::collections::BTreeSet;
use std::time::Duration;

use qi_e2e::TestSuite;
use qi_e2e::projects::submit_idea;
use qi_proto::common::ChangeKind;
use qi_proto::projects as pb;
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_ends_a_feed_unavailable_and_a_resume_misses_nothing() {
    let suite = TestSuite::start_on_own_cluster(&[
        ("QI_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
    ])
    .await;
    let team = suite.caller("bas-team", &["improvement_team"], &["BAS"]);
    let reader = suite.caller("warehouse", &["viewer"], &["*"]);
    let mut acknowledged = BTreeSet::new();
    for i in 0..5 {
        acknowledged.insert(
            submit_idea(&team, "BAS", &format!("Before {i}"))
                .await
                .unwrap()
                .name,
        );
    }
    let mut seen = BTreeSet::new();
    let mut feed = reader
        .projects()
        .watch_changes(pb::WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The backlog, up to the checkpoint that says it is delivered.
    let mut cursor = loop {
        let m = tokio::time::timeout(PATIENCE, feed.message())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        if m.kind() == ChangeKind::Checkpoint {
            break m.cursor;
        }
        seen.insert(m.resource_name);
    };
    assert_eq!(seen, acknowledged);

    suite.stop_database().await;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match feed.message().await {
                Ok(Some(m)) => {
                    cursor = m.cursor.clone();
                    if m.kind() == ChangeKind::Created {
                        seen.insert(m.resource_name);
                    }
                }
                Ok(None) => panic!("the feed ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the feed ends when the database goes away");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    suite.start_database().await;

    // Writes after the restart (retried while the pool reconnects).
    for i in 0..5 {
        let name = loop {
            match submit_idea(&team, "BAS", &format!("After {i}")).await {
                Ok(idea) => break idea.name,
                Err(s) if s.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("{s:?}"),
            }
        };
        acknowledged.insert(name);
    }
    let mut feed = loop {
        match reader
            .projects()
            .watch_changes(pb::WatchChangesRequest {
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(f) => break f.into_inner(),
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    };
    while !acknowledged.is_subset(&seen) {
        let m = tokio::time::timeout(PATIENCE, feed.message())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        if m.kind() == ChangeKind::Created {
            seen.insert(m.resource_name);
        }
    }
    assert_eq!(seen, acknowledged);
    suite.stop().await.unwrap();
}
