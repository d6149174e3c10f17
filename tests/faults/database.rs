//! PostgreSQL stopped and started while trust systems write through the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use qi_e2e::TestSuite;
use tokio::sync::Mutex;
use tonic::Code;

use crate::common::{self, BATCH, Write};

/// Writers at once.
const WRITERS: usize = 6;

#[derive(Default)]
struct Tally {
    acknowledged: Vec<Write>,
    failed: Vec<(Write, Code)>,
}

/// Waits (boundedly: a stuck suite fails the test rather than hanging it) until `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_loses_no_acknowledged_write_and_half_applies_none() {
    let suite = TestSuite::start_on_own_cluster(&[
        // Fail fast while the database is away, well inside each call's deadline.
        ("QI_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ("QI_RATE_LIMIT_PER_SUBJECT", "0"),
    ])
    .await;
    let token = common::writer_token(&suite);
    common::create_metric(&suite, &token).await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let (oks, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (channel, token) = (suite.channel.clone(), token.clone());
            let (tally, next, oks, errors, stop) = (
                tally.clone(),
                next.clone(),
                oks.clone(),
                errors.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let write = Write::nth(next.fetch_add(1, Ordering::Relaxed));
                    let outcome = common::send(&channel, &token, &write).await;
                    let mut t = tally.lock().await;
                    match outcome {
                        Ok(()) => {
                            oks.fetch_add(1, Ordering::Relaxed);
                            t.acknowledged.push(write);
                        }
                        Err(code) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            t.failed.push((write, code));
                        }
                    }
                }
            })
        })
        .collect();

    until("writes before the fault", || {
        oks.load(Ordering::Relaxed) >= 30
    })
    .await;
    suite.stop_database().await;
    let errors_before = errors.load(Ordering::Relaxed);
    until("calls refused while the database is down", || {
        errors.load(Ordering::Relaxed) >= errors_before + 2 * WRITERS
    })
    .await;
    suite.start_database().await;
    // The same servers, not restarted, serve writes again.
    let oks_after_restart = oks.load(Ordering::Relaxed);
    until("writes after the restart", || {
        oks.load(Ordering::Relaxed) >= oks_after_restart + 30
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer never panics");
    }

    let Tally {
        acknowledged,
        failed,
    } = std::mem::take(&mut *tally.lock().await);
    let bad: Vec<_> = failed
        .iter()
        .filter(|(_, code)| *code != Code::Unavailable)
        .collect();
    assert!(
        bad.is_empty(),
        "a lost database is UNAVAILABLE, never a hang or another code: {bad:?}"
    );
    assert!(failed.len() >= 2 * WRITERS);

    // Every acknowledged write is stored, whole (a cohort with its five sessions and its
    // request id; a batch with all its measurements).
    let acked_cohorts = acknowledged
        .iter()
        .filter(|w| matches!(w, Write::Cohort { .. }))
        .count() as i64;
    let acked_batches = acknowledged.len() as i64 - acked_cohorts;
    let (cohorts, sessions, request_ids, measurements) = common::stored(&suite).await;
    assert!(cohorts >= acked_cohorts, "{cohorts} < {acked_cohorts}");
    assert!(measurements >= acked_batches * BATCH as i64);
    assert_eq!(sessions, 5 * cohorts, "no cohort without its sessions");
    assert_eq!(request_ids, cohorts, "no cohort without its request id");
    assert_eq!(
        common::partial_batches(&suite).await,
        0,
        "no batch stored in part"
    );
    assert_eq!(
        common::present(&suite, &acknowledged).await,
        (acked_cohorts, acked_batches),
        "every acknowledged write is stored"
    );
    let stored_first = cohorts + measurements / BATCH as i64;

    // A refused write may have committed before the connection died: the caller's retry
    // with the same request id converges, so afterwards acknowledged == stored exactly.
    let retried = failed.len();
    for (write, _) in &failed {
        let mut tries = 0;
        while let Err(code) = common::send(&suite.channel, &token, write).await {
            tries += 1;
            assert!(
                code == Code::Unavailable && tries < 20,
                "retry of {write:?}: {code:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let all = acknowledged.len() + retried;
    let all_cohorts = acknowledged
        .iter()
        .chain(failed.iter().map(|(w, _)| w))
        .filter(|w| matches!(w, Write::Cohort { .. }))
        .count() as i64;
    let all_batches = all as i64 - all_cohorts;
    assert_eq!(
        common::stored(&suite).await,
        (
            all_cohorts,
            5 * all_cohorts,
            all_cohorts,
            all_batches * BATCH as i64
        ),
        "acknowledged {} first, {retried} after a retry",
        acknowledged.len()
    );
    eprintln!(
        "database restart: {} writes acknowledged during the run ({stored_first} stored then), \
         {retried} refused UNAVAILABLE and retried with their request ids; finally \
         {all_cohorts} cohorts and {all_batches} batches stored, exactly one each",
        acknowledged.len()
    );
    suite.stop().await.expect("the suite stops cleanly");
}
