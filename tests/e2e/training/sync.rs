//! The HR sync: rows upserted and refused by row and field, extracts applied whole or not
//! at all, FULL extracts deactivating the absent, and only HR's account syncing.

use std::time::Duration;

use chrono::Days;
use qi_e2e::training::{EXTRACT_TIME as T0, esr, extract, sync};
use qi_e2e::{TestSuite, date, today};
use qi_proto::training as pb;
use tonic::Code;

/// Two people, a row refused for its site and forename, a repeat of the first row, and
/// the second person's second job with no assignment number of its own.
fn first_extract() -> Vec<pb::EsrRow> {
    let mut bad = esr("10000003", "XYZ", "Nowhere");
    bad.forename = String::new();
    let mut second_job = esr("10000002", "SOU", "Baker");
    second_job.assignment_number = "10000002-02".into();
    second_job.primary_assignment = false;
    vec![
        esr("10000001", "BAS", "Adams"),
        esr("10000002", "SOU", "Baker"),
        bad,
        esr("10000001", "BAS", "Adams"),
        second_job,
    ]
}

const STAFF: &str = "SELECT count(*) FROM training.staff";

#[tokio::test]
async fn a_sync_upserts_the_good_rows_and_refuses_each_bad_one_by_row_and_field() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let first = sync(&hr, pb::SyncMode::Delta, T0, &first_extract())
        .await
        .unwrap();
    assert_eq!(first.received_rows, 5);
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));
    let refused: Vec<_> = first
        .rejected
        .iter()
        .map(|r| (r.row_number, r.field.as_str()))
        .collect();
    assert_eq!(refused, [(3, "site"), (4, "assignment_number")]);
    assert_eq!(suite.count(STAFF).await, 2);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_extract_again_changes_nothing() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(&hr, pb::SyncMode::Delta, T0, &first_extract())
        .await
        .unwrap();
    let again = sync(&hr, pb::SyncMode::Delta, T0, &first_extract())
        .await
        .unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_older_row_changes_nothing_and_a_newer_one_updates_the_person() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(&hr, pb::SyncMode::Delta, T0, &first_extract())
        .await
        .unwrap();
    let mut moved = esr("10000001", "BAS", "Adams-Clark");
    let older = sync(&hr, pb::SyncMode::Delta, T0 - 60, &[moved.clone()])
        .await
        .unwrap();
    assert_eq!(older.unchanged, 1);
    moved.job_role = "Ward Sister".into();
    let newer = sync(&hr, pb::SyncMode::Delta, T0 + 60, &[moved])
        .await
        .unwrap();
    assert_eq!(newer.updated, 1);
    let viewer = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let got = viewer
        .training()
        .get_staff(pb::GetStaffRequest {
            name: "sites/BAS/staff/10000001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .staff
        .unwrap();
    assert_eq!(
        (got.surname.as_str(), got.job_role.as_str()),
        ("Adams-Clark", "Ward Sister")
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn only_hrs_trust_wide_sync_account_may_sync() {
    let suite = TestSuite::start().await;
    for caller in [
        suite.caller("team", &["improvement_team"], &["*"]),
        suite.caller("esr-bas", &["hr_sync"], &["BAS"]),
    ] {
        let err = sync(
            &caller,
            pb::SyncMode::Delta,
            T0,
            &[esr("10000009", "BAS", "X")],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    assert_eq!(suite.count(STAFF).await, 0);
    suite.stop().await.unwrap();
}

/// Four people at BRM, synced FULL.
async fn four_at_brm(hr: &qi_e2e::Caller) -> Vec<pb::EsrRow> {
    let everyone: Vec<_> = (1..=4)
        .map(|i| esr(&format!("2000000{i}"), "BRM", &format!("Person{i}")))
        .collect();
    sync(hr, pb::SyncMode::Full, T0, &everyone).await.unwrap();
    everyone
}

#[tokio::test]
async fn a_full_sync_deactivates_the_absent_and_the_leavers_but_not_the_refused() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let everyone = four_at_brm(&hr).await;
    // Next month: person 4 has gone, person 3's row is broken.
    let mut broken = everyone[2].clone();
    broken.work_email = "no at sign".into();
    let mut leaver = everyone[1].clone();
    leaver.termination_date = Some(date(today() - Days::new(10)));
    let next = sync(
        &hr,
        pb::SyncMode::Full,
        T0 + 86_400,
        &[everyone[0].clone(), leaver, broken],
    )
    .await
    .unwrap();
    assert_eq!(next.rejected.len(), 1);
    assert_eq!(next.deactivated, 2, "the leaver and the absent person");
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.staff WHERE active")
            .await,
        2
    );
    assert_eq!(
        suite
            .count(
                "SELECT count(*) FROM training.staff WHERE active AND employee_number = '20000003'"
            )
            .await,
        1,
        "a refused row's person stays active"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_sync_with_nothing_valid_in_it_is_refused() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    four_at_brm(&hr).await;
    // It would deactivate everyone.
    let err = sync(&hr, pb::SyncMode::Full, T0 + 90_000, &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

/// 500 people at SOU.
fn five_hundred() -> Vec<pb::EsrRow> {
    (0..500)
        .map(|i| esr(&format!("{}", 30_000_000 + i), "SOU", &format!("P{i}")))
        .collect()
}

/// The extract of `rows` without its end: the stream stalls after its last batch.
fn stalled(
    mode: pb::SyncMode,
    rows: &[pb::EsrRow],
) -> impl tokio_stream::Stream<Item = pb::SyncStaffRequest> + use<> {
    let mut messages = extract(mode, T0, rows);
    if let Some(last) = messages.last_mut() {
        last.complete = false;
    }
    tokio_stream::StreamExt::chain(tokio_stream::iter(messages), tokio_stream::pending())
}

#[tokio::test]
async fn a_sync_stream_dropped_midway_changes_nothing_and_a_resend_applies_it_whole() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let rows = five_hundred();
    // Send the header and two batches, then stall and drop the call.
    let mut client = hr.training();
    let messages = stalled(pb::SyncMode::Delta, &rows[..200]);
    let call = tokio::spawn(async move { client.sync_staff(messages).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    let _ = call.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.count(STAFF).await, 0);

    let whole = sync(&hr, pb::SyncMode::Delta, T0, &rows).await.unwrap();
    assert_eq!(whole.inserted, 500);
    let again = sync(&hr, pb::SyncMode::Delta, T0, &rows).await.unwrap();
    assert_eq!(again.unchanged, 500);
    assert_eq!(suite.count(STAFF).await, 500);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sync_stream_ending_without_its_complete_marker_is_aborted_and_changes_nothing() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let mut unmarked = extract(pb::SyncMode::Delta, T0, &five_hundred()[..100]);
    if let Some(last) = unmarked.last_mut() {
        last.complete = false;
    }
    let err = hr
        .training()
        .sync_staff(tokio_stream::iter(unmarked))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(suite.count(STAFF).await, 0);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sync_message_over_the_size_limit_is_refused_and_changes_nothing() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    // Over the 4 MiB limit: the sync ends RESOURCE_EXHAUSTED, with nothing kept.
    let mut huge = five_hundred()[..100].to_vec();
    huge[0].job_role = "x".repeat(5 * 1024 * 1024);
    let err = sync(&hr, pb::SyncMode::Delta, T0, &huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(suite.count(STAFF).await, 0);
    suite.stop().await.unwrap();
}

/// 3,000 people, every tenth with a second assignment sent before their primary one.
fn three_thousand() -> Vec<pb::EsrRow> {
    let mut rows = Vec::new();
    for i in 0..3_000 {
        let emp = format!("{}", 40_000_000 + i);
        let person = esr(&emp, "SOU", &format!("Person{i}"));
        if i % 10 == 0 {
            let mut bank = person.clone();
            bank.assignment_number = format!("{emp}-02");
            bank.primary_assignment = false;
            bank.job_role = "Bank Nurse".into();
            rows.push(bank);
        }
        rows.push(person);
    }
    rows
}

/// How many sessions are running `COPY` into a sync's temporary table.
async fn copies_running(suite: &TestSuite) -> i64 {
    // This test's own database: the cluster is shared by the tests running beside it.
    let sql = "SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'COPY sync_row%'
                  AND state = 'active'";
    suite.count(sql).await
}

#[tokio::test]
async fn a_sync_cut_while_copying_its_rows_applies_none() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let rows = three_thousand();
    // All but the last message, then the stream stalls: the rows are being copied.
    let mut client = hr.training();
    let messages = stalled(pb::SyncMode::Full, &rows[..rows.len() - 100]);
    let call = tokio::spawn(async move { client.sync_staff(messages).await });
    for _ in 0..100 {
        if copies_running(&suite).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copies_running(&suite).await, 1, "the sync's COPY is open");
    call.abort();
    let _ = call.await;
    for _ in 0..100 {
        if copies_running(&suite).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copies_running(&suite).await, 0, "the cut sync's COPY ended");
    assert_eq!(suite.count(STAFF).await, 0);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_extract_of_many_copy_batches_applies_each_person_once_with_their_other_jobs() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let rows = three_thousand();
    // Every person once, the primary row describing them.
    let whole = sync(&hr, pb::SyncMode::Full, T0, &rows).await.unwrap();
    assert_eq!(whole.received_rows, 3_300);
    assert_eq!(whole.inserted, 3_000);
    assert!(whole.rejected.is_empty(), "{:?}", whole.rejected);
    assert_eq!(
        suite
            .count(
                "SELECT count(*) FROM training.staff
                 WHERE job_role = 'Staff Nurse' AND other_assignments = ARRAY[employee_number || '-02']"
            )
            .await,
        300
    );
    let again = sync(&hr, pb::SyncMode::Full, T0, &rows).await.unwrap();
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 3_000)
    );
    assert_eq!(again.deactivated, 0);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_syncs_of_the_same_new_people_both_succeed() {
    let suite = TestSuite::start().await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let rows: Vec<_> = (0..2_000)
        .map(|i| esr(&format!("{}", 50_000_000 + i), "BAS", &format!("P{i}")))
        .collect();
    // Their merges take turns: the second finds everyone already there.
    let (a, b) = tokio::join!(
        sync(&hr, pb::SyncMode::Delta, T0, &rows),
        sync(&hr, pb::SyncMode::Delta, T0, &rows),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.inserted + b.inserted, 2_000);
    assert_eq!(a.unchanged + b.unchanged, 2_000);
    assert_eq!(suite.count(STAFF).await, 2_000);
    suite.stop().await.unwrap();
}
