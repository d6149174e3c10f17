//! Re-sends: a batch sent again changes and touches nothing; a retry with the batch's
//! request id returns the first answer, and the id cannot be reused for another body.

use qi_e2e::metrics::{counts, rate, record, stratum};
use qi_e2e::{TestSuite, date, fields, rows, ymd};

use super::{DNA, STORED, weekly_batch, weekly_dna};

#[tokio::test]
async fn a_resent_batch_is_reported_unchanged() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    let again = record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    assert_eq!(counts(&again), (0, 0, 48));
    assert_eq!(suite.count(STORED).await, 48);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_resent_batch_touches_no_row() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    let stamps = "SELECT id, update_time::text FROM metrics.measurement ORDER BY id";
    let before: Vec<(i64, String)> = rows(&suite.database_url, stamps).await;
    record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    let after: Vec<(i64, String)> = rows(&suite.database_url, stamps).await;
    assert_eq!(before, after, "a re-send touches no row");
    suite.stop().await.unwrap();
}

/// The request id of the retried batch.
const REQUEST_ID: &str = "2f8c7a3e-1b4d-4c1a-9e55-7d0f3b2a6c10";

/// One measurement of 16 February 2026, in IMD quintile `imd`.
fn one(imd: &str) -> Vec<qi_proto::metrics::Measurement> {
    vec![rate(
        date(ymd(2026, 2, 16)),
        stratum(imd, "", "1"),
        1.0,
        10.0,
    )]
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_returns_the_first_answer() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    let first = record(&nurse, DNA, one("1"), REQUEST_ID).await.unwrap();
    let replay = record(&nurse, DNA, one("1"), REQUEST_ID).await.unwrap();
    assert_eq!(counts(&first), (1, 0, 0));
    assert_eq!(
        replay, first,
        "the replay is the first answer, not (0, 0, 1)"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_sent_again_with_another_body_is_refused() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    record(&nurse, DNA, one("1"), REQUEST_ID).await.unwrap();
    let err = record(&nurse, DNA, one("2"), REQUEST_ID).await.unwrap_err();
    assert_eq!(fields(&err), ["request_id"]);
    suite.stop().await.unwrap();
}
